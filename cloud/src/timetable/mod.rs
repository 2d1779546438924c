//! # The timetable service
//!
//! Rooms, weekly time slots, timetables and their entries in `timetable_service_db`, with
//! conflict detection on every booking, schedule change requests, and `timetable.events`
//! published through the service's transactional outbox ([`crate::outbox`]), relayed by its
//! worker. It consumes `course.events` as `timetable-service-group` ([`handler`]).
//!
//! Commands are plain async functions the admin API calls with a pool, an [`Actor`] and a
//! validated input; they return [`crate::error::Result`] (validation → 400, missing → 404,
//! conflicts → 409).
//!
//! ## Layout
//! - [`rooms`]: rooms (unique `room_number`).
//! - [`slots`]: named weekly time slots.
//! - [`timetables`]: timetables and their lifecycle (draft → published → archived).
//! - [`entries`]: class entries: add, modify, delete, list.
//! - [`conflicts`]: the room/faculty double-booking check and the conflict log.
//! - [`changes`]: schedule change requests (create, approve → applied with the check, reject).
//! - [`schedule`]: [`room_schedule`], a room's published entries for the downlink.
//! - [`handler`]: [`TimetableHandler`], reacting to `course.events`.
//! - [`routes`]: the admin routes over all of the above.
//!
//! [`Actor`]: crate::actor::Actor

pub mod changes;
pub mod conflicts;
pub mod entries;
pub mod handler;
pub mod rooms;
pub mod routes;
pub mod schedule;
pub mod slots;
pub mod timetables;

pub use handler::TimetableHandler;
pub use schedule::room_schedule;

/// The seed's service name.
pub const SERVICE: &str = "timetable-service";
/// The service's own database.
pub const DATABASE: &str = "timetable_service_db";

/// Enqueues one of the service's events in `tx` (see [`crate::outbox::publish`]).
pub(crate) async fn publish(
    tx: &tokio_postgres::Transaction<'_>,
    actor: &crate::actor::Actor,
    event: nimbus_core::event::TimetableEvent,
) -> crate::error::Result<()> {
    crate::outbox::publish(tx, SERVICE, actor, event).await
}
