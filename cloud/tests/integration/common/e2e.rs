//! Helpers for tests that run the real binaries as separate processes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child process killed (SIGKILL) when the test ends, whatever happens.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// SIGTERM, then waits up to 15 s; true on a clean exit.
    pub fn stop(mut self) -> bool {
        unsafe { libc_kill(self.0.id() as i32, 15) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// The node binary, built by `cargo test --workspace` next to this test's binary.
pub fn edge_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("nimbus-edge");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p nimbus-edge` (CI's cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// `nimbus-cloud <args>` with `env`; its probes on a free loopback port unless `env` says where
/// (tests run many roles at once, and the default port is one).
pub fn cloud(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nimbus-cloud"));
    // The tests' broker unless the test says otherwise: never the one a developer's stack reads.
    c.args(args)
        .env("RUST_LOG", "warn")
        .env("NIMBUS_PROBE_BIND", "127.0.0.1:0")
        .env("KAFKA_BROKERS", super::kafka_brokers());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// One HTTP/1.1 request over a raw socket; returns (status, JSON body).
pub fn http(addr: &str, method: &str, path: &str, body: Option<Value>, token: Option<&str>) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{auth}\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let json = out.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b.trim()).ok()).unwrap_or(Value::Null);
    (status, json)
}

pub fn tap(reader: &str, uids: &[&str]) -> Vec<String> {
    let s = TcpStream::connect(reader).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut lines = BufReader::new(s).lines();
    uids.iter()
        .map(|u| {
            writeln!(w, "{u}").unwrap();
            lines.next().unwrap().unwrap()
        })
        .collect()
}

/// SIGKILL, as a crash.
pub fn sigkill(p: &mut Proc) {
    let _ = p.0.kill();
    let _ = p.0.wait();
}

/// The environment of `nimbus-cloud` roles in an end-to-end test: the test's own registry and
/// attendance databases, a private broker, and a consumer group primed at the end of the shared
/// topics (so only this test's events are read). `tag` keeps parallel tests apart.
pub async fn role_env(
    tag: &str,
    broker_url: &str,
    brokers: &str,
    registry_db: &super::TestDb,
    attendance_db: &super::TestDb,
) -> Vec<(&'static str, String)> {
    use nimbus_core::topics::Topic;
    let group = format!("{tag}-attendance");
    super::prime_group(
        brokers,
        &group,
        &[Topic::TimetableEvents, Topic::CourseEvents, Topic::EnrollmentEvents, Topic::AttendanceEvents],
    )
    .await;
    let (user, password) = nimbus_sync::testing::CLOUD_USER;
    vec![
        ("DATABASE_URL", super::database_server()),
        ("NIMBUS_REGISTRY_DB", registry_db.name.clone()),
        ("KAFKA_BROKERS", brokers.to_owned()),
        ("MQTT_URL", broker_url.to_owned()),
        ("MQTT_USERNAME", user.to_owned()),
        ("MQTT_PASSWORD", password.to_owned()),
        ("NIMBUS_ENV", "development".to_owned()),
        ("INGEST_GROUP", tag.to_owned()),
        ("INGEST_INSTANCE", tag.to_owned()),
        ("NIMBUS_SERVICE_DB", attendance_db.name.clone()),
        ("NIMBUS_WORKER_GROUP", group),
    ]
}

/// Writes `sessions` closed classes of `students` each into a node's outbox at `db` (the node's
/// `node.db`), as if it had been offline while teaching; every id carries `tag`.
pub fn prefill_sessions(db: &Path, tag: &str, sessions: usize, students: usize) {
    use nimbus_core::event::attendance::{AttendanceMarkedPayload, AttendanceStatus, StudentAttendance};
    use nimbus_core::topics::Topic;
    use nimbus_edge::clock::{Clock, SystemClock};
    use nimbus_edge::outbox::{self, Priority};

    let store = nimbus_edge::store::Store::open(db).unwrap();
    let now = SystemClock::new().now();
    store
        .with(|c| {
            let tx = c.transaction()?;
            for i in 0..sessions {
                let mut p = AttendanceMarkedPayload {
                    attendance_id: format!("{tag}-session-{i}"),
                    entry_id: format!("entry-{i}"),
                    course_id: format!("course-{tag}-{}", i % 12),
                    course_name: "Offline week".into(),
                    class_date: now.local.date(),
                    marked_by: "faculty-x".into(),
                    marked_at: now.utc,
                    student_records: (0..students)
                        .map(|s| StudentAttendance {
                            student_id: format!("student-{tag}-{s}"),
                            status: if s % 3 == 2 { AttendanceStatus::Absent } else { AttendanceStatus::Present },
                            remarks: None,
                        })
                        .collect(),
                    ..Default::default()
                };
                p.recount();
                outbox::append(&tx, "ATTENDANCE_MARKED", Topic::AttendanceEvents, Priority::Critical, &p, &now)?;
            }
            tx.commit()?;
            Ok(())
        })
        .unwrap();
}

/// A simulated classroom node (`nimbus-edge --simulate`) started from its config file, once it
/// printed its ready line.
pub struct Node {
    /// The process (killed when dropped).
    pub proc: Proc,
    /// Its LAN server's address.
    pub http: String,
    /// Its simulated reader's address.
    pub reader: String,
}

/// Starts `nimbus-edge --simulate --config <config>` and waits for its ready line. The config file
/// wins over the environment's overrides (CI exports MQTT_URL).
pub fn start_simulated_node(config: &Path) -> Node {
    use std::process::Stdio;
    let mut command = Command::new(edge_binary());
    nimbus_edge::config::without_env_overrides(&mut command);
    let mut child = command
        .args(["--simulate", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.find_map(|l| l.ok().filter(|l| l.starts_with("nimbus-edge ready"))).expect("node ready line");
    std::thread::spawn(move || for _ in lines {});
    let field = |k: &str| ready.split_whitespace().find_map(|w| w.strip_prefix(k)).unwrap().to_owned();
    Node { proc: Proc(child), http: field("http="), reader: field("reader=") }
}

/// A fresh test database with `database`'s migrations applied (one of the seed's service
/// databases, by name).
pub async fn migrated(database: &str) -> super::TestDb {
    let db = super::TestDb::create().await;
    nimbus_cloud::db::migrate(&db.pool, nimbus_cloud::db::migrations_for(database).unwrap()).await.unwrap();
    db
}

/// Polls `check` every 250 ms until it gives a value (returned) or `within` passes (panics
/// naming `what`).
pub fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The body of a `201 Created`; panics with the body otherwise.
pub fn created(what: &str, (status, body): (u16, Value)) -> Value {
    assert_eq!(status, 201, "creating {what}: {body}");
    body
}

/// The fresh service databases of a whole-cloud end-to-end test.
pub struct StackDatabases {
    pub registry: super::TestDb,
    pub timetable: super::TestDb,
    pub course: super::TestDb,
    pub users: super::TestDb,
    pub content: super::TestDb,
    pub attendance: super::TestDb,
    pub notification: super::TestDb,
    pub announcement: super::TestDb,
    pub communication: super::TestDb,
}

impl StackDatabases {
    /// Drops them all.
    pub async fn drop_all(self) {
        for db in [
            self.registry,
            self.timetable,
            self.course,
            self.users,
            self.content,
            self.attendance,
            self.notification,
            self.announcement,
            self.communication,
        ] {
            db.drop_now().await;
        }
    }
}

/// A whole cloud for an end-to-end test, before any role runs: every service database fresh, a
/// private broker that knows one node, the roles' environment (the API on a free port, the
/// downlink reconciling every second, a bootstrap admin), and the node registered with an argon2
/// hash of its password. Names carry a random suffix, so such tests run side by side.
pub struct Stack {
    /// The random part of every name.
    pub suffix: String,
    /// The node's id, its broker password and its room.
    pub node: String,
    pub node_password: String,
    pub room: String,
    /// The private broker (drop it to take the uplink away).
    pub broker: nimbus_sync::testing::Mosquitto,
    /// `host:port` of the API.
    pub api: String,
    /// The bootstrap administrator.
    pub admin_email: String,
    pub admin_password: String,
    /// The environment every `nimbus-cloud` role of the test gets.
    pub env: Vec<(&'static str, String)>,
    /// The databases.
    pub dbs: StackDatabases,
}

impl Stack {
    /// Prepares the stack; node ids start with `prefix`; `extra(api)` adds variables that depend
    /// on the API's address.
    pub async fn prepare(prefix: &str, extra: impl FnOnce(&str) -> Vec<(&'static str, String)>) -> Stack {
        use argon2::password_hash::rand_core::OsRng;
        use argon2::password_hash::{PasswordHasher, SaltString};
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let (node, node_password) = (format!("{prefix}-{suffix}"), format!("pw-{suffix}-node"));
        let room = format!("{}-{suffix}", prefix.to_uppercase());
        let broker = nimbus_sync::testing::Mosquitto::start(&[(&node, &node_password)]);
        let dbs = StackDatabases {
            registry: super::TestDb::create().await,
            timetable: migrated("timetable_service_db").await,
            course: migrated("course_service_db").await,
            users: migrated("user_service_db").await,
            content: migrated("content_service_db").await,
            attendance: migrated("attendance_service_db").await,
            notification: migrated("notification_service_db").await,
            announcement: migrated("announcement_service_db").await,
            communication: migrated("communication_service_db").await,
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let api = format!("127.0.0.1:{port}");
        let (cloud_user, cloud_password) = nimbus_sync::testing::CLOUD_USER;
        let (admin_email, admin_password) = (format!("admin-{suffix}@campus.test"), format!("admin-{suffix}-secret"));
        let mut env = vec![
            ("DATABASE_URL", super::database_server()),
            ("NIMBUS_REGISTRY_DB", dbs.registry.name.clone()),
            ("TIMETABLE_DATABASE_URL", dbs.timetable.url.clone()),
            ("COURSE_DATABASE_URL", dbs.course.url.clone()),
            ("USER_DATABASE_URL", dbs.users.url.clone()),
            ("CONTENT_DATABASE_URL", dbs.content.url.clone()),
            ("ATTENDANCE_DATABASE_URL", dbs.attendance.url.clone()),
            ("NOTIFICATION_DATABASE_URL", dbs.notification.url.clone()),
            ("ANNOUNCEMENT_DATABASE_URL", dbs.announcement.url.clone()),
            ("COMMUNICATION_DATABASE_URL", dbs.communication.url.clone()),
            ("NIMBUS_CONTENT_MONGO_DB", format!("e2e_{prefix}_{suffix}")),
            ("NIMBUS_REDIS_PREFIX", format!("e2e-{suffix}:")),
            ("KAFKA_BROKERS", super::kafka_brokers()),
            ("MQTT_URL", broker.url.clone()),
            ("MQTT_USERNAME", cloud_user.to_owned()),
            ("MQTT_PASSWORD", cloud_password.to_owned()),
            ("NIMBUS_API_BIND", api.clone()),
            ("NIMBUS_ADMIN_EMAIL", admin_email.clone()),
            ("NIMBUS_ADMIN_PASSWORD", admin_password.clone()),
            ("DOWNLINK_INTERVAL_SECS", "1".to_owned()),
        ];
        env.extend(extra(&api));
        // The registry keeps the argon2 hash of the node's credential; the node and the broker
        // the password.
        let hash = argon2::Argon2::default()
            .hash_password(node_password.as_bytes(), &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(cloud(&["migrate", "edge_registry_db"], &env).status().unwrap().success());
        let register = ["nodes", "register", &node, "--room", &room, "--credential-hash", &hash];
        assert!(cloud(&register, &env).status().unwrap().success());
        Stack { suffix, node, node_password, room, broker, api, admin_email, admin_password, env, dbs }
    }

    /// Starts `nimbus-cloud api` and waits until it answers `/health`.
    pub fn start_api(&self) -> Proc {
        let api = Proc(cloud(&["api"], &self.env).spawn().unwrap());
        wait_for("the API", Duration::from_secs(60), || {
            TcpStream::connect(&self.api)
                .ok()
                .and_then(|_| (http(&self.api, "GET", "/health", None, None).0 == 200).then_some(()))
        });
        api
    }

    /// The config file of a simulated node for this stack's node, under `dir`.
    pub fn node_config(&self, dir: &Path, extra_toml: &str) -> PathBuf {
        let config = dir.join("node.toml");
        std::fs::write(
            &config,
            format!(
                "node_id = \"{}\"\nroom_id = \"{}\"\ndata_dir = \"{}\"\n[http]\nbind = \"127.0.0.1:0\"\n\
                 [reader]\nsimulated_bind = \"127.0.0.1:0\"\n[cloud]\nmqtt_url = \"{}\"\nmqtt_password = \"{}\"\n\
                 [discovery]\nenabled = false\n{extra_toml}",
                self.node,
                self.room,
                dir.join("data").display(),
                self.broker.url,
                self.node_password
            ),
        )
        .unwrap();
        config
    }
}

/// Through the API as `admin`: a department, program, subject and course `name` taught by
/// `faculty_id`, and a published timetable that has it in `room` for an hour from ten minutes
/// ago, today. Codes carry `suffix`. Returns the course id.
pub fn course_running_now(api: &str, admin: &str, room: &str, suffix: &str, name: &str, faculty_id: &str) -> String {
    use chrono::{Datelike, Timelike};
    use serde_json::json;
    let post = |path: &str, body: Value| http(api, "POST", path, Some(body), Some(admin));
    let tag = format!("{}{suffix}", name.chars().next().unwrap_or('C').to_ascii_uppercase());
    let dept = created("department", post("/api/v1/departments", json!({"code": format!("D{tag}"), "name": "Dept"})));
    let prog = created(
        "program",
        post("/api/v1/programs", json!({"department_id": dept["id"], "code": format!("P{tag}"), "name": "BSc"})),
    );
    let subj = created(
        "subject",
        post(
            "/api/v1/subjects",
            json!({"department_id": dept["id"], "code": format!("S{tag}"), "name": name, "credits": 4}),
        ),
    );
    let course = created(
        "course",
        post(
            "/api/v1/courses",
            json!({"course_code": format!("C{}", &tag[..5.min(tag.len())]), "course_name": name, "subject_id": subj["id"],
                   "department_id": dept["id"], "program_id": prog["id"], "semester": 1, "academic_year": 2026,
                   "max_students": 30}),
        ),
    );
    let course_id = course["id"].as_str().unwrap().to_owned();
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
            json!({"timetable_id": tt["id"], "course_id": course_id, "course_name": name, "faculty_id": faculty_id,
                   "room_id": r["id"], "day_of_week": now.weekday().number_from_monday(),
                   "start_time": hm(start), "end_time": hm(start + 59)}),
        ),
    );
    let (status, body) = post(&format!("/api/v1/timetables/{}/publish", tt["id"].as_str().unwrap()), json!({}));
    assert_eq!(status, 200, "{body}");
    course_id
}

/// Logs in through the API; the access token.
pub fn login(api: &str, email: &str, password: &str) -> String {
    let (status, body) =
        http(api, "POST", "/api/v1/auth/login", Some(serde_json::json!({"email": email, "password": password})), None);
    assert_eq!(status, 200, "login of {email}: {body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// A faculty member the admin creates through the API, with the course service's profile (its
/// worker does not run in these tests, so the profile is written as the worker would) and a
/// classroom PIN set with their own account; returns their user id and staff number.
pub async fn faculty_with_pin(
    stack: &Stack,
    admin: &str,
    email: &str,
    name: (&str, &str),
    pin: &str,
) -> (String, String) {
    let password = "faculty-pass-123";
    let faculty = created(
        "faculty",
        http(
            &stack.api,
            "POST",
            "/api/v1/users",
            Some(serde_json::json!({"email": email, "password": password, "role": "faculty",
                        "first_name": name.0, "last_name": name.1})),
            Some(admin),
        ),
    );
    let (id, staff_number) = (faculty["id"].as_str().unwrap().to_owned(), faculty["register_no"].to_string());
    let full_name = format!("{} {}", name.0, name.1);
    stack
        .dbs
        .course
        .pool
        .get()
        .await
        .unwrap()
        .execute("INSERT INTO faculties (user_id, name) VALUES ($1, $2)", &[&id, &full_name])
        .await
        .unwrap();
    let own = login(&stack.api, email, password);
    let body = serde_json::json!({"current_password": password, "pin": pin});
    let (status, answer) = http(&stack.api, "PUT", "/api/v1/me/classroom-pin", Some(body), Some(&own));
    assert_eq!(status, 204, "{answer}");
    (id, staff_number)
}
