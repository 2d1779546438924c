//! The real `nimbus-edge` binary is SIGKILLed in the middle of a content download (as a power cut
//! would stop it): nothing that claims to be complete is left, the old state stands, and after a
//! restart the download resumes with `Range` from what reached the disk and the file is served.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use nimbus_edge::content::cache::{self, Paths};
use nimbus_edge::store::Store;

use crate::common::*;

struct Node {
    child: Child,
    http: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("node.toml");
    std::fs::write(
        &path,
        format!(
            "node_id = \"content-crash\"\nroom_id = \"{ROOM}\"\ndata_dir = \"{}\"\nlog = \"warn\"\n\
             [http]\nbind = \"127.0.0.1:0\"\n[reader]\nsimulated_bind = \"127.0.0.1:0\"\n[cloud]\nenabled = false\n\
             [content]\nmin_free_bytes = 0\nretry_base_ms = 200\n[discovery]\nenabled = false\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

fn start(config: &Path) -> Node {
    let (child, ready) = spawn_edge(&[], config);
    let http = ready.split_whitespace().find_map(|w| w.strip_prefix("http=")).unwrap().to_owned();
    Node { child, http: format!("http://{http}") }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// The waits below block a worker thread; the fake cloud needs others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_download_keeps_the_old_version_and_resumes_the_new_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::start().await;
    let data = dir.path().join("data");
    let signer = Signer25519::new("k", 5);
    let (v1, v2) = (bytes_of(100_000, 70), bytes_of(4 * 1024 * 1024, 71));
    {
        let store = Store::open(&data.join("node.db")).unwrap();
        set_keys(&store, 1, &[&signer]);
        set_roster(&store, 1, &[("cs101", "student-a")]);
        set_manifest(&store, 1, vec![item(&cloud, "lecture", 1, &v1, &["cs101"])]);
    }
    let config = write_config(dir.path());
    let client = reqwest::Client::new();
    let get = |node: &Node| {
        let req = client
            .get(format!("{}/api/content/lecture", node.http))
            .bearer_auth(signer.access("student-a", chrono::Utc::now().timestamp()));
        async move {
            let res = req.send().await.unwrap();
            (res.status(), res.bytes().await.unwrap().to_vec())
        }
    };

    // Version 1 arrives and is served.
    let node = start(&config);
    let paths = Paths::create(&data.join("content")).unwrap();
    let v1_file = paths.file("lecture", 1).unwrap();
    wait_until("version 1", Duration::from_secs(20), || v1_file.exists());
    let mut served = (reqwest::StatusCode::NOT_FOUND, vec![]);
    for _ in 0..100 {
        served = get(&node).await;
        if served.0 == reqwest::StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served, (reqwest::StatusCode::OK, v1.clone()));

    // Version 2 is published; the uplink is slow; the power goes mid-file.
    cloud.slow("lecture-2", Duration::from_millis(10));
    {
        let store = Store::open(&data.join("node.db")).unwrap();
        set_manifest(&store, 2, vec![item(&cloud, "lecture", 2, &v2, &["cs101"])]);
    }
    let part = paths.part("lecture", 2).unwrap();
    wait_until("part of version 2", Duration::from_secs(30), || {
        std::fs::metadata(&part).is_ok_and(|m| m.len() >= 512 * 1024)
    });
    drop(node); // SIGKILL

    let part_len = std::fs::metadata(&part).unwrap().len();
    assert!(part_len < v2.len() as u64, "killed mid-file: {part_len}");
    assert!(!paths.file("lecture", 2).unwrap().exists(), "nothing claims to be version 2 yet");
    {
        let store = Store::open(&data.join("node.db")).unwrap();
        assert_eq!(store.with(|c| cache::row_state(c, "lecture", 2)).unwrap().as_deref(), Some("pending"));
        assert_eq!(store.with(|c| cache::servable(c, "lecture")).unwrap().unwrap().version, 1, "old state");
    }

    // Power back, uplink fast again: the restart serves version 1 until version 2 is in.
    cloud.clear_faults("lecture-2");
    let node = start(&config);
    assert_eq!(get(&node).await.0, reqwest::StatusCode::OK);
    let v2_file = paths.file("lecture", 2).unwrap();
    wait_until("version 2", Duration::from_secs(30), || v2_file.exists());
    let mut served = (reqwest::StatusCode::NOT_FOUND, vec![]);
    for _ in 0..100 {
        served = get(&node).await;
        if served.1.len() == v2.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served.0, reqwest::StatusCode::OK);
    assert!(served.1 == v2, "the served bytes are version 2's");
    let resumed = cloud.seen("lecture-2").pop().unwrap();
    let from: u64 =
        resumed.range.as_deref().unwrap().trim_start_matches("bytes=").trim_end_matches('-').parse().unwrap();
    assert!(from > 0 && from <= part_len, "resumed from the part ({part_len} bytes): {resumed:?}");
    wait_until("version 1 removed", Duration::from_secs(10), || !v1_file.exists());
}
