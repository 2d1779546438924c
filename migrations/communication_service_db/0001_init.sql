-- The communication service (seed service 9), first part: conversations, their participants,
-- messages and read positions (the seed's `conversations`, `conversation_participants`,
-- `messages`, `message_reads`), plus idempotency and the outbox. Forums and office hours come
-- in later migrations.

-- Events already applied by communication-service-group (see cloud/src/consumer).
CREATE TABLE processed_events (
    event_id     UUID PRIMARY KEY,
    topic        TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Transactional outbox (see cloud/src/outbox.rs).
CREATE TABLE event_outbox (
    id         BIGSERIAL PRIMARY KEY,
    event_id   UUID NOT NULL UNIQUE,
    topic      TEXT NOT NULL,
    key        TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A conversation. A direct one has exactly two participants and `direct_pair` (the two user ids,
-- sorted, joined by ':'), unique, so starting it twice, even at once, gives the same one.
CREATE TABLE conversations (
    id                UUID PRIMARY KEY,
    conversation_type TEXT NOT NULL CHECK (conversation_type IN ('direct', 'group')),
    title             TEXT,
    created_by        TEXT NOT NULL,
    direct_pair       TEXT UNIQUE,
    archived_at       TIMESTAMPTZ,
    -- The newest message's sequence number (0: none); messages take the next one under the
    -- conversation's row lock, so a conversation's messages are totally ordered without gaps.
    last_seq          BIGINT NOT NULL DEFAULT 0,
    last_message_at   TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((conversation_type = 'direct') = (direct_pair IS NOT NULL))
);

-- Who is in it. A participant who left or was removed keeps the row (`left_at`) so the history
-- they saw stays theirs to nobody else; they no longer read or write.
CREATE TABLE conversation_participants (
    conversation_id UUID NOT NULL REFERENCES conversations (id),
    user_id         TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    joined_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    left_at         TIMESTAMPTZ,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_participants_by_user ON conversation_participants (user_id) WHERE left_at IS NULL;

-- A message. `seq` orders a conversation's messages (a client resumes after the last it has);
-- a deleted message stays as a tombstone without its text.
CREATE TABLE messages (
    id                  UUID PRIMARY KEY,
    conversation_id     UUID NOT NULL REFERENCES conversations (id),
    seq                 BIGINT NOT NULL,
    sender_id           TEXT NOT NULL,
    message_type        TEXT NOT NULL CHECK (message_type IN ('text', 'attachment')),
    body                TEXT,
    attachment_content_id TEXT,
    reply_to_message_id UUID REFERENCES messages (id),
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    edited_at           TIMESTAMPTZ,
    deleted_at          TIMESTAMPTZ,
    UNIQUE (conversation_id, seq)
);

-- Each participant's read position: everything up to `last_read_seq` is read.
CREATE TABLE message_reads (
    conversation_id UUID NOT NULL REFERENCES conversations (id),
    user_id         TEXT NOT NULL,
    last_read_seq   BIGINT NOT NULL DEFAULT 0,
    read_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, user_id)
);

-- People the user service says are suspended, deactivated or deleted (from user.events): they
-- cannot post, start conversations or be added until they are active again.
CREATE TABLE inactive_users (
    user_id TEXT PRIMARY KEY,
    status  TEXT NOT NULL,
    since   TIMESTAMPTZ NOT NULL DEFAULT now()
);
