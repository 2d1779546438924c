//! The attendance worker against the real broker (tansu) and PostgreSQL: events in, rows of
//! `attendance_service_db` out, effectively once; redelivery after a crash; poison events to the
//! DLQ; low-attendance alerts once per level.
//!
//! Every test has its own database, course and student ids, and its own consumer group
//! (`WorkerSettings::group_id`, the test hook), which is first moved to the end of every topic the
//! worker reads so that the topics' history (other tests, earlier runs) is not replayed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nimbus_cloud::attendance::{AlertSettings, AlertThresholds, check_low_attendance};
use nimbus_cloud::worker::{CrashHook, Worker, WorkerMetrics, WorkerSettings, subscriptions};
use nimbus_core::event::attendance::{
    AlertLevel, AttendanceMarkedPayload, AttendanceStatus, AttendanceUpdatedPayload, StudentAttendance,
};
use nimbus_core::event::notification::{Channel, Priority};
use nimbus_core::event::{AttendanceEvent, DeadLetterEvent, Envelope, NotificationCommand};
use nimbus_core::groups::group_for_service;
use nimbus_core::topics::{Environment, Topic};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use AttendanceStatus::{Absent, Excused, Late, Present};

use crate::common;

/// Every test finishes within this or fails.
const TEST_LIMIT: Duration = Duration::from_secs(150);
/// How long to wait for one expected effect.
const WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Kafka helpers

async fn ensure_topics() -> String {
    let brokers = common::kafka_brokers();
    nimbus_cloud::kafka::ensure_topics(&brokers, Environment::Development)
        .await
        .expect("the Kafka-protocol broker must be reachable (NIMBUS_TEST_KAFKA_BROKERS); run scripts/services.sh up");
    brokers
}

fn attendance_topics() -> Vec<Topic> {
    subscriptions(group_for_service("attendance").unwrap())
}

/// Joins `group`, commits the end of every partition of `topics` and leaves, so a worker in the
/// group starts after everything already in the topics.
/// The high watermark of every partition of `topic`.
async fn ends(brokers: &str, topic: Topic) -> HashMap<i32, i64> {
    let brokers = brokers.to_owned();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
        (0..topic.spec().partitions)
            .map(|p| (p, c.fetch_watermarks(topic.name(), p, Duration::from_secs(10)).unwrap().1))
            .collect()
    })
    .await
    .unwrap()
}

/// The messages of `topic` between two sets of watermarks, as `(key, payload)`.
async fn read_between(
    brokers: &str,
    topic: Topic,
    from: &HashMap<i32, i64>,
    to: &HashMap<i32, i64>,
) -> Vec<(String, String)> {
    let (brokers, from, to) = (brokers.to_owned(), from.clone(), to.clone());
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("worker-test-reader-{}", Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        let mut pending: HashMap<i32, i64> = HashMap::new();
        for (p, end) in &to {
            let start = from.get(p).copied().unwrap_or(0);
            if *end > start {
                tpl.add_partition_offset(topic.name(), *p, Offset::Offset(start)).unwrap();
                pending.insert(*p, *end);
            }
        }
        let mut out = Vec::new();
        if pending.is_empty() {
            return out;
        }
        c.assign(&tpl).unwrap();
        let deadline = Instant::now() + WAIT;
        while !pending.is_empty() {
            assert!(Instant::now() < deadline, "{topic}: messages up to {pending:?} never arrived");
            let Some(m) = c.poll(Duration::from_millis(200)) else { continue };
            let m = m.unwrap();
            let Some(&end) = pending.get(&m.partition()) else { continue };
            if m.offset() < end {
                let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
                let payload = m.payload().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
                out.push((key, payload));
            }
            if m.offset() + 1 >= end {
                pending.remove(&m.partition());
            }
        }
        out
    })
    .await
    .unwrap()
}

/// Produces and waits for the confirmation; returns `(partition, offset)`.
async fn produce(producer: &FutureProducer, topic: Topic, key: &str, payload: &[u8]) -> (i32, i64) {
    producer
        .send(FutureRecord::to(topic.name()).key(key).payload(payload), Duration::from_secs(5))
        .await
        .unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"))
}

async fn produce_event(producer: &FutureProducer, env: &Envelope<AttendanceEvent>) -> (i32, i64) {
    produce(producer, Topic::AttendanceEvents, &env.partition_key(), env.to_json().as_bytes()).await
}

