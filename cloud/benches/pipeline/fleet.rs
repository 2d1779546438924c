//! The fleet part of the pipeline benchmark: 20 nodes at once through one ingest and one
//! attendance worker, and the ceilings the figures are read against (see the bench's docs).

use std::time::{Duration, Instant};

use chrono::Utc;
use nimbus_core::event::analytics::AnalyticsPayload;
use nimbus_core::event::attendance::{AttendanceMarkedPayload, AttendanceStatus, StudentAttendance};
use nimbus_core::event::content::{AccessType, ContentAccessedPayload};
use nimbus_core::ids::NodeId;
use nimbus_core::topics::{Environment, Topic};
use nimbus_sync::frame::{self, BatchBuilder, EdgeEvent, FrameLimits, Message};
use nimbus_sync::testing::{Mosquitto, free_port};
use nimbus_sync::topics::NodeTopic;
use nimbus_sync::transport::MqttConfig;
use rumqttc::{AsyncClient, Event, Packet, QoS};

use crate::common::e2e::{Proc, cloud};
use crate::common::{self, TestDb};

const NODES: usize = 20;
/// A campus day per node: 80 closed classes.
const DAY_CLASSES: usize = 80;
const STUDENTS: usize = 30;
/// Mixed events per node after the day (20 × 2,500 = 50,000).
const MIXED: usize = 2_500;

fn class(node: &str, i: usize) -> AttendanceMarkedPayload {
    let statuses = [AttendanceStatus::Present, AttendanceStatus::Late, AttendanceStatus::Absent];
    let mut p = AttendanceMarkedPayload {
        attendance_id: format!("{node}-class-{i}"),
        entry_id: format!("{node}-entry-{}", i % 8),
        course_id: format!("{node}-course-{}", i % 8),
        course_name: "Campus day".into(),
        class_date: Utc::now().date_naive(),
        marked_by: format!("{node}-faculty"),
        marked_at: Utc::now(),
        student_records: (0..STUDENTS)
            .map(|s| StudentAttendance {
                student_id: format!("{node}-student-{}-{s:02}", i % 8),
                status: if s % 7 == 0 { statuses[s % 3] } else { AttendanceStatus::Present },
                remarks: None,
            })
            .collect(),
        ..Default::default()
    };
    p.recount();
    p
}

fn edge_event(seq: u64, event_type: &str, topic: Topic, payload_json: String) -> EdgeEvent {
    EdgeEvent {
        seq,
        event_type: event_type.into(),
        topic: topic.name().into(),
        priority: if topic == Topic::AttendanceEvents { 0 } else { 2 },
        payload_json,
        wall_ms: Utc::now().timestamp_millis(),
        clock_synced: true,
        boot_id: "bench-boot".into(),
    }
}

/// One node's campus day: `DAY_CLASSES` `ATTENDANCE_MARKED` from seq 1.
fn day(node: &str) -> Vec<EdgeEvent> {
    (0..DAY_CLASSES)
        .map(|i| {
            let json = serde_json::to_string(&class(node, i)).unwrap();
            edge_event(i as u64 + 1, "ATTENDANCE_MARKED", Topic::AttendanceEvents, json)
        })
        .collect()
}

/// One node's mixed events after its day: one in ten a class, six taps, three content accesses.
fn mixed(node: &str) -> Vec<EdgeEvent> {
    (0..MIXED)
        .map(|i| {
            let seq = (DAY_CLASSES + i) as u64 + 1;
            match i % 10 {
                0 => {
                    let json = serde_json::to_string(&class(node, DAY_CLASSES + i)).unwrap();
                    edge_event(seq, "ATTENDANCE_MARKED", Topic::AttendanceEvents, json)
                }
                1..=6 => {
                    let tap = AnalyticsPayload {
                        event_name: "card_tapped".into(),
                        category: "edge_reader".into(),
                        action: "tap".into(),
                        label: Some(format!("{node}-card-{}", i % 300)),
                        device_type: Some("edge_node".into()),
                        ..Default::default()
                    };
                    edge_event(seq, "USER_ACTION", Topic::AnalyticsEvents, serde_json::to_string(&tap).unwrap())
                }
                _ => {
                    let access = ContentAccessedPayload {
                        content_id: format!("content-{}", i % 40),
                        user_id: format!("{node}-student-{}", i % 30),
                        access_type: AccessType::Download,
                        ip_address: Some("10.1.2.3".into()),
                        user_agent: Some("Mozilla/5.0 (Android 14)".into()),
                        device_type: None,
                        duration_seconds: None,
                        accessed_at: Utc::now(),
                    };
                    edge_event(seq, "CONTENT_ACCESSED", Topic::ContentEvents, serde_json::to_string(&access).unwrap())
                }
            }
        })
        .collect()
}

