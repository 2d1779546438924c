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

pub fn cloud(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nimbus-cloud"));
    c.args(args).env("RUST_LOG", "warn");
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
