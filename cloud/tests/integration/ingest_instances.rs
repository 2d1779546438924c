//! Several ingest instances: a shared subscription splits nodes between instances of one group,
//! and even two instances that both receive the same frame store it once (the node's registry
//! row is locked while a batch is stored; the second instance then sees the new mark).

use std::time::Duration;

use nimbus_sync::frame::Message;

use crate::common;
use crate::common::ingest::*;

const REPLY: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_receiving_the_same_frame_store_it_once() {
    let name = unique_node("room");
    let (db, broker, registry) = setup(&[&name], &[]).await;
    // Different groups: each instance gets its own copy of every frame, the worst case a
    // redelivery after a reconnect can produce within one group.
    let first = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    let second = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    let mut node = FakeNode::connect(&broker, &name).await;
    let attendance = KafkaMark::now("attendance.events").await;

    node.publish(attendance_batch(&node.id, 1, 4, "CS1")).await;
    assert_eq!(node.reply(REPLY).await, Some(Message::Ack { upto_seq: 4 }));
    assert_eq!(node.reply(REPLY).await, Some(Message::Ack { upto_seq: 4 }), "the other instance re-acks");
    assert_eq!(attendance.events_of(&node.id).await.len(), 4, "stored once, not twice");
    let (a, b) = (first.metrics.snapshot(), second.metrics.snapshot());
    assert_eq!((a.receiver.accepted + b.receiver.accepted, a.receiver.duplicates + b.receiver.duplicates), (1, 1));
    assert_eq!(mark_of(&registry, &node.id).await, 4);

    first.stop().await;
    second.stop().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_of_one_group_share_the_nodes_and_every_batch_is_acked_once() {
    let names: Vec<String> = (0..4).map(|_| unique_node("room")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (db, broker, registry) = setup(&refs, &[]).await;
    let mut config = ingest_config(&broker, &db, &common::kafka_brokers());
    let first = RunningIngest::start(&config).await;
    config.ingest.instance = unique_node("test");
    let second = RunningIngest::start(&config).await;
    let attendance = KafkaMark::now("attendance.events").await;

    for name in &names {
        let mut node = FakeNode::connect(&broker, name).await;
        for (first_seq, last_seq) in [(1, 2), (3, 3)] {
            let frame = attendance_batch(&node.id, first_seq, last_seq, "CS1");
            assert_eq!(node.send_until_reply(frame, REPLY).await, Message::Ack { upto_seq: last_seq });
            node.drain(Duration::from_millis(300)).await;
        }
        assert_eq!(mark_of(&registry, &node.id).await, 3);
        assert_eq!(attendance.events_of(&node.id).await.len(), 3, "{name}");
    }
    let (a, b) = (first.metrics.snapshot(), second.metrics.snapshot());
    assert_eq!(a.receiver.accepted + b.receiver.accepted, 8, "each batch accepted once across the group");
    assert!(a.receiver.frames_ok > 0 && b.receiver.frames_ok > 0, "the broker split the frames: {a:?} {b:?}");

    first.stop().await;
    second.stop().await;
    db.drop_now().await;
}
