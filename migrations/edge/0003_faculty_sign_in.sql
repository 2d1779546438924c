-- Faculty sign in at the page with their staff number or e-mail as well as their user id
-- (both arrive in the roster snapshot; e-mail stored lower-case).
ALTER TABLE faculty ADD COLUMN staff_number TEXT;
ALTER TABLE faculty ADD COLUMN email TEXT;
CREATE INDEX faculty_staff_number ON faculty (staff_number);
CREATE INDEX faculty_email ON faculty (email);
