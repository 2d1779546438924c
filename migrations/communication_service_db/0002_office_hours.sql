-- Office hours (the seed's `office_hours` and `office_hour_bookings`): faculty publish slots,
-- one-off or weekly; students book and cancel.

-- One slot. A weekly series shares `series_id`; each week is its own row (booked on its own).
CREATE TABLE office_hours (
    id           UUID PRIMARY KEY,
    series_id    UUID NOT NULL,
    faculty_id   TEXT NOT NULL,
    course_id    TEXT,
    title        TEXT NOT NULL,
    location     TEXT NOT NULL,
    starts_at    TIMESTAMPTZ NOT NULL,
    ends_at      TIMESTAMPTZ NOT NULL,
    capacity     INT NOT NULL CHECK (capacity BETWEEN 1 AND 500),
    cancelled_at TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX office_hours_by_faculty ON office_hours (faculty_id, starts_at);
CREATE INDEX office_hours_upcoming ON office_hours (starts_at) WHERE cancelled_at IS NULL;

-- A student's place in a slot. A cancelled booking stays (`cancelled_at`); a student holds at
-- most one live booking per slot.
CREATE TABLE office_hour_bookings (
    id             UUID PRIMARY KEY,
    office_hour_id UUID NOT NULL REFERENCES office_hours (id),
    student_id     TEXT NOT NULL,
    note           TEXT NOT NULL DEFAULT '',
    booked_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    cancelled_at   TIMESTAMPTZ,
    -- Set when the reminder command was written (once, by whichever worker claimed it).
    reminded_at    TIMESTAMPTZ
);
CREATE UNIQUE INDEX office_hour_bookings_live ON office_hour_bookings (office_hour_id, student_id)
    WHERE cancelled_at IS NULL;
CREATE INDEX office_hour_bookings_by_student ON office_hour_bookings (student_id) WHERE cancelled_at IS NULL;
CREATE INDEX office_hour_bookings_to_remind ON office_hour_bookings (office_hour_id)
    WHERE cancelled_at IS NULL AND reminded_at IS NULL;
