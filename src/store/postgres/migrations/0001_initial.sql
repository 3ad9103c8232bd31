-- The whole schema of what the embedded store holds, plus the columns and
-- tables of mentions, reactions and search. Times are milliseconds since
-- the epoch (bigint), as in the embedded store's records, unless named
-- *_secs. Ids are bigint (the embedded store's u64 ids fit below 2^63).
-- `lobby` is created by the server when it opens the store, as in the
-- embedded store, since its epoch is random.

-- Settings the server keeps: the generated JWT secret ('jwt_secret').
-- The schema version is schema_migrations; id counters are sequences.
CREATE TABLE meta (
    key text PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE users (
    id bigserial PRIMARY KEY,
    username text NOT NULL,
    display_name text NOT NULL,
    email text,
    -- argon2id PHC string; never leaves the server.
    password_hash text NOT NULL,
    admin boolean NOT NULL DEFAULT false,
    disabled boolean NOT NULL DEFAULT false,
    -- Tokens carrying an older version are refused (a u32).
    token_version bigint NOT NULL DEFAULT 0 CHECK (token_version >= 0),
    created_at bigint NOT NULL
);
-- One account per name, whatever its case.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

-- Revoked tokens until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti text PRIMARY KEY,
    expires_at_secs bigint NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at_secs);

-- A topic with a message history: a room (`room:<name>`) or a conversation
-- (`dm:<conversation id>`).
CREATE TABLE topics (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('room', 'dm')),
    -- The Phoenix topic, e.g. `room:lobby` or `dm:3`.
    name text NOT NULL UNIQUE,
    -- Random string fixed when the history is created.
    epoch text NOT NULL,
    -- The seq of the topic's newest message (0 = none). A post locks this
    -- row (UPDATE ... RETURNING) in its transaction, so seqs have no gaps
    -- and are handed out in commit order.
    last_seq bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at bigint NOT NULL
);

CREATE TABLE rooms (
    name text PRIMARY KEY,
    topic_id bigint NOT NULL UNIQUE REFERENCES topics (id),
    private boolean NOT NULL DEFAULT false,
    description text NOT NULL DEFAULT '',
    -- The creator; NULL for rooms made by the server or the CLI (the
    -- embedded store's owner 0).
    owner_id bigint REFERENCES users (id),
    created_at bigint NOT NULL
);

-- Members of private rooms and of conversations, looked up both ways.
CREATE TABLE topic_members (
    topic_id bigint NOT NULL REFERENCES topics (id),
    user_id bigint NOT NULL REFERENCES users (id),
    PRIMARY KEY (topic_id, user_id)
);
CREATE INDEX topic_members_by_user ON topic_members (user_id, topic_id);

-- One conversation per pair of users, lower id first.
CREATE TABLE conversations (
    id bigserial PRIMARY KEY,
    user_low bigint NOT NULL REFERENCES users (id),
    user_high bigint NOT NULL REFERENCES users (id),
    topic_id bigint NOT NULL UNIQUE REFERENCES topics (id),
    created_at bigint NOT NULL,
    CHECK (user_low < user_high),
    UNIQUE (user_low, user_high)
);
CREATE INDEX conversations_by_high_user ON conversations (user_high);

-- Message history. (topic_id, seq) is the primary key, so a topic's
-- history, recovery after a seq and the newest page are range scans of
-- its index.
CREATE TABLE messages (
    topic_id bigint NOT NULL REFERENCES topics (id),
    seq bigint NOT NULL CHECK (seq >= 1),
    -- Unique across topics.
    id bigserial NOT NULL,
    author_id bigint NOT NULL REFERENCES users (id),
    -- Erased (empty) once deleted.
    body text NOT NULL,
    client_id text,
    inserted_at bigint NOT NULL,
    edited_at bigint,
    deleted boolean NOT NULL DEFAULT false,
    -- Ids of the users the body mentions.
    mentions bigint[] NOT NULL DEFAULT '{}',
    -- Full-text search. The 'simple' configuration splits on spaces and
    -- punctuation, so it does not segment CJK text: that needs pg_trgm or
    -- a segmenting parser later.
    search tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, body)) STORED,
    PRIMARY KEY (topic_id, seq)
);
CREATE UNIQUE INDEX messages_id_key ON messages (id);
-- Idempotent posting: one message per (topic, author, client_id).
CREATE UNIQUE INDEX messages_client_id_key ON messages (topic_id, author_id, client_id)
    WHERE client_id IS NOT NULL;
CREATE INDEX messages_search ON messages USING gin (search);

-- The last seq each user has read in each topic.
CREATE TABLE read_positions (
    user_id bigint NOT NULL REFERENCES users (id),
    topic_id bigint NOT NULL REFERENCES topics (id),
    seq bigint NOT NULL CHECK (seq >= 0),
    PRIMARY KEY (user_id, topic_id)
);
CREATE INDEX read_positions_by_topic ON read_positions (topic_id);

-- Users each user ignores.
CREATE TABLE ignores (
    user_id bigint NOT NULL REFERENCES users (id),
    ignored_id bigint NOT NULL REFERENCES users (id),
    PRIMARY KEY (user_id, ignored_id)
);

-- Uploaded files (small images), each belonging to one topic and linked to
-- at most one message. The bytes are TOASTed out of line, so reading the
-- other columns does not read them.
CREATE TABLE attachments (
    id bigserial PRIMARY KEY,
    topic_id bigint NOT NULL REFERENCES topics (id),
    uploader_id bigint NOT NULL REFERENCES users (id),
    -- Sniffed from the bytes, never taken from the client.
    content_type text NOT NULL,
    size bigint NOT NULL CHECK (size >= 0),
    bytes bytea NOT NULL,
    created_at bigint NOT NULL,
    -- The seq of the message carrying it, once linked.
    message_seq bigint,
    FOREIGN KEY (topic_id, message_seq) REFERENCES messages (topic_id, seq)
);
CREATE UNIQUE INDEX attachments_message_key ON attachments (topic_id, message_seq)
    WHERE message_seq IS NOT NULL;

-- One row per user and emoji on a message.
CREATE TABLE reactions (
    topic_id bigint NOT NULL,
    seq bigint NOT NULL,
    emoji text NOT NULL,
    user_id bigint NOT NULL REFERENCES users (id),
    PRIMARY KEY (topic_id, seq, emoji, user_id),
    FOREIGN KEY (topic_id, seq) REFERENCES messages (topic_id, seq)
);

-- Mentions of a user not yet read by them.
CREATE TABLE unread_mentions (
    user_id bigint NOT NULL REFERENCES users (id),
    topic_id bigint NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (user_id, topic_id, seq),
    FOREIGN KEY (topic_id, seq) REFERENCES messages (topic_id, seq)
);
