//! Pipeline benchmark: sustained events per second from classroom nodes, over MQTT, through
//! `nimbus-cloud ingest` into Kafka and `nimbus-cloud worker --service attendance` into
//! PostgreSQL, every part a separate release-built process on the real services. It samples the
//! registry's high-water marks (what the ingest has safely in Kafka) and the worker's applied
//! count, so the slower stage — the bottleneck — shows in the numbers.
//!
//! In one run:
//! 1. a real `nimbus-edge` node whose outbox holds 3000 closed classes syncs them;
//! 2. a fleet of 20 nodes (load generators speaking the real protocol with their own broker
//!    accounts: compact batch frames, one in flight, the next after the ack) sends a campus day
//!    (80 closed classes of 30 students each: 1,600 events, 48,000 rows), then 50,000 mixed
//!    events (attendance, tap telemetry, content access);
//! 3. the ceilings: the same mixed events' seed JSON produced straight into the same broker with
//!    the ingest's producer settings, and the campus day's rows `COPY`ed into an empty
//!    `attendance_records`.
//!
//!     cargo build --release -p nimbus-edge && cargo bench -p nimbus-cloud --bench pipeline

// The integration tests' support; this bench uses only the end-to-end process helpers.
#[path = "../tests/integration/common/mod.rs"]
#[allow(dead_code)]
mod common;

#[path = "pipeline/fleet.rs"]
mod fleet;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::e2e::{Proc, cloud, edge_binary};
use nimbus_core::topics::Environment;
use nimbus_sync::testing::Mosquitto;

const SESSIONS: usize = 3000;
const STUDENTS: usize = 30;

async fn count(db: &common::TestDb, sql: &str) -> i64 {
    match db.pool.get().await {
        Ok(c) => c.query_one(sql, &[]).await.map(|r| r.get(0)).unwrap_or(0),
        Err(_) => 0,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if std::env::var_os("PIPELINE_BENCH_FLEET_ONLY").is_none() {
        rt.block_on(one_real_node());
    }
    rt.block_on(fleet::run());
}

async fn one_real_node() {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let node = format!("bench-{suffix}");
    let broker = Mosquitto::start(&[(&node, "pw")]);
    let brokers = common::kafka_brokers();
    nimbus_cloud::kafka::ensure_topics(&brokers, Environment::Development)
        .await
        .expect("Kafka (NIMBUS_TEST_KAFKA_BROKERS)");
    let registry_db = common::TestDb::create().await;
    let attendance_db = common::TestDb::create().await;
    let env =
        common::e2e::role_env(&format!("bench-{suffix}"), &broker.url, &brokers, &registry_db, &attendance_db).await;
    assert!(cloud(&["migrate", "edge_registry_db"], &env).status().unwrap().success());
    assert!(cloud(&["nodes", "register", &node, "--room", "r1"], &env).status().unwrap().success());

    // A node that was offline for a while: SESSIONS closed classes of STUDENTS each.
    let dir = tempfile::Builder::new().prefix("nimbus-bench-").tempdir_in(".").unwrap();
    common::e2e::prefill_sessions(&dir.path().join("data/node.db"), &suffix, SESSIONS, STUDENTS);
    std::fs::write(
        dir.path().join("node.toml"),
        format!(
            "node_id = \"{node}\"\nroom_id = \"r1\"\ndata_dir = \"{}\"\nlog = \"warn\"\n[http]\nbind = \"127.0.0.1:0\"\n\
             [reader]\nsimulated_bind = \"127.0.0.1:0\"\n[cloud]\nmqtt_url = \"{}\"\nmqtt_password = \"pw\"\n",
            dir.path().join("data").display(),
            broker.url
        ),
    )
    .unwrap();

    let ingest = Proc(cloud(&["ingest"], &env).spawn().unwrap());
    let worker = Proc(cloud(&["worker", "--service", "attendance"], &env).spawn().unwrap());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut command = Command::new(edge_binary());
    // The given config file must win over overrides in this environment (CI exports MQTT_URL).
    nimbus_edge::config::without_env_overrides(&mut command);
    let node_proc =
        Proc(command.arg("--config").arg(dir.path().join("node.toml")).stdout(Stdio::null()).spawn().unwrap());

    let start = Instant::now();
    let (mut ingest_done, mut worker_done) = (None, None);
    let target = SESSIONS as i64;
    while worker_done.is_none() {
        assert!(start.elapsed() < Duration::from_secs(900), "stalled");
        let hwm = count(&registry_db, "SELECT coalesce(max(high_water_mark), 0) FROM nodes").await;
        let applied = count(&attendance_db, "SELECT count(*) FROM processed_events").await;
        if ingest_done.is_none() && hwm >= target {
            ingest_done = Some(start.elapsed());
        }
        if applied >= target {
            worker_done = Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ingest_t, worker_t) = (ingest_done.unwrap_or_default(), worker_done.unwrap_or_default());
    let records = count(&attendance_db, "SELECT count(*) FROM attendance_records").await;
    assert_eq!(records, (SESSIONS * STUDENTS) as i64, "every record exactly once");
    let rate = |t: Duration| SESSIONS as f64 / t.as_secs_f64();
    println!("{SESSIONS} ATTENDANCE_MARKED events ({STUDENTS} students each, {records} rows):");
    println!(
        "  node outbox -> MQTT -> ingest -> Kafka (acked)        {:>6.1} s  {:>7.0} events/s",
        ingest_t.as_secs_f64(),
        rate(ingest_t)
    );
    println!(
        "  ... -> worker -> attendance_service_db (end to end)  {:>6.1} s  {:>7.0} events/s = {:.0} rows/s",
        worker_t.as_secs_f64(),
        rate(worker_t),
        records as f64 / worker_t.as_secs_f64()
    );
    let bottleneck = if worker_t.as_secs_f64() > ingest_t.as_secs_f64() * 1.2 {
        "the worker (a batch per transaction: claim event ids, lock and write records, summaries, commit)"
    } else {
        "the ingest path (one batch in flight per node: produce, await every delivery, commit the mark, ack)"
    };
    println!("  bottleneck: {bottleneck}");
    drop((node_proc, ingest, worker));
    registry_db.drop_now().await;
    attendance_db.drop_now().await;
}
