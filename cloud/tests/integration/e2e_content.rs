//! Course material from the admin API to a student's device through the classroom node, every
//! part a separate process on real services (PostgreSQL, Redis, Kafka, Mosquitto, the MongoDB
//! wire server): an admin uploads a 50 MB file through `nimbus-cloud api` and publishes it for a
//! course taught in the node's room; `nimbus-cloud downlink` sends the node its timetable, roster,
//! token keys and manifest; the node (`nimbus-edge`) downloads the file — the connection is cut
//! once mid-file by a proxy (a fault the real server cannot produce on demand) and the node
//! resumes with a Range request — and verifies it. Then the cloud goes away entirely (API,
//! downlink, broker) and a student of the course downloads a Range of the file from the node with
//! the token the cloud issued, verified offline with the key from the downlink; a student of
//! another course, a forged token and a session logged out in the cloud are refused.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Datelike, Timelike};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common;
use crate::common::e2e::{Proc, Stack, cloud, created, login, wait_for};

const SIZE: usize = 50 * 1024 * 1024;
/// The proxy cuts the node's first download after this many response bytes.
const CUT_AFTER: usize = 12 * 1024 * 1024;

/// One HTTP/1.1 exchange: (status, headers lower-cased, body bytes).
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect(addr) else { return (0, String::new(), Vec::new()) };
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    // A server may answer (and close) before it has read the whole body, e.g. when it refuses
    // an upload: the answer is then still there to read.
    let written = s.write_all(head.as_bytes()).and_then(|()| s.write_all(body));
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let Some(split) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
        if let Err(e) = written {
            panic!("{method} {path}: the request could not be sent and nothing came back: {e}");
        }
        return (0, String::new(), out);
    };
    let head = String::from_utf8_lossy(&out[..split]).to_lowercase();
    let mut body = out[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else { return out };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

fn json_call(addr: &str, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut headers = vec![("Content-Type", "application/json".to_owned())];
    if let Some(t) = token {
        headers.push(("Authorization", format!("Bearer {t}")));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, _, bytes) = request(addr, method, path, &headers, body.as_bytes());
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A TCP proxy to `upstream` that cuts the first connection after `CUT_AFTER` response bytes and
/// records the request head of every connection.
struct CuttingProxy {
    addr: String,
    heads: Arc<Mutex<Vec<String>>>,
    cut: Arc<AtomicBool>,
}

impl CuttingProxy {
    fn start(upstream: String) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let cut = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (h, c) = (heads.clone(), cut.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let Ok(mut server) = TcpStream::connect(&upstream) else { continue };
                let first = connections.fetch_add(1, Ordering::SeqCst) == 0;
                let (h, c) = (h.clone(), c.clone());
                let mut client_r = client.try_clone().unwrap();
                let mut server_w = server.try_clone().unwrap();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut head = Vec::new();
                    while let Ok(n) = client_r.read(&mut buf) {
                        if n == 0 || server_w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        if head.len() < 4096 {
                            head.extend_from_slice(&buf[..n.min(4096)]);
                            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                                h.lock().unwrap().push(String::from_utf8_lossy(&head).to_lowercase());
                                head = vec![0; 4096];
                            }
                        }
                    }
                });
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut sent = 0;
                    while let Ok(n) = server.read(&mut buf) {
                        if n == 0 || client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n;
                        if first && sent >= CUT_AFTER {
                            c.store(true, Ordering::SeqCst);
                            let _ = client.shutdown(std::net::Shutdown::Both);
                            let _ = server.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                    }
                });
            }
        });
        CuttingProxy { addr, heads, cut }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_uploaded_through_the_api_reaches_students_from_the_node_even_with_the_cloud_gone() {
    // Nodes reach the cloud's download route through the cutting proxy.
    let proxy = std::cell::OnceCell::new();
    let stack = Stack::prepare("ct", |api| {
        let p = CuttingProxy::start(api.to_owned());
        let url = format!("http://{}", p.addr);
        let _ = proxy.set(p);
        vec![("NIMBUS_PUBLIC_URL", url)]
    })
    .await;
    let proxy = proxy.into_inner().expect("the proxy");
    let api_proc = stack.start_api();
    let Stack { suffix, room, api, admin_email, admin_password, env, dbs, .. } = &stack;
    let (suffix, api) = (suffix.clone(), api.clone());
    let admin = login(&api, admin_email, admin_password);

    // The catalogue: a course taught in the node's room now, and another course elsewhere.
    let dept = created(
        "department",
        json_call(
            &api,
            "POST",
            "/api/v1/departments",
            Some(&admin),
            Some(json!({"code": format!("D{suffix}"), "name": "Computing"})),
        ),
    );
    let prog = created(
        "program",
        json_call(
            &api,
            "POST",
            "/api/v1/programs",
            Some(&admin),
            Some(json!({"department_id": dept["id"], "code": format!("P{suffix}"), "name": "BSc"})),
        ),
    );
    let subj = created(
        "subject",
        json_call(
            &api,
            "POST",
            "/api/v1/subjects",
            Some(&admin),
            Some(json!({"department_id": dept["id"], "code": format!("S{suffix}"), "name": "Networks", "credits": 4})),
        ),
    );
    let new_course = |code: &str| {
        json!({"course_code": code, "course_name": "Networks", "subject_id": subj["id"], "department_id": dept["id"],
               "program_id": prog["id"], "semester": 1, "academic_year": 2026, "max_students": 30})
    };
    let here = created(
        "course",
        json_call(&api, "POST", "/api/v1/courses", Some(&admin), Some(new_course(&format!("N1{}", &suffix[..4])))),
    );
    let elsewhere = created(
        "course",
        json_call(&api, "POST", "/api/v1/courses", Some(&admin), Some(new_course(&format!("N2{}", &suffix[..4])))),
    );
    let (here_id, elsewhere_id) =
        (here["id"].as_str().unwrap().to_owned(), elsewhere["id"].as_str().unwrap().to_owned());

    // Two students, one per course. Their profiles reach the course service from user.events
    // (the course worker, not running here), so the rows are written as it would.
    let mut student_tokens = Vec::new();
    for (i, course_id) in [&here_id, &elsewhere_id].into_iter().enumerate() {
        let email = format!("stu{i}-{suffix}@campus.test");
        let user = created(
            "student",
            json_call(
                &api,
                "POST",
                "/api/v1/users",
                Some(&admin),
                Some(json!({"email": email, "password": "student-pass-123", "role": "student", "first_name": "S"})),
            ),
        );
        let id = user["id"].as_str().or(user["user_id"].as_str()).unwrap().to_owned();
        dbs.course
            .pool
            .get()
            .await
            .unwrap()
            .execute("INSERT INTO students (user_id, name) VALUES ($1, 'Student')", &[&id])
            .await
            .unwrap();
        created(
            "enrollment",
            json_call(
                &api,
                "POST",
                "/api/v1/enrollments",
                Some(&admin),
                Some(json!({"course_id": course_id, "student_id": id})),
            ),
        );
        student_tokens.push(login(&api, &email, "student-pass-123"));
    }

    // The room's timetable: the course runs now.
    let r = created(
        "room",
        json_call(
            &api,
            "POST",
            "/api/v1/rooms",
            Some(&admin),
            Some(json!({"room_number": room, "building": "Main", "capacity": 60, "room_type": "lecture"})),
        ),
    );
    let tt = created(
        "timetable",
        json_call(
            &api,
            "POST",
            "/api/v1/timetables",
            Some(&admin),
            Some(json!({"name": "Autumn", "semester_id": "sem-1", "department_id": "dep-1"})),
        ),
    );
    let now = chrono::Local::now();
    let start = (now.hour() * 60 + now.minute()).saturating_sub(10).min(1380);
    let hm = |m: u32| format!("{:02}:{:02}:00", m / 60, m % 60);
    created(
        "entry",
        json_call(
            &api,
            "POST",
            "/api/v1/timetable-entries",
            Some(&admin),
            Some(json!({
        "timetable_id": tt["id"], "course_id": here_id, "course_name": "Networks", "faculty_id": "fac-1",
        "room_id": r["id"], "day_of_week": now.weekday().number_from_monday(), "start_time": hm(start), "end_time": hm(start + 59)})),
        ),
    );
    let (status, body) = json_call(
        &api,
        "POST",
        &format!("/api/v1/timetables/{}/publish", tt["id"].as_str().unwrap()),
        Some(&admin),
        None,
    );
    assert_eq!(status, 200, "{body}");

    // The admin uploads 50 MB (a PDF by its magic number) for the course and publishes it.
    let mut file = b"%PDF-1.7\n".to_vec();
    let mut block = [0u8; 4096];
    let mut counter: u64 = 0;
    while file.len() < SIZE {
        for chunk in block.chunks_mut(8) {
            counter = counter.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            chunk.copy_from_slice(&counter.to_le_bytes());
        }
        file.extend_from_slice(&block);
    }
    file.truncate(SIZE);
    let sha = hex::encode(Sha256::digest(&file));
    let boundary = format!("nimbus{suffix}");
    let meta = json!({"title": "Lecture notes", "course_ids": [here_id], "tags": ["week-1"]});
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n{meta}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (status, _, answer) = request(
        &api,
        "POST",
        "/api/v1/content",
        &[
            ("Authorization", format!("Bearer {admin}")),
            ("Content-Type", format!("multipart/form-data; boundary={boundary}")),
        ],
        &body,
    );
    let item: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    assert_eq!(status, 201, "upload: {item}");
    let content_id = item["id"].as_str().or(item["content_id"].as_str()).unwrap().to_owned();
    assert!(answer.windows(sha.len()).any(|w| w == sha.as_bytes()), "the cloud hashed what it stored: {item}");
    let (status, body) = json_call(&api, "POST", &format!("/api/v1/content/{content_id}/publish"), Some(&admin), None);
    assert_eq!(status, 200, "{body}");

    // The downlink and the node.
    let downlink = Proc(cloud(&["downlink"], env).spawn().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let config = stack.node_config(dir.path(), "[content]\nretry_base_ms = 200\n");
    let node_proc = common::e2e::start_simulated_node(&config);
    let lan = node_proc.http.clone();
    let student = &student_tokens[0];
    let listing = |token: &str| json_call(&lan, "GET", "/api/content", Some(token), None);
    wait_for("the file verified on the node", Duration::from_secs(180), || {
        let (status, body) = listing(student);
        (status == 200 && body.to_string().contains(&content_id)).then_some(())
    });
    assert!(proxy.cut.load(Ordering::SeqCst), "the first download was cut mid-file");
    let heads = proxy.heads.lock().unwrap().clone();
    let downloads: Vec<&String> =
        heads.iter().filter(|h| h.contains(&format!("/api/v1/edge/content/{content_id}"))).collect();
    assert!(downloads.len() >= 2, "the node came back for the rest: {downloads:?}");
    let resumed = downloads.iter().skip(1).any(|h| {
        h.lines().any(|l| {
            l.strip_prefix("range: bytes=")
                .is_some_and(|r| r.split('-').next().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s > 0))
        })
    });
    assert!(resumed, "the retry asked only for the missing bytes (Range): {downloads:?}");

    // The student logs in on a second device and logs out there: the revocation reaches the node
    // with the next keys snapshot, before the cloud goes away.
    let keys_version = |lan: &str| json_call(lan, "GET", "/api/status", None, None).1["snapshots"]["keys"].as_u64();
    let before = keys_version(&lan);
    let second = login(&api, &format!("stu0-{suffix}@campus.test"), "student-pass-123");
    let (status, body) = json_call(&lan, "GET", "/api/content", Some(&second), None);
    assert_eq!(status, 200, "the second device's token works on the node: {body}");
    assert_eq!(json_call(&api, "POST", "/api/v1/auth/logout", Some(&second), None).0, 204);
    wait_for("a new keys snapshot on the node", Duration::from_secs(60), || {
        (keys_version(&lan) > before).then_some(())
    });
    // The node re-reads its keys every few seconds (token::KEYS_TTL).
    wait_for("the node to refuse the logged-out token", Duration::from_secs(30), || {
        (json_call(&lan, "GET", "/api/content", Some(&second), None).0 == 401).then_some(())
    });

    // The cloud goes away: API, downlink and the broker.
    assert!(downlink.stop(), "the downlink stops cleanly");
    assert!(api_proc.stop(), "the API stops cleanly");
    let Stack { broker, dbs, .. } = stack;
    drop(broker);
    assert_ne!(request(&api, "GET", "/health", &[], b"").0, 200, "no cloud API any more");

    // The student downloads a Range from the node, token verified offline.
    let path = format!("/api/content/{content_id}");
    let auth = |t: &str| ("Authorization", format!("Bearer {t}"));
    let (status, head, bytes) =
        request(&lan, "GET", &path, &[auth(student), ("Range", "bytes=20000000-20999999".into())], b"");
    assert_eq!(status, 206, "{head}");
    assert_eq!(bytes, file[20_000_000..21_000_000], "the node serves the exact bytes");
    assert!(head.contains("content-type: application/pdf") && head.contains(&format!("etag: \"{sha}\"")), "{head}");
    let (status, _, whole) = request(&lan, "GET", &path, &[auth(student)], b"");
    assert_eq!((status, hex::encode(Sha256::digest(&whole))), (200, sha.clone()), "the whole file matches");

    let (status, body) = listing(&student_tokens[1]);
    assert_eq!(status, 200);
    assert!(!body.to_string().contains(&content_id), "another course's student does not see it: {body}");
    let (status, _, _) = request(&lan, "GET", &path, &[auth(&student_tokens[1])], b"");
    assert!(status == 403 || status == 404, "another course's student is refused: {status}");
    let mut forged = student.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(request(&lan, "GET", &path, &[auth(&forged)], b"").0, 401, "a tampered token is refused offline");
    assert_eq!(request(&lan, "GET", &path, &[], b"").0, 401, "no token, no file");
    assert_eq!(request(&lan, "GET", &path, &[auth(&second)], b"").0, 401, "the logged-out session is refused offline");

    assert!(node_proc.proc.stop(), "the node stops cleanly");
    let mongo = mongodb::Client::with_uri_str(common::content::mongodb_uri()).await.unwrap();
    mongo.database(&format!("e2e_ct_{suffix}")).drop().await.unwrap();
    dbs.drop_all().await;
}
