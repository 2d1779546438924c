//! # The course service
//!
//! Departments, programs, subjects, semesters and the academic calendar, courses (unique code,
//! capacity), faculty assignments, enrollments with a waitlist, and the student and faculty
//! profiles kept from `user.events`, in `course_service_db`. Changes are announced on
//! `course.events` and `enrollment.events` through the service's transactional outbox
//! ([`crate::outbox`]), relayed by its worker. It consumes `user.events` as
//! `course-service-group` ([`handler`]). Its HTTP routes are [`routes`].
//!
//! ## Layout
//! - [`departments`], [`programs`], [`subjects`], [`semesters`] (with the academic calendar):
//!   reference data.
//! - [`record`]: the course row ([`record::Course`]) and its lock.
//! - [`courses`]: courses, activation, prerequisites and corequisites.
//! - [`faculty`]: who teaches a course.
//! - [`enrollments`]: enroll (or waitlist), drop (promoting the next waiting student), list.
//! - [`profiles`]: the students and faculties profiles.
//! - [`roster`]: [`rosters`] and [`courses_of_student`] for the downlink.
//! - [`handler`]: [`CourseHandler`], keeping profiles from `user.events`.
//! - [`routes`]: the admin routes (catalogue, assignments, enrollments).

pub mod audience;
pub mod courses;
pub mod departments;
pub mod enrollments;
pub mod faculty;
pub mod handler;
pub mod profiles;
pub mod programs;
pub mod record;
pub mod roster;
pub mod routes;
pub mod semesters;
pub mod subjects;

pub use handler::CourseHandler;
pub use roster::{courses_of_student, rosters};

use nimbus_core::event::TopicEvent;

use crate::actor::Actor;
use crate::error::{Error, Result};

/// The seed's service name.
pub const SERVICE: &str = "course-service";
/// The service's own database.
pub const DATABASE: &str = "course_service_db";

/// Enqueues one of the service's events in `tx`.
pub(crate) async fn publish<E: TopicEvent>(
    tx: &tokio_postgres::Transaction<'_>,
    actor: &Actor,
    event: E,
) -> Result<()> {
    crate::outbox::publish(tx, SERVICE, actor, event).await
}

/// The conflict answered for a duplicate unique value.
pub(crate) fn duplicate(what: &str, field: &str, value: &str) -> Error {
    Error::Conflict {
        message: format!("{what} with {field} {value} already exists"),
        details: serde_json::json!({ "field": field, "value": value }),
    }
}
