-- Course conversations: a group of a course's enrolled students started by a faculty member who
-- teaches it; one per course (starting it again adds the students enrolled since).
ALTER TABLE conversations DROP CONSTRAINT conversations_conversation_type_check;
ALTER TABLE conversations ADD CONSTRAINT conversations_conversation_type_check
    CHECK (conversation_type IN ('direct', 'group', 'course'));
ALTER TABLE conversations ADD COLUMN course_id TEXT UNIQUE;
ALTER TABLE conversations ADD CONSTRAINT conversations_course_check
    CHECK ((conversation_type = 'course') = (course_id IS NOT NULL));
