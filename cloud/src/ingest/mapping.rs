//! Edge event → seed message: what the ingest produces to Kafka for one [`EdgeEvent`].
//!
//! A node's outbox row becomes the seed's envelope on the row's topic, with everything a consumer
//! needs to trust, deduplicate and correct it:
//!
//! - `event_id` = UUIDv5(node, seq) ([`identity::event_id`]): a resend is the same event, so a
//!   duplicate that reaches Kafka (crash between confirmation and the mark) is recognisable.
//! - `service_name` = the seed's producing service of the topic (`attendance-service`, …): the
//!   node acts on that service's behalf while the campus is offline.
//! - `timestamp` = the node's wall clock when the row was written; `metadata` carries `source`,
//!   `node_id`, `seq`, `boot_id`, `wall_ms` and `clock_synced`, so the cloud can later correct a
//!   node whose clock was wrong.
//! - `correlation_id` = `"{node}:{first_seq}-{last_seq}"` of the edge batch that carried it.
//! - The Kafka key is the envelope's partition key (`course_id` for attendance, `content_id` for
//!   content), so per-aggregate order holds in Kafka as it did on the node.
//! - The payload is validated with the topic's typed enum and then forwarded **verbatim** (the
//!   node's JSON, not a re-serialisation), so optional fields a newer node adds survive.
//!
//! An event that cannot be mapped (unknown type, invalid payload, a topic nodes may not write) is
//! a poison event: blocking on it would stall the node forever, since it is resent unchanged. It
//! becomes a seed [`DeadLetterEvent`] on `dlq.events` instead and counts as delivered. Outbox
//! tombstones (`EVICTED`, telemetry the node dropped under disk pressure) keep the stream
//! contiguous and are skipped.

use chrono::{DateTime, Utc};
use nimbus_core::event::{AnalyticsEvent, AttendanceEvent, ContentEvent, DeadLetterEvent, Envelope, TopicEvent};
use nimbus_core::ids::NodeId;
use nimbus_core::topics::Topic;
use nimbus_sync::frame::{Batch, EdgeEvent};
use nimbus_sync::identity;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The ingest's name in dead letters (`consumer_group` and `service_name`), so operators can tell
/// events refused at the edge boundary from those a consumer gave up on.
pub const INGEST_NAME: &str = "nimbus-ingest";

/// Event type of an outbox tombstone (the edge node's `outbox::EVICTED`).
pub const EVICTED: &str = "EVICTED";

/// The topics classroom nodes may write. Anything else (a node claiming `user.events`, say) is
/// dead-lettered: a compromised node must not be able to create users.
pub const EDGE_TOPICS: [Topic; 3] = [Topic::AttendanceEvents, Topic::ContentEvents, Topic::AnalyticsEvents];

/// The seed service that owns a topic the edge writes; its name goes into `service_name`.
pub fn service_for(topic: Topic) -> Option<&'static str> {
    match topic {
        Topic::AttendanceEvents => Some("attendance-service"),
        Topic::ContentEvents => Some("content-service"),
        Topic::AnalyticsEvents => Some("analytics-service"),
        _ => None,
    }
}

/// One Kafka message to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The node's seq this message stands for.
    pub seq: u64,
    /// Where it goes.
    pub topic: Topic,
    /// The message key.
    pub key: String,
    /// The JSON document.
    pub payload: String,
    /// Why the event could not be produced as itself, when this is its dead letter.
    pub dead_letter: Option<String>,
}

/// What to do with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// Produce this message (the event, or its dead letter).
    Produce(Outgoing),
    /// Nothing to produce (a tombstone); the seq still counts as delivered.
    Skip {
        /// The seq.
        seq: u64,
    },
}

/// What the events of one batch share.
#[derive(Debug, Clone)]
pub struct BatchContext {
    node: NodeId,
    correlation_id: String,
}

impl BatchContext {
    /// The context of `batch` (as the node sent it, before any already-stored prefix is
    /// dropped, so the correlation id names the node's batch).
    pub fn new(batch: &Batch) -> Self {
        let last = batch.last_seq().unwrap_or(batch.first_seq);
        BatchContext {
            node: batch.node_id.clone(),
            correlation_id: format!("{}:{}-{}", batch.node_id, batch.first_seq, last),
        }
    }

    /// The correlation id every event of the batch carries.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }
}

