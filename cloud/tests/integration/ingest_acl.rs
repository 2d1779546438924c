//! Who may write a node's stream: the broker's ACL stops a node publishing on another node's
//! uplink, and the ingest refuses (and counts) batches naming another node or from nodes the
//! registry does not know.

use std::time::Duration;

use nimbus_sync::frame::Message;
use nimbus_sync::topics::NodeTopic;

use crate::common;
use crate::common::TestDb;
use crate::common::ingest::*;

const REPLY: Duration = Duration::from_secs(30);

async fn all_rejections(db: &TestDb) -> i64 {
    let c = db.pool.get().await.unwrap();
    c.query_one("SELECT COALESCE(SUM(count), 0)::BIGINT FROM ingest_rejections", &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_acl_stops_a_node_publishing_on_another_nodes_uplink() {
    let (a, b) = (unique_node("room-a"), unique_node("room-b"));
    let (db, broker, registry) = setup(&[&a, &b], &[]).await;
    let ingest = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    let mut node_a = FakeNode::connect(&broker, &a).await;
    let mut node_b = FakeNode::connect(&broker, &b).await;
    let attendance = KafkaMark::now("attendance.events").await;

    // B, logged in as itself, writes a perfectly valid batch for A on A's uplink topic.
    let forged = attendance_batch(&node_a.id, 1, 1, "IMPOSTOR");
    node_b.publish_on(&NodeTopic::Up(node_a.id.clone()).name(), forged).await;

    // The broker drops it (MQTT 3.1.1 has no error to return): nobody is acked, the ingest never
    // sees a frame, nothing is counted or produced.
    assert_eq!(node_a.reply(Duration::from_secs(3)).await, None);
    assert_eq!(node_b.reply(Duration::from_secs(1)).await, None);
    let m = ingest.metrics.snapshot();
    assert_eq!((m.receiver.frames_ok, m.receiver.rejected.total(), m.unknown_node), (0, 0, 0));
    assert_eq!(all_rejections(&db).await, 0, "the frame never reached the ingest");
    assert_eq!(mark_of(&registry, &node_a.id).await, 0);

    // Both nodes' own streams work (the ingest was listening all along).
    let legit = attendance_batch(&node_a.id, 1, 1, "LEGIT");
    assert_eq!(node_a.send_until_reply(legit, REPLY).await, Message::Ack { upto_seq: 1 });
    let own = attendance_batch(&node_b.id, 1, 1, "B-OWN");
    assert_eq!(node_b.send_until_reply(own, REPLY).await, Message::Ack { upto_seq: 1 });
    let events = attendance.events_of(&node_a.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].key.as_deref(), Some("LEGIT"), "the forged event never reached Kafka");
    assert_eq!(attendance.read().await.iter().filter(|r| r.key.as_deref() == Some("IMPOSTOR")).count(), 0);

    ingest.stop().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_naming_another_node_on_its_own_topic_is_refused_and_counted() {
    let (a, b) = (unique_node("room-a"), unique_node("room-b"));
    let (db, broker, registry) = setup(&[&a, &b], &[]).await;
    let ingest = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    let mut node_b = FakeNode::connect(&broker, &b).await;
    let attendance = KafkaMark::now("attendance.events").await;
    let a_id = nimbus_core::ids::NodeId::new(a.as_str()).unwrap();

    // Allowed by the ACL (B's own topic), but the batch claims to be A's.
    node_b.publish(attendance_batch(&a_id, 1, 1, "CLAIMED")).await;
    assert_eq!(node_b.reply(REPLY).await, Some(Message::Reject { reason: "wrong_node".into() }));
    assert_eq!(rejections(&db, &b, "wrong_node").await, 1);
    assert_eq!(ingest.metrics.snapshot().receiver.rejected.wrong_node, 1);
    assert_eq!((mark_of(&registry, &a_id).await, mark_of(&registry, &node_b.id).await), (0, 0));
    assert!(attendance.events_of(&a_id).await.is_empty());

    ingest.stop().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_node_is_refused_and_counted_without_an_ack() {
    let stranger = unique_node("room-x");
    // In the broker's password file, but never registered.
    let (db, broker, _registry) = setup(&[], &[&stranger]).await;
    let ingest = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    let mut node = FakeNode::connect(&broker, &stranger).await;
    let attendance = KafkaMark::now("attendance.events").await;

    node.publish(attendance_batch(&node.id, 1, 2, "CS1")).await;
    assert_eq!(node.reply(REPLY).await, Some(Message::Reject { reason: "unknown_node".into() }));
    assert_eq!(rejections(&db, &stranger, "unknown_node").await, 1);
    assert_eq!(ingest.metrics.snapshot().unknown_node, 1);
    assert!(attendance.events_of(&node.id).await.is_empty());

    ingest.stop().await;
    db.drop_now().await;
}