/// The dead letters `group` wrote since `from` for messages keyed `key` (workers of concurrent
/// tests read, and dead-letter, our messages too).
async fn dead_letters(brokers: &str, from: &HashMap<i32, i64>, key: &str, group: &str) -> Vec<DeadLetterEvent> {
    read_between(brokers, Topic::Dlq, from, &ends(brokers, Topic::Dlq).await)
        .await
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, json)| DeadLetterEvent::from_json(&json).expect("a seed DeadLetterEvent"))
        .filter(|d| d.consumer_group == group)
        .collect()
}

/// The offset `group` has committed on one partition (`None`: nothing committed).
async fn committed(brokers: &str, group: &str, topic: Topic, partition: i32) -> Option<i64> {
    let (brokers, group) = (brokers.to_owned(), group.to_owned());
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic.name(), partition);
        let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        match got.find_partition(topic.name(), partition).map(|e| e.offset()) {
            Some(Offset::Offset(n)) => Some(n),
            _ => None,
        }
    })
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Worker and database helpers

struct Running {
    handle: JoinHandle<nimbus_cloud::Result<()>>,
    shutdown: CancellationToken,
    metrics: Arc<WorkerMetrics>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("the worker stops within 30 s of shutdown")
            .unwrap()
            .expect("the worker ends without error");
    }
}

fn settings(brokers: &str, db: &common::TestDb, group: &str) -> WorkerSettings {
    let mut s = WorkerSettings::new(brokers, db.url.clone());
    s.group_id = Some(group.to_owned());
    s.alerts.interval = None;
    s
}

fn start(settings: WorkerSettings) -> Running {
    let worker = Worker::new("attendance", settings).unwrap();
    let metrics = worker.metrics();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(worker.run(shutdown.clone()));
    Running { handle, shutdown, metrics }
}

/// A fresh database, a primed group of our own and the settings for a worker in it.
async fn setup() -> (String, common::TestDb, WorkerSettings) {
    common::capture_logs();
    let brokers = ensure_topics().await;
    let db = common::TestDb::create().await;
    let group = format!("attendance-service-group-test-{}", Uuid::new_v4().simple());
    common::prime_group(&brokers, &group, &attendance_topics()).await;
    let s = settings(&brokers, &db, &group);
    (brokers, db, s)
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn is_processed(db: &common::TestDb, event_id: Uuid) -> bool {
    let Ok(c) = db.pool.get().await else { return false };
    // Before the worker's migration ran, the table does not exist yet: not processed.
    c.query_opt("SELECT 1 FROM processed_events WHERE event_id = $1", &[&event_id]).await.ok().flatten().is_some()
}

async fn wait_processed(db: &common::TestDb, event_id: Uuid) {
    wait_until(&format!("event {event_id} to be processed"), || is_processed(db, event_id)).await;
}

/// `(present, late, absent, excused, attended, total_classes, percentage)` of a student in a course.
type Summary = (i32, i32, i32, i32, i32, i32, Option<f64>);

async fn summary(db: &common::TestDb, student: &str, course: &str) -> Option<Summary> {
    let c = db.pool.get().await.unwrap();
    c.query_opt(
        "SELECT present, late, absent, excused, attended, total_classes, percentage FROM attendance_summary \
         WHERE student_id = $1 AND course_id = $2",
        &[&student, &course],
    )
    .await
    .unwrap()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6)))
}

async fn count(db: &common::TestDb, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> i64 {
    db.pool.get().await.unwrap().query_one(sql, params).await.unwrap().get(0)
}

// ---------------------------------------------------------------------------------------------
// Events

fn ids(prefix: &str) -> (String, String) {
    let u = Uuid::new_v4().simple().to_string();
    (format!("crs-{prefix}-{}", &u[..12]), u[..12].to_owned())
}

fn student(tag: &str, n: u32) -> String {
    format!("stu-{tag}-{n}")
}

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_000_000 + minutes * 60, 0).unwrap()
}

