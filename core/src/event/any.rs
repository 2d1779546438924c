use serde_json::Value;
use uuid::Uuid;

use super::envelope::{BaseFields, parse_object};
use super::*;

macro_rules! any_event {
    ($( $variant:ident($event:ty), )+) => {
        /// An event of any domain topic, for code that handles messages generically (the
        /// validator CLI, the DLQ replayer, the analytics consumer).
        #[derive(Debug, Clone, PartialEq)]
        pub enum AnyEvent {
            $(
                #[doc = concat!("An event of [`", stringify!($event), "`]'s topic.")]
                $variant(Envelope<$event>),
            )+
        }

        impl AnyEvent {
            /// Validates an event as one of `topic`'s.
            pub fn from_value_on(topic: Topic, value: Value) -> Result<Self, EventError> {
                $(
                    if topic == <$event as TopicEvent>::TOPIC {
                        return Envelope::<$event>::from_value(value).map(AnyEvent::$variant);
                    }
                )+
                Err(EventError::field("original_topic", format!("{topic} carries dead letters, not events")))
            }

            /// The topic the event belongs to.
            pub fn topic(&self) -> Topic {
                match self {
                    $( AnyEvent::$variant(_) => <$event as TopicEvent>::TOPIC, )+
                }
            }

            /// The event's `event_type`.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $( AnyEvent::$variant(e) => e.event_type(), )+
                }
            }

            /// The event's id.
            pub fn event_id(&self) -> Uuid {
                match self {
                    $( AnyEvent::$variant(e) => e.event_id, )+
                }
            }

            /// The Kafka message key.
            pub fn partition_key(&self) -> String {
                match self {
                    $( AnyEvent::$variant(e) => e.partition_key(), )+
                }
            }

            /// The event as JSON in the seed's shape.
            pub fn to_value(&self) -> Value {
                match self {
                    $( AnyEvent::$variant(e) => e.to_value(), )+
                }
            }
        }
    };
}

any_event! {
    User(UserEvent),
    Auth(AuthEvent),
    Content(ContentEvent),
    NotificationCommand(NotificationCommand),
    NotificationStatus(NotificationStatusEvent),
    Course(CourseEvent),
    Enrollment(EnrollmentEvent),
    Timetable(TimetableEvent),
    Attendance(AttendanceEvent),
    Announcement(AnnouncementEvent),
    Communication(CommunicationEvent),
    Analytics(AnalyticsEvent),
}

impl AnyEvent {
    /// Validates an event of whichever topic its `event_type` belongs to.
    pub fn from_value(value: Value) -> Result<Self, EventError> {
        let Value::Object(obj) = &value else {
            return Err(EventError::NotAnObject);
        };
        // Base fields first, so errors come in the same order as for a typed envelope.
        let base = BaseFields::take(&mut obj.clone())?;
        let topic = topic_of(&base.event_type).ok_or(EventError::UnknownEventType(base.event_type))?;
        Self::from_value_on(topic, value)
    }

    /// Parses and validates an event from JSON text.
    pub fn from_json(text: &str) -> Result<Self, EventError> {
        Self::from_value(parse_object(text)?)
    }
}

/// Anything that may be read from one of the 13 topics.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A domain event (boxed, like the dead letter: both are large, and their sizes depend on
    /// serde_json's features, which other crates in a build may change).
    Event(Box<AnyEvent>),
    /// A dead letter from `dlq.events`.
    DeadLetter(Box<DeadLetterEvent>),
}

impl Message {
    /// Validates a message read from `topic`; without a topic, a dead letter is recognised by
    /// its `original_topic` field and an event is routed by its `event_type`.
    pub fn from_json(text: &str, topic: Option<Topic>) -> Result<Self, EventError> {
        let value = parse_object(text)?;
        let dead_letter = match topic {
            Some(t) => t == Topic::Dlq,
            None => value.get("original_topic").is_some() && value.get("event_type").is_none(),
        };
        match (dead_letter, topic) {
            (true, _) => DeadLetterEvent::from_value(value).map(|d| Message::DeadLetter(Box::new(d))),
            (false, Some(t)) => AnyEvent::from_value_on(t, value).map(|e| Message::Event(Box::new(e))),
            (false, None) => AnyEvent::from_value(value).map(|e| Message::Event(Box::new(e))),
        }
    }

    /// The topic the message belongs to.
    pub fn topic(&self) -> Topic {
        match self {
            Message::Event(e) => e.topic(),
            Message::DeadLetter(_) => Topic::Dlq,
        }
    }

    /// One line for operators: what the message is.
    pub fn describe(&self) -> String {
        match self {
            Message::Event(e) => format!("{} on {} (event_id {})", e.event_type(), e.topic(), e.event_id()),
            Message::DeadLetter(d) => {
                format!("dead letter from {} ({} failures in {})", d.original_topic, d.failure_count, d.consumer_group)
            }
        }
    }
}
