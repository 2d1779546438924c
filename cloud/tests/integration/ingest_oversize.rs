//! A node publishing a frame over the protocol's size limit must not take the ingest down.

use std::time::Duration;

use nimbus_sync::frame::{FrameLimits, Message};

use crate::common;
use crate::common::ingest::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_is_refused_and_counted_and_the_ingest_keeps_working() {
    let name = unique_node("room");
    let (db, broker, registry) = setup(&[&name], &[]).await;
    let ingest = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    let mut node = FakeNode::connect(&broker, &name).await;

    let mut huge = vec![0u8; FrameLimits::DEFAULT_MAX_FRAME_BYTES + 64 * 1024];
    huge[0] = 1;
    node.publish(huge).await;
    wait_until(Duration::from_secs(15), "a counted too_large rejection", || async {
        rejections(&db, &name, "too_large").await == 1
    })
    .await;
    let reply = node.send_until_reply(attendance_batch(&node.id, 1, 1, "CS1"), Duration::from_secs(30)).await;
    assert_eq!(reply, Message::Ack { upto_seq: 1 });
    assert_eq!(mark_of(&registry, &node.id).await, 1);
    let m = ingest.metrics.snapshot();
    assert_eq!((m.receiver.rejected.too_large, m.disconnects), (1, 0), "{m:?}");

    ingest.stop().await;
    db.drop_now().await;
}
