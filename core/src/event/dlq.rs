use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{EventError, Timestamp};
use crate::topics::Topic;

/// The seed's `DeadLetterEvent`: a message a consumer gave up on after the retry policy, written
/// to `dlq.events` with enough context to inspect it and replay it to its original topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterEvent {
    /// Where the message was read from (and where a replay sends it).
    pub original_topic: Topic,
    /// The message as read: its JSON, or a JSON string of its bytes if they were not JSON.
    pub original_event: Value,
    /// The message key (kept for replay, so ordering per key is preserved).
    pub original_key: String,
    /// The broker timestamp of the original message.
    pub original_timestamp: Timestamp,
    /// The last error.
    pub failure_reason: String,
    /// How many attempts failed.
    pub failure_count: u32,
    /// When the last attempt failed.
    pub last_attempt_at: Timestamp,
    /// The consumer group that failed (`attendance-service-group`, …).
    pub consumer_group: String,
    /// The service that failed.
    pub service_name: String,
    /// The error's chain of causes (Rust has no stack trace worth shipping).
    #[serde(default)]
    pub stack_trace: String,
}

impl DeadLetterEvent {
    /// Parses and validates a dead letter from JSON text.
    pub fn from_json(text: &str) -> Result<Self, EventError> {
        Self::from_value(super::envelope::parse_object(text)?)
    }

    /// Validates a dead letter from a JSON value.
    pub fn from_value(value: Value) -> Result<Self, EventError> {
        if !value.is_object() {
            return Err(EventError::NotAnObject);
        }
        serde_path_to_error::deserialize(value).map_err(|e| EventError::from_path("", e))
    }

    /// The original message's bytes, as a replay produces them.
    pub fn original_bytes(&self) -> Vec<u8> {
        match &self.original_event {
            Value::String(raw) if serde_json::from_str::<Value>(raw).is_err() => raw.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        }
    }

    /// The dead letter as compact JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
