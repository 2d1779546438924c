//! `enrollment.events`: students joining and leaving courses (seed section 7). Keyed by
//! `course_id` so a course's capacity changes stay in order.

use serde::{Deserialize, Serialize};

use super::{EventError, Timestamp, topic_events};
use crate::topics::Topic;

topic_events! {
    /// An event on `enrollment.events` (all share the seed's `EnrollmentPayload`).
    pub enum EnrollmentEvent on Topic::EnrollmentEvents {
        /// A student joined a course.
        StudentEnrolled(EnrollmentPayload) = "STUDENT_ENROLLED",
        /// A student left a course.
        StudentDropped(EnrollmentPayload) = "STUDENT_DROPPED",
        /// A student completed the course.
        EnrollmentCompleted(EnrollmentPayload) = "ENROLLMENT_COMPLETED",
        /// A student failed the course.
        EnrollmentFailed(EnrollmentPayload) = "ENROLLMENT_FAILED",
        /// The course was full; the student waits.
        WaitlistAdded(EnrollmentPayload) = "WAITLIST_ADDED",
        /// A waiting student got a place.
        WaitlistPromoted(EnrollmentPayload) = "WAITLIST_PROMOTED",
    }
}

impl EnrollmentEvent {
    /// The payload, whatever the type.
    pub fn payload(&self) -> &EnrollmentPayload {
        match self {
            EnrollmentEvent::StudentEnrolled(p)
            | EnrollmentEvent::StudentDropped(p)
            | EnrollmentEvent::EnrollmentCompleted(p)
            | EnrollmentEvent::EnrollmentFailed(p)
            | EnrollmentEvent::WaitlistAdded(p)
            | EnrollmentEvent::WaitlistPromoted(p) => p,
        }
    }

    fn key(&self) -> Option<&str> {
        Some(&self.payload().course_id)
    }

    fn check(&self) -> Result<(), EventError> {
        Ok(())
    }
}

/// Who enrolled the student (seed: "self, admin").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrolledBy {
    /// The student did.
    #[serde(rename = "self")]
    Student,
    /// An administrator did.
    #[default]
    Admin,
}

/// Seed `EnrollmentPayload`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EnrollmentPayload {
    pub enrollment_id: String,
    pub student_id: String,
    pub course_id: String,
    pub course_name: String,
    pub enrollment_date: Timestamp,
    pub enrolled_by: EnrolledBy,
    pub current_count: i32,
    pub max_capacity: i32,
}