/// Maps one event of the batch; `now` is the dead letter's `last_attempt_at`.
pub fn map_event(ctx: &BatchContext, ev: &EdgeEvent, now: DateTime<Utc>) -> Mapped {
    let parsed_topic = ev.topic.parse::<Topic>().ok();
    if ev.event_type == EVICTED {
        // Attendance (priority 0) is never evicted on the node; a tombstone for it means an
        // attendance record vanished, which must be visible, not skipped.
        if ev.priority == 0 {
            let reason = "event_type: EVICTED tombstone of a never-evicted (priority 0) event".to_owned();
            return Mapped::Produce(dead_letter(ctx, ev, parsed_topic, reason, now));
        }
        return Mapped::Skip { seq: ev.seq };
    }
    let topic = match parsed_topic {
        Some(t) if EDGE_TOPICS.contains(&t) => t,
        Some(t) => {
            let reason = format!("topic: {t} does not accept events from classroom nodes");
            return Mapped::Produce(dead_letter(ctx, ev, parsed_topic, reason, now));
        }
        None => {
            let reason = format!("topic: unknown topic {:?}", ev.topic);
            return Mapped::Produce(dead_letter(ctx, ev, parsed_topic, reason, now));
        }
    };
    let payload: Value = match serde_json::from_str(&ev.payload_json) {
        Ok(v) => v,
        Err(e) => {
            return Mapped::Produce(dead_letter(ctx, ev, Some(topic), format!("payload: not valid JSON: {e}"), now));
        }
    };
    let built = match topic {
        Topic::AttendanceEvents => envelope::<AttendanceEvent>(ctx, ev, payload),
        Topic::ContentEvents => envelope::<ContentEvent>(ctx, ev, payload),
        _ => envelope::<AnalyticsEvent>(ctx, ev, payload),
    };
    match built {
        Ok((key, json)) => Mapped::Produce(Outgoing { seq: ev.seq, topic, key, payload: json, dead_letter: None }),
        Err(reason) => Mapped::Produce(dead_letter(ctx, ev, Some(topic), reason, now)),
    }
}

/// Validates the payload as `E` and builds the envelope; returns (key, JSON) or the reason.
fn envelope<E: TopicEvent>(ctx: &BatchContext, ev: &EdgeEvent, payload: Value) -> Result<(String, String), String> {
    let event = E::from_payload(&ev.event_type, payload.clone()).map_err(|e| e.to_string())?;
    let service = service_for(E::TOPIC).unwrap_or(INGEST_NAME);
    let mut env = Envelope::new(service, event)
        .with_event_id(event_id(ctx, ev))
        .at(event_time(ev))
        .with_correlation_id(ctx.correlation_id.clone());
    for (k, v) in metadata(ctx, ev) {
        env = env.with_metadata(k, v);
    }
    let key = env.partition_key();
    let mut value = env.to_value();
    if let Value::Object(obj) = &mut value {
        obj.insert("payload".into(), payload);
    }
    Ok((key, value.to_string()))
}

fn event_id(ctx: &BatchContext, ev: &EdgeEvent) -> Uuid {
    identity::event_id(&ctx.node, ev.seq)
}

/// The node's wall time; a value outside chrono's range (a node bug) falls back to the Unix
/// epoch rather than refusing an attendance record over its clock. `wall_ms` in the metadata
/// keeps the original.
fn event_time(ev: &EdgeEvent) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ev.wall_ms).unwrap_or(DateTime::UNIX_EPOCH)
}

fn metadata(ctx: &BatchContext, ev: &EdgeEvent) -> [(&'static str, String); 6] {
    [
        ("source", "edge".to_owned()),
        ("node_id", ctx.node.to_string()),
        ("seq", ev.seq.to_string()),
        ("boot_id", ev.boot_id.clone()),
        ("wall_ms", ev.wall_ms.to_string()),
        ("clock_synced", ev.clock_synced.to_string()),
    ]
}

/// The seed's dead letter for an event that cannot be produced as itself.
///
/// `original_event` is the envelope the ingest would have produced (event id, type, time, service,
/// correlation id and metadata as above) with the node's payload verbatim (its JSON, or a JSON
/// string of its text when it is not JSON). A replay after fixing the payload therefore produces
/// the proper event, with its deterministic id, to `original_topic`.
fn dead_letter(
    ctx: &BatchContext,
    ev: &EdgeEvent,
    topic: Option<Topic>,
    reason: String,
    now: DateTime<Utc>,
) -> Outgoing {
    let id = event_id(ctx, ev);
    // A dead letter needs a topic; an event naming none of the seed's is filed under the topic its
    // type belongs to, or under dlq.events itself (which no replay sends events to).
    let original_topic = topic.or_else(|| nimbus_core::event::topic_of(&ev.event_type)).unwrap_or(Topic::Dlq);
    let payload =
        serde_json::from_str::<Value>(&ev.payload_json).unwrap_or_else(|_| Value::String(ev.payload_json.clone()));
    let key = key_guess(original_topic, &payload).unwrap_or_else(|| id.to_string());
    let time = event_time(ev);
    let mut meta = Map::new();
    for (k, v) in metadata(ctx, ev) {
        meta.insert(k.into(), Value::String(v));
    }
    let mut original = Map::new();
    original.insert("event_id".into(), Value::String(id.to_string()));
    original.insert("event_type".into(), Value::String(ev.event_type.clone()));
    original.insert("event_version".into(), Value::String("1.0".into()));
    original.insert("timestamp".into(), Value::String(time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)));
    original.insert("service_name".into(), Value::String(service_for(original_topic).unwrap_or(INGEST_NAME).into()));
    original.insert("correlation_id".into(), Value::String(ctx.correlation_id.clone()));
    original.insert("metadata".into(), Value::Object(meta));
    original.insert("payload".into(), payload);
    let letter = DeadLetterEvent {
        original_topic,
        original_event: Value::Object(original),
        original_key: key.clone(),
        original_timestamp: time,
        failure_reason: reason.clone(),
        failure_count: 1,
        last_attempt_at: now,
        consumer_group: INGEST_NAME.into(),
        service_name: INGEST_NAME.into(),
        stack_trace: format!(
            "{INGEST_NAME}: edge event {}/{} ({} for {:?}) refused at the edge boundary: {reason}",
            ctx.node, ev.seq, ev.event_type, ev.topic
        ),
    };
    Outgoing { seq: ev.seq, topic: Topic::Dlq, key, payload: letter.to_json(), dead_letter: Some(reason) }
}

