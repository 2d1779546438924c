//! Content delivery benchmark: the node's real LAN server (the `nimbus-edge` binary, in its own
//! process) against nginx over the same 20 files of 1-8 MB, in the same run, each loaded by 200
//! concurrent clients for a fixed time. Prints requests/s and MB/s of both, the ratio, and the
//! node's peak resident memory (VmHWM of its process, so the load generator is not counted).
//!
//!     cargo bench -p nimbus-edge --bench content
//!
//! Needs nginx (Debian package `nginx`): `scripts/bench-nginx.sh` installs it when missing and
//! runs it in the foreground with a generated config. `BENCH_SECS` (default 10) sets the time per
//! server, `BENCH_CLIENTS` (default 200) the concurrency. Files live in a temporary directory
//! under the current directory (the real disk; the page cache holds them after the first pass).
//!
//! The node does everything a real download does: bearer-token verification (EdDSA, keys
//! snapshot), roster check, SQLite lookups, `CONTENT_ACCESSED` to the outbox, streaming in 64 KiB
//! chunks. nginx serves the files with `sendfile` and no access log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nimbus_core::snapshot::{ManifestItem, ManifestSnapshot};
use nimbus_edge::content::cache::{self, Paths};
use nimbus_edge::store::Store;
use nimbus_edge::timetable;
use sha2::{Digest, Sha256};

// The integration tests' support; this bench uses only the key, roster and token helpers.
#[path = "../tests/integration/common/mod.rs"]
#[allow(dead_code)]
mod common;

mod support;
use support::{Proc, env_or, vm_kib};

const FILES: usize = 20;
const MB: usize = 1024 * 1024;
const COURSE: &str = "cs101";
const STUDENT: &str = "student-bench";

fn file_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Fills the node's database and content directory as if the files had been downloaded and
/// verified; returns the ids and sizes, and a student's access token.
fn prepare_node(data: &Path) -> (Vec<(String, u64)>, String) {
    let store = Store::open(&data.join("node.db")).unwrap();
    let paths = Paths::create(&data.join("content")).unwrap();
    let signer = common::Signer25519::new("bench", 42);
    common::set_keys(&store, 1, &[&signer]);
    common::set_roster(&store, 1, &[(COURSE, STUDENT)]);
    let mut items = Vec::new();
    for i in 0..FILES {
        let size = (1 + (i * 7) % 8) * MB + i * 1013;
        let bytes = file_bytes(size, i as u64 + 1);
        let id = format!("bench-{i:02}");
        std::fs::write(paths.file(&id, 1).unwrap(), &bytes).unwrap();
        items.push(ManifestItem {
            content_id: id.clone(),
            version: 1,
            title: format!("Bench file {i}"),
            file_name: format!("bench {i}.bin"),
            mime_type: "application/octet-stream".into(),
            size_bytes: size as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
            course_ids: vec![COURSE.into()],
            url: "http://127.0.0.1:9/unreachable".into(),
        });
    }
    let manifest = ManifestSnapshot { version: 1, items: items.clone() };
    store
        .with(|c| {
            timetable::apply_raw(c, "manifest", 1, &serde_json::to_vec(&manifest)?, 0)?;
            cache::reconcile(c, &items, &Default::default(), &paths, 0)?;
            for item in &items {
                let pending = cache::due(c, i64::MAX)?;
                let r = pending.into_iter().find(|r| r.content_id == item.content_id).unwrap();
                let meta = std::fs::metadata(paths.file(&r.content_id, 1).unwrap())?;
                cache::mark_complete(c, &r, cache::mtime_ms(&meta), 0, &paths)?;
            }
            Ok(())
        })
        .unwrap();
    let token = signer.access(STUDENT, chrono::Utc::now().timestamp());
    (items.into_iter().map(|i| (i.content_id, i.size_bytes)).collect(), token)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_nginx(root: &Path, work: &Path) -> (Proc, String) {
    let port = free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench-nginx.sh");
    let child = Command::new("bash")
        .arg(script)
        .arg(root)
        .arg(port.to_string())
        .arg(work)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start scripts/bench-nginx.sh");
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start; see {}", work.join("error.log").display());
        std::thread::sleep(Duration::from_millis(100));
    }
    (proc, format!("http://127.0.0.1:{port}"))
}

