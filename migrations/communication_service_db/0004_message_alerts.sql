-- Message notifications, collapsed: a participant is told of new messages in a conversation
-- once, and not again until they have read it (reading deletes their row and so re-arms it).
CREATE TABLE message_alerts (
    conversation_id UUID NOT NULL REFERENCES conversations (id),
    user_id         TEXT NOT NULL,
    alerted_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, user_id)
);
