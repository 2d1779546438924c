//! The vertical slice, every part a separate process on real services: a classroom node
//! (`nimbus-edge`, simulated reader) taps cards and closes its session; a private Mosquitto
//! (password file + ACL) carries the batch; `nimbus-cloud ingest` puts it in Kafka (tansu) and
//! acks it; `nimbus-cloud worker --service attendance` writes `attendance_service_db`
//! (PostgreSQL). The taps end as exactly the expected rows, and the node's outbox drains.

use std::time::{Duration, Instant};

use nimbus_core::topics::Environment;
use nimbus_sync::testing::Mosquitto;
use serde_json::json;

use crate::common;
use crate::common::e2e::{Proc, cloud, http, tap};

async fn until<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taps_on_a_node_become_exactly_the_expected_rows_in_attendance_service_db() {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let node = format!("e2e-{suffix}");
    let node_password = format!("pw-{suffix}");
    let broker = Mosquitto::start(&[(&node, &node_password)]);
    let brokers = common::kafka_brokers();
    nimbus_cloud::kafka::ensure_topics(&brokers, Environment::Development)
        .await
        .expect("Kafka (NIMBUS_TEST_KAFKA_BROKERS)");
    let registry_db = common::TestDb::create().await;
    let attendance_db = common::TestDb::create().await;
    let env =
        common::e2e::role_env(&format!("e2e-{suffix}"), &broker.url, &brokers, &registry_db, &attendance_db).await;
    // The operator registers the node; then the roles start.
    assert!(cloud(&["migrate", "edge_registry_db"], &env).status().unwrap().success());
    assert!(cloud(&["nodes", "register", &node, "--room", "demo-101"], &env).status().unwrap().success());
    let ingest = Proc(cloud(&["ingest"], &env).spawn().unwrap());
    let worker = Proc(cloud(&["worker", "--service", "attendance"], &env).spawn().unwrap());

    // The classroom node, with the demo timetable (a class running now) and the cloud configured.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "node_id = \"{node}\"\nroom_id = \"demo-101\"\ndata_dir = \"{}\"\n[http]\nbind = \"127.0.0.1:0\"\n\
             [reader]\nsimulated_bind = \"127.0.0.1:0\"\n[cloud]\nmqtt_url = \"{}\"\nmqtt_password = \"{node_password}\"\n\
             ack_timeout_ms = 1000\n",
            dir.path().join("data").display(),
            broker.url
        ),
    )
    .unwrap();
    let node_proc = common::e2e::start_simulated_node(&config);
    let (edge, http_addr, reader) = (node_proc.proc, node_proc.http, node_proc.reader);

    // Faculty opens the class by card; two students tap, one twice; an unknown card.
    let replies = tap(&reader, &["FACA0001", "5A000001", "5A000002", "5A000002", "DEADBEEF"]);
    assert_eq!(replies, ["accepted", "accepted", "accepted", "duplicate", "unknown_card"]);
    // The faculty closes the session from the API.
    let (status, login) =
        http(&http_addr, "POST", "/api/login", Some(json!({"user_id": "faculty-demo", "pin": "1234"})), None);
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().unwrap().to_owned();
    let (_, st) = http(&http_addr, "GET", "/api/status", None, None);
    let session = st["open_session"]["id"].as_str().expect("an open session").to_owned();
    let (status, closed) = http(&http_addr, "POST", &format!("/api/sessions/{session}/close"), None, Some(&token));
    assert_eq!(status, 200, "{closed}");
    assert_eq!((closed["present_count"].as_u64(), closed["absent_count"].as_u64()), (Some(2), Some(3)));

    // The rows arrive in the attendance service's database.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let c = attendance_db.pool.get().await.unwrap();
        let n: i64 = c
            .query_one("SELECT count(*) FROM attendance_records WHERE attendance_id = $1", &[&session])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if n == 5 {
            break;
        }
        if Instant::now() > deadline {
            // Say where the pipeline stopped: node link, outbox, registry mark, worker progress.
            let (_, st) = http(&http_addr, "GET", "/api/status", None, None);
            let r = registry_db.pool.get().await.unwrap();
            let hwm: Option<i64> = r
                .query_opt("SELECT high_water_mark FROM nodes WHERE node_id = $1", &[&node])
                .await
                .ok()
                .flatten()
                .map(|row| row.get(0));
            let applied: i64 =
                c.query_one("SELECT count(*) FROM processed_events", &[]).await.map(|r| r.get(0)).unwrap_or(-1);
            panic!(
                "{n} of 5 records after 90 s; node cloud link {} backlog {}; registry mark {hwm:?}; worker applied {applied}",
                st["cloud"], st["outbox_backlog"]
            );
        }
        drop(c);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let c = attendance_db.pool.get().await.unwrap();
    let rows = c
        .query(
            "SELECT student_id, status FROM attendance_records WHERE attendance_id = $1 ORDER BY student_id",
            &[&session],
        )
        .await
        .unwrap();
    let got: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let want: Vec<(String, String)> = [
        ("student-1", "present"),
        ("student-2", "present"),
        ("student-3", "absent"),
        ("student-4", "absent"),
        ("student-5", "absent"),
    ]
    .iter()
    .map(|(s, st)| (s.to_string(), st.to_string()))
    .collect();
    assert_eq!(got, want);
    // Only this session's events: the worker also applies what tests running alongside produce.
    let processed: i64 = c
        .query_one(
            "SELECT count(*) FROM processed_events WHERE event_id IN \
             (SELECT event_id FROM attendance_records WHERE attendance_id = $1)",
            &[&session],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(processed, 1, "one ATTENDANCE_MARKED event, applied once");
    drop(c);

    // The node's outbox drains once the cloud acks, and the registry's mark moved.
    until(Duration::from_secs(30), "the node's outbox to drain", || {
        let addr = http_addr.clone();
        async move { http(&addr, "GET", "/api/status", None, None).1["outbox_backlog"] == 0 }
    })
    .await;
    let r = registry_db.pool.get().await.unwrap();
    let hwm: i64 = r.query_one("SELECT high_water_mark FROM nodes WHERE node_id = $1", &[&node]).await.unwrap().get(0);
    assert!(hwm >= 1);
    drop(r);

    assert!(edge.stop(), "the node stops cleanly");
    assert!(ingest.stop(), "the ingest stops cleanly");
    assert!(worker.stop(), "the worker stops cleanly");
    registry_db.drop_now().await;
    attendance_db.drop_now().await;
}
