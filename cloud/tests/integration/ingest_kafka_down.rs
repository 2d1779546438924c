//! Kafka unavailable: the ingest must not ack or move the mark, and must not pile frames up;
//! once an ingest with a working Kafka gets the node's resend, the batch is stored exactly once.

use std::time::Duration;

use nimbus_sync::frame::Message;

use crate::common;
use crate::common::ingest::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kafka_down_nothing_is_acked_and_the_mark_stays_then_a_working_ingest_acks() {
    let name = unique_node("room");
    let (db, broker, registry) = setup(&[&name], &[]).await;
    // Nothing listens on this port: every delivery times out (4 s in tests).
    let nowhere = format!("127.0.0.1:{}", nimbus_sync::testing::free_port());
    let broken = RunningIngest::start(&ingest_config(&broker, &db, &nowhere)).await;
    let mut node = FakeNode::connect(&broker, &name).await;
    let attendance = KafkaMark::now("attendance.events").await;
    let frame = attendance_batch(&node.id, 1, 2, "CS1");

    node.publish(frame.clone()).await;
    // Resends while the first copy waits on Kafka replace each other: at most one waits.
    for _ in 0..5 {
        node.publish(frame.clone()).await;
    }
    let m = broken.metrics.clone();
    wait_until(Duration::from_secs(30), "a failed delivery", || {
        let m = m.clone();
        async move { m.snapshot().delivery_failures >= 1 }
    })
    .await;
    assert_eq!(node.reply(Duration::from_secs(2)).await, None, "no ack without Kafka's confirmation");
    assert_eq!(mark_of(&registry, &node.id).await, 0, "the mark did not move");
    let s = broken.metrics.snapshot();
    assert_eq!((s.events_produced, s.acks_published), (0, 0));
    assert!(s.frames_superseded >= 1, "queued resends were coalesced: {s:?}");
    broken.stop().await;

    // A working ingest (as after Kafka comes back) gets the node's next resend.
    let working = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    assert_eq!(node.send_until_reply(frame, Duration::from_secs(30)).await, Message::Ack { upto_seq: 2 });
    assert_eq!(mark_of(&registry, &node.id).await, 2);
    assert_eq!(attendance.events_of(&node.id).await.len(), 2, "stored exactly once");

    working.stop().await;
    db.drop_now().await;
}
