//! What the node's process benchmarks share: the node (or nginx) as a child process stopped
//! cleanly, a node started on a prepared data directory, the memory of a process tree, and
//! settings from the environment.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process: SIGTERM when dropped (so nginx removes its pid file and the node stops
/// cleanly), SIGKILL after 5 s.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the release `nimbus-edge` in room `room` on the data prepared under `dir/data`, offline
/// (no cloud, no discovery, no free-space floor); returns it and its `http://` base URL once it
/// printed its ready line.
pub fn start_node(dir: &Path, room: &str) -> (Proc, String) {
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "node_id = \"bench-node\"\nroom_id = \"{room}\"\ndata_dir = \"{}\"\nlog = \"warn\"\n\
             [http]\nbind = \"127.0.0.1:0\"\n[reader]\nsimulated_bind = \"127.0.0.1:0\"\n[cloud]\nenabled = false\n\
             [content]\nmin_free_bytes = 0\n[discovery]\nenabled = false\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_nimbus-edge"));
    nimbus_edge::config::without_env_overrides(&mut command);
    let mut child = command
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nimbus-edge");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    while !line.starts_with("nimbus-edge ready") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "nimbus-edge exited before it was ready");
    }
    std::thread::spawn(move || for _ in reader.lines() {});
    let http = line.split_whitespace().find_map(|w| w.strip_prefix("http=")).unwrap().to_owned();
    (Proc(child), format!("http://{http}"))
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS:`, `VmHWM:`), summed over the process and its
/// children (nginx's workers).
pub fn vm_kib(pid: u32, field: &str) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0);
    let children: Vec<u32> = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    own + children.into_iter().map(|c| vm_kib(c, field)).sum::<u64>()
}

/// The environment variable `name` parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
