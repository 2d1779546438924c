//! Dead letters: the seed's [`DeadLetterEvent`] for a message the worker gives up on, and its
//! delivery to `dlq.events` keyed by the original key (so a replay keeps per-key order).

use std::time::Duration;

use chrono::{DateTime, Utc};
use nimbus_core::event::DeadLetterEvent;
use nimbus_core::topics::Topic;
use rdkafka::Message as _;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

/// Why the worker gave up on a message.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// The last error's message.
    pub reason: String,
    /// The last error with its causes.
    pub chain: String,
    /// Failed attempts (1 for a message that could not be parsed).
    pub count: u32,
}

/// The dead letter for `msg`: its JSON (or a JSON string of its bytes when they are not JSON),
/// key and broker timestamp, with the failure and who failed.
pub(crate) fn dead_letter(
    msg: &OwnedMessage,
    failure: &Failure,
    group_id: &str,
    service: &str,
    now: DateTime<Utc>,
) -> DeadLetterEvent {
    let bytes = msg.payload().unwrap_or_default();
    let original_event = serde_json::from_slice::<Value>(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()));
    let original_timestamp =
        msg.timestamp().to_millis().and_then(DateTime::<Utc>::from_timestamp_millis).unwrap_or(now);
    DeadLetterEvent {
        // The worker only subscribes to topics of the registry; the fallback names the DLQ itself,
        // which no replay sends events to.
        original_topic: msg.topic().parse().unwrap_or(Topic::Dlq),
        original_event,
        original_key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
        original_timestamp,
        failure_reason: failure.reason.clone(),
        failure_count: failure.count,
        last_attempt_at: now,
        consumer_group: group_id.to_owned(),
        service_name: service.to_owned(),
        stack_trace: failure.chain.clone(),
    }
}

/// Produces `letter` to `dlq.events` and waits for the broker's confirmation (the offset of the
/// original message may only be committed after it).
pub(crate) async fn deliver(producer: &FutureProducer, letter: &DeadLetterEvent) -> Result<(i32, i64), String> {
    let json = letter.to_json();
    let record = FutureRecord::to(Topic::Dlq.name()).key(letter.original_key.as_bytes()).payload(json.as_bytes());
    producer.send(record, Duration::from_secs(5)).await.map_err(|(e, _)| e.to_string())
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Timestamp;

    use super::*;

    fn failure() -> Failure {
        Failure { reason: "boom".into(), chain: "boom\ncaused by: deeper".into(), count: 4 }
    }

    #[test]
    fn a_json_message_is_kept_as_json_with_its_key_and_broker_time() {
        let msg = OwnedMessage::new(
            Some(br#"{"event_type":"X"}"#.to_vec()),
            Some(b"course-1".to_vec()),
            "attendance.events".into(),
            Timestamp::CreateTime(1_700_000_000_000),
            2,
            41,
            None,
        );
        let now = Utc::now();
        let d = dead_letter(&msg, &failure(), "attendance-service-group", "attendance-service", now);
        assert_eq!(d.original_topic, Topic::AttendanceEvents);
        assert_eq!(d.original_event["event_type"], "X");
        assert_eq!(d.original_key, "course-1");
        assert_eq!(d.original_timestamp.timestamp_millis(), 1_700_000_000_000);
        assert_eq!((d.failure_count, d.last_attempt_at), (4, now));
        assert_eq!(d.stack_trace, "boom\ncaused by: deeper");
        let back = DeadLetterEvent::from_json(&d.to_json()).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn bytes_that_are_not_json_become_a_json_string_that_replays_them() {
        let msg = OwnedMessage::new(
            Some(b"not json".to_vec()),
            None,
            "course.events".into(),
            Timestamp::NotAvailable,
            0,
            0,
            None,
        );
        let now = Utc::now();
        let d = dead_letter(&msg, &failure(), "g", "s", now);
        assert_eq!(d.original_event, Value::String("not json".into()));
        assert_eq!(d.original_bytes(), b"not json");
        assert_eq!((d.original_key.as_str(), d.original_timestamp), ("", now));
    }
}
