//! # The communication service (`communication_service_db`)
//!
//! Owns conversations between people: direct (one per pair) and group conversations, their
//! participants, messages and each participant's read position. Tables: `conversations`,
//! `conversation_participants`, `messages`, `message_reads` (four of the seed's nine; forums and
//! office hours are still to come), `inactive_users`, `processed_events`, `event_outbox`
//! (`migrations/communication_service_db/`).
//!
//! - Publishes: `communication.events` through its outbox: `CONVERSATION_CREATED`,
//!   `PARTICIPANT_ADDED`, `PARTICIPANT_REMOVED`, `CONVERSATION_ARCHIVED`, `MESSAGE_SENT` (the
//!   seed's payload, `recipient_ids` = the other active participants), `MESSAGE_READ`,
//!   `MESSAGE_DELETED`; keyed by conversation, so a conversation's events stay in order.
//! - Consumes, as `communication-service-group`: `user.events` (a suspended, deactivated or
//!   deleted person can no longer post, start conversations or be added; [`handler`]) and
//!   `course.events` (for the forums to come; ignored today).
//! - Serves: every signed-in person's `/api/v1/conversations` ([`routes`]).
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

pub mod conversations;
pub mod handler;
pub mod messages;
pub mod routes;

pub use handler::CommunicationHandler;

/// The seed's name of the service (its `service_name` on the events it publishes).
pub const SERVICE: &str = "communication-service";

/// The service's database (`migrations/communication_service_db/`).
pub const DATABASE: &str = "communication_service_db";
