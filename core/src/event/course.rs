//! `course.events`: courses and faculty assignment (seed section 6). Keyed by `course_id`.

use serde::{Deserialize, Serialize};

use super::{Changes, EventError, Timestamp, topic_events};
use crate::topics::Topic;

topic_events! {
    /// An event on `course.events`.
    pub enum CourseEvent on Topic::CourseEvents {
        /// A course was created.
        CourseCreated(CourseCreatedPayload) = "COURSE_CREATED",
        /// Course fields changed.
        CourseUpdated(CourseUpdatedPayload) = "COURSE_UPDATED",
        /// A course was deleted.
        CourseDeleted(CourseRefPayload) = "COURSE_DELETED",
        /// A course became active.
        CourseActivated(CourseRefPayload) = "COURSE_ACTIVATED",
        /// A course became inactive.
        CourseDeactivated(CourseRefPayload) = "COURSE_DEACTIVATED",
        /// A faculty member now teaches the course.
        FacultyAssigned(FacultyAssignmentPayload) = "FACULTY_ASSIGNED",
        /// A faculty member no longer teaches it.
        FacultyUnassigned(FacultyAssignmentPayload) = "FACULTY_UNASSIGNED",
    }
}

impl CourseEvent {
    fn key(&self) -> Option<&str> {
        Some(match self {
            CourseEvent::CourseCreated(p) => &p.course_id,
            CourseEvent::CourseUpdated(p) => &p.course_id,
            CourseEvent::CourseDeleted(p) | CourseEvent::CourseActivated(p) | CourseEvent::CourseDeactivated(p) => {
                &p.course_id
            }
            CourseEvent::FacultyAssigned(p) | CourseEvent::FacultyUnassigned(p) => &p.course_id,
        })
    }

    fn check(&self) -> Result<(), EventError> {
        Ok(())
    }
}

/// Seed `CourseCreatedPayload`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CourseCreatedPayload {
    pub course_id: String,
    pub course_code: String,
    pub course_name: String,
    pub subject_id: String,
    pub department_id: String,
    pub program_id: String,
    pub semester: i32,
    pub academic_year: i32,
    pub max_students: i32,
    pub created_by: String,
}

/// Ours: course fields changed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CourseUpdatedPayload {
    pub course_id: String,
    pub changes: Changes,
    pub updated_by: String,
    pub updated_at: Timestamp,
}

/// Ours: a course deleted, activated or deactivated.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CourseRefPayload {
    pub course_id: String,
    pub course_code: String,
    pub changed_by: String,
    pub changed_at: Timestamp,
}

/// Ours: faculty (un)assigned to a course.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FacultyAssignmentPayload {
    pub course_id: String,
    pub faculty_id: String,
    /// `primary`, `assistant`, …
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub assignment_role: Option<String>,
    pub changed_by: String,
    pub changed_at: Timestamp,
}
