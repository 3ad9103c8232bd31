-- Bots' own settings kept apart from their accounts: a message rate limit
-- other than the one of people, and the last attempts of their outgoing
-- webhook. Both go when the bot is deleted (its `bots` row).

-- A bot without a row here is limited as people are (push_burst,
-- push_refill_per_sec). Both values are u32 and at least 1.
CREATE TABLE bot_rate_limits (
    user_id bigint PRIMARY KEY REFERENCES bots (user_id) ON DELETE CASCADE,
    burst bigint NOT NULL CHECK (burst BETWEEN 1 AND 4294967295),
    refill_per_sec bigint NOT NULL CHECK (refill_per_sec BETWEEN 1 AND 4294967295)
);

-- The newest delivery attempts per bot (the server keeps 50), in the order
-- they were added (`id`).
CREATE TABLE delivery_log (
    id bigserial PRIMARY KEY,
    bot_id bigint NOT NULL REFERENCES bots (user_id) ON DELETE CASCADE,
    event_id bigint NOT NULL,
    -- 1 for the first attempt at the event (a u32).
    attempt bigint NOT NULL CHECK (attempt >= 0),
    at bigint NOT NULL,
    -- The HTTP status, when there was an answer.
    status integer CHECK (status BETWEEN 0 AND 65535),
    error text,
    latency_ms bigint NOT NULL CHECK (latency_ms >= 0),
    outcome text NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'gave_up'))
);
CREATE INDEX delivery_log_by_bot ON delivery_log (bot_id, id);
