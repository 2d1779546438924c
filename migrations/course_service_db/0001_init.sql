-- The course service's database: departments, programs, subjects, semesters, courses, assignments, enrollments, profiles.

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

CREATE TABLE departments (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    is_active   BOOLEAN NOT NULL DEFAULT true,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE programs (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    department_id      UUID NOT NULL REFERENCES departments (id),
    code               TEXT NOT NULL UNIQUE,
    name               TEXT NOT NULL,
    degree_level       TEXT NOT NULL DEFAULT 'undergraduate',
    duration_semesters INT NOT NULL DEFAULT 8 CHECK (duration_semesters BETWEEN 1 AND 20),
    is_active          BOOLEAN NOT NULL DEFAULT true,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE subjects (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    department_id UUID NOT NULL REFERENCES departments (id),
    code          TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    credits       INT NOT NULL DEFAULT 3 CHECK (credits BETWEEN 0 AND 30),
    description   TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE semesters (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name          TEXT NOT NULL UNIQUE,
    academic_year INT NOT NULL,
    term_number   INT NOT NULL CHECK (term_number BETWEEN 1 AND 4),
    start_date    DATE NOT NULL,
    end_date      DATE NOT NULL,
    is_current    BOOLEAN NOT NULL DEFAULT false,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (start_date < end_date)
);
-- At most one current semester.
CREATE UNIQUE INDEX semesters_one_current ON semesters (is_current) WHERE is_current;

CREATE TABLE academic_calendar (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    semester_id UUID NOT NULL REFERENCES semesters (id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    event_type  TEXT NOT NULL CHECK (event_type IN ('holiday', 'exam', 'registration', 'classes', 'other')),
    start_date  DATE NOT NULL,
    end_date    DATE NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (start_date <= end_date)
);

CREATE TABLE courses (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    course_code   TEXT NOT NULL UNIQUE,
    course_name   TEXT NOT NULL,
    subject_id    UUID NOT NULL REFERENCES subjects (id),
    department_id UUID NOT NULL REFERENCES departments (id),
    program_id    UUID NOT NULL REFERENCES programs (id),
    semester_id   UUID REFERENCES semesters (id),
    semester      INT NOT NULL CHECK (semester BETWEEN 1 AND 20),
    academic_year INT NOT NULL,
    max_students  INT NOT NULL CHECK (max_students > 0),
    is_active     BOOLEAN NOT NULL DEFAULT true,
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE course_prerequisites (
    course_id       UUID NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    prerequisite_id UUID NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    PRIMARY KEY (course_id, prerequisite_id),
    CHECK (course_id <> prerequisite_id)
);

CREATE TABLE course_corequisites (
    course_id      UUID NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    corequisite_id UUID NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    PRIMARY KEY (course_id, corequisite_id),
    CHECK (course_id <> corequisite_id)
);

-- Who teaches a course (faculty ids are user ids of the user service).
CREATE TABLE faculty_courses (
    course_id       UUID NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    faculty_id      TEXT NOT NULL,
    assignment_role TEXT NOT NULL DEFAULT 'primary' CHECK (assignment_role IN ('primary', 'assistant', 'guest')),
    assigned_by     TEXT NOT NULL,
    assigned_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (course_id, faculty_id)
);

-- One row per (course, student): enrolled, waitlisted (with a 1-based queue position),
-- dropped, completed or failed. A dropped student may enroll again (the row is reused).
CREATE TABLE course_enrollments (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    course_id         UUID NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    student_id        TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('enrolled', 'waitlisted', 'dropped', 'completed', 'failed')),
    waitlist_position INT CHECK ((status = 'waitlisted') = (waitlist_position IS NOT NULL)),
    enrolled_by       TEXT NOT NULL CHECK (enrolled_by IN ('self', 'admin')),
    enrollment_date   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (course_id, student_id)
);
CREATE INDEX course_enrollments_student ON course_enrollments (student_id);
CREATE INDEX course_enrollments_waitlist ON course_enrollments (course_id, waitlist_position) WHERE status = 'waitlisted';

-- Profiles kept from user.events (see cloud/src/course/profiles.rs).
CREATE TABLE students (
    user_id     TEXT PRIMARY KEY,
    register_no BIGINT,
    email       TEXT NOT NULL DEFAULT '',
    name        TEXT NOT NULL DEFAULT '',
    program_id  TEXT,
    is_active   BOOLEAN NOT NULL DEFAULT true,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE faculties (
    user_id       TEXT PRIMARY KEY,
    register_no   BIGINT,
    email         TEXT NOT NULL DEFAULT '',
    name          TEXT NOT NULL DEFAULT '',
    department_id TEXT,
    is_active     BOOLEAN NOT NULL DEFAULT true,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
