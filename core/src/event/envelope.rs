use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use core::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{EventError, TopicEvent};

/// The seed's `event_version`: `major.minor` (`^\d+\.\d+$`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventVersion(String);

impl EventVersion {
    /// The version of every schema in the seed.
    pub fn v1_0() -> Self {
        EventVersion("1.0".into())
    }

    /// Validates a version string.
    pub fn parse(s: &str) -> Result<Self, EventError> {
        let ok = match s.split_once('.') {
            Some((major, minor)) => is_digits(major) && is_digits(minor),
            None => false,
        };
        if ok {
            Ok(EventVersion(s.into()))
        } else {
            Err(EventError::field("event_version", format!("{s:?} must look like \"1.0\" (^\\d+\\.\\d+$)")))
        }
    }

    /// The version text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

impl Default for EventVersion {
    fn default() -> Self {
        Self::v1_0()
    }
}

impl fmt::Display for EventVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The seed's `BaseEvent` around one typed event of topic `E::TOPIC`.
///
/// Serialises to the seed's JSON shape with fields in the seed's order; `correlation_id` and
/// `metadata` are omitted when absent (the seed's schema does not require them).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<E> {
    /// Unique id of this event; consumers deduplicate on it.
    pub event_id: Uuid,
    /// Schema version of the payload.
    pub event_version: EventVersion,
    /// When the event happened (UTC).
    pub timestamp: DateTime<Utc>,
    /// The service that produced it (`user-service`, `attendance-service`, …).
    pub service_name: String,
    /// Request tracing id carried from the API request (or edge batch) that caused the event.
    pub correlation_id: Option<String>,
    /// Free-form string context (ip address, user agent, edge node id and sequence, …).
    pub metadata: Option<BTreeMap<String, String>>,
    /// The event type and its payload.
    pub event: E,
}

impl<E: TopicEvent> Envelope<E> {
    /// A new event with a random (v4) id, version 1.0 and the current time.
    pub fn new(service_name: impl Into<String>, event: E) -> Self {
        Envelope {
            event_id: Uuid::new_v4(),
            event_version: EventVersion::v1_0(),
            timestamp: Utc::now(),
            service_name: service_name.into(),
            correlation_id: None,
            metadata: None,
            event,
        }
    }

    /// Replaces the id, e.g. with a deterministic one so that a resend is the same event.
    pub fn with_event_id(mut self, id: Uuid) -> Self {
        self.event_id = id;
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Adds one metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.get_or_insert_with(BTreeMap::new).insert(key.into(), value.into());
        self
    }

    /// Sets the event time.
    pub fn at(mut self, timestamp: DateTime<Utc>) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// The event's `event_type`.
    pub fn event_type(&self) -> &'static str {
        self.event.event_type()
    }

    /// The Kafka message key: the topic's key field, or the event id when the payload has none.
    pub fn partition_key(&self) -> String {
        match self.event.partition_key() {
            Some(k) if !k.is_empty() => k.into(),
            _ => self.event_id.to_string(),
        }
    }

    /// Parses and validates one event of this topic from JSON text.
    pub fn from_json(text: &str) -> Result<Self, EventError> {
        Self::from_value(parse_object(text)?)
    }

    /// Parses and validates one event of this topic from JSON bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, EventError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| EventError::Syntax(e.to_string()))?;
        Self::from_value(value)
    }

    /// Validates an already-parsed JSON value.
    pub fn from_value(value: Value) -> Result<Self, EventError> {
        let Value::Object(mut obj) = value else {
            return Err(EventError::NotAnObject);
        };
        let base = BaseFields::take(&mut obj)?;
        let payload = obj.remove("payload").ok_or_else(|| EventError::field("payload", "required field is missing"))?;
        let event = E::from_payload(&base.event_type, payload)?;
        Ok(Envelope {
            event_id: base.event_id,
            event_version: base.event_version,
            timestamp: base.timestamp,
            service_name: base.service_name,
            correlation_id: base.correlation_id,
            metadata: base.metadata,
            event,
        })
    }

    /// The event as a JSON value in the seed's shape.
    pub fn to_value(&self) -> Value {
        // Serialising our own types to a Value cannot fail: every map key is a string.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The event as compact JSON text, ready to produce.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }
}

