//! # The notification service (`notification_service_db`)
//!
//! Owns every message the campus sends a person: e-mail over SMTP, SMS and push through their
//! providers' HTTP APIs, and the in-app inbox. Tables: `notification_templates`,
//! `notifications`, `notification_queue`, `notification_preferences`,
//! `notification_statistics` (the seed's five), `notification_batches`,
//! `notification_cancellations`, `push_devices`, `processed_events`, `event_outbox`
//! (`migrations/notification_service_db/`).
//!
//! - Consumes, as `notification-service-group`: `notification.commands` (every command type of
//!   the seed), `user.events` (a welcome e-mail), `content.events` (new material → the course's
//!   students in-app), `attendance.events`, `announcement.events` (read but not acted on: the
//!   announcement service sends `SEND_BULK` naming each urgent or high announcement's audience),
//!   and `auth.events` (a reset e-mail for `PASSWORD_RESET_REQUESTED`; ours, see [`handler`]).
//! - Publishes: `notification.status` (the seed's five types) through its outbox.
//! - Serves: the caller's inbox, unread count and read marks, preferences ([`routes`]).
//!
//! ## How a notification travels
//!
//! 1. [`handler`] turns a command or a domain event into rows, in the consumer's transaction:
//!    one `notifications` row per recipient (keyed by the command's `notification_id` and the
//!    recipient, so a redelivered command adds nothing) and one `notification_queue` row per
//!    channel and address, each rendered from its template ([`templates`]) and filtered by the
//!    recipient's preferences ([`preferences`]). A bulk command only records a batch; [`bulk`]
//!    expands it in chunks.
//! 2. [`sender`] claims due rows (`FOR UPDATE SKIP LOCKED`, a lease), hands each to its
//!    [`channels::Channel`], and records the outcome with its `notification.status` event
//!    ([`queue`]).
//!
//! ## Exactly once, and its one window
//!
//! A row is marked sent in the transaction that follows the channel's acceptance. A sender that
//! dies between the two (the SMTP server said `250`, the commit never happened) leaves the row
//! `sending`; when its lease ends another sender sends it again. So a crash can duplicate at most
//! the messages in flight at that moment: `sender.concurrency` of them, each at most once more.
//! Every retry of a row carries the same `Message-ID` (derived from the row's id), so a duplicate
//! is recognisable as one by the receiving system. Nothing is ever lost: a row leaves the queue
//! only as sent, failed (with its reason) or cancelled.

pub mod bulk;
pub mod channels;
pub mod fields;
pub mod handler;
pub mod inbox;
pub mod intake;
pub mod live;
pub mod preferences;
pub mod queue;
pub mod requests;
pub mod routes;
pub mod schedule;
pub mod sender;
pub mod statistics;
pub mod templates;

pub use handler::NotificationHandler;

use std::time::Duration;

/// What the notification worker needs besides its own database.
#[derive(Debug, Clone)]
pub struct NotificationSettings {
    /// `user_service_db` (contacts, roles, reset tokens).
    pub users_url: String,
    /// `course_service_db` (audiences).
    pub courses_url: String,
    /// The SMTP server; `None`: no e-mail channel.
    pub email: Option<channels::EmailSettings>,
    /// The SMS provider; `None`: no SMS channel.
    pub sms: Option<channels::sms::SmsSettings>,
    /// FCM; `None`: no push channel.
    pub push: Option<channels::push::PushSettings>,
    /// The page a reset link opens.
    pub reset_url: String,
    /// The sender's lanes, lease and retries.
    pub sender: sender::SenderSettings,
    /// How often the bulk job looks for new batches.
    pub bulk_interval: Duration,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            users_url: String::new(),
            courses_url: String::new(),
            email: None,
            sms: None,
            push: None,
            reset_url: "http://127.0.0.1:8080/reset-password".into(),
            sender: sender::SenderSettings::default(),
            bulk_interval: Duration::from_millis(200),
        }
    }
}

/// The seed's name of the service (its `service_name` on the events it publishes).
pub const SERVICE: &str = "notification-service";

/// The service's database (`migrations/notification_service_db/`).
pub const DATABASE: &str = "notification_service_db";
