//! Poison events from a node (invalid payload, unknown type) go to `dlq.events` in the seed's
//! dead-letter shape and the batch is acked, so one bad row cannot stall a node forever;
//! tombstones are skipped.

use std::time::Duration;

use nimbus_core::event::{ContentEvent, DeadLetterEvent, Envelope, Message as SeedMessage};
use nimbus_core::topics::Topic;
use nimbus_sync::frame::Message;
use nimbus_sync::identity;
use serde_json::json;

use crate::common;
use crate::common::ingest::*;

const REPLY: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_payload_is_dead_lettered_in_the_seed_shape_and_the_batch_is_acked() {
    let name = unique_node("room");
    let (db, broker, registry) = setup(&[&name], &[]).await;
    let ingest = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    let mut node = FakeNode::connect(&broker, &name).await;
    let attendance = KafkaMark::now("attendance.events").await;
    let dlq = KafkaMark::now("dlq.events").await;

    let mut bad = attendance_payload("CS1");
    bad.as_object_mut().unwrap().remove("course_id");
    let events = vec![
        edge_event(1, "ATTENDANCE_MARKED", "attendance.events", attendance_payload("CS1").to_string()),
        edge_event(2, "ATTENDANCE_MARKED", "attendance.events", bad.to_string()),
        edge_event(3, "ATTENDANCE_MARKED", "attendance.events", attendance_payload("CS1").to_string()),
    ];
    let reply = node.send_until_reply(batch_frame(&node.id, 1, events), REPLY).await;
    assert_eq!(reply, Message::Ack { upto_seq: 3 }, "the poison event does not block the batch");

    let good: Vec<_> = attendance.events_of(&node.id).await.iter().map(|r| r.json["metadata"]["seq"].clone()).collect();
    assert_eq!(good, [json!("1"), json!("3")]);

    let letters = dlq.dead_letters_of(&node.id).await;
    assert_eq!(letters.len(), 1, "{letters:#?}");
    let r = &letters[0];
    assert!(matches!(SeedMessage::from_json(&r.text, Some(Topic::Dlq)), Ok(SeedMessage::DeadLetter(_))));
    let letter = DeadLetterEvent::from_json(&r.text).expect("the seed's DeadLetterEvent");
    assert_eq!(letter.original_topic, Topic::AttendanceEvents);
    assert_eq!(letter.failure_reason, "payload.course_id: required field is missing");
    assert_eq!(letter.failure_count, 1);
    assert_eq!(letter.consumer_group, "nimbus-ingest");
    assert_eq!(letter.service_name, "nimbus-ingest");
    assert!(!letter.stack_trace.is_empty());
    let id = identity::event_id(&node.id, 2).to_string();
    assert_eq!(letter.original_event["event_id"], id.as_str(), "the event it would have been");
    assert_eq!(letter.original_event["event_type"], "ATTENDANCE_MARKED");
    assert_eq!(letter.original_event["payload"], bad, "the node's payload, verbatim");
    assert_eq!(letter.original_key, id, "no course_id to key by: the event id, as the seed does");
    assert_eq!(r.key.as_deref(), Some(id.as_str()), "dlq.events is keyed by original_key");
    assert_eq!(mark_of(&registry, &node.id).await, 3);
    assert_eq!(ingest.metrics.snapshot().dead_lettered, 1);

    ingest.stop().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_types_are_dead_lettered_tombstones_skipped_and_content_events_keyed_by_content_id() {
    let name = unique_node("room");
    let (db, broker, registry) = setup(&[&name], &[]).await;
    let ingest = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    let mut node = FakeNode::connect(&broker, &name).await;
    let content = KafkaMark::now("content.events").await;
    let dlq = KafkaMark::now("dlq.events").await;

    let mut tombstone = edge_event(1, "EVICTED", "analytics.events", "{}".into());
    tombstone.priority = 2;
    let accessed = json!({"content_id": "c-42", "user_id": "u-1", "access_type": "download",
                          "accessed_at": "2025-03-03T10:00:00Z"});
    let events = vec![
        tombstone,
        edge_event(2, "ATTENDANCE_TELEPORTED", "attendance.events", attendance_payload("CS9").to_string()),
        edge_event(3, "CONTENT_ACCESSED", "content.events", accessed.to_string()),
    ];
    let reply = node.send_until_reply(batch_frame(&node.id, 1, events), REPLY).await;
    assert_eq!(reply, Message::Ack { upto_seq: 3 });

    let produced = content.events_of(&node.id).await;
    assert_eq!(produced.len(), 1);
    let env = Envelope::<ContentEvent>::from_json(&produced[0].text).expect("valid content event");
    assert_eq!((env.service_name.as_str(), env.event_id), ("content-service", identity::event_id(&node.id, 3)));
    assert_eq!(produced[0].key.as_deref(), Some("c-42"), "keyed by content_id");

    let letters = dlq.dead_letters_of(&node.id).await;
    assert_eq!(letters.len(), 1);
    let letter = DeadLetterEvent::from_json(&letters[0].text).unwrap();
    assert!(letter.failure_reason.starts_with("event_type"), "{}", letter.failure_reason);
    assert_eq!(letter.original_key, "CS9", "key read from the raw payload, so a replay keeps course order");
    let m = ingest.metrics.snapshot();
    assert_eq!((m.tombstones_skipped, m.dead_lettered, m.events_produced), (1, 1, 1));
    assert_eq!(mark_of(&registry, &node.id).await, 3);

    ingest.stop().await;
    db.drop_now().await;
}
