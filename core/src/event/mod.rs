//! The seed's Kafka event contract (`004_8197c01cb9c83608.txt`), typed.
//!
//! Every message on a domain topic is an [`Envelope`] (the seed's `BaseEvent`) around one
//! per-topic enum such as [`UserEvent`] or [`AttendanceEvent`]. Each enum lists exactly the event
//! types the seed gives its topic, so an `ATTENDANCE_MARKED` can neither be built for nor parsed
//! from `user.events`. Messages on `dlq.events` are [`DeadLetterEvent`]s instead.
//!
//! Parsing validates what the seed's JSON Schema says (required base fields, `event_type`
//! `^[A-Z_]+$`, `event_version` `^\d+\.\d+$`, UUID `event_id`, RFC 3339 `timestamp`) and then the
//! payload of the named type; every [`EventError`] names the offending field by its JSON path.
//!
//! Where the seed lists an event type without a schema, the payload here is ours; each such
//! struct says so. Field optionality follows one rule: identities, times and counts are required;
//! descriptive context (user agents, remarks, URLs, optional contact details) may be absent. An
//! absent field is still written, as the seed's Go structs write every field: its zero value, or
//! `null` for a time (`wire`).

mod any;
mod common;
mod dlq;
mod envelope;
mod error;
mod wire;

// Payload fields carry the seed's names and meanings (docs/contract/); each struct and enum says
// where it comes from, so the fields are not documented one by one.
#[allow(missing_docs)]
pub mod analytics;
#[allow(missing_docs)]
pub mod announcement;
#[allow(missing_docs)]
pub mod attendance;
#[allow(missing_docs)]
pub mod auth;
#[allow(missing_docs)]
pub mod communication;
#[allow(missing_docs)]
pub mod content;
#[allow(missing_docs)]
pub mod course;
#[allow(missing_docs)]
pub mod enrollment;
#[allow(missing_docs)]
pub mod notification;
#[allow(missing_docs)]
pub mod timetable;
#[allow(missing_docs)]
pub mod user;

pub use analytics::AnalyticsEvent;
pub use announcement::AnnouncementEvent;
pub use any::{AnyEvent, Message};
pub use attendance::AttendanceEvent;
pub use auth::AuthEvent;
pub use common::{ChangeValue, Changes, Timestamp};
pub use communication::CommunicationEvent;
pub use content::ContentEvent;
pub use course::CourseEvent;
pub use dlq::DeadLetterEvent;
pub use enrollment::EnrollmentEvent;
pub use envelope::{Envelope, EventVersion};
pub use error::EventError;
pub use notification::{NotificationCommand, NotificationStatusEvent};
pub use timetable::TimetableEvent;
pub use user::UserEvent;

use serde::de::DeserializeOwned;

use crate::topics::Topic;

/// The events of one topic: a closed set of event types, each with its payload.
pub trait TopicEvent: Sized + Clone + PartialEq + core::fmt::Debug + serde::Serialize {
    /// The topic these events are published to.
    const TOPIC: Topic;
    /// Every `event_type` the topic carries, in the seed's order.
    const EVENT_TYPES: &'static [&'static str];

    /// The `event_type` string of this event.
    fn event_type(&self) -> &'static str;

    /// Decodes the payload of `event_type`; fails if the type does not belong to this topic or
    /// the payload does not fit the type.
    fn from_payload(event_type: &str, payload: serde_json::Value) -> Result<Self, EventError>;

    /// The value that keys the Kafka message (the topic's ordering unit), when the payload has
    /// one. [`Envelope::partition_key`] falls back to the event id, as the seed does.
    fn partition_key(&self) -> Option<&str>;

    /// An event of this type with an all-default payload (empty strings, zero counts, the Unix
    /// epoch), used to check the type mapping of every event type.
    fn with_default_payload(event_type: &str) -> Option<Self>;
}

