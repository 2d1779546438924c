//! The node is killed with SIGKILL while taps stream in over the simulated reader; after a
//! restart, every tap it acknowledged is in the database exactly once, and every stored tap is
//! interpreted.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nimbus_edge::store::Store;

struct Node {
    child: Child,
    reader: String,
    http: String,
}

fn start_node(config: &Path) -> Node {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nimbus-edge"));
    // The given config file must win over overrides in this environment (CI exports MQTT_URL).
    nimbus_edge::config::without_env_overrides(&mut command);
    let mut child = command
        .args(["--simulate", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nimbus-edge");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("nimbus-edge ready") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).expect("node printed its ready line");
    let field =
        |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))).unwrap().to_owned();
    Node { reader: field("reader"), http: field("http"), child }
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("node.toml");
    std::fs::write(
        &path,
        format!(
            "node_id = \"crash-test\"\nroom_id = \"demo-101\"\ndata_dir = \"{}\"\n\
             [http]\nbind = \"127.0.0.1:0\"\n[reader]\nsimulated_bind = \"127.0.0.1:0\"\n[cloud]\nenabled = false\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

/// Streams `uids` over one connection, pipelined, and returns (uid, reply) for every reply
/// received before the connection broke. Calls `on_ack(count)` after each reply.
fn stream_taps(addr: &str, uids: Vec<String>, kill_after: usize, kill: impl FnOnce()) -> Vec<(String, String)> {
    let stream = TcpStream::connect(addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sent = uids.clone();
    std::thread::spawn(move || {
        for uid in sent {
            if writer.write_all(format!("{uid}\n").as_bytes()).is_err() {
                break;
            }
        }
    });
    let mut acked = Vec::new();
    let mut kill = Some(kill);
    for (uid, line) in uids.into_iter().zip(BufReader::new(stream).lines()) {
        let Ok(line) = line else { break };
        acked.push((uid, line));
        if acked.len() == kill_after {
            if let Some(k) = kill.take() {
                k();
            }
        }
    }
    acked
}

#[test]
fn every_tap_acknowledged_before_a_sigkill_survives_the_restart_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut node = start_node(&config);

    // The faculty card opens the demo class running now; then a stream of students (repeats are
    // duplicates) and distinct unknown cards.
    let mut uids = vec!["FACA0001".to_owned()];
    for i in 0..3000u32 {
        uids.push(if i % 7 == 0 { format!("5A00000{}", i % 5 + 1) } else { format!("{:08X}", 0xB000_0000u32 + i) });
    }
    let pid = node.child.id();
    let acked = stream_taps(&node.reader, uids.clone(), 400, move || {
        // SIGKILL mid-stream: no chance to flush or shut down.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let status = node.child.wait().unwrap();
    assert!(!status.success(), "the node was killed");
    assert!(acked.len() >= 400, "acknowledged {} taps before the kill", acked.len());
    assert!(acked.len() < uids.len(), "the kill interrupted the stream ({} of {})", acked.len(), uids.len());
    assert!(acked.iter().all(|(_, r)| ["accepted", "duplicate", "unknown_card"].contains(&r.as_str())), "{acked:?}");

    // Restart on the same data; a few more taps work; then stop it cleanly with SIGTERM.
    let mut node = start_node(&config);
    let more = stream_taps(&node.reader, vec!["5A000001".into(), "C0FFEE01".into()], usize::MAX, || {});
    assert_eq!(more.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>(), ["duplicate", "unknown_card"]);
    let health = http_get(&node.http, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    unsafe { libc::kill(node.child.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let status = node.child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(15));

    let store = Store::open(&dir.path().join("data/node.db")).unwrap();
    let (stored, uninterpreted): (HashMap<String, i64>, i64) = store
        .with(|c| {
            let mut stmt = c.prepare("SELECT card_uid, count(*) FROM taps GROUP BY card_uid")?;
            let counts = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
            let open: i64 = c.query_row("SELECT count(*) FROM taps WHERE outcome IS NULL", [], |r| r.get(0))?;
            Ok((counts, open))
        })
        .unwrap();
    assert_eq!(uninterpreted, 0, "every stored tap is interpreted after the restart");

    let mut acked_count: HashMap<&str, i64> = HashMap::new();
    for (uid, _) in acked.iter().chain(more.iter()) {
        *acked_count.entry(uid).or_default() += 1;
    }
    let mut sent_count: HashMap<&str, i64> = HashMap::new();
    for uid in uids.iter().map(String::as_str).chain(["5A000001", "C0FFEE01"]) {
        *sent_count.entry(uid).or_default() += 1;
    }
    for (uid, n) in &acked_count {
        let have = stored.get(*uid).copied().unwrap_or(0);
        assert!(have >= *n, "{uid}: acknowledged {n} times, stored {have}");
    }
    for (uid, have) in &stored {
        let sent = sent_count.get(uid.as_str()).copied().unwrap_or(0);
        assert!(*have <= sent, "{uid}: stored {have} times but sent {sent}: duplicated");
    }
    // Students' marks are unique per session (the schema's key) and each came from a tap.
    let marks: i64 = store.with(|c| Ok(c.query_row("SELECT count(*) FROM marks", [], |r| r.get(0))?)).unwrap();
    assert!((1..=5).contains(&marks), "{marks} marks");
    eprintln!(
        "crash_recovery: {} taps acknowledged before SIGKILL, {} stored after restart, none lost or doubled",
        acked.len(),
        stored.values().sum::<i64>()
    );
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut out);
    out
}
