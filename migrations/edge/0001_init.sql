-- NimbusU Edge classroom node: initial schema (SQLite, WAL).
-- Times are stored as Unix milliseconds (wall clock, UTC) plus, for taps, a boot-relative
-- monotonic reading and the boot id, so a wrong wall clock can be detected and corrected later.

-- Every card read, appended before the user gets any feedback. Interpretation comes after.
CREATE TABLE taps (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    card_uid      TEXT    NOT NULL,
    reader        TEXT    NOT NULL,
    wall_ms       INTEGER NOT NULL,
    mono_ms       INTEGER NOT NULL,
    boot_id       TEXT    NOT NULL,
    clock_synced  INTEGER NOT NULL,
    -- NULL until interpreted: accepted | late | duplicate | faculty_open | faculty_repeat |
    -- unknown_card | not_on_roster | pending | attached | expired
    outcome       TEXT,
    session_id    TEXT,
    interpreted_ms INTEGER
);
CREATE INDEX taps_uninterpreted ON taps (id) WHERE outcome IS NULL;
CREATE INDEX taps_pending ON taps (wall_ms) WHERE outcome = 'pending';

-- Who a card belongs to (from the roster snapshot).
CREATE TABLE cards (
    card_uid  TEXT PRIMARY KEY,
    user_id   TEXT NOT NULL,
    role      TEXT NOT NULL CHECK (role IN ('student', 'faculty')),
    name      TEXT NOT NULL
);
CREATE INDEX cards_user ON cards (user_id);

-- Faculty who may use the local page; PINs are argon2 hashes.
CREATE TABLE faculty (
    user_id   TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    pin_hash  TEXT
);

-- Course rosters (from the roster snapshot).
CREATE TABLE roster (
    course_id   TEXT NOT NULL,
    student_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    PRIMARY KEY (course_id, student_id)
);

-- This room's weekly timetable (from the timetable snapshot).
CREATE TABLE timetable_entries (
    entry_id        TEXT PRIMARY KEY,
    course_id       TEXT NOT NULL,
    course_name     TEXT NOT NULL,
    faculty_id      TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    day_of_week     INTEGER NOT NULL CHECK (day_of_week BETWEEN 1 AND 7),
    start_time      TEXT NOT NULL,  -- HH:MM:SS local campus time
    end_time        TEXT NOT NULL,
    effective_from  TEXT,           -- YYYY-MM-DD, inclusive
    effective_until TEXT
);

-- Versions of the cached snapshots (timetable, roster, keys, manifest).
CREATE TABLE snapshots (
    kind        TEXT PRIMARY KEY,
    version     INTEGER NOT NULL,
    applied_ms  INTEGER NOT NULL
);

-- One class's attendance session.
CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,     -- also the event's attendance_id
    entry_id        TEXT NOT NULL,
    course_id       TEXT NOT NULL,
    course_name     TEXT NOT NULL,
    faculty_id      TEXT NOT NULL,
    class_date      TEXT NOT NULL,        -- YYYY-MM-DD
    starts_ms       INTEGER NOT NULL,     -- the slot's start (wall ms)
    ends_ms         INTEGER NOT NULL,     -- the slot's end: auto-close time
    opened_ms       INTEGER NOT NULL,
    opened_by       TEXT NOT NULL,
    closed_ms       INTEGER,
    close_reason    TEXT,                 -- manual | slot_end
    UNIQUE (entry_id, class_date)
);
CREATE UNIQUE INDEX sessions_one_open ON sessions ((1)) WHERE closed_ms IS NULL;

-- Students' marks in a session.
CREATE TABLE marks (
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    student_id  TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('present', 'absent', 'late', 'excused')),
    source      TEXT NOT NULL,            -- tap | grace | manual
    tap_id      INTEGER REFERENCES taps (id),
    marked_ms   INTEGER NOT NULL,
    marked_by   TEXT NOT NULL,
    remarks     TEXT,
    PRIMARY KEY (session_id, student_id)
);

-- Corrections after a session closed.
CREATE TABLE corrections (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    student_id  TEXT NOT NULL,
    old_status  TEXT NOT NULL,
    new_status  TEXT NOT NULL,
    reason      TEXT,
    corrected_by TEXT NOT NULL,
    corrected_ms INTEGER NOT NULL
);

-- Unknown cards, kept for an admin to map to a user.
CREATE TABLE unknown_cards (
    card_uid       TEXT PRIMARY KEY,
    first_seen_ms  INTEGER NOT NULL,
    last_seen_ms   INTEGER NOT NULL,
    tap_count      INTEGER NOT NULL,
    reported       INTEGER NOT NULL DEFAULT 0
);

-- Events for the cloud, in order. seq never repeats (AUTOINCREMENT).
CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type    TEXT    NOT NULL,
    topic         TEXT    NOT NULL,
    priority      INTEGER NOT NULL,       -- 0 = must never be evicted (attendance)
    payload       TEXT    NOT NULL,       -- the seed payload, JSON
    wall_ms       INTEGER NOT NULL,
    clock_synced  INTEGER NOT NULL,
    boot_id       TEXT    NOT NULL
);

-- Small key/value state (last ack, clock offset, ...).
CREATE TABLE sync_state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
