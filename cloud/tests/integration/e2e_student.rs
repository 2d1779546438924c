//! Students created through the cloud's admin API sign in at a classroom node's student page in
//! Chromium and download their course's material, then do it again with the uplink down. Separate
//! processes on real services: `nimbus-cloud api` (the admin creates two courses taught in the
//! node's room, three students and their enrollments, uploads and publishes a file for one course;
//! students set their classroom PIN, and the admin resets one), `nimbus-cloud downlink` (the roster
//! snapshot carries each enrolled student's PIN hash, register number and e-mail; the manifest
//! the file), a private Mosquitto, and `nimbus-edge`, which caches the file. Then the downlink,
//! the API and the broker stop: the student who used the node before, and one who never did,
//! sign in offline and download the file (bytes verified in the page); a student of the other
//! course sees nothing of it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chrono::{Datelike, Timelike};
use nimbus_edge::testing::{Browser, Screen};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common;
use crate::common::e2e::{Proc, Stack, cloud, created, http, login, wait_for};

const FILE_LEN: usize = 700 * 1024 + 3;

/// A multipart upload to the API over a raw socket; (status, JSON body).
fn upload(api: &str, token: &str, metadata: &str, file_name: &str, bytes: &[u8]) -> (u16, Value) {
    let body = common::content::multipart(Some(metadata), file_name, "application/pdf", bytes);
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /api/v1/content HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={}\r\nContent-Length: {}\r\n\r\n",
        common::content::BOUNDARY,
        body.len()
    );
    s.write_all(head.as_bytes()).and_then(|()| s.write_all(&body)).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let json =
        text.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b.trim()).ok()).unwrap_or(Value::Null);
    (status, json)
}

/// Signs in at the node's student page; the page's text.
async fn sign_in(b: &Browser, base: &str, who: &str, pin: &str) -> String {
    b.goto(&format!("{base}/student/login")).await;
    b.fill("input[name=user_id]", who).await;
    b.fill("input[name=pin]", pin).await;
    b.submit("form[action='/student/login'] button[type=submit]").await;
    b.text().await
}

