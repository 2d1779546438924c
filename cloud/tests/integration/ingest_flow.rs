//! The ingest against real services (a private Mosquitto, tansu, a fresh PostgreSQL database): a
//! fake classroom node publishes outbox batches and the tests check Kafka, the acks and the
//! registry's high-water mark.

use std::time::Duration;

use nimbus_core::event::{AttendanceEvent, Envelope};
use nimbus_sync::frame::{self, Message, Status};
use nimbus_sync::identity;
use nimbus_sync::topics::NodeTopic;

use crate::common;
use crate::common::ingest::*;

const REPLY: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_in_kafka_as_seed_events_before_its_ack_and_the_mark_advances() {
    let name = unique_node("room");
    let (db, broker, registry) = setup(&[&name], &[]).await;
    let ingest = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    let mut node = FakeNode::connect(&broker, &name).await;
    let attendance = KafkaMark::now("attendance.events").await;
    let course = format!("CS-{name}");

    let reply = node.send_until_reply(attendance_batch(&node.id, 1, 3, &course), REPLY).await;
    assert_eq!(reply, Message::Ack { upto_seq: 3 });

    // An ack means "in Kafka": the events are readable the moment it arrives.
    let events = attendance.events_of(&node.id).await;
    assert_eq!(events.len(), 3, "exactly one message per event: {events:#?}");
    for (r, seq) in events.iter().zip(1u64..) {
        let env = Envelope::<AttendanceEvent>::from_json(&r.text).expect("valid seed JSON on attendance.events");
        assert_eq!(env.event_id, identity::event_id(&node.id, seq), "event_id = UUIDv5(node, seq)");
        assert_eq!(env.event_type(), "ATTENDANCE_MARKED");
        assert_eq!(env.service_name, "attendance-service");
        assert_eq!(env.timestamp.timestamp_millis(), 1_741_000_000_000 + seq as i64, "the node's wall time");
        assert_eq!(env.correlation_id.as_deref(), Some(format!("{name}:1-3").as_str()));
        assert_eq!(r.key.as_deref(), Some(course.as_str()), "keyed by course_id");
        let meta = env.metadata.expect("edge metadata");
        assert_eq!(meta["source"], "edge");
        assert_eq!(meta["seq"], seq.to_string());
        assert_eq!(meta["boot_id"], "boot-1");
        assert_eq!(meta["clock_synced"], "true");
        assert_eq!(meta["wall_ms"], (1_741_000_000_000 + seq as i64).to_string());
    }
    assert!(events.iter().all(|r| r.partition == events[0].partition), "one key, one partition");
    assert_eq!(mark_of(&registry, &node.id).await, 3);
    let m = ingest.metrics.snapshot();
    assert_eq!((m.events_produced, m.receiver.accepted), (3, 1));

    ingest.stop().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_re_acked_without_producing_and_overlaps_produce_only_the_new_suffix() {
    let name = unique_node("room");
    let (db, broker, registry) = setup(&[&name], &[]).await;
    let ingest = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    let mut node = FakeNode::connect(&broker, &name).await;
    let attendance = KafkaMark::now("attendance.events").await;

    let first = attendance_batch(&node.id, 1, 3, "CS1");
    assert_eq!(node.send_until_reply(first.clone(), REPLY).await, Message::Ack { upto_seq: 3 });
    node.drain(Duration::from_secs(1)).await;
    let produced = ingest.metrics.snapshot().events_produced;

    // The same batch again (the node missed the ack): re-acked, nothing produced.
    node.publish(first).await;
    assert_eq!(node.reply(REPLY).await, Some(Message::Ack { upto_seq: 3 }));
    assert_eq!(ingest.metrics.snapshot().events_produced, produced);
    assert!(ingest.metrics.snapshot().receiver.duplicates >= 1);

    // An overlapping batch: only 4 and 5 are new.
    node.publish(attendance_batch(&node.id, 2, 5, "CS1")).await;
    assert_eq!(node.reply(REPLY).await, Some(Message::Ack { upto_seq: 5 }));
    let seqs: Vec<String> = attendance
        .events_of(&node.id)
        .await
        .iter()
        .map(|r| r.json["metadata"]["seq"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seqs, ["1", "2", "3", "4", "5"], "each event exactly once");
    assert_eq!(mark_of(&registry, &node.id).await, 5);

    ingest.stop().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_asks_for_a_resend_from_the_mark_and_stores_nothing() {
    let name = unique_node("room");
    let (db, broker, registry) = setup(&[&name], &[]).await;
    let ingest = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    let mut node = FakeNode::connect(&broker, &name).await;
    let attendance = KafkaMark::now("attendance.events").await;

    assert_eq!(
        node.send_until_reply(attendance_batch(&node.id, 1, 2, "CS1"), REPLY).await,
        Message::Ack { upto_seq: 2 }
    );
    node.drain(Duration::from_secs(1)).await;
    node.publish(attendance_batch(&node.id, 6, 7, "CS1")).await;
    assert_eq!(node.reply(REPLY).await, Some(Message::Resend { from_seq: 3 }));
    assert_eq!(mark_of(&registry, &node.id).await, 2);
    assert_eq!(attendance.events_of(&node.id).await.len(), 2, "nothing of the gapped batch produced");
    assert_eq!(ingest.metrics.snapshot().receiver.gaps, 1);

    ingest.stop().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_future_frames_are_counted_and_ignored_and_the_stream_continues() {
    let name = unique_node("room");
    let (db, broker, registry) = setup(&[&name], &[]).await;
    let ingest = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    let mut node = FakeNode::connect(&broker, &name).await;
    let attendance = KafkaMark::now("attendance.events").await;

    let good = attendance_batch(&node.id, 1, 2, "CS1");
    let mut corrupt = good.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x5a;
    let mut future = good.clone();
    future[0] = 9;
    // One at a time: a node's newer frame replaces one still waiting (it has one batch in flight).
    for (frame, reason) in [(corrupt, "checksum"), (future, "unknown_version"), (vec![1, 2], "truncated")] {
        node.publish(frame).await;
        wait_until(Duration::from_secs(15), &format!("a counted {reason} rejection"), || async {
            rejections(&db, &name, reason).await == 1
        })
        .await;
    }
    assert_eq!(node.reply(Duration::from_secs(1)).await, None, "no reply to a corrupt frame");
    let r = ingest.metrics.snapshot().receiver.rejected;
    assert_eq!((r.checksum, r.unknown_version, r.truncated), (1, 1, 1));
    assert_eq!(mark_of(&registry, &node.id).await, 0);

    // The ingest is alive and the node's stream goes on.
    assert_eq!(node.send_until_reply(good, REPLY).await, Message::Ack { upto_seq: 2 });
    assert_eq!(attendance.events_of(&node.id).await.len(), 2);

    ingest.stop().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn birth_heartbeat_and_last_will_messages_update_the_registry() {
    let name = unique_node("room");
    let (db, broker, registry) = setup(&[&name], &[]).await;
    let ingest = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    let node = FakeNode::connect(&broker, &name).await;
    let topic = NodeTopic::Status(node.id.clone()).name();

    let online =
        Status::Online { node_id: node.id.clone(), boot_id: "boot-9".into(), version: "0.1.0".into(), at_ms: 1 };
    node.publish_on(&topic, frame::encode(&Message::Status(online))).await;
    wait_until(Duration::from_secs(15), "the node to be online", || async {
        let n = registry.node(&node.id).await.unwrap().unwrap();
        n.online && n.boot_id.as_deref() == Some("boot-9") && n.software_version.as_deref() == Some("0.1.0")
    })
    .await;
    assert!(registry.node(&node.id).await.unwrap().unwrap().last_seen_at.is_some());
    assert_eq!(registry.node(&node.id).await.unwrap().unwrap().backlog, None, "no heartbeat yet");

    let beat = Status::Heartbeat { node_id: node.id.clone(), boot_id: "boot-9".into(), backlog: 42, at_ms: 2 };
    node.publish_on(&topic, frame::encode(&Message::Status(beat))).await;
    wait_until(Duration::from_secs(15), "the heartbeat's backlog in the registry", || async {
        registry.node(&node.id).await.unwrap().unwrap().backlog == Some(42)
    })
    .await;
    let forged =
        Status::Heartbeat { node_id: "room-someone-else".parse().unwrap(), boot_id: "x".into(), backlog: 7, at_ms: 3 };
    node.publish_on(&topic, frame::encode(&Message::Status(forged))).await;

    node.publish_on(&topic, frame::encode(&Message::Status(Status::Offline { node_id: node.id.clone() }))).await;
    wait_until(Duration::from_secs(15), "the node to be offline", || async {
        !registry.node(&node.id).await.unwrap().unwrap().online
    })
    .await;
    assert_eq!(ingest.metrics.snapshot().status_updates, 3, "birth, heartbeat, will; the forged heartbeat refused");
    let n = registry.node(&node.id).await.unwrap().unwrap();
    assert_eq!(n.backlog, Some(42), "a heartbeat naming another node changes nothing");

    ingest.stop().await;
    db.drop_now().await;
}