struct Run {
    requests: u64,
    bytes: u64,
    errors: u64,
    secs: f64,
}

/// `clients` tasks, each with its own connection, fetch `urls` round robin for `secs`, reading
/// every body to the end (checking its length) without keeping it.
async fn load(urls: Arc<Vec<(String, u64)>>, token: Option<String>, clients: usize, secs: f64) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let (requests, bytes, errors) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
        let (urls, token, stop) = (urls.clone(), token.clone(), stop.clone());
        let (requests, bytes, errors) = (requests.clone(), bytes.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let (url, size) = &urls[i % urls.len()];
                i += 1;
                let mut req = client.get(url);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let mut got = 0u64;
                let ok = match req.send().await {
                    Ok(mut res) if res.status().is_success() => loop {
                        match res.chunk().await {
                            Ok(Some(chunk)) => got += chunk.len() as u64,
                            Ok(None) => break got == *size,
                            Err(_) => break false,
                        }
                    },
                    _ => false,
                };
                bytes.fetch_add(got, Ordering::Relaxed);
                if ok {
                    requests.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    Run {
        requests: requests.load(Ordering::Relaxed),
        bytes: bytes.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        secs,
    }
}

fn print(name: &str, r: &Run) {
    println!(
        "{name:<22} {:>9.1} req/s {:>9.1} MB/s   ({} requests, {} errors, {:.1} s)",
        r.requests as f64 / r.secs,
        r.bytes as f64 / r.secs / MB as f64,
        r.requests,
        r.errors,
        r.secs
    );
}

fn main() {
    let secs: f64 = env_or("BENCH_SECS", 10.0);
    let clients: usize = env_or("BENCH_CLIENTS", 200);
    let dir = tempfile::tempdir_in(".").unwrap();
    let data: PathBuf = dir.path().join("data");
    let (files, token) = prepare_node(&data);
    let total_mb = files.iter().map(|(_, s)| *s).sum::<u64>() as f64 / MB as f64;
    println!("{FILES} files, {total_mb:.1} MB in all; {clients} concurrent clients, {secs} s per server");

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (node, node_url) = support::start_node(dir.path(), "bench-room");
    let node_pid = node.0.id();
    let idle_kib = vm_kib(node_pid, "VmRSS:");
    let (nginx, nginx_url) = start_nginx(&data.join("content/files"), &dir.path().join("nginx"));
    let nginx_pid = nginx.0.id();

    let node_urls: Arc<Vec<_>> =
        Arc::new(files.iter().map(|(id, s)| (format!("{node_url}/api/content/{id}"), *s)).collect());
    let nginx_urls: Arc<Vec<_>> = Arc::new(files.iter().map(|(id, s)| (format!("{nginx_url}/{id}-1"), *s)).collect());

    // Warm the page cache and both servers, then measure each in turn.
    runtime.block_on(load(nginx_urls.clone(), None, 4, 1.0));
    runtime.block_on(load(node_urls.clone(), Some(token.clone()), 4, 1.0));
    let n = runtime.block_on(load(node_urls, Some(token), clients, secs));
    let node_peak_kib = vm_kib(node_pid, "VmHWM:");
    let g = runtime.block_on(load(nginx_urls, None, clients, secs));
    let nginx_peak_kib = vm_kib(nginx_pid, "VmHWM:");

    print("nimbus-edge (node)", &n);
    print("nginx (sendfile)", &g);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    println!(
        "node / nginx           {:>9.2} x req/s {:>9.2} x MB/s",
        ratio(n.requests as f64 / n.secs, g.requests as f64 / g.secs),
        ratio(n.bytes as f64 / n.secs, g.bytes as f64 / g.secs)
    );
    println!(
        "node resident memory   idle {:.1} MiB, peak (VmHWM) {:.1} MiB; nginx peak, all processes {:.1} MiB",
        idle_kib as f64 / 1024.0,
        node_peak_kib as f64 / 1024.0,
        nginx_peak_kib as f64 / 1024.0
    );
    drop(nginx);
    drop(node);
}
