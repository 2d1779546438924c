//! The downlink end to end, every part a separate process on real services: an admin publishes a
//! timetable in the timetable service (PostgreSQL); `nimbus-cloud downlink` publishes the room's
//! snapshot retained on a private Mosquitto (password file + ACL); the classroom node
//! (`nimbus-edge`) caches it and runs on it: the published class is the one in force in its room.
//! A change publishes a new version; no change publishes nothing.

use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveTime, Timelike};
use nimbus_cloud::actor::Actor;
use nimbus_cloud::timetable::{entries, rooms, timetables};
use nimbus_sync::testing::Mosquitto;
use serde_json::Value;

use crate::common;
use crate::common::e2e::{Proc, cloud, http, migrated};

fn status(addr: &str) -> Value {
    http(addr, "GET", "/api/status", None, None).1
}

/// Waits until the downlink recorded a confirmed publish of `kind` for `node` newer than `after`.
async fn published_version(registry: &common::TestDb, node: &str, kind: &str, after: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = registry
            .pool
            .get()
            .await
            .unwrap()
            .query_opt(
                "SELECT version FROM node_snapshots WHERE node_id = $1 AND kind = $2 AND published",
                &[&node, &kind],
            )
            .await
            .unwrap();
        if let Some(v) = row.map(|r| r.get::<_, i64>(0) as u64).filter(|v| *v > after) {
            return v;
        }
        assert!(Instant::now() < deadline, "the downlink published no {kind} snapshot newer than {after}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timetable_published_in_the_cloud_reaches_the_node_and_is_in_force_there() {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (node, password, room) = (format!("dl-{suffix}"), format!("pw-{suffix}"), format!("LH-{suffix}"));
    let broker = Mosquitto::start(&[(&node, &password)]);
    let registry = common::TestDb::create().await;
    let timetable = migrated("timetable_service_db").await;
    let course = migrated("course_service_db").await;
    // The roster carries the faculty's sign-in credentials, which the user service holds.
    let users = migrated("user_service_db").await;
    let (user, cloud_password) = nimbus_sync::testing::CLOUD_USER;
    let env = vec![
        ("DATABASE_URL", common::database_server()),
        ("NIMBUS_REGISTRY_DB", registry.name.clone()),
        ("TIMETABLE_DATABASE_URL", timetable.url.clone()),
        ("COURSE_DATABASE_URL", course.url.clone()),
        ("USER_DATABASE_URL", users.url.clone()),
        // No content service in this test: the manifest is skipped, the others flow.
        ("CONTENT_DATABASE_URL", registry.url.clone()),
        ("KAFKA_BROKERS", common::kafka_brokers()),
        ("MQTT_URL", broker.url.clone()),
        ("MQTT_USERNAME", user.to_owned()),
        ("MQTT_PASSWORD", cloud_password.to_owned()),
        ("INGEST_INSTANCE", format!("dl-{suffix}")),
        ("DOWNLINK_INTERVAL_SECS", "1".to_owned()),
    ];
    assert!(cloud(&["migrate", "edge_registry_db"], &env).status().unwrap().success());
    assert!(cloud(&["nodes", "register", &node, "--room", &room], &env).status().unwrap().success());

    // The node, offline-first: it starts on its demo data (version 1) for its room.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "node_id = \"{node}\"\nroom_id = \"{room}\"\ndata_dir = \"{}\"\n[http]\nbind = \"127.0.0.1:0\"\n\
             [reader]\nsimulated_bind = \"127.0.0.1:0\"\n[cloud]\nmqtt_url = \"{}\"\nmqtt_password = \"{password}\"\n",
            dir.path().join("data").display(),
            broker.url
        ),
    )
    .unwrap();
    let node_proc = common::e2e::start_simulated_node(&config);
    let (edge, addr) = (node_proc.proc, node_proc.http);

    // An admin builds and publishes the room's timetable: a class running now (in the node's
    // local time, kept within today), taught by fac-1.
    let pool = &timetable.pool;
    let actor = Actor::user("admin-1", format!("req-{suffix}"));
    let now = chrono::Local::now();
    // Minutes since midnight as a time; the last minute of the day ends at 23:59:59.
    let minute = |m: i64| match m {
        1439.. => NaiveTime::from_hms_opt(23, 59, 59).unwrap(),
        m => NaiveTime::from_num_seconds_from_midnight_opt((m.max(0) * 60) as u32, 0).unwrap(),
    };
    let minutes_now = (now.hour() * 60 + now.minute()) as i64;
    let the_room: rooms::Room = rooms::create_room(
        pool,
        &actor,
        serde_json::from_value(serde_json::json!({
            "room_number": room, "building": "Main", "capacity": 60, "room_type": "lecture"
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let tt = timetables::create_timetable(
        pool,
        &actor,
        serde_json::from_value(serde_json::json!({
            "name": "Autumn", "semester_id": "sem-1", "department_id": "dep-1"
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let course_id = format!("CS-{suffix}");
    let today = now.weekday().number_from_monday();
    let new_entry = |course: &str, day: u32, from: i64, to: i64| -> entries::NewEntry {
        serde_json::from_value(serde_json::json!({
            "timetable_id": tt.id, "course_id": course, "course_name": "Distributed Systems",
            "faculty_id": "fac-1", "room_id": the_room.id,
            "day_of_week": day,
            "start_time": minute(from), "end_time": minute(to),
        }))
        .unwrap()
    };
    let start = (minutes_now - 10).clamp(0, 1380);
    entries::add_entry(pool, &actor, new_entry(&course_id, today, start, start + 59)).await.unwrap();
    timetables::publish_timetable(pool, &actor, tt.id).await.unwrap();
    // The downlink role starts (it would publish an empty timetable for a room with none).
    let downlink = Proc(cloud(&["downlink"], &env).spawn().unwrap());

    // The node caches it and runs on it.
    let v1 = published_version(&registry, &node, "timetable", 0).await;
    wait_for("the cloud's timetable on the node", Duration::from_secs(30), || {
        status(&addr)["snapshots"]["timetable"].as_u64() == Some(v1)
    });
    let first = status(&addr);
    assert_eq!(first["current_entry"]["course_id"], course_id.as_str(), "{first:#}");
    assert_eq!(first["current_entry"]["room_id"], room.as_str());

    // Nothing changed: rounds pass, the version stays.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(status(&addr)["snapshots"]["timetable"].as_u64(), Some(v1), "no change, no new version");

    // A second class tomorrow: a new version reaches the node; today's class stays in force.
    entries::add_entry(pool, &actor, new_entry(&format!("MA-{suffix}"), today % 7 + 1, 540, 600)).await.unwrap();
    let v2 = published_version(&registry, &node, "timetable", v1).await;
    wait_for("the changed timetable on the node", Duration::from_secs(30), || {
        status(&addr)["snapshots"]["timetable"].as_u64() == Some(v2)
    });
    assert_eq!(status(&addr)["current_entry"]["course_id"], course_id.as_str());

    let registry_rows: i64 = registry
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM node_snapshots WHERE node_id = $1 AND published", &[&node])
        .await
        .unwrap()
        .get(0);
    assert!(registry_rows >= 2, "timetable and roster recorded as published: {registry_rows}");

    assert!(edge.stop(), "the node stops cleanly");
    assert!(downlink.stop(), "the downlink stops cleanly on SIGTERM");
    for db in [registry, timetable, course, users] {
        db.drop_now().await;
    }
}
