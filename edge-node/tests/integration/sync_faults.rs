//! Fault tests of the node's sync with the real `nimbus-edge` binary and a real, private
//! Mosquitto; the cloud side is `nimbus_sync::testing::FakeCloud`, which applies the protocol's
//! receiver rules. Each test checks that the cloud ends with exactly the node's sequence
//! 1..=N: no gaps, no duplicates.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use chrono::{FixedOffset, NaiveDate};
use nimbus_core::ids::NodeId;
use nimbus_core::topics::Topic;
use nimbus_edge::clock::{Clock, ManualClock};
use nimbus_edge::outbox::{self, Priority};
use nimbus_edge::store::Store;
use nimbus_sync::frame::{self, BatchBuilder, EdgeEvent, FrameLimits, Message};
use nimbus_sync::testing::{FakeCloud, Mosquitto};
use nimbus_sync::topics::NodeTopic;
use nimbus_sync::transport::MqttConfig;
use rumqttc::{AsyncClient, QoS};

use crate::common;

const NODE: &str = "room-201";
const PASSWORD: &str = "pw-201";

/// Writes `n` attendance events into the node's outbox before it starts, a day's worth per
/// `per_day` events, as if it had been offline that long.
fn prefill(data: &Path, n: usize, per_day: usize) {
    let store = Store::open(&data.join("node.db")).unwrap();
    let start = NaiveDate::from_ymd_opt(2026, 11, 16).unwrap().and_hms_opt(8, 0, 0).unwrap();
    let clock = ManualClock::at_local(start, FixedOffset::east_opt(0).unwrap());
    let step = Duration::from_secs(86_400 / per_day.max(1) as u64);
    store
        .with(|c| {
            let tx = c.transaction()?;
            for i in 0..n {
                let payload = serde_json::json!({ "attendance_id": format!("a-{i}"), "course_id": "cs101" });
                outbox::append(
                    &tx,
                    "ATTENDANCE_MARKED",
                    Topic::AttendanceEvents,
                    Priority::Critical,
                    &payload,
                    &clock.now(),
                )?;
                clock.advance(step);
            }
            tx.commit()?;
            Ok(())
        })
        .unwrap();
}

