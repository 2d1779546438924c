-- Dead letters an admin replayed to their original topic (the letters themselves stay in the
-- dlq.events topic, which keeps them 30 days). "Replay all" skips what is recorded here, so a
-- repeated click does not send everything again; the consumers are idempotent on event_id anyway.
CREATE TABLE dlq_replays (
    dlq_partition   INT NOT NULL,
    dlq_offset      BIGINT NOT NULL,
    original_topic  TEXT NOT NULL,
    replayed_by     TEXT NOT NULL,
    replayed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    replays         INT NOT NULL DEFAULT 1,
    PRIMARY KEY (dlq_partition, dlq_offset)
);
