//! The notification service end to end, as separate processes: `nimbus-cloud api` and
//! `nimbus-cloud worker --service notification` over the real broker, PostgreSQL and an SMTP
//! server. A user who forgot their password asks for a reset without signing in, receives one
//! e-mail whose link resets it, and signs in with the new password; an administrator's message
//! reaches the user's inbox and mailbox once.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common;
use crate::common::e2e::{Proc, Stack, cloud, course_running_now, created, http, login, wait_for};
use crate::common::smtp::SmtpSink;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_through_the_mailed_link_and_admin_messages_reach_the_inbox() {
    let sink = SmtpSink::start();
    let port = sink.port;
    let stack = Stack::prepare("ntf", |api| {
        vec![
            ("SMTP_HOST", "127.0.0.1".to_owned()),
            ("SMTP_PORT", port.to_string()),
            ("SMTP_FROM", "NimbusU <noreply@campus.test>".to_owned()),
            ("NIMBUS_RESET_URL", format!("http://{api}/reset-password")),
        ]
    })
    .await;
    let group = format!("notification-e2e-{}", stack.suffix);
    let topics = nimbus_cloud::worker::subscriptions(nimbus_core::groups::group_for_service("notification").unwrap());
    common::prime_group(&common::kafka_brokers(), &group, &topics).await;
    let _api_proc = stack.start_api();
    let mut env = stack.env.clone();
    env.push(("NIMBUS_WORKER_GROUP", group));
    let _worker = Proc(cloud(&["worker", "--service", "notification"], &env).spawn().unwrap());
    let api = stack.api.clone();
    let admin = login(&api, &stack.admin_email, &stack.admin_password);

    let email = format!("forgetful-{}@campus.test", stack.suffix);
    let user = created(
        "student",
        http(
            &api,
            "POST",
            "/api/v1/users",
            Some(json!({"email": email, "password": "first-password-1", "role": "student", "first_name": "Fay"})),
            Some(&admin),
        ),
    );
    let user_id = user["id"].as_str().unwrap().to_owned();
    // USER_CREATED: a welcome e-mail (the bootstrap administrator gets one too).
    let welcome = sink.wait_for_mail(&email, "Welcome to NimbusU", Duration::from_secs(60));
    assert!(welcome.body.contains(&email), "{}", welcome.body);

    // Forgot password, not signed in: 202 and nothing that says whether the address exists.
    let (status, body) = http(&api, "POST", "/api/v1/auth/password-reset", Some(json!({"email": email})), None);
    assert_eq!((status, &body), (202, &json!({"status": "accepted"})));
    let (status, ghost) =
        http(&api, "POST", "/api/v1/auth/password-reset", Some(json!({"email": "nobody@campus.test"})), None);
    assert_eq!((status, ghost), (202, body));
    let reset = sink.wait_for_mail(&email, "Reset your NimbusU password", Duration::from_secs(60));
    let link = reset
        .body
        .split_whitespace()
        .find(|w| w.starts_with(&format!("http://{api}/reset-password?token=")))
        .unwrap_or_else(|| panic!("a reset link in {:?}", reset.body));
    let token = link.split_once("token=").unwrap().1.to_owned();
    let (status, _) = http(
        &api,
        "POST",
        "/api/v1/auth/password-reset/confirm",
        Some(json!({"token": token, "new_password": "second-password-2"})),
        None,
    );
    assert_eq!(status, 204, "the mailed token resets the password");
    // Once mailed (the row settled right after the server's 250), the link is gone from the
    // notification database.
    let n = stack.dbs.notification.pool.get().await.unwrap();
    let leaks = || async {
        let row = n
            .query_one(
                "SELECT count(*) FROM notification_queue q JOIN notifications n ON n.id = q.notification_id
                 WHERE q.body LIKE '%' || $1 || '%' OR n.message LIKE '%' || $1 || '%' OR n.data::text LIKE '%' || $1 || '%'",
                &[&token],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while leaks().await > 0 {
        assert!(std::time::Instant::now() < deadline, "the reset token stays nowhere in notification_service_db");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let own = login(&api, &email, "second-password-2");
    let (status, _) =
        http(&api, "POST", "/api/v1/auth/login", Some(json!({"email": email, "password": "first-password-1"})), None);
    assert_eq!(status, 401, "the old password no longer works");

    // Quiet hours and digests: a time zone PostgreSQL does not know is refused. The window lies
    // hours away from now in Berlin (UTC+1 or +2), so the admin's message below goes out at once
    // whenever the test runs.
    let utc_hour = chrono::Timelike::hour(&chrono::Utc::now());
    let (quiet_start, quiet_end) =
        (format!("{:02}:00:00", (utc_hour + 6) % 24), format!("{:02}:00:00", (utc_hour + 8) % 24));
    let (status, bad) =
        http(&api, "PUT", "/api/v1/me/notification-settings", Some(json!({"time_zone": "Mars/Olympus"})), Some(&own));
    assert_eq!((status, bad["details"]["fields"][0]["field"].as_str()), (422, Some("time_zone")), "{bad}");
    let (status, saved) = http(
        &api,
        "PUT",
        "/api/v1/me/notification-settings",
        Some(
            json!({"time_zone": "Europe/Berlin", "quiet_start": quiet_start, "quiet_end": quiet_end, "digest": "off"}),
        ),
        Some(&own),
    );
    assert_eq!((status, saved["time_zone"].as_str()), (200, Some("Europe/Berlin")), "{saved}");

    // The student has the app open twice: on this api instance and on a second one.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let api2 = format!("127.0.0.1:{port}");
    let mut env2 = stack.env.clone();
    env2.retain(|(k, _)| *k != "NIMBUS_API_BIND");
    env2.push(("NIMBUS_API_BIND", api2.clone()));
    let _api2_proc = Proc(cloud(&["api"], &env2).spawn().unwrap());
    wait_for("the second API", Duration::from_secs(60), || {
        (std::net::TcpStream::connect(&api2).is_ok() && http(&api2, "GET", "/health", None, None).0 == 200)
            .then_some(())
    });
    let streams = [event_stream(&api, &own), event_stream(&api2, &own)];
    let others = event_stream(&api2, &admin);

    // An administrator's message: inbox and mailbox, once; read marks.
    let posted = std::time::Instant::now();
    let (status, sent) = http(
        &api,
        "POST",
        "/api/v1/notifications/send",
        Some(json!({
            "notification_id": "", "recipient_user_id": user_id, "notification_type": "general",
            "title": "Library closes early", "message": "At 4 pm today.", "channels": ["in_app", "email"],
            "priority": "high", "scheduled_at": null, "expires_at": null
        })),
        Some(&admin),
    );
    assert_eq!(status, 202, "{sent}");
    for (i, stream) in streams.iter().enumerate() {
        let event = stream.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("stream {i} got nothing"));
        assert!(event.contains("Library closes early"), "stream {i}: {event}");
        println!(
            "live stream {i}: the notification arrived {} ms after the admin's request",
            posted.elapsed().as_millis()
        );
    }
    assert!(others.try_recv().is_err(), "another user's stream hears nothing of it");
    let (_, forbidden) = http(&api, "POST", "/api/v1/notifications/send", Some(json!({})), Some(&own));
    assert_eq!(forbidden["code"], "FORBIDDEN", "students cannot send: {forbidden}");
    let inbox = wait_for("the in-app notification", Duration::from_secs(60), || {
        let (_, page) = http(&api, "GET", "/api/v1/me/notifications", None, Some(&own));
        (page["total"] == 1).then_some(page)
    });
    let item: &Value = &inbox["items"][0];
    assert_eq!((item["title"].as_str(), item["read_at"].is_null()), (Some("Library closes early"), true));
    sink.wait_for_mail(&email, "Library closes early", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.messages().iter().filter(|m| m.subject == "Library closes early").count(), 1);
    assert_eq!(sink.messages().iter().filter(|m| m.subject.starts_with("Reset")).count(), 1, "nobody@ got nothing");
    assert_eq!(http(&api, "GET", "/api/v1/me/notifications/unread-count", None, Some(&own)).1["unread"], 1);
    let id = item["id"].as_str().unwrap();
    let (status, _) = http(&api, "POST", &format!("/api/v1/me/notifications/{id}/read"), None, Some(&own));
    assert_eq!(status, 204);
    assert_eq!(http(&api, "GET", "/api/v1/me/notifications/unread-count", None, Some(&own)).1["unread"], 0);
    // Someone else's notification is not found, not readable.
    let (status, _) = http(&api, "POST", &format!("/api/v1/me/notifications/{id}/read"), None, Some(&admin));
    assert_eq!(status, 404);
    let (status, history) = http(&api, "GET", &format!("/api/v1/users/{user_id}/notifications"), None, Some(&admin));
    assert_eq!(status, 200);
    assert!(history["total"].as_i64().unwrap() >= 4, "welcome, reset, and the message on two channels: {history}");
    let (status, stats) = http(&api, "GET", "/api/v1/notifications/statistics", None, Some(&admin));
    let sent: i64 = stats["rows"].as_array().unwrap().iter().map(|r| r["sent"].as_i64().unwrap()).sum();
    assert!(status == 200 && sent >= 4, "the day's statistics count what went out: {stats}");

    // Templates: one using a variable it does not declare is refused, naming it.
    let (status, refused) = http(
        &api,
        "PUT",
        "/api/v1/notification-templates/template-room-change/email",
        Some(json!({"notification_type": "timetable", "subject": "Room change", "body": "Now in {{ roomm }}",
                    "variables": ["room"]})),
        Some(&admin),
    );
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("roomm"), "the unknown variable is named: {refused}");
    let (status, _) = http(
        &api,
        "PUT",
        "/api/v1/notification-templates/template-room-change/email",
        Some(json!({"notification_type": "timetable", "subject": "Room change", "body": "Now in {{ room }}",
                    "variables": ["room"]})),
        Some(&admin),
    );
    assert_eq!(status, 200);
    stack.dbs.drop_all().await;
}

/// Opens `GET /api/v1/me/notifications/stream` on `api` as `token`; the `data:` of every
/// `notification` event arrives on the returned channel.
fn event_stream(api: &str, token: &str) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut socket = std::net::TcpStream::connect(api).unwrap();
    write!(
        socket,
        "GET /api/v1/me/notifications/stream HTTP/1.1\r\nHost: {api}\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    // The answer's head arrives once the handler has subscribed: nothing sent after it is missed.
    let mut reader = BufReader::new(socket);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "the stream: {status}");
    let mut header = String::new();
    while reader.read_line(&mut header).unwrap() > 0 && header.trim() != "" {
        header.clear();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut event = String::new();
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_owned();
            } else if let Some(data) = line.strip_prefix("data:")
                && event == "notification"
                && tx.send(data.trim().to_owned()).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// A class closed on a classroom node with a student who did not come ends, through the ingest,
/// the attendance worker's low-attendance job and the notification worker, as exactly one e-mail
/// in the SMTP server's mailbox and one in-app notification on the student's live stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absence_recorded_on_a_node_reaches_the_student_as_one_email_and_one_live_notification() {
    let sink = SmtpSink::start();
    let port = sink.port;
    let stack = Stack::prepare("low", |_| {
        vec![
            ("SMTP_HOST", "127.0.0.1".to_owned()),
            ("SMTP_PORT", port.to_string()),
            ("SMTP_FROM", "NimbusU <noreply@campus.test>".to_owned()),
            ("ATTENDANCE_ALERT_INTERVAL_SECS", "1".to_owned()),
            ("ATTENDANCE_ALERT_MIN_CLASSES", "1".to_owned()),
        ]
    })
    .await;
    let api_proc = stack.start_api();
    let Stack { suffix, room, api, admin_email, admin_password, env, dbs, .. } = &stack;
    let admin = login(api, admin_email, admin_password);
    let post = |path: &str, body: Value| http(api, "POST", path, Some(body), Some(&admin));

    // Who: a faculty member with a classroom PIN, a student; their profiles in the course service.
    let faculty = created(
        "faculty",
        post(
            "/api/v1/users",
            json!({"email": format!("prof-{suffix}@campus.test"), "password": "faculty-pass-123", "role": "faculty",
                   "first_name": "Grace", "last_name": "Hopper"}),
        ),
    );
    let student_email = format!("absent-{suffix}@campus.test");
    let student = created(
        "student",
        post(
            "/api/v1/users",
            json!({"email": student_email, "password": "student-pass-123", "role": "student", "first_name": "Sam"}),
        ),
    );
    let (faculty_id, student_id) =
        (faculty["id"].as_str().unwrap().to_owned(), student["id"].as_str().unwrap().to_owned());
    let staff_number = faculty["register_no"].to_string();
    let course_db = dbs.course.pool.get().await.unwrap();
    course_db
        .execute("INSERT INTO faculties (user_id, name) VALUES ($1, 'Grace Hopper')", &[&faculty_id])
        .await
        .unwrap();
    course_db.execute("INSERT INTO students (user_id, name) VALUES ($1, 'Sam')", &[&student_id]).await.unwrap();
    let own = login(api, &format!("prof-{suffix}@campus.test"), "faculty-pass-123");
    let (status, body) = http(
        api,
        "PUT",
        "/api/v1/me/classroom-pin",
        Some(json!({"current_password": "faculty-pass-123", "pin": "402913"})),
        Some(&own),
    );
    assert_eq!(status, 204, "{body}");

    // What: a course she teaches and he is enrolled in, running now in the node's room.
    let course_id = course_running_now(api, &admin, room, suffix, "Compilers", &faculty_id);
    created("enrollment", post("/api/v1/enrollments", json!({"course_id": course_id, "student_id": student_id})));

    // The cloud's roles, each worker in a consumer group of its own at the end of the topics.
    let brokers = common::kafka_brokers();
    let mut workers = Vec::new();
    for service in ["attendance", "notification"] {
        let group = format!("{service}-e2e-low-{suffix}");
        let topics = nimbus_cloud::worker::subscriptions(nimbus_core::groups::group_for_service(service).unwrap());
        common::prime_group(&brokers, &group, &topics).await;
        let mut vars = env.clone();
        vars.push(("NIMBUS_WORKER_GROUP", group));
        workers.push(Proc(cloud(&["worker", "--service", service], &vars).spawn().unwrap()));
    }
    let _ingest = Proc(cloud(&["ingest"], env).spawn().unwrap());
    let _downlink = Proc(cloud(&["downlink"], env).spawn().unwrap());
    let sam = login(api, &student_email, "student-pass-123");
    let live = event_stream(api, &sam);

    // The node gets the room's timetable and roster; she opens the class and closes it. He never
    // tapped in: absent, 0 of 1 classes.
    let dir = tempfile::tempdir().unwrap();
    let node = common::e2e::start_simulated_node(&stack.node_config(dir.path(), ""));
    let lan = node.http.clone();
    wait_for("the cloud's timetable and roster on the node", Duration::from_secs(60), || {
        let status = http(&lan, "GET", "/api/status", None, None).1;
        (status["current_entry"]["course_id"] == course_id.as_str()).then_some(())
    });
    let (status, token) =
        http(&lan, "POST", "/api/login", Some(json!({"user_id": staff_number, "pin": "402913"})), None);
    assert_eq!(status, 200, "{token}");
    let token = token["token"].as_str().unwrap().to_owned();
    let (status, session) = http(&lan, "POST", "/api/sessions", None, Some(&token));
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();
    let (status, closed) = http(&lan, "POST", &format!("/api/sessions/{id}/close"), None, Some(&token));
    assert_eq!((status, closed["absent_count"].as_u64()), (200, Some(1)), "{closed}");

    let mail = sink.wait_for_mail(&student_email, "Critical: low attendance in Compilers", Duration::from_secs(120));
    assert!(mail.body.contains("Attended: 0 of 1 classes"), "{}", mail.body);
    let event = live.recv_timeout(Duration::from_secs(30)).expect("the in-app notification on the live stream");
    assert!(event.contains("low attendance in Compilers"), "{event}");
    // Exactly one of each, also after the alert job ran a few more times.
    std::thread::sleep(Duration::from_secs(3));
    let to_him: Vec<_> =
        sink.messages().into_iter().filter(|m| m.to == student_email && m.subject.contains("attendance")).collect();
    assert_eq!(to_him.len(), 1, "{to_him:?}");
    assert!(live.try_recv().is_err(), "one live notification");
    let (_, inbox) = http(api, "GET", "/api/v1/me/notifications", None, Some(&sam));
    let alerts = inbox["items"].as_array().unwrap().iter().filter(|i| i["notification_type"] == "attendance").count();
    assert_eq!(alerts, 1, "{inbox}");

    drop(node);
    drop(workers);
    drop(api_proc);
    stack.dbs.drop_all().await;
}
