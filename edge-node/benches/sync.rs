//! Sync benchmark: events per second from a node's outbox through a real (private) Mosquitto to
//! a receiver applying the protocol's rules, acks included; and bytes per attendance event on the
//! wire, as a plain and a compact (deflated) frame versus the same event as the seed's JSON
//! envelope.
//!
//!     cargo bench -p nimbus-edge --bench sync

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{FixedOffset, NaiveDate};
use nimbus_core::event::attendance::{AttendanceMarkedPayload, AttendanceStatus, StudentAttendance};
use nimbus_core::event::{AttendanceEvent, Envelope};
use nimbus_core::ids::NodeId;
use nimbus_core::topics::Topic;
use nimbus_edge::clock::{Clock, ManualClock};
use nimbus_edge::outbox::{self, Priority};
use nimbus_edge::store::Store;
use nimbus_edge::sync::{SyncSettings, SyncStatus};
use nimbus_sync::frame::{self, BatchBuilder, EdgeEvent, FrameLimits, Message};
use nimbus_sync::sender::SenderConfig;
use nimbus_sync::testing::{FakeCloud, Mosquitto};
use nimbus_sync::transport::MqttConfig;
use tokio_util::sync::CancellationToken;

const NODE: &str = "bench-node";
const N: usize = 50_000;

/// A realistic class: 30 students, mostly present, a few late, absent and excused.
fn class(i: usize) -> AttendanceMarkedPayload {
    let statuses =
        [AttendanceStatus::Present, AttendanceStatus::Late, AttendanceStatus::Absent, AttendanceStatus::Excused];
    let mut p = AttendanceMarkedPayload {
        attendance_id: uuid::Uuid::new_v4().to_string(),
        entry_id: format!("entry-{i}"),
        course_id: "course-uuid-001".into(),
        course_name: "Data Structures".into(),
        class_date: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
        marked_by: "faculty-uuid-12345".into(),
        marked_at: chrono::Utc::now(),
        student_records: (0..30)
            .map(|s| StudentAttendance {
                student_id: format!("student-uuid-{s:04}"),
                status: if s % 10 == 0 { statuses[(s / 10) % 4] } else { AttendanceStatus::Present },
                remarks: None,
            })
            .collect(),
        ..Default::default()
    };
    p.recount();
    p
}