fn config(dir: &Path, broker: &str) -> PathBuf {
    let path = dir.join("node.toml");
    std::fs::write(
        &path,
        format!(
            "node_id = \"{NODE}\"\nroom_id = \"demo-101\"\ndata_dir = \"{}\"\n[http]\nbind = \"127.0.0.1:0\"\n\
             [reader]\nsimulated_bind = \"127.0.0.1:0\"\n[cloud]\nmqtt_url = \"{broker}\"\nmqtt_password = \"{PASSWORD}\"\n\
             ack_timeout_ms = 500\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

fn start_node(config: &Path) -> Child {
    common::spawn_edge(&[], config).0
}

fn sigkill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn sigterm(child: &mut Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit: {status:?}");
}

async fn until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

fn backlog(data: &Path) -> u64 {
    Store::open(&data.join("node.db")).unwrap().with(|c| outbox::backlog(c)).unwrap()
}

fn exactly(n: u64) -> Vec<u64> {
    (1..=n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_between_publish_and_ack_resends_after_restart_and_nothing_doubles() {
    let broker = Mosquitto::start(&[(NODE, PASSWORD)]);
    let cloud = FakeCloud::start(&broker.url);
    cloud.set_ack_delay_ms(1500);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prefill(&data, 2000, 500);
    let cfg = config(dir.path(), &broker.url);

    let mut node = start_node(&cfg);
    // The cloud has stored the first batch, but its ack is still on the way: kill now.
    assert!(until(Duration::from_secs(20), || !cloud.stored(NODE).is_empty()).await);
    sigkill(&mut node);
    assert_eq!(backlog(&data), 2000, "nothing was acknowledged before the kill");

    cloud.set_ack_delay_ms(0);
    let mut node = start_node(&cfg);
    assert!(until(Duration::from_secs(60), || cloud.stored(NODE).len() == 2000).await, "{}", cloud.stored(NODE).len());
    assert!(until(Duration::from_secs(20), || backlog(&data) == 0).await, "outbox drained");
    sigterm(&mut node);
    assert_eq!(cloud.stored(NODE), exactly(2000));
    assert!(cloud.state.lock().unwrap().duplicates >= 1, "the batch resent after the restart was recognised");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_restarting_mid_stream_loses_and_doubles_nothing() {
    let broker = Mosquitto::start(&[(NODE, PASSWORD)]);
    let mut cloud = FakeCloud::start(&broker.url);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prefill(&data, 6000, 1000);
    let mut node = start_node(&config(dir.path(), &broker.url));
    for target in [1000, 3000, 5000] {
        assert!(until(Duration::from_secs(30), || cloud.stored(NODE).len() >= target).await);
        cloud.restart();
    }
    assert!(until(Duration::from_secs(60), || cloud.stored(NODE).len() == 6000).await);
    assert!(until(Duration::from_secs(20), || backlog(&data) == 0).await);
    sigterm(&mut node);
    assert_eq!(cloud.stored(NODE), exactly(6000));
}

fn batch_frame(node: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<u8> {
    let mut b = BatchBuilder::new(NodeId::new(node).unwrap(), FrameLimits::default());
    for seq in seqs {
        b.push(&EdgeEvent {
            seq,
            event_type: "ATTENDANCE_MARKED".into(),
            topic: "attendance.events".into(),
            priority: 0,
            payload_json: "{}".into(),
            wall_ms: 0,
            clock_synced: true,
            boot_id: "injected".into(),
        })
        .unwrap();
    }
    frame::encode(&Message::Batch(b.finish().unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_duplicate_and_out_of_order_frames_mid_stream_change_nothing() {
    let broker = Mosquitto::start(&[(NODE, PASSWORD)]);
    let cloud = FakeCloud::start(&broker.url);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prefill(&data, 8000, 1000);
    let mut node = start_node(&config(dir.path(), &broker.url));

    // A second connection with the node's credentials injects bad traffic into its uplink.
    let cfg = MqttConfig::new(&broker.url, "room-201-injector").with_credentials(NODE, PASSWORD);
    let (inject, mut eventloop) = AsyncClient::new(cfg.options().unwrap(), 16);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let up = NodeTopic::Up(NodeId::new(NODE).unwrap()).name();
    assert!(until(Duration::from_secs(30), || cloud.stored(NODE).len() >= 1000).await);
    let mut corrupt = batch_frame(NODE, 1..=3);
    let last = corrupt.len() - 6;
    corrupt[last] ^= 0xFF;
    inject.publish(&up, QoS::AtLeastOnce, false, corrupt).await.unwrap();
    inject.publish(&up, QoS::AtLeastOnce, false, vec![0x09, 1, 2, 3, 4, 5]).await.unwrap();
    inject.publish(&up, QoS::AtLeastOnce, false, batch_frame(NODE, 1..=3)).await.unwrap();
    inject.publish(&up, QoS::AtLeastOnce, false, batch_frame(NODE, 200..=210)).await.unwrap();
    assert!(until(Duration::from_secs(60), || cloud.stored(NODE).len() == 8000).await, "{}", cloud.stored(NODE).len());
    assert!(until(Duration::from_secs(20), || backlog(&data) == 0).await);
    sigterm(&mut node);
    assert_eq!(cloud.stored(NODE), exactly(8000));
    let s = cloud.state.lock().unwrap();
    assert!(s.rejected >= 2, "corrupt frames counted: {}", s.rejected);
    assert!(s.duplicates >= 2, "replayed and out-of-order batches recognised: {}", s.duplicates);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_offline_for_a_week_catches_up_fifty_thousand_events() {
    let broker = Mosquitto::start(&[(NODE, PASSWORD)]);
    let cloud = FakeCloud::start(&broker.url);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A week offline: 50,000 events spread over seven days.
    prefill(&data, 50_000, 50_000 / 7 + 1);
    let started = Instant::now();
    let mut node = start_node(&config(dir.path(), &broker.url));
    assert!(
        until(Duration::from_secs(240), || cloud.stored(NODE).len() == 50_000).await,
        "{}",
        cloud.stored(NODE).len()
    );
    let took = started.elapsed();
    assert!(until(Duration::from_secs(30), || backlog(&data) == 0).await);
    sigterm(&mut node);
    assert_eq!(cloud.stored(NODE), exactly(50_000));
    eprintln!("sync_faults: a week's 50,000 events caught up in {:.1} s", took.as_secs_f64());
}
