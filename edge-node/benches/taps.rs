//! Tap benchmark: how many taps per second the node makes durable, how long one tap takes from
//! the reader to "durable and interpreted", and the daemon's resident memory idle and under load.
//!
//! Compared in the same run with the floor underneath it: raw SQLite inserting one row per
//! transaction with the same durability settings (WAL, synchronous=FULL).
//!
//!     cargo bench -p nimbus-edge --bench taps
//!
//! Writes to a temporary directory under the current directory (the real disk, not tmpfs).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{FixedOffset, NaiveDate};
use nimbus_core::reader::{CardRead, ReaderKind};
use nimbus_edge::attendance::{Attendance, Rules};
use nimbus_edge::clock::ManualClock;
use nimbus_edge::store::Store;
use nimbus_edge::timetable;

const N: usize = 2000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, total: Duration, mut lat: Vec<Duration>) {
    lat.sort();
    println!(
        "{name:<44} {:>8.0} taps/s   p50 {:>7.3} ms   p99 {:>7.3} ms",
        lat.len() as f64 / total.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
}

fn raw_sqlite(dir: &std::path::Path) {
    let c = rusqlite::Connection::open(dir.join("raw.db")).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, uid TEXT, wall_ms INTEGER)").unwrap();
    let mut lat = Vec::with_capacity(N);
    let start = Instant::now();
    for i in 0..N {
        let t = Instant::now();
        c.execute("INSERT INTO t (uid, wall_ms) VALUES (?1, ?2)", rusqlite::params![format!("{i:08X}"), i as i64])
            .unwrap();
        lat.push(t.elapsed());
    }
    report("raw SQLite insert (1 row/txn, FULL)", start.elapsed(), lat);
}

fn in_process(dir: &std::path::Path) {
    let store = Store::open(&dir.join("node.db")).unwrap();
    let (tt, roster) = timetable::demo("demo-101");
    store.with(|c| timetable::apply_timetable(c, &tt, 0)).unwrap();
    store.with(|c| timetable::apply_roster(c, &roster, 0)).unwrap();
    let local = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(9, 0, 0).unwrap();
    let clock = ManualClock::at_local(local, FixedOffset::east_opt(0).unwrap());
    let att = Attendance::new(store, Arc::new(clock), Rules { room_id: "demo-101".into(), ..Rules::default() });
    let tap = |uid: &str| att.record_tap(CardRead { uid: uid.parse().unwrap(), reader: ReaderKind::Simulated });
    tap("FACA0001").unwrap();
    let mut lat = Vec::with_capacity(N);
    let start = Instant::now();
    for i in 0..N {
        // Mostly unknown cards (each a distinct quarantine row) and students (marks, duplicates).
        let uid =
            if i % 4 == 0 { format!("5A00000{}", i % 5 + 1) } else { format!("{:08X}", 0xB000_0000u32 + i as u32) };
        let t = Instant::now();
        tap(&uid).unwrap();
        lat.push(t.elapsed());
    }
    report("Attendance::record_tap (store + interpret)", start.elapsed(), lat);
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.to_owned()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn end_to_end(dir: &std::path::Path) {
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "node_id = \"bench\"\nroom_id = \"demo-101\"\ndata_dir = \"{}\"\n[http]\nbind = \"127.0.0.1:0\"\n\
             [reader]\nsimulated_bind = \"127.0.0.1:0\"\n[cloud]\nenabled = false\n",
            dir.join("e2e").display()
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_nimbus-edge"));
    // The given config file must win over overrides in this environment (CI exports MQTT_URL).
    nimbus_edge::config::without_env_overrides(&mut command);
    let mut child = command
        .args(["--simulate", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.find_map(|l| l.ok().filter(|l| l.starts_with("nimbus-edge ready"))).unwrap();
    let reader = ready.split_whitespace().find_map(|w| w.strip_prefix("reader=")).unwrap().to_owned();
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_kib(child.id());

    let stream = TcpStream::connect(&reader).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut replies = BufReader::new(stream).lines();
    let mut one = |uid: &str| {
        writer.write_all(format!("{uid}\n").as_bytes()).unwrap();
        replies.next().unwrap().unwrap()
    };
    one("FACA0001");
    // Request/response: the latency a student sees from tap to light.
    let mut lat = Vec::with_capacity(N);
    let mut peak = 0;
    let start = Instant::now();
    for i in 0..N {
        let uid =
            if i % 4 == 0 { format!("5A00000{}", i % 5 + 1) } else { format!("{:08X}", 0xC000_0000u32 + i as u32) };
        let t = Instant::now();
        let reply = one(&uid);
        lat.push(t.elapsed());
        assert!(reply == "accepted" || reply == "duplicate" || reply == "unknown_card", "{reply}");
        if i % 200 == 0 {
            peak = peak.max(rss_kib(child.id()));
        }
    }
    report("nimbus-edge over the reader socket (e2e)", start.elapsed(), lat);
    peak = peak.max(rss_kib(child.id()));
    println!(
        "nimbus-edge resident memory: idle {:.1} MiB, under load {:.1} MiB",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let dir = tempfile::Builder::new().prefix("nimbus-bench-").tempdir_in(".").unwrap();
    println!("{N} taps per run, database in {}", dir.path().display());
    raw_sqlite(dir.path());
    in_process(dir.path());
    end_to_end(dir.path());
}