fn wire_sizes() {
    let payload = class(0);
    let node = NodeId::new(NODE).unwrap();
    let event = |seq: u64| EdgeEvent {
        seq,
        event_type: "ATTENDANCE_MARKED".into(),
        topic: "attendance.events".into(),
        priority: 0,
        payload_json: serde_json::to_string(&payload).unwrap(),
        wall_ms: 1_795_000_000_000,
        clock_synced: true,
        boot_id: "0b7c1e5a-4d1f-4c3e-9f5e-1a2b3c4d5e6f".into(),
    };
    let one = {
        let mut b = BatchBuilder::new(node.clone(), FrameLimits::default());
        b.push(&event(1)).unwrap();
        frame::encode(&Message::Batch(b.finish().unwrap())).len()
    };
    let (batch_len, batch_n) = {
        let mut b = BatchBuilder::new(node.clone(), FrameLimits::default());
        let mut n = 0;
        while n < 50 && b.push(&event(n + 1)).is_ok() {
            n += 1;
        }
        (frame::encode(&Message::Batch(b.finish().unwrap())).len(), n)
    };
    let envelope = Envelope::new("attendance-service", AttendanceEvent::AttendanceMarked(payload.clone()))
        .with_event_id(nimbus_sync::identity::event_id(&node, 1))
        .with_correlation_id("bench-node:1-1")
        .with_metadata("node_id", NODE)
        .with_metadata("seq", "1")
        .to_json();
    // What a node sends (version 2, deflated), for batches of 50 classes of three kinds: the
    // throughput run's (one roster), a room's week (8 courses, each its own roster of 30 short
    // ids, every class a new attendance id), and a worst case where every student id is a fresh
    // random UUID (nothing repeats but the JSON's keys).
    let compact = |payloads: &dyn Fn(usize) -> AttendanceMarkedPayload| {
        let mut b = BatchBuilder::new(node.clone(), FrameLimits::default());
        for n in 0..50 {
            let e = EdgeEvent { payload_json: serde_json::to_string(&payloads(n)).unwrap(), ..event(n as u64 + 1) };
            b.push(&e).unwrap();
        }
        frame::encode_compact(&Message::Batch(b.finish().unwrap())).len() / 50
    };
    let repeated = class(0);
    let same = compact(&|_| repeated.clone());
    let week = compact(&|n| {
        let mut p = class(n);
        p.course_id = format!("course-uuid-{:03}", n % 8);
        for (s, r) in p.student_records.iter_mut().enumerate() {
            r.student_id = format!("student-{:03}-{s:02}", n % 8);
        }
        p
    });
    let random = compact(&|n| {
        let mut p = class(n);
        for r in &mut p.student_records {
            r.student_id = uuid::Uuid::new_v4().to_string();
        }
        p
    });
    println!("bytes per ATTENDANCE_MARKED (30 students):");
    println!("  postcard frame, one event                {one:>6} B");
    println!("  postcard frame, per event in a batch of {batch_n} {:>6} B", batch_len / batch_n as usize);
    println!("  compact frame (v2, deflate), per event in a batch of 50:");
    println!("    the same class repeated                {same:>6} B");
    println!("    a room's week (8 courses, 8 rosters)   {week:>6} B");
    println!("    every student id a random UUID         {random:>6} B");
    println!("  seed JSON envelope (what Kafka carries)  {:>6} B", envelope.len());
}

fn throughput() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let broker = Mosquitto::start(&[(NODE, "pw")]);
        let cloud = FakeCloud::start(&broker.url);
        let dir = tempfile::Builder::new().prefix("nimbus-bench-").tempdir_in(".").unwrap();
        let store = Store::open(&dir.path().join("node.db")).unwrap();
        let t = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(9, 0, 0).unwrap();
        let clock = ManualClock::at_local(t, FixedOffset::east_opt(0).unwrap());
        let payload = class(0);
        store
            .with(|c| {
                let tx = c.transaction()?;
                for _ in 0..N {
                    outbox::append(&tx, "ATTENDANCE_MARKED", Topic::AttendanceEvents, Priority::Critical, &payload, &clock.now())?;
                }
                tx.commit()?;
                Ok(())
            })
            .unwrap();
        let status = Arc::new(SyncStatus::default());
        let shutdown = CancellationToken::new();
        let settings = SyncSettings {
            node_id: NodeId::new(NODE).unwrap(),
            mqtt: MqttConfig::new(&broker.url, NODE).with_credentials(NODE, "pw"),
            sender: SenderConfig::default(),
        };
        let start = Instant::now();
        let task = tokio::spawn(nimbus_edge::sync::run(store.clone(), Arc::new(clock), settings, status.clone(), shutdown.clone()));
        while status.acked_upto() < N as u64 {
            assert!(start.elapsed() < Duration::from_secs(600), "stalled at {}", status.acked_upto());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let took = start.elapsed();
        shutdown.cancel();
        let _ = task.await;
        let stored = cloud.stored(NODE);
        assert_eq!(stored, (1..=N as u64).collect::<Vec<_>>());
        let bytes = cloud.state.lock().unwrap().bytes;
        println!(
            "outbox -> Mosquitto -> receiver -> ack -> delete: {N} ATTENDANCE_MARKED (30 students) in {:.2} s = {:.0} events/s, {:.1} MB on the wire",
            took.as_secs_f64(),
            N as f64 / took.as_secs_f64(),
            bytes as f64 / 1e6
        );
    });
}

fn main() {
    wire_sizes();
    throughput();
}
