-- The attendance service's database: one row per student per class, corrections, per-course
-- summaries kept incrementally by the worker, the alerts already sent, and the ledger of processed
-- Kafka events that makes redelivery a no-op. See cloud/src/worker/attendance.rs.

-- One student's status in one class session (`attendance_id`). A session re-sent with the same
-- attendance_id (a node resending, a bulk import of the same class) hits the UNIQUE constraint
-- instead of adding a class.
CREATE TABLE attendance_records (
    record_id        BIGSERIAL PRIMARY KEY,
    attendance_id    TEXT NOT NULL,
    student_id       TEXT NOT NULL,
    course_id        TEXT NOT NULL,
    entry_id         TEXT NOT NULL,
    class_date       DATE NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('present', 'absent', 'late', 'excused')),
    remarks          TEXT,
    marked_by        TEXT NOT NULL,
    marked_at        TIMESTAMPTZ NOT NULL,
    -- When the current status was stated (the mark's marked_at or a correction's corrected_at):
    -- a re-sent mark only replaces the status if it is newer than this.
    status_at        TIMESTAMPTZ NOT NULL,
    corrected        BOOLEAN NOT NULL DEFAULT FALSE,
    -- The event that wrote the current status, and where it came from (edge metadata).
    event_id         UUID NOT NULL,
    source           TEXT,
    source_node_id   TEXT,
    source_seq       BIGINT,
    clock_synced     BOOLEAN,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (attendance_id, student_id)
);
CREATE INDEX attendance_records_course_student ON attendance_records (course_id, student_id);
CREATE INDEX attendance_records_student ON attendance_records (student_id, class_date);

-- Corrections (ATTENDANCE_UPDATED), one row per correction_id: a correction re-sent under another
-- event id is recognised and not applied twice.
CREATE TABLE attendance_corrections (
    correction_id        TEXT PRIMARY KEY,
    attendance_id        TEXT NOT NULL,
    student_id           TEXT NOT NULL,
    course_id            TEXT NOT NULL,
    -- The status the record really had before (what the summary moved away from) ...
    old_status           TEXT NOT NULL CHECK (old_status IN ('present', 'absent', 'late', 'excused')),
    -- ... and the one the event claimed it had, kept when they differ.
    reported_old_status  TEXT NOT NULL CHECK (reported_old_status IN ('present', 'absent', 'late', 'excused')),
    new_status           TEXT NOT NULL CHECK (new_status IN ('present', 'absent', 'late', 'excused')),
    reason               TEXT,
    corrected_by         TEXT NOT NULL,
    corrected_at         TIMESTAMPTZ NOT NULL,
    event_id             UUID NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (attendance_id, student_id) REFERENCES attendance_records (attendance_id, student_id)
);
CREATE INDEX attendance_corrections_record ON attendance_corrections (attendance_id, student_id);

-- Per student and course, counts by status, changed in the same transaction as the records.
-- Excused classes are not in total_classes: an excused absence neither helps nor hurts.
CREATE TABLE attendance_summary (
    student_id     TEXT NOT NULL,
    course_id      TEXT NOT NULL,
    present        INT NOT NULL DEFAULT 0 CHECK (present >= 0),
    late           INT NOT NULL DEFAULT 0 CHECK (late >= 0),
    absent         INT NOT NULL DEFAULT 0 CHECK (absent >= 0),
    excused        INT NOT NULL DEFAULT 0 CHECK (excused >= 0),
    attended       INT GENERATED ALWAYS AS (present + late) STORED,
    total_classes  INT GENERATED ALWAYS AS (present + late + absent) STORED,
    -- NULL until a class counts.
    percentage     DOUBLE PRECISION GENERATED ALWAYS AS (
        CASE WHEN present + late + absent > 0
             THEN round(100.0 * (present + late) / (present + late + absent), 2)::double precision
        END
    ) STORED,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (student_id, course_id)
);
CREATE INDEX attendance_summary_course ON attendance_summary (course_id);

-- Low-attendance alerts sent, once per student, course and level.
CREATE TABLE attendance_alerts (
    student_id             TEXT NOT NULL,
    course_id              TEXT NOT NULL,
    level                  TEXT NOT NULL CHECK (level IN ('warning', 'critical')),
    event_id               UUID NOT NULL,
    notification_event_id  UUID NOT NULL,
    attendance_percentage  DOUBLE PRECISION NOT NULL,
    total_classes          INT NOT NULL,
    sent_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (student_id, course_id, level)
);

-- Reference data from course.events and enrollment.events (and course names from attendance
-- events until the course service has spoken).
CREATE TABLE courses (
    course_id    TEXT PRIMARY KEY,
    course_code  TEXT,
    course_name  TEXT NOT NULL DEFAULT '',
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE enrollments (
    course_id      TEXT NOT NULL,
    student_id     TEXT NOT NULL,
    enrollment_id  TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('enrolled', 'dropped')),
    -- The event time of the last change: an older event arriving late does not undo a newer one.
    changed_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (course_id, student_id)
);

-- Every Kafka event applied to this database, inserted in the transaction that applies it.
CREATE TABLE processed_events (
    event_id      UUID PRIMARY KEY,
    topic         TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    processed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
