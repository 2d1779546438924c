-- The notification service's database (see cloud/src/notification/mod.rs): the seed's five tables,
-- plus the batches a bulk send expands from, the device tokens push goes to, the cancellations
-- that may arrive before what they cancel, and the consumer's and the outbox's tables.

CREATE TABLE processed_events (
    event_id     UUID PRIMARY KEY,
    topic        TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Transactional outbox (see cloud/src/outbox.rs): `notification.status` events.
CREATE TABLE event_outbox (
    id         BIGSERIAL PRIMARY KEY,
    event_id   UUID NOT NULL UNIQUE,
    topic      TEXT NOT NULL,
    key        TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One template per (template id, channel): the seed's `template_id` names what is said, each
-- channel says it in its own form. `variables` are the names a command must supply; a template
-- that uses any other name is refused when saved.
CREATE TABLE notification_templates (
    template_id       TEXT NOT NULL,
    channel           TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'push', 'in_app')),
    notification_type TEXT NOT NULL,
    subject           TEXT NOT NULL DEFAULT '',
    body              TEXT NOT NULL,
    variables         TEXT[] NOT NULL DEFAULT '{}',
    is_active         BOOLEAN NOT NULL DEFAULT true,
    updated_by        TEXT NOT NULL DEFAULT 'system',
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (template_id, channel)
);

-- One notification per (source, recipient): `source_id` is the command's `notification_id` (or
-- the bulk's `batch_id`, or the domain event it reacts to), so a redelivered or re-sent command
-- finds its row and adds nothing. `in_app` rows are the recipient's inbox.
CREATE TABLE notifications (
    id                UUID PRIMARY KEY,
    source_id         TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    notification_type TEXT NOT NULL,
    title             TEXT NOT NULL,
    message           TEXT NOT NULL,
    action_url        TEXT,
    priority          TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    data              JSONB NOT NULL DEFAULT '{}',
    batch_id          TEXT,
    in_app            BOOLEAN NOT NULL,
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('scheduled', 'active', 'cancelled')),
    scheduled_at      TIMESTAMPTZ,
    expires_at        TIMESTAMPTZ,
    read_at           TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (source_id, user_id)
);
CREATE INDEX notifications_inbox ON notifications (user_id, created_at DESC) WHERE in_app;
CREATE INDEX notifications_unread ON notifications (user_id) WHERE in_app AND read_at IS NULL;

-- One delivery per (notification, channel, address). Several worker instances share the queue:
-- a sender claims due rows with FOR UPDATE SKIP LOCKED and holds them for `lease_until`; a row
-- still 'sending' after its lease belonged to a sender that died and is claimed again. `seq`
-- orders the deliveries to one address.
CREATE TABLE notification_queue (
    id              UUID PRIMARY KEY,
    seq             BIGSERIAL NOT NULL,
    notification_id UUID NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'push', 'in_app')),
    address         TEXT NOT NULL,
    subject         TEXT NOT NULL DEFAULT '',
    body            TEXT NOT NULL,
    template_id     TEXT,
    priority_rank   SMALLINT NOT NULL,
    bulk            BOOLEAN NOT NULL DEFAULT false,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'failed', 'cancelled', 'expired')),
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until     TIMESTAMPTZ,
    expires_at      TIMESTAMPTZ,
    last_error      TEXT,
    sent_at         TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (notification_id, channel, address)
);
CREATE INDEX notification_queue_due ON notification_queue (bulk, priority_rank DESC, next_attempt_at)
    WHERE status IN ('pending', 'sending');
CREATE INDEX notification_queue_address ON notification_queue (channel, address, seq)
    WHERE status IN ('pending', 'sending');
CREATE INDEX notification_queue_user ON notification_queue (user_id, created_at DESC);

-- Opt-outs per user, category (the notification type) and channel. No row: enabled.
CREATE TABLE notification_preferences (
    user_id    TEXT NOT NULL,
    category   TEXT NOT NULL,
    channel    TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'push', 'in_app')),
    enabled    BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, category, channel)
);

-- Daily counts per channel and template ('' when none).
CREATE TABLE notification_statistics (
    day         DATE NOT NULL,
    channel     TEXT NOT NULL,
    template_id TEXT NOT NULL DEFAULT '',
    queued      BIGINT NOT NULL DEFAULT 0,
    sent        BIGINT NOT NULL DEFAULT 0,
    failed      BIGINT NOT NULL DEFAULT 0,
    read        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, channel, template_id)
);

-- A bulk send as received; the fan-out job expands it into notifications in chunks, so a
-- 5,000-recipient bulk never holds the consumer (or a single send) behind it.
CREATE TABLE notification_batches (
    batch_id    TEXT PRIMARY KEY,
    command     JSONB NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    recipients  INT,
    last_error  TEXT,
    lease_until TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at     TIMESTAMPTZ
);

-- Cancellations by notification id; one may arrive before the schedule it cancels (they are
-- keyed differently, so on different partitions).
CREATE TABLE notification_cancellations (
    source_id    TEXT PRIMARY KEY,
    cancelled_by TEXT NOT NULL,
    cancelled_at TIMESTAMPTZ NOT NULL
);

-- Push device tokens; an invalid or unregistered token reported by the provider is deleted.
CREATE TABLE push_devices (
    token      TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    platform   TEXT NOT NULL DEFAULT 'web',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX push_devices_user ON push_devices (user_id);

-- Templates the services' own notifications use; admins may edit them (same variables).
INSERT INTO notification_templates (template_id, channel, notification_type, subject, body, variables) VALUES
('template-low-attendance', 'email', 'attendance',
 '{{ title }}',
 E'{{ message }}\n\nCourse: {{ course_name }}\nAttended: {{ classes_attended }} of {{ total_classes }} classes ({{ attendance_percentage }}%)\nRequired: {{ threshold_percentage }}%\n',
 '{title,message,course_name,classes_attended,total_classes,attendance_percentage,threshold_percentage}'),
('template-password-reset', 'email', 'security',
 'Reset your NimbusU password',
 E'Someone (we hope you) asked to reset the password of your NimbusU account.\n\nOpen this link within {{ valid_minutes }} minutes to choose a new password:\n{{ reset_link }}\n\nIf it was not you, ignore this message: your password stays as it is.\n',
 '{reset_link,valid_minutes}'),
('template-welcome', 'email', 'account',
 'Welcome to NimbusU',
 E'Welcome to NimbusU!\n\nYour account {{ email }} is ready. Your register number is {{ register_no }}.\n',
 '{email,register_no}'),
('template-new-content', 'in_app', 'content',
 'New material: {{ content_title }}',
 'New course material is available: {{ content_title }}.',
 '{content_title}'),
('template-urgent-announcement', 'email', 'announcement',
 'Urgent: {{ title }}',
 E'{{ message }}\n',
 '{title,message}');
