-- What the first schema lacked to hold everything the embedded store
-- holds: bot accounts and their keys, incoming webhooks, the outgoing
-- webhook queue, one-time password links, the mail queue, and the order
-- of reactions.

-- An automated account: no password sign-in, an API key instead.
ALTER TABLE users ADD COLUMN bot boolean NOT NULL DEFAULT false;
-- Password resets look accounts up by address.
CREATE INDEX users_email ON users (lower(email));

-- What makes a user a bot. Deleting a bot removes this row and disables
-- its user (kept, so its messages keep their author).
CREATE TABLE bots (
    user_id bigint PRIMARY KEY REFERENCES users (id),
    -- SHA-256 of the API key; the key itself is never kept.
    key_hash bytea NOT NULL UNIQUE,
    -- HMAC-SHA256 key of outgoing webhook requests.
    signing_secret text NOT NULL,
    webhook_url text,
    all_messages boolean NOT NULL DEFAULT false,
    created_by bigint NOT NULL,
    created_at bigint NOT NULL
);

-- Incoming webhooks: a secret URL that posts into one room.
CREATE TABLE hooks (
    id bigserial PRIMARY KEY,
    room text NOT NULL,
    topic_id bigint NOT NULL REFERENCES topics (id),
    -- Who the posts are from.
    user_id bigint NOT NULL REFERENCES users (id),
    -- SHA-256 of the URL token.
    token_hash bytea NOT NULL UNIQUE,
    created_by bigint NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX hooks_by_topic ON hooks (topic_id, id);

-- Outgoing webhook events not yet delivered, written in the posting
-- transaction and deleted once delivered or given up on.
CREATE TABLE deliveries (
    event_id bigserial PRIMARY KEY,
    bot_id bigint NOT NULL,
    topic text NOT NULL,
    -- The JSON request body, exactly as it is signed and sent.
    body text NOT NULL,
    created_at bigint NOT NULL
);

-- One-time password links, under the SHA-256 of their token.
CREATE TABLE password_links (
    hash bytea PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    purpose text NOT NULL CHECK (purpose IN ('welcome', 'reset')),
    -- The user's token version when issued: a password change voids it.
    token_version bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX password_links_expiry ON password_links (expires_at);

-- Mail waiting to be sent.
CREATE TABLE mail_queue (
    id bigserial PRIMARY KEY,
    recipient text NOT NULL,
    subject text NOT NULL,
    body text NOT NULL,
    created_at bigint NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL
);
CREATE INDEX mail_queue_due ON mail_queue (next_attempt_at, id);

-- Users keep the order they reacted in (`ord`), emoji the order they were
-- first used in (`emoji_ord`: the `ord` of the emoji's first reaction,
-- copied to every later one while the emoji stays on the message).
ALTER TABLE reactions ADD COLUMN ord bigserial;
ALTER TABLE reactions ADD COLUMN emoji_ord bigint;
CREATE INDEX reactions_by_message ON reactions (topic_id, seq, emoji_ord, ord);

-- Search is served by the full-text index in the data directory, fed
-- from the store; a tsvector kept per row would only slow every post.
ALTER TABLE messages DROP COLUMN search;
