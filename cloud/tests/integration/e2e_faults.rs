//! Cloud fault tests with every part a separate process: a node whose outbox holds many
//! sessions syncs through Mosquitto, `nimbus-cloud ingest` and `nimbus-cloud worker` while the
//! ingest is SIGKILLed mid-stream, or the Kafka broker itself (a private tansu) is stopped for a
//! while. Afterwards every session is in `attendance_service_db` exactly once.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nimbus_core::topics::Environment;
use nimbus_edge::outbox;
use nimbus_edge::store::Store;
use nimbus_sync::testing::{Mosquitto, free_port};

use crate::common;
use crate::common::e2e::{Proc, cloud, edge_binary, sigkill};

const SESSIONS: usize = 300;

struct Stack {
    /// The node's id and the tag of its sessions' ids: only these are counted (the worker reads
    /// the shared topic, where tests running alongside produce attendance events too).
    node: String,
    tag: String,
    env: Vec<(&'static str, String)>,
    node_dir: tempfile::TempDir,
    attendance_db: common::TestDb,
    registry_db: common::TestDb,
    _broker: Mosquitto,
}

/// Registers a node, writes `SESSIONS` closed sessions (3 students each) into its outbox, and
/// returns everything needed to start the roles and the node. The node sends one event per
/// batch, so the stream lasts long enough (hundreds of round trips) for a fault to land in it.
async fn stack(brokers: &str) -> Stack {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let node = format!("fault-{suffix}");
    let password = format!("pw-{suffix}");
    let broker = Mosquitto::start(&[(&node, &password)]);
    nimbus_cloud::kafka::ensure_topics(brokers, Environment::Development).await.expect("Kafka reachable");
    let registry_db = common::TestDb::create().await;
    let attendance_db = common::TestDb::create().await;
    let env =
        common::e2e::role_env(&format!("fault-{suffix}"), &broker.url, brokers, &registry_db, &attendance_db).await;
    assert!(cloud(&["migrate", "edge_registry_db"], &env).status().unwrap().success());
    assert!(cloud(&["nodes", "register", &node, "--room", "r1"], &env).status().unwrap().success());

    let node_dir = tempfile::tempdir().unwrap();
    common::e2e::prefill_sessions(&node_dir.path().join("data/node.db"), &suffix, SESSIONS, 3);
    std::fs::write(
        node_dir.path().join("node.toml"),
        format!(
            "node_id = \"{node}\"\nroom_id = \"r1\"\ndata_dir = \"{}\"\n[http]\nbind = \"127.0.0.1:0\"\n\
             [reader]\nsimulated_bind = \"127.0.0.1:0\"\n[cloud]\nmqtt_url = \"{}\"\nmqtt_password = \"{password}\"\n\
             ack_timeout_ms = 1000\nmax_batch_events = 1\n",
            node_dir.path().join("data").display(),
            broker.url
        ),
    )
    .unwrap();
    Stack { node, tag: suffix, env, node_dir, attendance_db, registry_db, _broker: broker }
}

fn start_node(dir: &Path) -> Proc {
    let mut command = Command::new(edge_binary());
    // The given config file must win over overrides in this environment (CI exports MQTT_URL).
    nimbus_edge::config::without_env_overrides(&mut command);
    let child = command
        .arg("--config")
        .arg(dir.join("node.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Proc(child)
}

/// How many of the node's events the worker applied (before its migration: none).
async fn processed(stack: &Stack) -> i64 {
    let Ok(c) = stack.attendance_db.pool.get().await else { return 0 };
    let sql = "SELECT count(*) FROM processed_events WHERE event_id IN \
               (SELECT event_id FROM attendance_records WHERE source_node_id = $1)";
    c.query_one(sql, &[&stack.node]).await.map_or(0, |r| r.get(0))
}

async fn wait_processed(stack: &Stack, at_least: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let n = processed(stack).await;
        if n >= at_least {
            return;
        }
        assert!(Instant::now() < deadline, "only {n} of {at_least} events applied");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every session of the node exactly once: SESSIONS events applied, 3 records each, no duplicates.
async fn assert_exactly_once(stack: &Stack) {
    let c = stack.attendance_db.pool.get().await.unwrap();
    let sql = "SELECT count(*), count(DISTINCT attendance_id), count(DISTINCT (attendance_id, student_id)) \
               FROM attendance_records WHERE source_node_id = $1";
    let row = c.query_one(sql, &[&stack.node]).await.unwrap();
    let (records, sessions, distinct): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((records, sessions, distinct), (3 * SESSIONS as i64, SESSIONS as i64, 3 * SESSIONS as i64));
    // The node's courses are `course-<tag>-<n>` (see `prefill_sessions`).
    let courses = format!("course-{}-%", stack.tag);
    let sql = "SELECT coalesce(sum(present + late + absent), 0)::BIGINT FROM attendance_summary \
               WHERE course_id LIKE $1";
    let summary: i64 = c.query_one(sql, &[&courses]).await.unwrap().get(0);
    assert_eq!(summary, 3 * SESSIONS as i64, "the summary counted every record once");
    assert_eq!(processed(stack).await, SESSIONS as i64);
}

fn outbox_backlog(dir: &Path) -> u64 {
    Store::open(&dir.join("data/node.db")).unwrap().with(|c| outbox::backlog(c)).unwrap()
}

async fn wait_drained(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while outbox_backlog(dir) > 0 {
        assert!(Instant::now() < deadline, "the node's outbox never drained");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_killed_mid_stream_and_restarted_loses_and_doubles_nothing() {
    let s = stack(&common::kafka_brokers()).await;
    let worker = Proc(cloud(&["worker", "--service", "attendance"], &s.env).spawn().unwrap());
    let mut ingest = Proc(cloud(&["ingest"], &s.env).spawn().unwrap());
    let node = start_node(s.node_dir.path());
    wait_processed(&s, 40, Duration::from_secs(60)).await;
    sigkill(&mut ingest);
    let at_kill = processed(&s).await;
    assert!(at_kill < SESSIONS as i64, "the kill came mid-stream ({at_kill} applied)");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ingest = Proc(cloud(&["ingest"], &s.env).spawn().unwrap());
    drained_exactly_once(s, Duration::from_secs(120), [node, ingest, worker]).await;
}

/// Every session arrives within `within`, the node's outbox drains, each session is applied
/// exactly once, and every process stops cleanly.
async fn drained_exactly_once<const N: usize>(s: Stack, within: Duration, procs: [Proc; N]) {
    wait_processed(&s, SESSIONS as i64, within).await;
    wait_drained(s.node_dir.path()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_exactly_once(&s).await;
    assert!(procs.into_iter().all(Proc::stop), "clean shutdowns");
    s.attendance_db.drop_now().await;
    s.registry_db.drop_now().await;
}

/// A private Kafka-protocol broker (tansu on SQLite) that can be stopped and started again.
struct PrivateKafka {
    dir: tempfile::TempDir,
    port: u16,
    proc: Option<Proc>,
}

impl PrivateKafka {
    fn tansu() -> PathBuf {
        let home = std::env::var("HOME").unwrap_or_default();
        let cached = Path::new(&home).join(".cargo/bin/tansu");
        if cached.exists() { cached } else { PathBuf::from("tansu") }
    }

    fn start() -> PrivateKafka {
        let mut k = PrivateKafka { dir: tempfile::tempdir().unwrap(), port: free_port(), proc: None };
        k.spawn();
        k
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(Self::tansu())
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .env_remove("STORAGE_ENGINE")
            .env_remove("CLUSTER_ID")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu must be installed (scripts/services.sh up)");
        self.proc = Some(Proc(child));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "private tansu did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.stop();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_stopped_for_a_while_and_restarted_loses_and_doubles_nothing() {
    let mut kafka = PrivateKafka::start();
    let s = stack(&kafka.brokers()).await;
    let worker = Proc(cloud(&["worker", "--service", "attendance"], &s.env).spawn().unwrap());
    let ingest = Proc(cloud(&["ingest"], &s.env).spawn().unwrap());
    let node = start_node(s.node_dir.path());
    wait_processed(&s, 40, Duration::from_secs(60)).await;
    kafka.stop();
    let at_stop = processed(&s).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(outbox_backlog(s.node_dir.path()) > 0, "with Kafka down the node keeps its events");
    kafka.spawn();
    wait_processed(&s, SESSIONS as i64, Duration::from_secs(180)).await;
    wait_drained(s.node_dir.path()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(at_stop < SESSIONS as i64, "Kafka stopped mid-stream ({at_stop} applied)");
    assert_exactly_once(&s).await;
    assert!(node.stop() && ingest.stop() && worker.stop(), "clean shutdowns");
    s.attendance_db.drop_now().await;
    s.registry_db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_sigkilled_twice_within_ten_seconds_drains_the_backlog_within_a_minute_of_its_restart() {
    let s = stack(&common::kafka_brokers()).await;
    let ingest = Proc(cloud(&["ingest"], &s.env).spawn().unwrap());
    // Static membership: each restart comes back under the same member name.
    let mut worker_env = s.env.clone();
    worker_env.push(("NIMBUS_WORKER_INSTANCE", format!("attendance-{}", uuid::Uuid::new_v4().simple())));
    let start_worker = || Proc(cloud(&["worker", "--service", "attendance"], &worker_env).spawn().unwrap());
    let mut worker = start_worker();
    let node = start_node(s.node_dir.path());
    wait_processed(&s, 40, Duration::from_secs(60)).await;
    let first_kill = Instant::now();
    sigkill(&mut worker);
    let at_kill = processed(&s).await;
    assert!(at_kill < SESSIONS as i64, "the kill came while events flowed ({at_kill} applied)");
    // Restarted, and killed again during its rejoin: the drill of issue 18.
    let mut worker = start_worker();
    tokio::time::sleep(Duration::from_secs(3)).await;
    sigkill(&mut worker);
    assert!(first_kill.elapsed() < Duration::from_secs(10), "both kills within ten seconds");
    let worker = start_worker();
    // Within a minute of the last restart.
    drained_exactly_once(s, Duration::from_secs(60), [node, ingest, worker]).await;
}

/// `GET path` on `addr`: the status and the body as text.
fn get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return (0, String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// Waits until `GET path` on `addr` answers `status`.
async fn wait_status(addr: &str, path: &str, status: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (got, body) = get(addr, path);
        if got == status {
            return body;
        }
        assert!(Instant::now() < deadline, "{addr}{path} answered {got}, not {status}: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether the Prometheus text has a sample of `name` whose labels include every pair.
fn has_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    text.lines().filter(|l| !l.starts_with('#')).any(|l| {
        let Some(rest) = l.strip_prefix(name) else { return false };
        rest.starts_with('{') && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_serves_the_seed_metrics_and_the_ingest_is_unready_while_kafka_is_down() {
    let mut kafka = PrivateKafka::start();
    let s = stack(&kafka.brokers()).await;
    let probe = |port: u16| ("NIMBUS_PROBE_BIND", format!("127.0.0.1:{port}"));
    let (ingest_at, worker_at, downlink_at) = (free_port(), free_port(), free_port());
    let with = |port: u16| {
        let mut env = s.env.clone();
        env.push(probe(port));
        env
    };
    let ingest = Proc(cloud(&["ingest"], &with(ingest_at)).spawn().unwrap());
    let worker = Proc(cloud(&["worker", "--service", "attendance"], &with(worker_at)).spawn().unwrap());
    let downlink = Proc(cloud(&["downlink"], &with(downlink_at)).spawn().unwrap());
    let (ingest_at, worker_at, downlink_at) =
        (format!("127.0.0.1:{ingest_at}"), format!("127.0.0.1:{worker_at}"), format!("127.0.0.1:{downlink_at}"));
    // Bytes no contract can read, on the worker's topic: a dead letter for the DLQ counter.
    let producer = nimbus_cloud::kafka::producer(&kafka.brokers()).unwrap();
    let poison = rdkafka::producer::FutureRecord::to("attendance.events").key("metrics-test").payload("not json");
    producer.send(poison, Duration::from_secs(30)).await.map_err(|(e, _)| e).unwrap();
    let node = start_node(s.node_dir.path());
    wait_processed(&s, SESSIONS as i64, Duration::from_secs(120)).await;
    wait_drained(s.node_dir.path()).await;

    for at in [&ingest_at, &worker_at, &downlink_at] {
        assert_eq!(get(at, "/health").0, 200, "{at} /health");
        wait_status(at, "/health/ready", 200, Duration::from_secs(30)).await;
    }
    let group = s.env.iter().find(|(k, _)| *k == "NIMBUS_WORKER_GROUP").map(|(_, v)| v.clone()).unwrap();
    let (_, ingest_metrics) = get(&ingest_at, "/metrics");
    let produced = [("topic", "attendance.events"), ("event_type", "ATTENDANCE_MARKED")];
    assert!(has_sample(&ingest_metrics, "kafka_messages_produced_total", &produced), "{ingest_metrics}");
    assert!(has_sample(&ingest_metrics, "nimbus_node_ack_age_seconds", &[("node", &s.node)]), "{ingest_metrics}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let worker_metrics = loop {
        let (_, text) = get(&worker_at, "/metrics");
        let lag = [("topic", "attendance.events"), ("consumer_group", group.as_str())];
        if has_sample(&text, "kafka_consumer_lag", &lag) && has_sample(&text, "kafka_dlq_messages_total", &[]) {
            break text;
        }
        assert!(Instant::now() < deadline, "no lag or DLQ sample: {text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let consumed = [("topic", "attendance.events"), ("consumer_group", &group), ("event_type", "ATTENDANCE_MARKED")];
    assert!(has_sample(&worker_metrics, "kafka_messages_consumed_total", &consumed), "{worker_metrics}");
    assert!(worker_metrics.contains("kafka_consumer_lag{topic=\"attendance.events\""), "{worker_metrics}");
    assert!(worker_metrics.contains(",partition=\""), "lag per partition: {worker_metrics}");
    let processing = [("topic", "attendance.events"), ("event_type", "ATTENDANCE_MARKED"), ("le", "+Inf")];
    assert!(has_sample(&worker_metrics, "kafka_message_processing_duration_seconds_bucket", &processing));
    let dlq = [("original_topic", "attendance.events"), ("failure_reason", "unparseable")];
    assert!(has_sample(&worker_metrics, "kafka_dlq_messages_total", &dlq), "{worker_metrics}");
    let (_, downlink_metrics) = get(&downlink_at, "/metrics");
    assert!(has_sample(&downlink_metrics, "nimbus_downlink_total", &[("what", "rounds")]), "{downlink_metrics}");

    kafka.stop();
    let unready = wait_status(&ingest_at, "/health/ready", 503, Duration::from_secs(30)).await;
    assert!(unready.contains("kafka"), "the answer names Kafka: {unready}");
    kafka.spawn();
    wait_status(&ingest_at, "/health/ready", 200, Duration::from_secs(60)).await;

    assert!(node.stop() && ingest.stop() && worker.stop() && downlink.stop(), "clean shutdowns");
    s.attendance_db.drop_now().await;
    s.registry_db.drop_now().await;
}
