-- The timetable service's database: rooms, slots, timetables, entries, conflicts, change requests.

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

-- Rooms that classes can be booked into.
CREATE TABLE rooms (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    room_number TEXT NOT NULL UNIQUE,
    building    TEXT NOT NULL,
    capacity    INT NOT NULL CHECK (capacity > 0),
    room_type   TEXT NOT NULL CHECK (room_type IN ('lecture', 'lab', 'seminar', 'auditorium', 'other')),
    is_active   BOOLEAN NOT NULL DEFAULT true,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Named weekly periods entries can refer to instead of spelling out day and times.
CREATE TABLE time_slots (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    day_of_week SMALLINT NOT NULL CHECK (day_of_week BETWEEN 1 AND 7),
    start_time  TIME NOT NULL,
    end_time    TIME NOT NULL,
    label       TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (start_time < end_time),
    UNIQUE (day_of_week, start_time, end_time)
);

-- One department's (and optionally program's) timetable for a semester.
CREATE TABLE timetables (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            TEXT NOT NULL,
    semester_id     TEXT NOT NULL,
    semester_name   TEXT NOT NULL DEFAULT '',
    semester_number INT,
    department_id   TEXT NOT NULL,
    department_name TEXT NOT NULL DEFAULT '',
    program_id      TEXT,
    status          TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    effective_from  DATE,
    effective_until DATE,
    created_by      TEXT NOT NULL,
    published_by    TEXT,
    published_at    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (effective_until IS NULL OR effective_from IS NULL OR effective_from <= effective_until)
);

-- Weekly class slots. Deleting an entry deactivates it (is_active = false); conflicts are
-- checked among active entries of non-archived timetables (see cloud/src/timetable/conflicts.rs).
CREATE TABLE timetable_entries (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    timetable_id    UUID NOT NULL REFERENCES timetables (id) ON DELETE CASCADE,
    course_id       TEXT NOT NULL,
    course_name     TEXT NOT NULL,
    faculty_id      TEXT NOT NULL,
    room_id         UUID NOT NULL REFERENCES rooms (id),
    time_slot_id    UUID REFERENCES time_slots (id),
    day_of_week     SMALLINT NOT NULL CHECK (day_of_week BETWEEN 1 AND 7),
    start_time      TIME NOT NULL,
    end_time        TIME NOT NULL,
    effective_from  DATE,
    effective_until DATE,
    is_active       BOOLEAN NOT NULL DEFAULT true,
    created_by      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (start_time < end_time),
    CHECK (effective_until IS NULL OR effective_from IS NULL OR effective_from <= effective_until)
);
CREATE INDEX timetable_entries_room ON timetable_entries (room_id, day_of_week) WHERE is_active;
CREATE INDEX timetable_entries_faculty ON timetable_entries (faculty_id, day_of_week) WHERE is_active;
CREATE INDEX timetable_entries_course ON timetable_entries (course_id) WHERE is_active;
CREATE INDEX timetable_entries_timetable ON timetable_entries (timetable_id);

-- Every rejected booking: the proposed entry (never stored in timetable_entries) and the
-- active entry it collided with. Kept even though the proposal was refused.
CREATE TABLE timetable_conflicts (
    id                   UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    timetable_id         UUID NOT NULL REFERENCES timetables (id) ON DELETE CASCADE,
    conflict_type        TEXT NOT NULL CHECK (conflict_type IN ('room', 'faculty')),
    entry_id             UUID NOT NULL,
    conflicting_entry_id UUID NOT NULL,
    room_id              UUID,
    faculty_id           TEXT,
    day_of_week          SMALLINT NOT NULL,
    start_time           TIME NOT NULL,
    end_time             TIME NOT NULL,
    proposed             JSONB NOT NULL,
    resolved             BOOLEAN NOT NULL DEFAULT false,
    detected_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX timetable_conflicts_timetable ON timetable_conflicts (timetable_id, detected_at);

-- A requested change of one entry (room, faculty, time or dates); applied on approval.
CREATE TABLE schedule_change_requests (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    entry_id            UUID NOT NULL REFERENCES timetable_entries (id) ON DELETE CASCADE,
    requested_by        TEXT NOT NULL,
    reason              TEXT NOT NULL,
    new_room_id         UUID REFERENCES rooms (id),
    new_faculty_id      TEXT,
    new_day_of_week     SMALLINT CHECK (new_day_of_week BETWEEN 1 AND 7),
    new_start_time      TIME,
    new_end_time        TIME,
    new_effective_from  DATE,
    new_effective_until DATE,
    status              TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    reviewed_by         TEXT,
    reviewed_at         TIMESTAMPTZ,
    review_note         TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
