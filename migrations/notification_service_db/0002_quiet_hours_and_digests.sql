-- Quiet hours and digests per user (see cloud/src/notification/schedule.rs). During quiet hours
-- (in the user's time zone) non-urgent e-mail, SMS and push wait until the hours end; with a
-- digest, non-urgent e-mail is held and sent as one message per hour or per day.
CREATE TABLE notification_settings (
    user_id        TEXT PRIMARY KEY,
    time_zone      TEXT NOT NULL DEFAULT 'UTC',
    quiet_start    TIME,
    quiet_end      TIME,
    digest         TEXT NOT NULL DEFAULT 'off' CHECK (digest IN ('off', 'hourly', 'daily')),
    -- The local hour a daily digest goes out.
    digest_hour    SMALLINT NOT NULL DEFAULT 8 CHECK (digest_hour BETWEEN 0 AND 23),
    -- The boundary (hour, or the day's digest hour) the last digest covered.
    last_digest_at TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);

-- 'held': waiting for the recipient's digest; 'digested': sent as part of the digest row
-- `digest_id`.
ALTER TABLE notification_queue DROP CONSTRAINT notification_queue_status_check;
ALTER TABLE notification_queue ADD CONSTRAINT notification_queue_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'failed', 'cancelled', 'expired', 'held', 'digested'));
ALTER TABLE notification_queue ADD COLUMN digest_id UUID;
-- When a row was meant to go (its schedule or the end of quiet hours; retries do not move it):
-- one address's rows go out in this order, so an urgent message is not stuck behind one that
-- waits for the morning, while a retried one still keeps the rows after it waiting.
ALTER TABLE notification_queue ADD COLUMN order_at TIMESTAMPTZ NOT NULL DEFAULT now();
CREATE INDEX notification_queue_held ON notification_queue (user_id, created_at) WHERE status = 'held';
