//! The node's sync task against a real, private Mosquitto (password file + the production ACL)
//! and a fake cloud that follows the protocol's receiver rules: delivery is exact and in order,
//! acks empty the outbox, a broker restart mid-stream loses nothing, snapshots are applied only
//! when newer and whole, and a node cannot publish as another.

use std::sync::Arc;
use std::time::Duration;

use chrono::{FixedOffset, NaiveDate};
use nimbus_core::ids::NodeId;
use nimbus_core::topics::Topic;
use nimbus_edge::clock::{Clock, ManualClock};
use nimbus_edge::outbox::{self, Priority};
use nimbus_edge::store::Store;
use nimbus_edge::sync::{SyncSettings, SyncStatus};
use nimbus_edge::timetable;
use nimbus_sync::frame::{self, FrameLimits, Message, Snapshot};
use nimbus_sync::sender::SenderConfig;
use nimbus_sync::testing::{CLOUD_USER, FakeCloud, Mosquitto};
use nimbus_sync::topics::{NodeTopic, SnapshotKind};
use nimbus_sync::transport::MqttConfig;
use rumqttc::{AsyncClient, QoS};
use tokio_util::sync::CancellationToken;

const NODE: &str = "room-101";
const PASSWORD: &str = "node-secret";

fn clock() -> ManualClock {
    let t = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(9, 0, 0).unwrap();
    ManualClock::at_local(t, FixedOffset::east_opt(0).unwrap())
}