/// Which topic carries `event_type`, if any. Event type names are unique across the seed's
/// topics, so an untyped event can be routed by its type alone.
pub fn topic_of(event_type: &str) -> Option<Topic> {
    fn has<E: TopicEvent>(t: &str) -> bool {
        E::EVENT_TYPES.contains(&t)
    }
    let t = event_type;
    let topic = if has::<UserEvent>(t) {
        Topic::UserEvents
    } else if has::<AuthEvent>(t) {
        Topic::AuthEvents
    } else if has::<ContentEvent>(t) {
        Topic::ContentEvents
    } else if has::<NotificationCommand>(t) {
        Topic::NotificationCommands
    } else if has::<NotificationStatusEvent>(t) {
        Topic::NotificationStatus
    } else if has::<CourseEvent>(t) {
        Topic::CourseEvents
    } else if has::<EnrollmentEvent>(t) {
        Topic::EnrollmentEvents
    } else if has::<TimetableEvent>(t) {
        Topic::TimetableEvents
    } else if has::<AttendanceEvent>(t) {
        Topic::AttendanceEvents
    } else if has::<AnnouncementEvent>(t) {
        Topic::AnnouncementEvents
    } else if has::<CommunicationEvent>(t) {
        Topic::CommunicationEvents
    } else if has::<AnalyticsEvent>(t) {
        Topic::AnalyticsEvents
    } else {
        return None;
    };
    Some(topic)
}

/// Every event type of every domain topic, as `(topic, event_type)`.
pub fn all_event_types() -> impl Iterator<Item = (Topic, &'static str)> {
    fn of<E: TopicEvent>() -> impl Iterator<Item = (Topic, &'static str)> {
        E::EVENT_TYPES.iter().map(|t| (E::TOPIC, *t))
    }
    of::<UserEvent>()
        .chain(of::<AuthEvent>())
        .chain(of::<ContentEvent>())
        .chain(of::<NotificationCommand>())
        .chain(of::<NotificationStatusEvent>())
        .chain(of::<CourseEvent>())
        .chain(of::<EnrollmentEvent>())
        .chain(of::<TimetableEvent>())
        .chain(of::<AttendanceEvent>())
        .chain(of::<AnnouncementEvent>())
        .chain(of::<CommunicationEvent>())
        .chain(of::<AnalyticsEvent>())
}

/// Decodes a payload, reporting the failing field as `payload.<path>`.
pub(crate) fn decode_payload<T: DeserializeOwned>(payload: serde_json::Value) -> Result<T, EventError> {
    serde_path_to_error::deserialize(payload).map_err(|e| EventError::from_path("payload", e))
}

/// The error for an `event_type` that `expected` does not carry.
pub(crate) fn not_on_topic(event_type: &str, expected: Topic) -> EventError {
    match topic_of(event_type) {
        Some(actual) => EventError::WrongTopic { event_type: event_type.into(), expected, actual },
        None => EventError::UnknownEventType(event_type.into()),
    }
}

/// Declares a topic's event enum: one variant per seed event type, each with its payload.
///
/// Generates the enum (serialising as its bare payload) and its [`TopicEvent`] impl. The module
/// that uses it writes `fn key(&self) -> Option<&str>` (the partition key) and
/// `fn check(&self) -> Result<(), EventError>` (rules a type cannot express) by hand.
macro_rules! topic_events {
    (
        $(#[$meta:meta])*
        pub enum $name:ident on $topic:path {
            $( $(#[$vmeta:meta])* $variant:ident($payload:ty) = $event_type:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        #[serde(untagged)]
        pub enum $name {
            $( $(#[$vmeta])* $variant($payload), )+
        }

        impl $crate::event::TopicEvent for $name {
            const TOPIC: $crate::topics::Topic = $topic;
            const EVENT_TYPES: &'static [&'static str] = &[$($event_type),+];

            fn event_type(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => $event_type, )+
                }
            }

            fn from_payload(
                event_type: &str,
                payload: serde_json::Value,
            ) -> Result<Self, $crate::event::EventError> {
                let event = match event_type {
                    $( $event_type => Self::$variant($crate::event::decode_payload(payload)?), )+
                    other => return Err($crate::event::not_on_topic(other, $topic)),
                };
                event.check()?;
                Ok(event)
            }

            fn partition_key(&self) -> Option<&str> {
                self.key()
            }

            fn with_default_payload(event_type: &str) -> Option<Self> {
                match event_type {
                    $( $event_type => Some(Self::$variant(Default::default())), )+
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use topic_events;
