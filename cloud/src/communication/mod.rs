//! # The communication service (`communication_service_db`)
//!
//! Owns conversations between people: direct (one per pair) and group conversations, their
//! participants, messages and each participant's read position; and faculty's office hours with
//! their bookings. Tables: `conversations`, `conversation_participants`, `messages`,
//! `message_reads`, `office_hours`, `office_hour_bookings`, `discussion_forums`, `forum_threads`,
//! `forum_posts` (the seed's nine), `inactive_users`, `processed_events`, `event_outbox`
//! (`migrations/communication_service_db/`).
//!
//! - Publishes: `communication.events` through its outbox: `CONVERSATION_CREATED`,
//!   `PARTICIPANT_ADDED`, `PARTICIPANT_REMOVED`, `CONVERSATION_ARCHIVED`, `MESSAGE_SENT` (the
//!   seed's payload, `recipient_ids` = the other active participants), `MESSAGE_READ`,
//!   `MESSAGE_DELETED`; keyed by conversation, so a conversation's events stay in order. Office
//!   hour reminders and cancellations as `SEND_NOTIFICATION` on `notification.commands`
//!   ([`office_hours`]), and new-message notifications, one per person and unread run
//!   ([`messages`]).
//! - Consumes, as `communication-service-group`: `user.events` (a suspended, deactivated or
//!   deleted person can no longer post, start conversations or be added; [`handler`]) and
//!   `course.events` (each course's forum; [`forums`]).
//! - Serves: every signed-in person's `/api/v1/conversations`, `/api/v1/office-hours`, and the
//!   forums of their courses ([`routes`]).
//!
//! ## Who sees what
//!
//! Only a conversation's current participants read or write it; for anyone else it answers 404
//! exactly as a conversation that does not exist, so its existence is not revealed
//! ([`conversations::membership`]). Names come from the user service at the moment they are
//! shown or sent ([`crate::user::directory::contacts`]), so they follow profile changes.
//!
//! ## Order and exactly once
//!
//! A message takes the conversation's next sequence number under the conversation's row lock,
//! so a conversation's messages are totally ordered without gaps: a client that has seen up to
//! `seq` resumes with `?after_seq=seq` and misses nothing and sees nothing twice. Starting a
//! direct conversation twice, even at once, gives the same conversation (a unique pair key).

pub mod attachments;
pub mod conversations;
pub mod fields;
pub mod forums;
pub mod handler;
pub mod live;
pub mod messages;
pub mod office_hours;
pub mod routes;

pub use handler::CommunicationHandler;

/// The seed's name of the service (its `service_name` on the events it publishes).
pub const SERVICE: &str = "communication-service";

/// The service's database (`migrations/communication_service_db/`).
pub const DATABASE: &str = "communication_service_db";
