//! Taps of cards a node did not know reach the registry's quarantine exactly once, in the same
//! transaction as the node's high-water mark, so a resent batch does not count them again.

use std::time::Duration;

use nimbus_sync::frame::Message;
use serde_json::json;

use crate::common;
use crate::common::ingest::*;

const REPLY: Duration = Duration::from_secs(30);

fn unknown_card(seq: u64, uid: &str) -> nimbus_sync::frame::EdgeEvent {
    let payload = json!({
        "event_name": "unknown_card_tapped", "category": "edge_reader", "action": "UNKNOWN_CARD",
        "label": uid, "device_type": "edge_node"
    });
    let mut ev = edge_event(seq, "USER_ACTION", "analytics.events", payload.to_string());
    ev.priority = 1;
    ev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_card_is_quarantined_once_even_when_its_batch_is_resent() {
    let name = unique_node("room");
    let (db, broker, _registry) = setup(&[&name], &[]).await;
    let ingest = RunningIngest::start(&ingest_config(&broker, &db, &common::kafka_brokers())).await;
    let mut node = FakeNode::connect(&broker, &name).await;

    let events = vec![
        unknown_card(1, "DEADBEEF"),
        unknown_card(2, "DEADBEEF"),
        unknown_card(3, "04A1B2C3D4E5F6"),
        // A hostile label is not a card uid: the event still goes to Kafka, nothing is quarantined.
        unknown_card(4, "x'); DROP TABLE unknown_cards; --"),
    ];
    let frame = batch_frame(&node.id, 1, events);
    assert_eq!(node.send_until_reply(frame.clone(), REPLY).await, Message::Ack { upto_seq: 4 });
    // The node missed the ack and sends the batch again.
    node.drain(Duration::from_millis(500)).await;
    assert_eq!(node.send_until_reply(frame, REPLY).await, Message::Ack { upto_seq: 4 });

    let client = db.pool.get().await.unwrap();
    let rows = client
        .query("SELECT card_uid, tap_count, first_seen < last_seen FROM unknown_cards WHERE node_id = $1 ORDER BY card_uid", &[
            &name,
        ])
        .await
        .unwrap();
    let got: Vec<(String, i64, bool)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(got, [("04A1B2C3D4E5F6".to_owned(), 1, false), ("DEADBEEF".to_owned(), 2, true)]);

    ingest.stop().await;
    db.drop_now().await;
}
