//! A faculty member created through the cloud's admin API signs in at a classroom node's page in
//! Chromium with the uplink down. Separate processes on real services: `nimbus-cloud api` (the
//! admin creates the faculty member, the course, its assignment and the room's timetable; the
//! faculty member sets a classroom PIN), `nimbus-cloud downlink` (the roster snapshot carries the
//! PIN's argon2 hash, staff number and e-mail), a private Mosquitto, and `nimbus-edge`. Then the
//! downlink, the API and the broker stop, and the faculty member signs in on the node with their
//! staff number (and later their e-mail) and opens the class's session.

use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};
use chrono::{Datelike, Timelike};
use nimbus_edge::testing::{Browser, Screen};
use nimbus_sync::testing::Mosquitto;
use serde_json::{Value, json};

use crate::common;
use crate::common::e2e::{Proc, cloud, created, http, migrated, wait_for};

fn login(api: &str, email: &str, password: &str) -> String {
    let (status, body) =
        http(api, "POST", "/api/v1/auth/login", Some(json!({"email": email, "password": password})), None);
    assert_eq!(status, 200, "login of {email}: {body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faculty_member_created_in_the_cloud_signs_in_at_the_node_with_the_uplink_down() {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let (node, node_password, room) = (format!("cl-{suffix}"), format!("pw-{suffix}-node"), format!("CL-{suffix}"));
    let broker = Mosquitto::start(&[(&node, &node_password)]);
    let registry = common::TestDb::create().await;
    let (timetable, course, users, content) = (
        migrated("timetable_service_db").await,
        migrated("course_service_db").await,
        migrated("user_service_db").await,
        migrated("content_service_db").await,
    );
    let api = format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let (cloud_user, cloud_password) = nimbus_sync::testing::CLOUD_USER;
    let admin_password = format!("admin-{suffix}-secret");
    let env = vec![
        ("DATABASE_URL", common::database_server()),
        ("NIMBUS_REGISTRY_DB", registry.name.clone()),
        ("TIMETABLE_DATABASE_URL", timetable.url.clone()),
        ("COURSE_DATABASE_URL", course.url.clone()),
        ("USER_DATABASE_URL", users.url.clone()),
        ("CONTENT_DATABASE_URL", content.url.clone()),
        ("NIMBUS_CONTENT_MONGO_DB", format!("e2e_classroom_{suffix}")),
        ("NIMBUS_REDIS_PREFIX", format!("e2e-{suffix}:")),
        ("KAFKA_BROKERS", common::kafka_brokers()),
        ("MQTT_URL", broker.url.clone()),
        ("MQTT_USERNAME", cloud_user.to_owned()),
        ("MQTT_PASSWORD", cloud_password.to_owned()),
        ("NIMBUS_API_BIND", api.clone()),
        ("NIMBUS_ADMIN_EMAIL", format!("admin-{suffix}@campus.test")),
        ("NIMBUS_ADMIN_PASSWORD", admin_password.clone()),
        ("DOWNLINK_INTERVAL_SECS", "1".to_owned()),
    ];
    let hash = argon2::Argon2::default()
        .hash_password(node_password.as_bytes(), &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
    assert!(cloud(&["migrate", "edge_registry_db"], &env).status().unwrap().success());
    assert!(
        cloud(&["nodes", "register", &node, "--room", &room, "--credential-hash", &hash], &env)
            .status()
            .unwrap()
            .success()
    );
    let api_proc = Proc(cloud(&["api"], &env).spawn().unwrap());
    wait_for("the API", Duration::from_secs(60), || {
        std::net::TcpStream::connect(&api)
            .ok()
            .and_then(|_| (http(&api, "GET", "/health", None, None).0 == 200).then_some(()))
    });
    let admin = login(&api, &format!("admin-{suffix}@campus.test"), &admin_password);
    let post = |path: &str, body: Value| http(&api, "POST", path, Some(body), Some(&admin));

    // The admin creates the faculty member. Their profile reaches the course service through
    // user.events (the course worker, not running here), so it is written as the worker would.
    let email = format!("Ada-{suffix}@Campus.Test");
    let faculty = created(
        "faculty",
        post(
            "/api/v1/users",
            json!({"email": email, "password": "faculty-pass-123", "role": "faculty",
                   "first_name": "Ada", "last_name": "Lovelace"}),
        ),
    );
    let (faculty_id, staff_number) = (faculty["id"].as_str().unwrap().to_owned(), faculty["register_no"].to_string());
    course
        .pool
        .get()
        .await
        .unwrap()
        .execute("INSERT INTO faculties (user_id, name) VALUES ($1, 'Ada Lovelace')", &[&faculty_id])
        .await
        .unwrap();

    // A course she teaches, running now in the node's room.
    let dept =
        created("department", post("/api/v1/departments", json!({"code": format!("D{suffix}"), "name": "Maths"})));
    let prog = created(
        "program",
        post("/api/v1/programs", json!({"department_id": dept["id"], "code": format!("P{suffix}"), "name": "BSc"})),
    );
    let subj = created(
        "subject",
        post(
            "/api/v1/subjects",
            json!({"department_id": dept["id"], "code": format!("S{suffix}"), "name": "Analysis", "credits": 4}),
        ),
    );
    let code = format!("AN{}", &suffix[..4]);
    let c = created(
        "course",
        post(
            "/api/v1/courses",
            json!({"course_code": code, "course_name": "Analysis", "subject_id": subj["id"], "department_id": dept["id"],
                   "program_id": prog["id"], "semester": 1, "academic_year": 2026, "max_students": 30}),
        ),
    );
    let course_id = c["id"].as_str().unwrap().to_owned();
    created("assignment", post(&format!("/api/v1/courses/{course_id}/faculty"), json!({"faculty_id": faculty_id})));
    let r = created(
        "room",
        post("/api/v1/rooms", json!({"room_number": room, "building": "Main", "capacity": 40, "room_type": "lecture"})),
    );
    let tt = created(
        "timetable",
        post("/api/v1/timetables", json!({"name": "Autumn", "semester_id": "sem-1", "department_id": "dep-1"})),
    );
    let now = chrono::Local::now();
    let start = (now.hour() * 60 + now.minute()).saturating_sub(10).min(1380);
    let hm = |m: u32| format!("{:02}:{:02}:00", m / 60, m % 60);
    created(
        "entry",
        post(
            "/api/v1/timetable-entries",
            json!({"timetable_id": tt["id"], "course_id": course_id, "course_name": "Analysis", "faculty_id": faculty_id,
                   "room_id": r["id"], "day_of_week": now.weekday().number_from_monday(),
                   "start_time": hm(start), "end_time": hm(start + 59)}),
        ),
    );
    let (status, body) = post(&format!("/api/v1/timetables/{}/publish", tt["id"].as_str().unwrap()), json!({}));
    assert_eq!(status, 200, "{body}");

    // She sets her classroom PIN with her own account.
    let own = login(&api, &email, "faculty-pass-123");
    let (status, body) = http(
        &api,
        "PUT",
        "/api/v1/me/classroom-pin",
        Some(json!({"current_password": "faculty-pass-123", "pin": "402913"})),
        Some(&own),
    );
    assert_eq!(status, 204, "{body}");

    // The downlink and the node; the roster snapshot brings her credentials.
    let downlink = Proc(cloud(&["downlink"], &env).spawn().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "node_id = \"{node}\"\nroom_id = \"{room}\"\ndata_dir = \"{}\"\n[http]\nbind = \"127.0.0.1:0\"\n\
             [reader]\nsimulated_bind = \"127.0.0.1:0\"\n[cloud]\nmqtt_url = \"{}\"\nmqtt_password = \"{node_password}\"\n\
             [discovery]\nenabled = false\n",
            dir.path().join("data").display(),
            broker.url
        ),
    )
    .unwrap();
    let node_proc = common::e2e::start_simulated_node(&config);
    let lan = node_proc.http.clone();
    // The simulated node starts with the demo data (versions 1); the cloud's are newer.
    wait_for("the cloud's timetable and roster on the node", Duration::from_secs(60), || {
        let status = http(&lan, "GET", "/api/status", None, None).1;
        let newer = |kind: &str| status["snapshots"][kind].as_u64().is_some_and(|v| v > 1);
        (newer("roster") && newer("timetable") && status["current_entry"]["course_id"] == course_id.as_str())
            .then_some(())
    });

    // The cloud goes away.
    assert!(downlink.stop(), "the downlink stops cleanly");
    assert!(api_proc.stop(), "the API stops cleanly");
    drop(broker);

    let b = Browser::start(Screen::Phone { width: 390, height: 844 }).await;
    let base = format!("http://{lan}");
    b.goto(&format!("{base}/login")).await;
    b.fill("input[name=user_id]", &staff_number).await;
    b.fill("input[name=pin]", "999999").await;
    b.submit("form[action='/login'] button[type=submit]").await;
    let text = b.text().await;
    assert!(text.contains("Staff ID or PIN is incorrect."), "a wrong PIN is refused: {text}");
    b.fill("input[name=user_id]", &staff_number).await;
    b.fill("input[name=pin]", "402913").await;
    b.submit("form[action='/login'] button[type=submit]").await;
    let text = b.text().await;
    assert!(text.contains(&format!("Signed in as Ada Lovelace ({faculty_id})")), "{text}");
    b.submit("form[action='/page/open'] button").await;
    let text = b.text().await;
    assert!(text.contains(&format!("Session opened for {course_id} Analysis.")), "{text}");
    b.submit("form[action='/logout'] button").await;

    // Her e-mail, in any case, works too.
    b.fill("input[name=user_id]", &email.to_uppercase()).await;
    b.fill("input[name=pin]", "402913").await;
    b.submit("form[action='/login'] button[type=submit]").await;
    assert!(b.text().await.contains("Signed in as Ada Lovelace"), "{}", b.text().await);

    assert!(node_proc.proc.stop(), "the node stops cleanly");
    for db in [registry, timetable, course, users, content] {
        db.drop_now().await;
    }
}
