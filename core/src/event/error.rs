use alloc::string::{String, ToString};

use crate::topics::Topic;

/// Why a message is not a valid event of the contract. The message always names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The bytes are not JSON at all.
    #[error("not valid JSON: {0}")]
    Syntax(String),
    /// The JSON is not an object.
    #[error("an event must be a JSON object")]
    NotAnObject,
    /// A field is missing or has the wrong type, format or value.
    #[error("{field}: {problem}")]
    Field {
        /// JSON path of the field, e.g. `payload.student_records[2].status`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// `event_type` is well-formed but no topic of the seed carries it.
    #[error("event_type: unknown event type {0:?}")]
    UnknownEventType(String),
    /// `event_type` belongs to another topic than the one being read or written.
    #[error("event_type: {event_type} belongs to {actual}, not to {expected}")]
    WrongTopic {
        /// The offending type.
        event_type: String,
        /// The topic the event was checked against.
        expected: Topic,
        /// The topic that carries this type.
        actual: Topic,
    },
}

impl EventError {
    /// A problem with one field.
    pub fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        EventError::Field { field: field.into(), problem: problem.into() }
    }

    /// The JSON path of the field at fault, if the error is about one field.
    pub fn field_path(&self) -> Option<&str> {
        match self {
            EventError::Field { field, .. } => Some(field),
            EventError::UnknownEventType(_) | EventError::WrongTopic { .. } => Some("event_type"),
            EventError::Syntax(_) | EventError::NotAnObject => None,
        }
    }

    /// Turns a serde error at a path below `prefix` into a field error. A missing field is
    /// reported at its own path (`payload.user_id`), not at its parent's.
    pub(crate) fn from_path(prefix: &str, err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let mut field = String::from(prefix);
        for segment in err.path().iter() {
            use serde_path_to_error::Segment;
            match segment {
                Segment::Seq { index } => {
                    field.push('[');
                    field.push_str(&index.to_string());
                    field.push(']');
                }
                Segment::Map { key } => push_key(&mut field, key),
                Segment::Enum { variant } => push_key(&mut field, variant),
                Segment::Unknown => push_key(&mut field, "?"),
            }
        }
        let message = err.into_inner().to_string();
        if let Some(missing) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            push_key(&mut field, missing);
            return EventError::field(field, "required field is missing");
        }
        EventError::field(field, message)
    }
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}