fn session(
    course: &str,
    attendance_id: &str,
    marked_at: DateTime<Utc>,
    records: &[(&str, AttendanceStatus)],
) -> AttendanceMarkedPayload {
    let mut p = AttendanceMarkedPayload {
        attendance_id: attendance_id.to_owned(),
        entry_id: format!("entry-{course}"),
        course_id: course.to_owned(),
        course_name: "Data Structures".into(),
        class_date: marked_at.date_naive(),
        marked_by: "faculty-1".into(),
        marked_at,
        student_records: records
            .iter()
            .map(|(s, status)| StudentAttendance { student_id: (*s).to_owned(), status: *status, remarks: None })
            .collect(),
        ..AttendanceMarkedPayload::default()
    };
    p.recount();
    p
}

/// As the edge ingest publishes it: deterministic id per (node, seq), edge metadata.
fn from_edge(event: AttendanceEvent, node: &str, seq: u64) -> Envelope<AttendanceEvent> {
    let node_id = nimbus_core::ids::NodeId::new(node).unwrap();
    Envelope::new("attendance-service", event)
        .with_event_id(nimbus_sync::identity::event_id(&node_id, seq))
        .with_metadata("source", "edge")
        .with_metadata("node_id", node)
        .with_metadata("seq", seq.to_string())
        .with_metadata("clock_synced", "true")
}

fn marked(p: AttendanceMarkedPayload, node: &str, seq: u64) -> Envelope<AttendanceEvent> {
    from_edge(AttendanceEvent::AttendanceMarked(p), node, seq)
}

fn correction(
    attendance_id: &str,
    course: &str,
    student: &str,
    old: AttendanceStatus,
    new: AttendanceStatus,
) -> AttendanceUpdatedPayload {
    AttendanceUpdatedPayload {
        attendance_id: attendance_id.to_owned(),
        correction_id: format!("corr-{}", Uuid::new_v4().simple()),
        entry_id: format!("entry-{course}"),
        course_id: course.to_owned(),
        class_date: at(0).date_naive(),
        student_id: student.to_owned(),
        old_status: old,
        new_status: new,
        reason: Some("medical certificate".into()),
        corrected_by: "faculty-1".into(),
        corrected_at: at(90),
    }
}

