-- Students sign in at the node's student page with their register number or e-mail and their
-- classroom PIN (argon2 hash from the roster snapshot), also while the uplink is down. One row per
-- student enrolled in a course of this room; replaced with every roster snapshot.
CREATE TABLE students (
    user_id          TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    register_number  TEXT,
    email            TEXT,              -- lower-case
    pin_hash         TEXT
);
CREATE INDEX students_register_number ON students (register_number);
CREATE INDEX students_email ON students (email);
-- A student's own attendance, per class.
CREATE INDEX marks_student ON marks (student_id);