/// Sends `events` as `node` the way a node does: compact batch frames within the protocol's
/// limits, one in flight, the next once the cloud acked it. Returns when all are acked.
async fn send(url: &str, node: &NodeId, password: &str, events: Vec<EdgeEvent>) {
    let config = MqttConfig::new(url, node.as_str()).with_credentials(node.as_str(), password);
    let mut options = config.options().unwrap();
    options.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    client.subscribe(NodeTopic::Ack(node.clone()).name(), QoS::AtLeastOnce).await.unwrap();
    let up = NodeTopic::Up(node.clone()).name();
    let mut rest = &events[..];
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let mut b = BatchBuilder::new(node.clone(), FrameLimits::default());
        let taken = rest.iter().take_while(|e| b.push(e).is_ok()).count();
        let last = rest[taken - 1].seq;
        frames.push((last, frame::encode_compact(&Message::Batch(b.finish().unwrap()))));
        rest = &rest[taken..];
    }
    let mut subscribed = false;
    let mut acked = 0;
    let mut next = 0;
    let mut in_flight = false;
    while acked < events.last().map_or(0, |e| e.seq) {
        if subscribed && !in_flight && next < frames.len() {
            client.publish(up.as_str(), QoS::AtLeastOnce, false, frames[next].1.clone()).await.unwrap();
            in_flight = true;
        }
        match tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => subscribed = true,
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                if let Ok(Message::Ack { upto_seq }) = frame::decode(&p.payload, FrameLimits::default()) {
                    acked = acked.max(upto_seq);
                    if upto_seq >= frames[next].0 {
                        next += 1;
                        in_flight = false;
                    }
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{node}: MQTT: {e}"),
            // No answer: send the batch again, as a node does.
            Err(_) => in_flight = false,
        }
    }
    let _ = client.disconnect().await;
}

