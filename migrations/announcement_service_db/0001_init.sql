-- The announcement service (seed service 8): announcements, their targets and who read them,
-- plus what scheduling, fan-out and idempotency need.

-- Events already applied by announcement-service-group (see cloud/src/consumer).
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

-- One announcement. `status` moves draft -> scheduled -> published -> expired, and back to
-- draft on unpublish; deleted ones stay as tombstones (their reads and events refer to them).
CREATE TABLE announcements (
    id                UUID PRIMARY KEY,
    title             TEXT NOT NULL,
    content           TEXT NOT NULL,
    announcement_type TEXT NOT NULL DEFAULT 'general',
    priority          TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    -- The seed's summary of the targets (`all`, `courses`, `departments`, … or `mixed`).
    target_audience   TEXT NOT NULL,
    -- Whether the filter targets (everything but named users) reach anyone at all: true when
    -- the announcement is for everyone or names any filter; false when it names users only.
    has_filter        BOOLEAN NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'published', 'expired', 'deleted')),
    created_by        TEXT NOT NULL,
    -- Publication: the planned time while scheduled, the real one once published.
    publish_at        TIMESTAMPTZ,
    published_at      TIMESTAMPTZ,
    expires_at        TIMESTAMPTZ,
    -- Bumped on every publication; the notification fan-out of publication n is keyed by it.
    publication       INT NOT NULL DEFAULT 0,
    -- A publication whose notification commands are still to be written (urgent and high).
    fanout_due        BOOLEAN NOT NULL DEFAULT false,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (expires_at IS NULL OR publish_at IS NULL OR expires_at > publish_at)
);
CREATE INDEX announcements_due ON announcements (publish_at) WHERE status = 'scheduled';
CREATE INDEX announcements_expiring ON announcements (expires_at) WHERE status = 'published';
CREATE INDEX announcements_fanout ON announcements (published_at) WHERE fanout_due;
CREATE INDEX announcements_listed ON announcements (published_at DESC) WHERE status = 'published';
CREATE INDEX announcements_author ON announcements (created_by, created_at DESC);

-- Who it is for. Kinds other than `user` narrow together (a person must match one value of
-- every kind named); `everyone` narrows nothing; named users are added to the result.
CREATE TABLE announcement_targets (
    announcement_id UUID NOT NULL REFERENCES announcements (id) ON DELETE CASCADE,
    target_type     TEXT NOT NULL CHECK (target_type IN
                        ('everyone', 'role', 'department', 'program', 'semester', 'course', 'group', 'user', 'room')),
    target_id       TEXT NOT NULL,
    PRIMARY KEY (announcement_id, target_type, target_id)
);
CREATE INDEX announcement_targets_by_value ON announcement_targets (target_type, target_id);

-- One row per reader; marking read twice changes nothing.
CREATE TABLE announcement_reads (
    announcement_id UUID NOT NULL REFERENCES announcements (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL,
    read_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (announcement_id, user_id)
);
CREATE INDEX announcement_reads_by_user ON announcement_reads (user_id);

-- People the user service says are deactivated, suspended or deleted (from user.events):
-- they leave every audience and their reads leave the statistics until they are active again.
CREATE TABLE inactive_users (
    user_id TEXT PRIMARY KEY,
    status  TEXT NOT NULL,
    since   TIMESTAMPTZ NOT NULL DEFAULT now()
);
