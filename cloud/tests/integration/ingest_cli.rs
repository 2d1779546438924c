//! `nimbus-cloud migrate`, `nodes register|list` and `ingest` as an operator runs them: the real
//! binary against real services, configured through the environment.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nimbus_sync::frame::Message;
use nimbus_sync::testing::{CLOUD_USER, Mosquitto};

use crate::common;
use crate::common::TestDb;
use crate::common::ingest::*;

fn nimbus_cloud(db: &TestDb) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nimbus-cloud"));
    c.env("DATABASE_URL", common::database_server())
        .env("NIMBUS_REGISTRY_DB", &db.name)
        .env("KAFKA_BROKERS", common::kafka_brokers())
        .env_remove("NIMBUS_CLOUD_CONFIG")
        .env("NIMBUS_PROBE_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info");
    c
}

fn run(db: &TestDb, args: &[&str]) -> Output {
    nimbus_cloud(db).args(args).output().expect("start nimbus-cloud")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn migrate_then_register_and_list_nodes() {
    let db = TestDb::create().await;
    // Only the registry (redirected to this test's database): the other databases are shared.
    let out = run(&db, &["migrate", "edge_registry_db"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let steps = nimbus_cloud::db::migrations_for("edge_registry_db").unwrap().steps.len();
    assert_eq!(text(&out.stdout), format!("{}: {steps} migration(s) applied\n", db.name));
    let again = run(&db, &["migrate", "edge_registry_db"]);
    assert_eq!(text(&again.stdout), format!("{}: 0 migration(s) applied\n", db.name));
    let unknown = run(&db, &["migrate", "nope_db"]);
    assert!(!unknown.status.success() && text(&unknown.stderr).contains("unknown database \"nope_db\""));

    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
    let out = run(&db, &["nodes", "register", "room-101", "--room", "101", "--credential-hash", hash]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "registered room-101 in room 101\n");
    assert!(run(&db, &["nodes", "register", "room-102", "--room", "102"]).status.success());
    // The one registration rule (the API's too): nothing new is harmless, a move or another
    // credential is refused unless asked for.
    let again = run(&db, &["nodes", "register", "room-101", "--room", "101"]);
    assert_eq!(text(&again.stdout), "already registered (unchanged): room-101 in room 101\n");
    let moved = run(&db, &["nodes", "register", "room-101", "--room", "201"]);
    assert_eq!(moved.status.code(), Some(2));
    assert!(text(&moved.stderr).contains("already registered in room 101"), "{}", text(&moved.stderr));
    let rekeyed = run(
        &db,
        &["nodes", "register", "room-101", "--room", "101", "--credential-hash", &hash.replace("aGFz", "b2xk")],
    );
    assert_eq!(rekeyed.status.code(), Some(2), "another credential is a takeover unless asked for");
    let replaced = run(&db, &["nodes", "register", "room-101", "--room", "201", "--replace"]);
    assert_eq!(text(&replaced.stdout), "re-registered room-101 in room 201\n");
    assert!(run(&db, &["nodes", "register", "room-101", "--room", "101", "--replace"]).status.success());

    let bad = run(&db, &["nodes", "register", "Room 103", "--room", "103"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("NODE_ID"), "{}", text(&bad.stderr));
    let plain = run(&db, &["nodes", "register", "room-104", "--room", "104", "--credential-hash", "hunter2"]);
    assert_eq!(plain.status.code(), Some(2), "a plain password is refused");

    let list = run(&db, &["nodes", "list"]);
    let table = text(&list.stdout);
    assert!(list.status.success() && table.starts_with("NODE"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    let json: serde_json::Value = serde_json::from_slice(&run(&db, &["nodes", "list", "--json"]).stdout).unwrap();
    assert_eq!(json[0]["node_id"], "room-101");
    assert_eq!((json[0]["has_credential"].as_bool(), json[1]["has_credential"].as_bool()), (Some(true), Some(false)));
    assert_eq!(json[1]["high_water_mark"], 0);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_command_stores_and_acks_then_stops_cleanly_on_sigterm() {
    let name = unique_node("room");
    let db = TestDb::create().await;
    let broker = Mosquitto::start(&[(name.as_str(), NODE_PASSWORD)]);
    assert!(run(&db, &["nodes", "register", &name, "--room", "101"]).status.success());

    let mut child = nimbus_cloud(&db)
        .args(["ingest"])
        .env("MQTT_URL", &broker.url)
        .env("MQTT_USERNAME", CLOUD_USER.0)
        .env("MQTT_PASSWORD", CLOUD_USER.1)
        .env("INGEST_GROUP", unique_node("g"))
        .env("INGEST_INSTANCE", unique_node("cli"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nimbus-cloud ingest");
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !log.iter().any(|l: &String| l.contains("subscribed")) {
        assert!(std::time::Instant::now() < deadline, "ingest did not subscribe: {log:#?}");
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            log.push(line);
        }
    }
    assert!(!log.iter().any(|l| l.contains(CLOUD_USER.1)), "no secret in the log");

    let mut node = FakeNode::connect(&broker, &name).await;
    let attendance = KafkaMark::now("attendance.events").await;
    let reply = node.send_until_reply(attendance_batch(&node.id, 1, 2, "CS1"), Duration::from_secs(30)).await;
    assert_eq!(reply, Message::Ack { upto_seq: 2 });
    assert_eq!(attendance.events_of(&node.id).await.len(), 2);

    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("ingest did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert!(status.success(), "{status:?}");
    let list: serde_json::Value =
        serde_json::from_slice(&run(&db, &["nodes", "list", "--json"]).stdout).expect("nodes list --json");
    assert_eq!(list[0]["high_water_mark"], 2);
    db.drop_now().await;
}
