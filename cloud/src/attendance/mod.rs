//! # The attendance service (`attendance_service_db`)
//!
//! Owns attendance: records per class and student, corrections, per-student summaries, the
//! low-attendance alerts sent, and the reference data it keeps from other services' events
//! (courses, enrollments). Tables: `attendance_records`, `attendance_corrections`,
//! `attendance_summary`, `attendance_alerts`, `courses`, `enrollments`, `processed_events`
//! (`migrations/attendance_service_db/`).
//!
//! - Consumes, as `attendance-service-group`: `attendance.events` (the nodes' marks and
//!   corrections, published by the edge ingest on the service's behalf), `course.events`,
//!   `enrollment.events`, `timetable.events` ([`handler`]).
//! - Publishes: `LOW_ATTENDANCE_ALERT` on `attendance.events` and `SEND_NOTIFICATION` on
//!   `notification.commands` ([`alerts`], the low-attendance job).
//! - Serves: attendance reports per course, student and day, JSON or CSV ([`routes`]).
//!
//! Idempotency: the shared consumer loop ([`crate::consumer`]) records each event in
//! `processed_events` in the transaction that applies it; [`handler`] keeps a class from counting
//! twice when it is re-sent under another event id.

pub mod alerts;
pub mod handler;
pub mod routes;

pub use alerts::{AlertSettings, AlertThresholds, check_low_attendance};
pub use handler::AttendanceHandler;

/// The seed's name of the service (its `service_name` on the events it publishes).
pub const SERVICE: &str = "attendance-service";

/// The service's database (`migrations/attendance_service_db/`).
pub const DATABASE: &str = "attendance_service_db";