/// Sends every node's events at once; the time until the last node is acked.
async fn send_all(url: &str, nodes: &[(NodeId, String)], events: impl Fn(&str) -> Vec<EdgeEvent>) -> Duration {
    let loads: Vec<_> = nodes.iter().map(|(n, p)| (n.clone(), p.clone(), events(n.as_str()))).collect();
    let start = Instant::now();
    let tasks: Vec<_> = loads
        .into_iter()
        .map(|(node, password, events)| {
            let url = url.to_owned();
            tokio::spawn(async move { send(&url, &node, &password, events).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

async fn count(db: &TestDb, sql: &str, nodes: &[String]) -> i64 {
    match db.pool.get().await {
        Ok(c) => c.query_one(sql, &[&nodes]).await.map(|r| r.get(0)).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Waits until `sql` (over the node ids) counts `target`; the time since `since`.
async fn wait_count(db: &TestDb, sql: &str, nodes: &[String], target: i64, since: Instant) -> Duration {
    loop {
        if count(db, sql, nodes).await >= target {
            return since.elapsed();
        }
        assert!(since.elapsed() < Duration::from_secs(600), "stalled below {target}: {sql}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Produces the seed JSON of `events` (mapped as the ingest maps them) straight into the broker
/// with the ingest's producer settings, awaiting every delivery report: the produce ceiling.
async fn raw_produce(brokers: &str, nodes: &[(NodeId, String)]) -> (usize, Duration) {
    use nimbus_cloud::ingest::mapping::{self, BatchContext, Mapped};
    let mut messages = Vec::new();
    for (node, _) in nodes {
        let events = mixed(&format!("{}-raw", node.as_str()));
        let batch = nimbus_sync::frame::Batch { node_id: node.clone(), first_seq: events[0].seq, events };
        let ctx = BatchContext::new(&batch);
        for ev in &batch.events {
            if let Mapped::Produce(o) = mapping::map_event(&ctx, ev, Utc::now()) {
                messages.push(o);
            }
        }
    }
    let producer = nimbus_cloud::kafka::producer_with_timeout(brokers, Duration::from_secs(30)).unwrap();
    let start = Instant::now();
    let pending: Vec<_> = messages
        .iter()
        .map(|m| {
            let record =
                rdkafka::producer::FutureRecord::to(m.topic.name()).key(m.key.as_bytes()).payload(m.payload.as_bytes());
            producer.send_result(record).map_err(|(e, _)| e).unwrap()
        })
        .collect();
    for p in pending {
        p.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
    (messages.len(), start.elapsed())
}

/// `COPY`s the rows of every node's campus day into an empty, migrated `attendance_records`:
/// the database ceiling.
async fn plain_copy(nodes: &[(NodeId, String)]) -> (usize, Duration) {
    use futures_util::SinkExt;
    let db = TestDb::create().await;
    let migrations = nimbus_cloud::db::migrations_for("attendance_service_db").unwrap();
    nimbus_cloud::db::migrate(&db.pool, migrations).await.unwrap();
    let mut text = String::new();
    let event_id = uuid::Uuid::new_v4();
    let mut rows = 0;
    for (node, _) in nodes {
        for i in 0..DAY_CLASSES {
            let p = class(node.as_str(), i);
            for r in &p.student_records {
                let at = p.marked_at.to_rfc3339();
                text.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t\\N\t{}\t{at}\t{at}\t{event_id}\tedge\t{}\t{i}\ttrue\n",
                    p.attendance_id,
                    r.student_id,
                    p.course_id,
                    p.entry_id,
                    p.class_date,
                    r.status.as_str(),
                    p.marked_by,
                    node.as_str()
                ));
                rows += 1;
            }
        }
    }
    let client = db.pool.get().await.unwrap();
    let start = Instant::now();
    let sink = client
        .copy_in(
            "COPY attendance_records (attendance_id, student_id, course_id, entry_id, class_date, status, remarks, \
             marked_by, marked_at, status_at, event_id, source, source_node_id, source_seq, clock_synced) FROM STDIN",
        )
        .await
        .unwrap();
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from(text)).await.unwrap();
    let copied = sink.as_mut().finish().await.unwrap();
    let took = start.elapsed();
    assert_eq!(copied as usize, rows);
    drop(client);
    db.drop_now().await;
    (rows, took)
}

pub async fn run() {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let nodes: Vec<(NodeId, String)> =
        (0..NODES).map(|i| (NodeId::new(format!("fleet-{suffix}-{i:02}")).unwrap(), format!("pw-{i}"))).collect();
    let users: Vec<(&str, &str)> = nodes.iter().map(|(n, p)| (n.as_str(), p.as_str())).collect();
    let broker = Mosquitto::start(&users);
    let brokers = common::kafka_brokers();
    nimbus_cloud::kafka::ensure_topics(&brokers, Environment::Development)
        .await
        .expect("Kafka (NIMBUS_TEST_KAFKA_BROKERS)");
    let registry_db = TestDb::create().await;
    let attendance_db = TestDb::create().await;
    let mut env =
        common::e2e::role_env(&format!("fleet-{suffix}"), &broker.url, &brokers, &registry_db, &attendance_db).await;
    assert!(cloud(&["migrate", "edge_registry_db"], &env).status().unwrap().success());
    for (node, _) in &nodes {
        assert!(
            cloud(&["nodes", "register", node.as_str(), "--room", node.as_str()], &env).status().unwrap().success()
        );
    }
    let (ingest_at, worker_at) = (free_port(), free_port());
    env.push(("NIMBUS_PROBE_BIND", format!("127.0.0.1:{ingest_at}")));
    let ingest = Proc(cloud(&["ingest"], &env).spawn().unwrap());
    env.pop();
    env.push(("NIMBUS_PROBE_BIND", format!("127.0.0.1:{worker_at}")));
    let worker = Proc(cloud(&["worker", "--service", "attendance"], &env).spawn().unwrap());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ids: Vec<String> = nodes.iter().map(|(n, _)| n.as_str().to_owned()).collect();

    // A campus day offline, then the uplink comes back.
    let start = Instant::now();
    let day_acked = send_all(&broker.url, &nodes, day).await;
    let day_rows = (NODES * DAY_CLASSES * STUDENTS) as i64;
    let rows_sql = "SELECT count(*) FROM attendance_records WHERE source_node_id = ANY($1)";
    let day_stored = wait_count(&attendance_db, rows_sql, &ids, day_rows, start).await;

    // 50,000 mixed events.
    let mixed_events = NODES * MIXED;
    let mixed_acked = send_all(&broker.url, &nodes, mixed).await;
    let all_rows = day_rows + (NODES * MIXED.div_ceil(10) * STUDENTS) as i64;
    let since = Instant::now();
    wait_count(&attendance_db, rows_sql, &ids, all_rows, since).await;

    let (raw_n, raw_t) = raw_produce(&brokers, &nodes).await;
    let (copy_n, copy_t) = plain_copy(&nodes).await;

    let day_events = (NODES * DAY_CLASSES) as f64;
    let per_s = |n: f64, t: Duration| n / t.as_secs_f64();
    println!("{NODES} nodes (load generators on the real protocol, compact frames) through one ingest and one worker:");
    println!(
        "  campus day ({} events, {day_rows} rows): acked in Kafka {:.2} s ({:.0} events/s), in PostgreSQL {:.2} s ({:.0} rows/s)",
        day_events,
        day_acked.as_secs_f64(),
        per_s(day_events, day_acked),
        day_stored.as_secs_f64(),
        per_s(day_rows as f64, day_stored)
    );
    let mixed_rate = per_s(mixed_events as f64, mixed_acked);
    println!(
        "  {mixed_events} mixed events (1/10 classes, 6/10 taps, 3/10 content accesses): acked in Kafka {:.2} s ({mixed_rate:.0} events/s)",
        mixed_acked.as_secs_f64()
    );
    let raw_rate = per_s(raw_n as f64, raw_t);
    let copy_rate = per_s(copy_n as f64, copy_t);
    let worker_rate = per_s(day_rows as f64, day_stored);
    println!("ceilings (same run, same services):");
    println!(
        "  raw produce of the same {raw_n} seed JSON messages: {:.2} s ({raw_rate:.0} events/s); the ingest does {:.0} %",
        raw_t.as_secs_f64(),
        100.0 * mixed_rate / raw_rate
    );
    println!(
        "  plain COPY of the day's {copy_n} rows: {:.2} s ({copy_rate:.0} rows/s); MQTT -> worker -> PostgreSQL does {:.0} %",
        copy_t.as_secs_f64(),
        100.0 * worker_rate / copy_rate
    );
    drop((ingest, worker));
    registry_db.drop_now().await;
    attendance_db.drop_now().await;
}
