//! # The announcement service (`announcement_service_db`)
//!
//! Owns campus announcements: drafts, publication now or at a time, expiry, who they are for
//! and who read them. Tables: `announcements`, `announcement_targets`, `announcement_reads`
//! (the seed's three), `inactive_users`, `processed_events`, `event_outbox`
//! (`migrations/announcement_service_db/`).
//!
//! - Publishes: `announcement.events` (the seed's six types) through its outbox, and for urgent
//!   and high announcements `SEND_BULK` commands on `notification.commands` to the resolved
//!   audience (urgent: push and e-mail; high: in-app) — one fan-out per publication.
//! - Consumes, as `announcement-service-group`: `user.events` (a suspended, deactivated or
//!   deleted person leaves every audience and the read statistics; [`handler`]).
//! - Serves: authoring routes for administrators and faculty, and every signed-in person's
//!   `me/announcements` with read marks ([`routes`]).
//! - Feeds the classroom nodes: the downlink's `announcements` snapshot of a room
//!   ([`classroom`]).
//!
//! ## Who sees what
//!
//! [`targets`] holds the one rule; [`audience`] gathers a person's values from the user,
//! course and timetable services (through their own functions) and resolves whole audiences.
//!
//! ## Exactly once
//!
//! Scheduled publication, expiry and the notification fan-out are jobs of the worker role
//! ([`jobs`]). Each claims its rows with `FOR UPDATE SKIP LOCKED` and changes them in the same
//! transaction as the outbox rows it writes, so with any number of worker instances, killed
//! at any moment, each announcement is published once, expires once and fans out once.

pub mod audience;
pub mod classroom;
pub mod fields;
pub mod handler;
pub mod jobs;
pub mod reading;
pub mod routes;
pub mod store;
pub mod targets;

pub use handler::AnnouncementHandler;

/// The seed's name of the service (its `service_name` on the events it publishes).
pub const SERVICE: &str = "announcement-service";

/// The service's database (`migrations/announcement_service_db/`).
pub const DATABASE: &str = "announcement_service_db";