pub(crate) fn parse_object(text: &str) -> Result<Value, EventError> {
    serde_json::from_str(text).map_err(|e| EventError::Syntax(e.to_string()))
}

/// The base fields of an event, validated as the seed's JSON Schema says.
pub(crate) struct BaseFields {
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: EventVersion,
    pub timestamp: DateTime<Utc>,
    pub service_name: String,
    pub correlation_id: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
}

impl BaseFields {
    /// Removes and validates the base fields from an event object.
    pub fn take(obj: &mut Map<String, Value>) -> Result<Self, EventError> {
        let event_id = required_str(obj, "event_id")?;
        let event_id = Uuid::parse_str(&event_id)
            .map_err(|e| EventError::field("event_id", format!("{event_id:?} is not a UUID: {e}")))?;
        let event_type = required_str(obj, "event_type")?;
        if event_type.is_empty() || !event_type.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            return Err(EventError::field(
                "event_type",
                format!("{event_type:?} must be upper-case letters and underscores (^[A-Z_]+$)"),
            ));
        }
        let event_version = EventVersion::parse(&required_str(obj, "event_version")?)?;
        let timestamp = required_str(obj, "timestamp")?;
        let timestamp = DateTime::parse_from_rfc3339(&timestamp)
            .map_err(|e| EventError::field("timestamp", format!("{timestamp:?} is not an RFC 3339 date-time: {e}")))?
            .with_timezone(&Utc);
        let service_name = required_str(obj, "service_name")?;
        if service_name.trim().is_empty() {
            return Err(EventError::field("service_name", "must not be empty"));
        }
        let correlation_id = match obj.remove("correlation_id") {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => return Err(EventError::field("correlation_id", wrong_type("a string", &other))),
        };
        let metadata = match obj.remove("metadata") {
            None => None,
            Some(Value::Object(m)) => {
                let mut out = BTreeMap::new();
                for (k, v) in m {
                    match v {
                        Value::String(s) => {
                            out.insert(k, s);
                        }
                        other => {
                            return Err(EventError::field(format!("metadata.{k}"), wrong_type("a string", &other)));
                        }
                    }
                }
                Some(out)
            }
            Some(other) => return Err(EventError::field("metadata", wrong_type("an object of strings", &other))),
        };
        Ok(BaseFields { event_id, event_type, event_version, timestamp, service_name, correlation_id, metadata })
    }
}

fn required_str(obj: &mut Map<String, Value>, field: &str) -> Result<String, EventError> {
    match obj.remove(field) {
        None => Err(EventError::field(field, "required field is missing")),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(EventError::field(field, wrong_type("a string", &other))),
    }
}

fn wrong_type(expected: &str, got: &Value) -> String {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("expected {expected}, got {got}")
}

impl<E: TopicEvent> Serialize for Envelope<E> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = 6 + usize::from(self.correlation_id.is_some()) + usize::from(self.metadata.is_some());
        let mut map = s.serialize_map(Some(len))?;
        map.serialize_entry("event_id", &self.event_id)?;
        map.serialize_entry("event_type", self.event.event_type())?;
        map.serialize_entry("event_version", self.event_version.as_str())?;
        map.serialize_entry("timestamp", &self.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true))?;
        map.serialize_entry("service_name", &self.service_name)?;
        if let Some(c) = &self.correlation_id {
            map.serialize_entry("correlation_id", c)?;
        }
        if let Some(m) = &self.metadata {
            map.serialize_entry("metadata", m)?;
        }
        map.serialize_entry("payload", &self.event)?;
        map.end()
    }
}

impl<'de, E: TopicEvent> Deserialize<'de> for Envelope<E> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Envelope::from_value(value).map_err(serde::de::Error::custom)
    }
}