/// The key the event would have had, read from the raw payload where the topic's key field is a
/// non-empty string, so a replay keeps the aggregate's order.
fn key_guess(topic: Topic, payload: &Value) -> Option<String> {
    let fields: &[&str] = match topic {
        Topic::AttendanceEvents => &["course_id"],
        Topic::ContentEvents => &["content_id"],
        Topic::AnalyticsEvents => &["user_id", "session_id"],
        _ => &[],
    };
    fields.iter().find_map(|f| payload.get(f).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use nimbus_core::event::{AnyEvent, Message};
    use serde_json::json;

    use super::*;

    fn node() -> NodeId {
        NodeId::new("room-101").unwrap()
    }

    fn marked(course: &str) -> Value {
        json!({
            "attendance_id": "att-1", "entry_id": "tt-1", "course_id": course, "course_name": "Data Structures",
            "class_date": "2025-03-03", "marked_by": "fac-1", "marked_at": "2025-03-03T09:55:00Z",
            "total_students": 2, "present_count": 1, "absent_count": 1,
            "student_records": [{"student_id": "s1", "status": "present"}, {"student_id": "s2", "status": "absent"}],
            "edge_only_future_field": 7
        })
    }

    fn event(seq: u64, event_type: &str, topic: &str, payload: String) -> EdgeEvent {
        EdgeEvent {
            seq,
            event_type: event_type.into(),
            topic: topic.into(),
            priority: 0,
            payload_json: payload,
            wall_ms: 1_741_000_000_123,
            clock_synced: false,
            boot_id: "boot-7".into(),
        }
    }

    fn ctx(first: u64, events: Vec<EdgeEvent>) -> BatchContext {
        BatchContext::new(&Batch { node_id: node(), first_seq: first, events })
    }

    fn produced(m: Mapped) -> Outgoing {
        match m {
            Mapped::Produce(o) => o,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn attendance_becomes_the_seed_envelope_keyed_by_course_with_edge_metadata() {
        let ev = event(42, "ATTENDANCE_MARKED", "attendance.events", marked("CS101").to_string());
        let c = ctx(40, vec![ev.clone(), ev.clone(), ev.clone()]);
        let out = produced(map_event(&c, &ev, Utc::now()));
        assert_eq!(
            (out.seq, out.topic, out.key.as_str(), out.dead_letter),
            (42, Topic::AttendanceEvents, "CS101", None)
        );
        let env = Envelope::<AttendanceEvent>::from_json(&out.payload).expect("valid seed JSON");
        assert_eq!(env.event_id, identity::event_id(&node(), 42));
        assert_eq!(env.service_name, "attendance-service");
        assert_eq!(env.timestamp.timestamp_millis(), 1_741_000_000_123);
        assert_eq!(env.correlation_id.as_deref(), Some("room-101:40-42"));
        let meta = env.metadata.unwrap();
        for (k, v) in [
            ("source", "edge"),
            ("node_id", "room-101"),
            ("seq", "42"),
            ("boot_id", "boot-7"),
            ("wall_ms", "1741000000123"),
            ("clock_synced", "false"),
        ] {
            assert_eq!(meta.get(k).map(String::as_str), Some(v), "{k}");
        }
        let raw: Value = serde_json::from_str(&out.payload).unwrap();
        assert_eq!(raw["payload"]["edge_only_future_field"], 7, "payload forwarded verbatim");
    }

    #[test]
    fn content_and_analytics_get_their_services_and_keys() {
        let accessed = json!({"content_id": "c-9", "user_id": "u-1", "access_type": "view",
                              "accessed_at": "2025-03-03T10:00:00Z"});
        let ev = event(1, "CONTENT_ACCESSED", "content.events", accessed.to_string());
        let out = produced(map_event(&ctx(1, vec![ev.clone()]), &ev, Utc::now()));
        assert_eq!((out.topic, out.key.as_str()), (Topic::ContentEvents, "c-9"));
        assert!(out.payload.contains("\"service_name\":\"content-service\""));

        let metric = json!({"event_name": "node_health", "category": "edge", "action": "heartbeat", "value": 0.5});
        let ev = event(2, "PERFORMANCE_METRIC", "analytics.events", metric.to_string());
        let out = produced(map_event(&ctx(2, vec![ev.clone()]), &ev, Utc::now()));
        assert_eq!(out.topic, Topic::AnalyticsEvents);
        assert_eq!(out.key, identity::event_id(&node(), 2).to_string(), "no user or session: keyed by event id");
        let msg = Message::from_json(&out.payload, Some(Topic::AnalyticsEvents)).unwrap();
        assert!(matches!(msg, Message::Event(e) if matches!(*e, AnyEvent::Analytics(_))));
    }

    fn dead(m: Mapped) -> DeadLetterEvent {
        let out = produced(m);
        assert_eq!(out.topic, Topic::Dlq);
        assert!(out.dead_letter.is_some());
        let letter = DeadLetterEvent::from_json(&out.payload).expect("seed dead letter");
        assert_eq!(out.key, letter.original_key);
        letter
    }

    #[test]
    fn an_invalid_payload_becomes_a_dead_letter_naming_the_field() {
        let mut payload = marked("CS101");
        payload.as_object_mut().unwrap().remove("course_id");
        let ev = event(5, "ATTENDANCE_MARKED", "attendance.events", payload.to_string());
        let now = Utc::now();
        let letter = dead(map_event(&ctx(5, vec![ev.clone()]), &ev, now));
        assert_eq!(letter.original_topic, Topic::AttendanceEvents);
        assert_eq!(letter.failure_reason, "payload.course_id: required field is missing");
        assert_eq!((letter.failure_count, letter.last_attempt_at), (1, now));
        assert_eq!((letter.consumer_group.as_str(), letter.service_name.as_str()), (INGEST_NAME, INGEST_NAME));
        assert_eq!(letter.original_key, identity::event_id(&node(), 5).to_string());
        assert_eq!(letter.original_event["event_id"], identity::event_id(&node(), 5).to_string());
        assert_eq!(letter.original_event["payload"], payload, "the node's payload, verbatim");
        assert_eq!(letter.original_timestamp.timestamp_millis(), 1_741_000_000_123);
    }

    #[test]
    fn unknown_types_foreign_topics_and_non_json_are_dead_letters() {
        let ev = event(1, "ATTENDANCE_TELEPORTED", "attendance.events", marked("CS1").to_string());
        let letter = dead(map_event(&ctx(1, vec![ev.clone()]), &ev, Utc::now()));
        assert!(letter.failure_reason.starts_with("event_type"), "{}", letter.failure_reason);
        assert_eq!(letter.original_key, "CS1", "key read from the raw payload");

        let ev = event(2, "USER_CREATED", "user.events", "{}".into());
        let letter = dead(map_event(&ctx(2, vec![ev.clone()]), &ev, Utc::now()));
        assert_eq!(letter.original_topic, Topic::UserEvents);
        assert!(letter.failure_reason.contains("does not accept events from classroom nodes"));

        let ev = event(3, "ATTENDANCE_MARKED", "attendance.events", "not json {".into());
        let letter = dead(map_event(&ctx(3, vec![ev.clone()]), &ev, Utc::now()));
        assert!(letter.failure_reason.starts_with("payload: not valid JSON"));
        assert_eq!(letter.original_event["payload"], "not json {");

        let ev = event(4, "NOPE", "no.such.topic", "{}".into());
        let letter = dead(map_event(&ctx(4, vec![ev.clone()]), &ev, Utc::now()));
        assert_eq!(letter.original_topic, Topic::Dlq);
        assert!(letter.failure_reason.contains("unknown topic"));
    }

    #[test]
    fn telemetry_tombstones_are_skipped_but_attendance_tombstones_are_not() {
        let mut ev = event(9, EVICTED, "analytics.events", "{}".into());
        ev.priority = 2;
        assert_eq!(map_event(&ctx(9, vec![ev.clone()]), &ev, Utc::now()), Mapped::Skip { seq: 9 });
        ev.priority = 0;
        ev.topic = "attendance.events".into();
        let letter = dead(map_event(&ctx(9, vec![ev.clone()]), &ev, Utc::now()));
        assert!(letter.failure_reason.contains("EVICTED"));
    }
}