fn fill_outbox(store: &Store, clock: &ManualClock, n: usize) {
    store
        .with(|c| {
            let tx = c.transaction()?;
            for i in 0..n {
                let payload = serde_json::json!({ "attendance_id": format!("a-{i}") });
                outbox::append(
                    &tx,
                    "ATTENDANCE_MARKED",
                    Topic::AttendanceEvents,
                    Priority::Critical,
                    &payload,
                    &clock.now(),
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .unwrap();
}

fn settings(url: &str) -> SyncSettings {
    SyncSettings {
        node_id: NodeId::new(NODE).unwrap(),
        mqtt: MqttConfig::new(url, NODE).with_credentials(NODE, PASSWORD),
        sender: SenderConfig { ack_timeout_ms: 500, ..Default::default() },
    }
}

async fn until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_arrives_exactly_once_in_order_even_across_a_broker_restart() {
    let mut broker = Mosquitto::start(&[(NODE, PASSWORD)]);
    let shutdown = CancellationToken::new();
    let cloud = FakeCloud::start(&broker.url);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("node.db")).unwrap();
    let clock = clock();
    fill_outbox(&store, &clock, 3000);

    let status = Arc::new(SyncStatus::default());
    let task = tokio::spawn(nimbus_edge::sync::run(
        store.clone(),
        Arc::new(clock.clone()),
        settings(&broker.url),
        status.clone(),
        shutdown.clone(),
    ));
    // Part way through, the broker dies and comes back.
    assert!(until(Duration::from_secs(30), || status.acked_upto() >= 500).await, "first acks");
    broker.restart();
    fill_outbox(&store, &clock, 1000);
    let done = until(Duration::from_secs(60), || status.acked_upto() >= 4000).await;
    let stored = cloud.stored(NODE);
    assert!(done, "acked {} of 4000; cloud stored {}", status.acked_upto(), stored.len());
    assert_eq!(stored, (1..=4000).collect::<Vec<u64>>(), "exactly 1..=4000, in order, no duplicates");
    assert_eq!(store.with(|c| outbox::backlog(c)).unwrap(), 0, "acked events are deleted");
    assert_eq!(store.with(|c| outbox::acked_upto(c)).unwrap(), 4000, "the ack mark is persisted");
    assert!(status.connected());
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap().unwrap();
}

fn snapshot_frame(kind: SnapshotKind, version: u64, body: &impl serde::Serialize) -> Vec<u8> {
    frame::encode(&Message::Snapshot(Snapshot { kind, version, body: serde_json::to_vec(body).unwrap() }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_apply_only_when_newer_and_whole_and_survive_being_retained() {
    let broker = Mosquitto::start(&[(NODE, PASSWORD)]);
    let shutdown = CancellationToken::new();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("node.db")).unwrap();
    let (mut tt, roster) = timetable::demo("r1");
    tt.version = 5;
    store.with(|c| timetable::apply_timetable(c, &tt, 0)).unwrap();

    // The cloud publishes a retained roster v7 before the node is even online.
    let cfg = MqttConfig::new(&broker.url, "cloud-downlink").with_credentials(CLOUD_USER.0, CLOUD_USER.1);
    let (cloud, mut cloud_loop) = AsyncClient::new(cfg.options().unwrap(), 16);
    tokio::spawn(async move { while cloud_loop.poll().await.is_ok() {} });
    let down = |kind| NodeTopic::Down(NodeId::new(NODE).unwrap(), kind).name();
    let roster7 = timetable::RosterSnapshot { version: 7, ..roster.clone() };
    cloud
        .publish(down(SnapshotKind::Roster), QoS::AtLeastOnce, true, snapshot_frame(SnapshotKind::Roster, 7, &roster7))
        .await
        .unwrap();

    let status = Arc::new(SyncStatus::default());
    let task = tokio::spawn(nimbus_edge::sync::run(
        store.clone(),
        Arc::new(clock()),
        settings(&broker.url),
        status.clone(),
        shutdown.clone(),
    ));
    let version = |kind: &'static str| store.with(|c| timetable::snapshot_version(c, kind)).unwrap();
    assert!(until(Duration::from_secs(10), || version("roster") == Some(7)).await, "retained roster applied");

    // Older: ignored. Corrupt (a flipped byte): refused. Body/frame version mismatch: refused.
    let mut older = tt.clone();
    older.version = 4;
    older.entries.truncate(1);
    cloud
        .publish(
            down(SnapshotKind::Timetable),
            QoS::AtLeastOnce,
            false,
            snapshot_frame(SnapshotKind::Timetable, 4, &older),
        )
        .await
        .unwrap();
    let mut newer = tt.clone();
    newer.version = 6;
    newer.entries.truncate(2);
    let mut corrupt = snapshot_frame(SnapshotKind::Timetable, 6, &newer);
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x40;
    cloud.publish(down(SnapshotKind::Timetable), QoS::AtLeastOnce, false, corrupt).await.unwrap();
    cloud
        .publish(
            down(SnapshotKind::Timetable),
            QoS::AtLeastOnce,
            false,
            snapshot_frame(SnapshotKind::Timetable, 9, &newer),
        )
        .await
        .unwrap();
    assert!(until(Duration::from_secs(10), || status.snapshots().1 >= 2).await, "corrupt and mismatched refused");
    assert_eq!(version("timetable"), Some(5));
    assert_eq!(store.with(|c| timetable::entries(c)).unwrap().len(), 21, "the old timetable stays in force");

    // A whole, newer one is applied.
    cloud
        .publish(
            down(SnapshotKind::Timetable),
            QoS::AtLeastOnce,
            true,
            snapshot_frame(SnapshotKind::Timetable, 6, &newer),
        )
        .await
        .unwrap();
    assert!(until(Duration::from_secs(10), || version("timetable") == Some(6)).await);
    assert_eq!(store.with(|c| timetable::entries(c)).unwrap().len(), 2);

    // Announcements: a body that is not an announcements snapshot is refused; a newer one
    // applies whole; an older one is ignored.
    let refused = status.snapshots().1;
    let wrong_shape = serde_json::json!({ "version": 3, "items": [{ "title": "no id" }] });
    let kind = SnapshotKind::Announcements;
    cloud.publish(down(kind), QoS::AtLeastOnce, false, snapshot_frame(kind, 3, &wrong_shape)).await.unwrap();
    assert!(until(Duration::from_secs(10), || status.snapshots().1 > refused).await, "a malformed one is refused");
    let item = |id: &str| nimbus_core::snapshot::Announcement {
        announcement_id: id.into(),
        title: format!("Announcement {id}"),
        body: "Plain text".into(),
        published_at: chrono::Utc::now(),
        course_ids: vec![],
        user_ids: vec![],
        roles: vec!["faculty".into()],
        priority: "urgent".into(),
        expires_at: None,
    };
    let three = nimbus_core::snapshot::AnnouncementsSnapshot { version: 3, items: vec![item("a"), item("b")] };
    cloud.publish(down(kind), QoS::AtLeastOnce, true, snapshot_frame(kind, 3, &three)).await.unwrap();
    assert!(until(Duration::from_secs(10), || version("announcements") == Some(3)).await);
    let two = nimbus_core::snapshot::AnnouncementsSnapshot { version: 2, items: vec![] };
    cloud.publish(down(kind), QoS::AtLeastOnce, false, snapshot_frame(kind, 2, &two)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let shown =
        store.with(|c| nimbus_edge::announcements::current(c, &nimbus_edge::clock::Clock::now(&clock()))).unwrap();
    assert_eq!(shown.len(), 2, "the older, empty snapshot was ignored");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cannot_publish_as_another_node() {
    let broker = Mosquitto::start(&[(NODE, PASSWORD), ("room-102", "other")]);
    let shutdown = CancellationToken::new();
    let cloud = FakeCloud::start(&broker.url);
    cloud.subscribed().await;

    // room-101 logs in as itself and publishes a well-formed batch on room-102's topic.
    let cfg = MqttConfig::new(&broker.url, NODE).with_credentials(NODE, PASSWORD);
    let (impostor, mut eventloop) = AsyncClient::new(cfg.options().unwrap(), 16);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let victim = NodeId::new("room-102").unwrap();
    let mut builder = nimbus_sync::frame::BatchBuilder::new(victim.clone(), FrameLimits::default());
    builder
        .push(&nimbus_sync::frame::EdgeEvent {
            seq: 1,
            event_type: "ATTENDANCE_MARKED".into(),
            topic: "attendance.events".into(),
            priority: 0,
            payload_json: "{}".into(),
            wall_ms: 0,
            clock_synced: true,
            boot_id: "b".into(),
        })
        .unwrap();
    let batch = frame::encode(&Message::Batch(builder.finish().unwrap()));
    impostor.publish(NodeTopic::Up(victim).name(), QoS::AtLeastOnce, false, batch.clone()).await.unwrap();
    // And its own topic works, so the silence above is the ACL, not a broken link.
    let own = {
        let mut b = nimbus_sync::frame::BatchBuilder::new(NodeId::new(NODE).unwrap(), FrameLimits::default());
        let mut e = match frame::decode(&batch, FrameLimits::default()).unwrap() {
            Message::Batch(b) => b.events[0].clone(),
            _ => unreachable!(),
        };
        e.seq = 1;
        b.push(&e).unwrap();
        frame::encode(&Message::Batch(b.finish().unwrap()))
    };
    impostor.publish(NodeTopic::Up(NodeId::new(NODE).unwrap()).name(), QoS::AtLeastOnce, false, own).await.unwrap();
    assert!(until(Duration::from_secs(10), || !cloud.stored(NODE).is_empty()).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = cloud.state.lock().unwrap();
    assert!(!c.stored.contains_key("room-102"), "the broker dropped the impostor's publish");
    assert_eq!(c.frames, 1);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_never_connect_and_the_outbox_keeps_everything() {
    let broker = Mosquitto::start(&[(NODE, PASSWORD)]);
    let shutdown = CancellationToken::new();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("node.db")).unwrap();
    let clock = clock();
    fill_outbox(&store, &clock, 10);
    let mut s = settings(&broker.url);
    s.mqtt = MqttConfig::new(&broker.url, NODE).with_credentials(NODE, "wrong");
    let status = Arc::new(SyncStatus::default());
    let task =
        tokio::spawn(nimbus_edge::sync::run(store.clone(), Arc::new(clock), s, status.clone(), shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!status.connected());
    assert_eq!(store.with(|c| outbox::backlog(c)).unwrap(), 10);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap().unwrap();
}