/// Downloads `path` from within the page: (status, length, sha256 hex).
async fn fetch(b: &Browser, path: &str) -> (u64, u64, String) {
    let v = b
        .script_async(
            "var done = arguments[arguments.length - 1];\
             fetch(arguments[0], { credentials: 'same-origin' }).then(function (r) {\
               return r.arrayBuffer().then(function (buf) {\
                 return crypto.subtle.digest('SHA-256', buf).then(function (d) {\
                   done([r.status, buf.byteLength, Array.from(new Uint8Array(d))\
                     .map(function (x) { return x.toString(16).padStart(2, '0'); }).join('')]);\
                 });\
               });\
             }).catch(function (e) { done([0, 0, String(e)]); });",
            json!([path]),
        )
        .await;
    (v[0].as_u64().unwrap_or(0), v[1].as_u64().unwrap_or(0), v[2].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn students_created_in_the_cloud_sign_in_and_download_at_the_node_with_the_uplink_down() {
    let stack = Stack::prepare("su", |api| vec![("NIMBUS_PUBLIC_URL", format!("http://{api}"))]).await;
    let api_proc = stack.start_api();
    let Stack { suffix, room, api, admin_email, admin_password, env, dbs, .. } = &stack;
    let (suffix, api) = (suffix.clone(), api.clone());
    let admin = login(&api, admin_email, admin_password);
    let post = |path: &str, body: Value| http(&api, "POST", path, Some(body), Some(&admin));

    // Two courses, both taught in the node's room: "here" now, "other" on another weekday.
    let dept =
        created("department", post("/api/v1/departments", json!({"code": format!("D{suffix}"), "name": "Physics"})));
    let prog = created(
        "program",
        post("/api/v1/programs", json!({"department_id": dept["id"], "code": format!("P{suffix}"), "name": "BSc"})),
    );
    let subj = created(
        "subject",
        post(
            "/api/v1/subjects",
            json!({"department_id": dept["id"], "code": format!("S{suffix}"), "name": "Optics", "credits": 4}),
        ),
    );
    let course = |code: String, name: &str| {
        created(
            "course",
            post(
                "/api/v1/courses",
                json!({"course_code": code, "course_name": name, "subject_id": subj["id"], "department_id": dept["id"],
                       "program_id": prog["id"], "semester": 1, "academic_year": 2026, "max_students": 30}),
            ),
        )["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let here = course(format!("OP{}", &suffix[..4]), "Optics");
    let other = course(format!("WV{}", &suffix[..4]), "Waves");

    // Three students: Mira and Noor take Optics, Omar takes Waves. Their profiles reach the
    // course service through user.events (the course worker, not running here), so the rows are
    // written as it would.
    let mut students = Vec::new();
    for (name, course_id) in [("Mira", &here), ("Noor", &here), ("Omar", &other)] {
        let email = format!("{}-{suffix}@campus.test", name.to_lowercase());
        let user = created(
            "student",
            post(
                "/api/v1/users",
                json!({"email": email, "password": "student-pass-123", "role": "student", "first_name": name,
                       "last_name": "Student"}),
            ),
        );
        let id = user["id"].as_str().unwrap().to_owned();
        let register = user["register_no"].to_string();
        dbs.course
            .pool
            .get()
            .await
            .unwrap()
            .execute("INSERT INTO students (user_id, name) VALUES ($1, $2)", &[&id, &format!("{name} Student")])
            .await
            .unwrap();
        created("enrollment", post("/api/v1/enrollments", json!({"course_id": course_id, "student_id": id})));
        students.push((id, register, email));
    }

    // Mira and Omar set their own PINs; Noor forgot hers and the admin sets one.
    for (i, pin) in [(0, "318264"), (2, "550172")] {
        let own = login(&api, &students[i].2, "student-pass-123");
        let body = json!({"current_password": "student-pass-123", "pin": pin});
        let (status, body) = http(&api, "PUT", "/api/v1/me/classroom-pin", Some(body), Some(&own));
        assert_eq!(status, 204, "{body}");
    }
    let (status, body) = http(
        &api,
        "PUT",
        &format!("/api/v1/users/{}/classroom-pin", students[1].0),
        Some(json!({"pin": "907135"})),
        Some(&admin),
    );
    assert_eq!(status, 204, "{body}");
    let own = login(&api, &students[0].2, "student-pass-123");
    let (status, body) = http(
        &api,
        "PUT",
        "/api/v1/me/classroom-pin",
        Some(json!({"current_password": "nope", "pin": "318264"})),
        Some(&own),
    );
    assert_eq!(status, 403, "a wrong password sets nothing: {body}");
    // The PIN is for classroom nodes only: the cloud does not take it as a password.
    let (status, _) =
        http(&api, "POST", "/api/v1/auth/login", Some(json!({"email": students[0].2, "password": "318264"})), None);
    assert_eq!(status, 401);

    // The room's timetable.
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
    let today = now.weekday().number_from_monday();
    for (course_id, name, day) in [(&here, "Optics", today), (&other, "Waves", today % 7 + 1)] {
        created(
            "entry",
            post(
                "/api/v1/timetable-entries",
                json!({"timetable_id": tt["id"], "course_id": course_id, "course_name": name, "faculty_id": "fac-1",
                       "room_id": r["id"], "day_of_week": day, "start_time": hm(start), "end_time": hm(start + 59)}),
            ),
        );
    }
    let (status, body) = post(&format!("/api/v1/timetables/{}/publish", tt["id"].as_str().unwrap()), json!({}));
    assert_eq!(status, 200, "{body}");

    // Optics' lecture notes.
    let file = common::content::pdf_bytes(FILE_LEN);
    let sha = hex::encode(Sha256::digest(&file));
    let meta = json!({"title": "Lenses and mirrors", "course_ids": [here]}).to_string();
    let (status, item) = upload(&api, &admin, &meta, "lenses.pdf", &file);
    assert_eq!(status, 201, "upload: {item}");
    let content_id = item["id"].as_str().or(item["content_id"].as_str()).unwrap().to_owned();
    let (status, body) = post(&format!("/api/v1/content/{content_id}/publish"), json!({}));
    assert_eq!(status, 200, "{body}");

    // The downlink and the node; the roster snapshot brings the students' credentials.
    let downlink = Proc(cloud(&["downlink"], env).spawn().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let config = stack.node_config(dir.path(), "[content]\nretry_base_ms = 200\n");
    let node_proc = common::e2e::start_simulated_node(&config);
    let lan = node_proc.http.clone();
    let mira_token = login(&api, &students[0].2, "student-pass-123");
    wait_for("the roster and the verified file on the node", Duration::from_secs(120), || {
        let status = http(&lan, "GET", "/api/status", None, None).1;
        let roster = status["snapshots"]["roster"].as_u64().is_some_and(|v| v > 1);
        let listed = http(&lan, "GET", "/api/content", None, Some(&mira_token)).1.to_string().contains(&content_id);
        (roster && listed).then_some(())
    });

    // With the cloud up, Mira uses the node from her phone.
    let base = format!("http://{lan}");
    let b = Browser::start(Screen::Phone { width: 390, height: 844 }).await;
    let text = sign_in(&b, &base, &students[0].1, "318264").await;
    assert!(text.contains("Signed in as Mira Student"), "{text}");
    assert!(text.contains("Lenses and mirrors") && text.contains("PDF · 716.8 kB"), "{text}");
    assert!(text.contains("My attendance in this room"), "{text}");
    let path = format!("/student/content/{content_id}");
    assert_eq!(fetch(&b, &path).await, (200, FILE_LEN as u64, sha.clone()), "the file, verified in the page");
    drop(b);

    // The cloud goes away: downlink, API, broker.
    assert!(downlink.stop(), "the downlink stops cleanly");
    assert!(api_proc.stop(), "the API stops cleanly");
    let Stack { broker, dbs, .. } = stack;
    drop(broker);
    assert!(TcpStream::connect(&api).is_err(), "no cloud API any more");

    // Mira again, and Noor, who never used this node, by e-mail: both offline.
    for (who, pin, name) in
        [(students[0].1.clone(), "318264", "Mira"), (students[1].2.to_uppercase(), "907135", "Noor")]
    {
        let b = Browser::start(Screen::Phone { width: 390, height: 844 }).await;
        let text = sign_in(&b, &base, &who, "000000").await;
        assert!(text.contains("Register number or PIN is incorrect."), "{name}: a wrong PIN: {text}");
        let text = sign_in(&b, &base, &who, pin).await;
        assert!(text.contains(&format!("Signed in as {name} Student")), "{text}");
        assert!(text.contains("Lenses and mirrors"), "{name}: {text}");
        assert_eq!(fetch(&b, &path).await, (200, FILE_LEN as u64, sha.clone()), "{name} downloads offline");
    }

    // Omar takes Waves: he signs in, and sees nothing of Optics.
    let b = Browser::start(Screen::Phone { width: 390, height: 844 }).await;
    let text = sign_in(&b, &base, &students[2].1, "550172").await;
    assert!(text.contains("Signed in as Omar Student"), "{text}");
    assert!(!text.contains("Lenses") && !text.contains("Optics"), "{text}");
    assert!(text.contains("No material of your courses is on this node yet."), "{text}");
    assert_eq!(fetch(&b, &path).await.0, 403, "another course's file is refused");

    assert!(node_proc.proc.stop(), "the node stops cleanly");
    let mongo = mongodb::Client::with_uri_str(common::content::mongodb_uri()).await.unwrap();
    mongo.database(&format!("e2e_su_{suffix}")).drop().await.unwrap();
    dbs.drop_all().await;
}