async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test).await.expect("the test finishes in time");
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attendance_marked_becomes_records_and_a_summary() {
    bounded(async {
        let (brokers, db, s) = setup().await;
        let worker = start(s);
        let producer = nimbus_cloud::kafka::producer(&brokers).unwrap();
        let (course, tag) = ids("marked");
        let node = format!("room-{tag}");
        let (s1, s2, s3, s4) = (student(&tag, 1), student(&tag, 2), student(&tag, 3), student(&tag, 4));
        let ev = marked(
            session(
                &course,
                &format!("att-{tag}-1"),
                at(0),
                &[(&s1, Present), (&s2, Late), (&s3, Absent), (&s4, Excused)],
            ),
            &node,
            7,
        );
        produce_event(&producer, &ev).await;
        wait_processed(&db, ev.event_id).await;

        let c = db.pool.get().await.unwrap();
        let rows = c
            .query(
                "SELECT student_id, status, event_id, source, source_node_id, source_seq, clock_synced, class_date \
                 FROM attendance_records WHERE course_id = $1 ORDER BY student_id",
                &[&course],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 4);
        let statuses: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(
            statuses,
            [
                (s1.clone(), "present".to_owned()),
                (s2.clone(), "late".to_owned()),
                (s3.clone(), "absent".to_owned()),
                (s4.clone(), "excused".to_owned())
            ]
        );
        let r = &rows[0];
        assert_eq!(r.get::<_, Uuid>(2), ev.event_id);
        assert_eq!(r.get::<_, Option<String>>(3).as_deref(), Some("edge"));
        assert_eq!(r.get::<_, Option<String>>(4), Some(node.clone()));
        assert_eq!(r.get::<_, Option<i64>>(5), Some(7));
        assert_eq!(r.get::<_, Option<bool>>(6), Some(true));
        assert_eq!(r.get::<_, chrono::NaiveDate>(7), at(0).date_naive());
        drop(c);

        // (present, late, absent, excused, attended, total, percentage)
        assert_eq!(summary(&db, &s1, &course).await, Some((1, 0, 0, 0, 1, 1, Some(100.0))));
        assert_eq!(summary(&db, &s2, &course).await, Some((0, 1, 0, 0, 1, 1, Some(100.0))), "late counts as attended");
        assert_eq!(summary(&db, &s3, &course).await, Some((0, 0, 1, 0, 0, 1, Some(0.0))));
        assert_eq!(
            summary(&db, &s4, &course).await,
            Some((0, 0, 0, 1, 0, 0, None)),
            "an excused class is not counted in total_classes"
        );
        let course_name: String = db
            .pool
            .get()
            .await
            .unwrap()
            .query_one("SELECT course_name FROM courses WHERE course_id = $1", &[&course])
            .await
            .unwrap()
            .get(0);
        assert_eq!(course_name, "Data Structures");
        let m = worker.metrics.snapshot();
        assert!(m.processed >= 1, "{m:?}");
        worker.stop().await;
        db.drop_now().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_and_a_resent_session_count_once() {
    bounded(async {
        let (brokers, db, s) = setup().await;
        let worker = start(s);
        let producer = nimbus_cloud::kafka::producer(&brokers).unwrap();
        let (course, tag) = ids("dup");
        let node = format!("room-{tag}");
        let (s1, s2) = (student(&tag, 1), student(&tag, 2));
        let first = session(&course, &format!("att-{tag}-1"), at(0), &[(&s1, Present), (&s2, Absent)]);
        let ev = marked(first.clone(), &node, 1);
        // The same event twice (a producer retry, an ingest resend before its mark moved) ...
        produce_event(&producer, &ev).await;
        produce_event(&producer, &ev).await;
        // ... and the same session under another event id (another node seq, a bulk import).
        let resent = from_edge(AttendanceEvent::AttendanceBulkMarked(first), &node, 2);
        produce_event(&producer, &resent).await;
        // A second class, which must count.
        let second =
            marked(session(&course, &format!("att-{tag}-2"), at(60), &[(&s1, Late), (&s2, Present)]), &node, 3);
        produce_event(&producer, &second).await;
        wait_processed(&db, second.event_id).await;

        assert!(is_processed(&db, resent.event_id).await, "the resent session was processed (as a no-op)");
        assert_eq!(count(&db, "SELECT count(*) FROM attendance_records WHERE course_id = $1", &[&course]).await, 4);
        assert_eq!(summary(&db, &s1, &course).await, Some((1, 1, 0, 0, 2, 2, Some(100.0))));
        assert_eq!(summary(&db, &s2, &course).await, Some((1, 0, 1, 0, 1, 2, Some(50.0))));
        // Other tests' events share the topic, so the counters are lower bounds.
        let m = worker.metrics.snapshot();
        assert!(m.duplicates >= 1, "the second copy of the same event id is skipped: {m:?}");
        assert!(m.processed >= 3, "{m:?}");
        worker.stop().await;
        db.drop_now().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attendance_updated_corrects_the_record_and_moves_the_summary() {
    bounded(async {
        let (brokers, db, s) = setup().await;
        let worker = start(s);
        let producer = nimbus_cloud::kafka::producer(&brokers).unwrap();
        let (course, tag) = ids("upd");
        let node = format!("room-{tag}");
        let (s1, s2) = (student(&tag, 1), student(&tag, 2));
        let att = format!("att-{tag}-1");
        let ev = marked(session(&course, &att, at(0), &[(&s1, Absent), (&s2, Present)]), &node, 1);
        produce_event(&producer, &ev).await;

        // absent → late (now attended), then late → excused (no longer counted at all).
        let to_late = correction(&att, &course, &s1, Absent, Late);
        let fix1 = Envelope::new("attendance-service", AttendanceEvent::AttendanceUpdated(to_late.clone()));
        produce_event(&producer, &fix1).await;
        let fix1_again = Envelope::new("attendance-service", AttendanceEvent::AttendanceUpdated(to_late.clone()));
        produce_event(&producer, &fix1_again).await;
        wait_processed(&db, fix1_again.event_id).await;

        let c = db.pool.get().await.unwrap();
        let r = c
            .query_one(
                "SELECT status, corrected FROM attendance_records WHERE attendance_id = $1 AND student_id = $2",
                &[&att, &s1],
            )
            .await
            .unwrap();
        assert_eq!((r.get::<_, String>(0).as_str(), r.get::<_, bool>(1)), ("late", true));
        let corr = c
            .query(
                "SELECT correction_id, old_status, new_status, reason, corrected_by, event_id \
                 FROM attendance_corrections WHERE attendance_id = $1",
                &[&att],
            )
            .await
            .unwrap();
        assert_eq!(corr.len(), 1, "the same correction_id under another event id is applied once");
        assert_eq!(corr[0].get::<_, String>(0), to_late.correction_id);
        assert_eq!((corr[0].get::<_, String>(1).as_str(), corr[0].get::<_, String>(2).as_str()), ("absent", "late"));
        assert_eq!(corr[0].get::<_, Option<String>>(3).as_deref(), Some("medical certificate"));
        assert_eq!(corr[0].get::<_, Uuid>(5), fix1.event_id);
        drop(c);
        assert_eq!(summary(&db, &s1, &course).await, Some((0, 1, 0, 0, 1, 1, Some(100.0))));

        let fix2 = Envelope::new(
            "attendance-service",
            AttendanceEvent::AttendanceUpdated(correction(&att, &course, &s1, Late, Excused)),
        );
        produce_event(&producer, &fix2).await;
        wait_processed(&db, fix2.event_id).await;
        assert_eq!(summary(&db, &s1, &course).await, Some((0, 0, 0, 1, 0, 0, None)));
        assert_eq!(summary(&db, &s2, &course).await, Some((1, 0, 0, 0, 1, 1, Some(100.0))), "untouched");

        // The original mark resent later (older than the correction) does not undo it.
        let resent = from_edge(
            AttendanceEvent::AttendanceMarked(session(&course, &att, at(0), &[(&s1, Absent), (&s2, Present)])),
            &node,
            9,
        );
        produce_event(&producer, &resent).await;
        wait_processed(&db, resent.event_id).await;
        assert_eq!(summary(&db, &s1, &course).await, Some((0, 0, 0, 1, 0, 0, None)));
        assert_eq!(
            count(&db, "SELECT count(*) FROM attendance_corrections WHERE attendance_id = $1", &[&att]).await,
            2
        );
        worker.stop().await;
        db.drop_now().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_between_db_commit_and_offset_commit_is_redelivered_as_a_no_op() {
    bounded(async {
        let (brokers, db, mut s) = setup().await;
        let producer = nimbus_cloud::kafka::producer(&brokers).unwrap();
        let (course, tag) = ids("crash");
        let node = format!("room-{tag}");
        let (s1, s2) = (student(&tag, 1), student(&tag, 2));

        let ev = marked(session(&course, &format!("att-{tag}-1"), at(0), &[(&s1, Present), (&s2, Absent)]), &node, 1);
        let target = ev.event_id;
        s.fail_after_db_commit_once = Some(CrashHook::when(move |e| e.event_id() == target));
        let first = start(s.clone());
        let (partition, offset) = produce_event(&producer, &ev).await;
        // The worker applies it, commits the transaction and stops before the offset commit.
        tokio::time::timeout(WAIT, first.handle)
            .await
            .expect("the crash hook stops the worker")
            .unwrap()
            .expect("the worker stops without error");
        assert!(is_processed(&db, ev.event_id).await, "the database transaction was committed");
        let group = s.group_id.clone().unwrap();
        let position = committed(&brokers, &group, Topic::AttendanceEvents, partition).await;
        assert!(
            position.is_some_and(|p| p <= offset),
            "the offset was not committed past the message (committed {position:?}, message at {offset})"
        );
        let before = (summary(&db, &s1, &course).await, summary(&db, &s2, &course).await);
        assert_eq!(before, (Some((1, 0, 0, 0, 1, 1, Some(100.0))), Some((0, 0, 1, 0, 0, 1, Some(0.0)))));

        // A new worker in the same group gets the message again: processed_events makes it a no-op.
        s.fail_after_db_commit_once = None;
        let second = start(s);
        let next =
            marked(session(&course, &format!("att-{tag}-2"), at(60), &[(&s1, Present), (&s2, Present)]), &node, 2);
        let (next_partition, next_offset) = produce_event(&producer, &next).await;
        assert_eq!(next_partition, partition, "same course, same partition");
        wait_processed(&db, next.event_id).await;
        wait_until("the offset commit after the next message", || async {
            committed(&brokers, &group, Topic::AttendanceEvents, partition).await > Some(next_offset)
        })
        .await;
        // The group resumed before the message (checked above) and reached the next one behind
        // it on the same partition, so it read the message again; it was skipped, not applied.
        let m = second.metrics.snapshot();
        assert!(m.duplicates >= 1, "the uncommitted message was redelivered and skipped: {m:?}");
        assert_eq!(summary(&db, &s1, &course).await, Some((2, 0, 0, 0, 2, 2, Some(100.0))));
        assert_eq!(summary(&db, &s2, &course).await, Some((1, 0, 1, 0, 1, 2, Some(50.0))));
        assert_eq!(count(&db, "SELECT count(*) FROM attendance_records WHERE course_id = $1", &[&course]).await, 4);
        second.stop().await;
        db.drop_now().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_events_go_to_the_dlq_after_the_seed_retries_and_the_worker_moves_on() {
    bounded(async {
        let (brokers, db, s) = setup().await;
        let group = s.group_id.clone().unwrap();
        let dlq_before = ends(&brokers, Topic::Dlq).await;
        let worker = start(s);
        let producer = nimbus_cloud::kafka::producer(&brokers).unwrap();
        let (course, tag) = ids("poison");
        let s1 = student(&tag, 1);

        // Bytes that are not even JSON: dead-lettered at once.
        produce(&producer, Topic::AttendanceEvents, &course, b"\xffnot json at all").await;
        // A valid event the handler refuses every time: a correction of a record that never existed.
        let orphan = Envelope::new(
            "attendance-service",
            AttendanceEvent::AttendanceUpdated(correction(
                &format!("att-{tag}-missing"),
                &course,
                &s1,
                Absent,
                Present,
            )),
        );
        produce_event(&producer, &orphan).await;
        // A good event behind them on the same partition (same key): the worker must get to it.
        let good =
            marked(session(&course, &format!("att-{tag}-1"), at(0), &[(&s1, Present)]), &format!("room-{tag}"), 1);
        produce_event(&producer, &good).await;
        wait_processed(&db, good.event_id).await;
        assert_eq!(summary(&db, &s1, &course).await, Some((1, 0, 0, 0, 1, 1, Some(100.0))));
        assert!(!is_processed(&db, orphan.event_id).await, "a dead-lettered event is not marked processed");

        let m = worker.metrics.snapshot();
        assert!(m.dead_lettered >= 2 && m.retries >= 3, "{m:?}");
        worker.stop().await;

        let letters = dead_letters(&brokers, &dlq_before, &course, &group).await;
        assert_eq!(letters.len(), 2, "{m:?} {letters:#?}");
        let raw = &letters[0];
        assert_eq!(raw.original_topic, Topic::AttendanceEvents);
        assert_eq!(raw.original_event, serde_json::Value::String("\u{fffd}not json at all".into()));
        assert_eq!(raw.failure_count, 1, "unparseable: no retries");
        assert!(raw.failure_reason.contains("UTF-8"), "{}", raw.failure_reason);

        let refused = &letters[1];
        assert_eq!(refused.original_topic, Topic::AttendanceEvents);
        assert_eq!(refused.original_key, course);
        assert_eq!(refused.original_event["event_id"], orphan.event_id.to_string());
        assert_eq!(refused.original_event, orphan.to_value(), "the original JSON, replayable as is");
        assert_eq!(refused.failure_count, 4, "the first attempt and the seed's 3 retries");
        assert!(refused.failure_reason.contains("has no record"), "{}", refused.failure_reason);
        assert!(!refused.stack_trace.is_empty());
        assert_eq!(refused.consumer_group, group);
        assert_eq!(refused.service_name, "attendance-service");
        let spent = refused.last_attempt_at - refused.original_timestamp;
        assert!(spent >= chrono::Duration::milliseconds(700), "backoff 100 + 200 + 400 ms, took {spent}");
        db.drop_now().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_attendance_alerts_and_notifications_are_sent_once_per_level() {
    bounded(async {
        let (brokers, db, mut s) = setup().await;
        let thresholds = AlertThresholds { warning_percentage: 75.0, critical_percentage: 60.0, min_classes: 3 };
        s.alerts = AlertSettings { thresholds, interval: Some(Duration::from_millis(200)) };
        let alerts_before = ends(&brokers, Topic::AttendanceEvents).await;
        let notes_before = ends(&brokers, Topic::NotificationCommands).await;
        let worker = start(s);
        let producer = nimbus_cloud::kafka::producer(&brokers).unwrap();
        let (course, tag) = ids("alert");
        let node = format!("room-{tag}");
        let (s1, s2, s3, s4) = (student(&tag, 1), student(&tag, 2), student(&tag, 3), student(&tag, 4));
        let alerts =
            || async { count(&db, "SELECT count(*) FROM attendance_alerts WHERE course_id = $1", &[&course]).await };
        let alert_count = |n: i64| {
            let alerts = &alerts;
            move || async move { alerts().await == n }
        };

        // Phase 1, four classes. After the third and the fourth alike (min 3 classes):
        // s1 P A A A → 25 %: critical; s2 P P P A → 75 %: none (not below);
        // s3 P P A E → 2 of 3 = 66.7 %: warning (excused not counted; counted it would be 50 %);
        // s4 E E E A → 1 counted class: too few.
        let statuses = [
            [Present, Present, Present, Excused],
            [Absent, Present, Present, Excused],
            [Absent, Present, Absent, Excused],
            [Absent, Absent, Excused, Absent],
        ];
        let mut last = None;
        for (i, row) in statuses.iter().enumerate() {
            let records = [(s1.as_str(), row[0]), (s2.as_str(), row[1]), (s3.as_str(), row[2]), (s4.as_str(), row[3])];
            let ev =
                marked(session(&course, &format!("att-{tag}-{i}"), at(i as i64 * 60), &records), &node, i as u64 + 1);
            produce_event(&producer, &ev).await;
            last = Some(ev.event_id);
        }
        wait_processed(&db, last.unwrap()).await;
        wait_until("the warning and the critical alert", alert_count(2)).await;

        // Phase 2, two more classes: s3 P P A E A A → 2 of 5 = 40 %: now critical too;
        // s4 … A A → 0 of 3: critical; s1 stays critical (no new alert); s2 P P P A P P → 83 %.
        for i in 4..6 {
            let records = [(s1.as_str(), Absent), (s2.as_str(), Present), (s3.as_str(), Absent), (s4.as_str(), Absent)];
            let ev = marked(session(&course, &format!("att-{tag}-{i}"), at(i * 60), &records), &node, i as u64 + 1);
            produce_event(&producer, &ev).await;
            last = Some(ev.event_id);
        }
        wait_processed(&db, last.unwrap()).await;
        wait_until("four alerts", alert_count(4)).await;

        // The job runs again (and again, concurrently with the worker's own runs): nothing new.
        let pool = nimbus_cloud::db::pool(&db.url, 2).unwrap();
        assert_eq!(check_low_attendance(&pool, &producer, &thresholds).await.unwrap(), 0);
        assert_eq!(check_low_attendance(&pool, &producer, &thresholds).await.unwrap(), 0);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(alerts().await, 4);
        let m = worker.metrics.snapshot();
        assert!(m.alerts_sent >= 4, "{m:?}");
        worker.stop().await;
        pool.close();

        let mut sent: Vec<(String, AlertLevel)> = Vec::new();
        let alert_msgs = read_between(
            &brokers,
            Topic::AttendanceEvents,
            &alerts_before,
            &ends(&brokers, Topic::AttendanceEvents).await,
        )
        .await;
        for (key, json) in alert_msgs.iter().filter(|(key, _)| key == &course) {
            let env = Envelope::<AttendanceEvent>::from_json(json).unwrap();
            if let AttendanceEvent::LowAttendanceAlert(p) = env.event {
                assert_eq!(key, &p.course_id);
                assert_eq!(env.service_name, "attendance-service");
                assert!(p.total_classes >= 3 && p.attendance_percentage < p.threshold_percentage, "{p:?}");
                assert_eq!(p.course_name, "Data Structures");
                sent.push((p.student_id, p.alert_level));
            }
        }
        sent.sort();
        let mut expected = vec![
            (s1.clone(), AlertLevel::Critical),
            (s3.clone(), AlertLevel::Warning),
            (s3.clone(), AlertLevel::Critical),
            (s4.clone(), AlertLevel::Critical),
        ];
        expected.sort();
        assert_eq!(sent, expected, "exactly one LOW_ATTENDANCE_ALERT per student and level");

        let mut notified: Vec<(String, Priority)> = Vec::new();
        let note_msgs = read_between(
            &brokers,
            Topic::NotificationCommands,
            &notes_before,
            &ends(&brokers, Topic::NotificationCommands).await,
        )
        .await;
        let ours = [&s1, &s2, &s3, &s4];
        for (key, json) in note_msgs.iter().filter(|(key, _)| ours.contains(&key)) {
            let env = Envelope::<NotificationCommand>::from_json(json).unwrap();
            let NotificationCommand::SendNotification(p) = env.event else { panic!("not SEND_NOTIFICATION: {json}") };
            assert_eq!(key, &p.recipient_user_id);
            assert_eq!(p.channels, [Channel::Email, Channel::InApp]);
            assert_eq!(p.notification_type, "attendance");
            notified.push((p.recipient_user_id, p.priority));
        }
        notified.sort_by(|a, b| (&a.0, a.1 as u8).cmp(&(&b.0, b.1 as u8)));
        assert_eq!(
            notified,
            [
                (s1.clone(), Priority::High),
                (s3.clone(), Priority::Normal),
                (s3.clone(), Priority::High),
                (s4.clone(), Priority::High)
            ],
            "exactly one SEND_NOTIFICATION per student and level, high priority when critical"
        );
        db.drop_now().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_in_the_middle_of_a_batch_of_500_leaves_499_applied_once_and_itself_in_the_dlq() {
    bounded(async {
        let (brokers, db, s) = setup().await;
        let group = s.group_id.clone().unwrap();
        let dlq_before = ends(&brokers, Topic::Dlq).await;
        let producer = nimbus_cloud::kafka::producer(&brokers).unwrap();
        let (course, tag) = ids("batch");
        let (s1, s2) = (student(&tag, 1), student(&tag, 2));
        let node = format!("room-{tag}");
        // One key, one partition, in order; all of it waiting before the worker starts, so it
        // arrives as one poll and is applied as one batch.
        let orphan = Envelope::new(
            "attendance-service",
            AttendanceEvent::AttendanceUpdated(correction(&format!("att-{tag}-none"), &course, &s1, Absent, Present)),
        );
        let mut events = Vec::new();
        for i in 0..500u64 {
            if i == 250 {
                events.push(orphan.clone());
                continue;
            }
            let p = session(&course, &format!("att-{tag}-{i}"), at(i as i64), &[(&s1, Present), (&s2, Absent)]);
            events.push(marked(p, &node, i + 1));
        }
        let payloads: Vec<String> = events.iter().map(|e| e.to_json()).collect();
        let sends = payloads.iter().map(|json| {
            producer.send(
                FutureRecord::to(Topic::AttendanceEvents.name()).key(&course).payload(json.as_bytes()),
                Duration::from_secs(30),
            )
        });
        for sent in futures_util::future::join_all(sends).await {
            sent.unwrap_or_else(|(e, _)| panic!("producing: {e}"));
        }
        let worker = start(s);

        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let applied =
            || async { count(&db, "SELECT count(*) FROM processed_events WHERE event_id = ANY($1)", &[&ids]).await };
        wait_until("499 events applied", || async {
            let Ok(c) = db.pool.get().await else { return false };
            let sql = "SELECT count(*) FROM processed_events WHERE event_id = ANY($1)";
            c.query_one(sql, &[&ids]).await.ok().is_some_and(|r| r.get::<_, i64>(0) == 499)
        })
        .await;
        wait_until("the poison to be dead-lettered", || async { worker.metrics.snapshot().dead_lettered >= 1 }).await;
        worker.stop().await;

        assert_eq!(applied().await, 499);
        assert!(!is_processed(&db, orphan.event_id).await, "the poison is not marked processed");
        let records = count(&db, "SELECT count(*) FROM attendance_records WHERE course_id = $1", &[&course]).await;
        assert_eq!(records, 2 * 499, "two records per applied session, once each");
        assert_eq!(summary(&db, &s1, &course).await, Some((499, 0, 0, 0, 499, 499, Some(100.0))));
        assert_eq!(summary(&db, &s2, &course).await, Some((0, 0, 499, 0, 0, 499, Some(0.0))));

        let letters = dead_letters(&brokers, &dlq_before, &course, &group).await;
        assert_eq!(letters.len(), 1, "only the poison: {letters:#?}");
        assert_eq!(letters[0].original_event["event_id"], orphan.event_id.to_string());
        assert_eq!(letters[0].failure_count, 4, "the first attempt and the seed's 3 retries, on its own");
        db.drop_now().await;
    })
    .await;
}
