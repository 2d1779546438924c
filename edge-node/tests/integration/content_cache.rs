//! The content cache against a fake cloud over real HTTP on loopback: interrupted downloads resume
//! with `Range`, bytes are verified before a file becomes visible, the scrub catches damaged files,
//! the disk budget evicts least recently used unpinned items, and a crash mid-download leaves the
//! old or the new state, never a complete-looking partial file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nimbus_edge::clock::{Clock, ManualClock};
use nimbus_edge::content::cache::{self, Paths};
use nimbus_edge::content::{CacheSettings, ContentCache};
use nimbus_edge::store::Store;

use crate::common::*;

fn settings(dir: &Path) -> CacheSettings {
    CacheSettings { retry_base: Duration::from_secs(5), ..CacheSettings::new(dir.join("content"), ROOM) }
}

fn cache_over(store: &Store, clock: &ManualClock, settings: CacheSettings) -> ContentCache {
    ContentCache::new(store.clone(), Arc::new(clock.clone()), settings).unwrap()
}

fn state(store: &Store, id: &str, version: u32) -> Option<String> {
    store.with(|c| cache::row_state(c, id, version)).unwrap()
}

fn servable_version(store: &Store, id: &str) -> Option<u32> {
    store.with(|c| cache::servable(c, id)).unwrap().map(|r| r.version)
}

/// Names of the files in a directory, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn range_start(seen: &Seen) -> Option<u64> {
    seen.range.as_deref()?.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok()
}

#[tokio::test]
async fn a_download_cut_mid_file_resumes_with_range_and_completes_with_the_exact_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::start().await;
    let store = Store::open_in_memory().unwrap();
    let clock = clock();
    let data = bytes_of(3 * 1024 * 1024 + 17, 1);
    set_manifest(&store, 1, vec![item(&cloud, "doc-a", 1, &data, &["cs101"])]);
    cloud.cut_next("doc-a-1", 1024 * 1024);
    cloud.cut_next("doc-a-1", 1024 * 1024);

    let cache = cache_over(&store, &clock, settings(dir.path()));
    let report = cache.sync_once().await.unwrap();

    assert_eq!(report.completed, ["doc-a"], "{report:?}");
    let seen = cloud.seen("doc-a-1");
    assert_eq!(seen.len(), 3, "one request, then two resumes: {seen:?}");
    assert_eq!(seen[0].range, None);
    let (first, second) = (range_start(&seen[1]).unwrap(), range_start(&seen[2]).unwrap());
    assert!(first > 0 && first <= 1024 * 1024, "resumed where the cut left it: {seen:?}");
    assert!(second > first && second <= 2 * 1024 * 1024, "{seen:?}");
    let file = cache.paths().file("doc-a", 1).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), data);
    assert_eq!(state(&store, "doc-a", 1).as_deref(), Some("complete"));
    assert!(listing(&cache.paths().partial_dir()).is_empty(), "no part left behind");
}

#[tokio::test]
async fn a_sha256_mismatch_is_never_made_visible_and_the_item_is_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::start().await;
    let store = Store::open_in_memory().unwrap();
    let clock = clock();
    let data = bytes_of(700_000, 2);
    set_manifest(&store, 1, vec![item(&cloud, "doc-b", 1, &data, &["cs101"])]);
    cloud.corrupt_next("doc-b-1", 1);

    let cache = cache_over(&store, &clock, settings(dir.path()));
    let report = cache.sync_once().await.unwrap();

    assert!(report.completed.is_empty(), "{report:?}");
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].1.contains("verification failed"), "{report:?}");
    assert!(listing(&cache.paths().files_dir()).is_empty(), "the bad bytes are not published");
    assert!(listing(&cache.paths().partial_dir()).is_empty(), "and not kept as a part either");
    assert_eq!(state(&store, "doc-b", 1).as_deref(), Some("pending"));
    assert_eq!(servable_version(&store, "doc-b"), None);

    // Not before its retry time …
    assert!(cache.sync_once().await.unwrap().completed.is_empty());
    assert_eq!(cloud.seen("doc-b-1").len(), 1);
    // … then fetched again, whole, and verified.
    clock.advance(Duration::from_secs(6));
    let report = cache.sync_once().await.unwrap();
    assert_eq!(report.completed, ["doc-b"], "{report:?}");
    assert_eq!(std::fs::read(cache.paths().file("doc-b", 1).unwrap()).unwrap(), data);
    assert_eq!(servable_version(&store, "doc-b"), Some(1));
}

#[tokio::test]
async fn a_corrupt_cached_file_found_by_the_scrub_is_evicted_and_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::start().await;
    let store = Store::open_in_memory().unwrap();
    let clock = clock();
    let data = bytes_of(500_000, 3);
    set_manifest(&store, 1, vec![item(&cloud, "doc-c", 1, &data, &["cs101"])]);
    let cache = cache_over(&store, &clock, settings(dir.path()));
    assert_eq!(cache.sync_once().await.unwrap().completed, ["doc-c"]);
    let file = cache.paths().file("doc-c", 1).unwrap();
    let clean = cache.scrub().await.unwrap();
    assert_eq!((clean.checked, clean.corrupt.len(), clean.orphans), (1, 0, 0));

    // Damage one byte in place (same size); the file's mtime moves on.
    std::thread::sleep(Duration::from_millis(20));
    let mut damaged = std::fs::read(&file).unwrap();
    damaged[12_345] ^= 1;
    std::fs::write(&file, &damaged).unwrap();

    let report = cache.scrub().await.unwrap();
    assert_eq!(report.corrupt, ["doc-c"], "{report:?}");
    assert_eq!(report.rehashed, 1);
    assert!(!file.exists(), "the damaged file is gone");
    assert_eq!(servable_version(&store, "doc-c"), None, "and nothing is served meanwhile");

    let report = cache.sync_once().await.unwrap();
    assert_eq!(report.completed, ["doc-c"], "{report:?}");
    assert_eq!(std::fs::read(&file).unwrap(), data);
}

#[tokio::test]
async fn bit_rot_that_keeps_the_mtime_is_found_by_a_full_scrub_only() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::start().await;
    let store = Store::open_in_memory().unwrap();
    let clock = clock();
    let data = bytes_of(300_000, 4);
    set_manifest(&store, 1, vec![item(&cloud, "doc-r", 1, &data, &["cs101"])]);
    let cache = cache_over(&store, &clock, settings(dir.path()));
    cache.sync_once().await.unwrap();
    let file = cache.paths().file("doc-r", 1).unwrap();
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let mut damaged = data.clone();
    damaged[7] ^= 0x80;
    std::fs::write(&file, &damaged).unwrap();
    std::fs::File::options().write(true).open(&file).unwrap().set_modified(mtime).unwrap();

    assert!(cache.scrub().await.unwrap().corrupt.is_empty(), "a quick scrub trusts an unchanged mtime");
    let full = cache_over(&store, &clock, CacheSettings { scrub_full: true, ..settings(dir.path()) });
    assert_eq!(full.scrub().await.unwrap().corrupt, ["doc-r"]);
    assert!(!file.exists());
}

#[tokio::test]
async fn over_budget_the_least_recently_used_unpinned_item_is_evicted_for_todays_content() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::start().await;
    let store = Store::open_in_memory().unwrap();
    let clock = clock();
    set_timetable(&store, 1, &["cs101"]);
    const MB: usize = 1024 * 1024;
    let (a, b, c, d) = (bytes_of(MB, 10), bytes_of(MB, 11), bytes_of(MB, 12), bytes_of(MB, 13));
    // Two items of courses not taught here today, and one of today's (pinned).
    let old_items = vec![item(&cloud, "old-a", 1, &a, &["ma201"]), item(&cloud, "old-b", 1, &b, &["ma201"])];
    set_manifest(&store, 1, old_items.clone());
    let budget = CacheSettings { max_bytes: (3 * MB + MB / 2) as u64, ..settings(dir.path()) };
    let cache = cache_over(&store, &clock, budget);
    assert_eq!(cache.sync_once().await.unwrap().completed.len(), 2);
    // old-a was used more recently than old-b.
    clock.advance(Duration::from_secs(60));
    let now_ms = clock.now().wall_ms();
    store.with(|conn| cache::touch(conn, "old-a", 1, now_ms)).unwrap();

    let mut items = old_items.clone();
    items.push(item(&cloud, "today-c", 1, &c, &["cs101"]));
    items.push(item(&cloud, "today-d", 1, &d, &["cs101"]));
    set_manifest(&store, 2, items);
    let report = cache.sync_once().await.unwrap();

    assert_eq!(report.completed.len(), 2, "{report:?}");
    assert_eq!(state(&store, "old-b", 1).as_deref(), Some("pending"), "the LRU item made room");
    assert!(!cache.paths().file("old-b", 1).unwrap().exists());
    assert_eq!(state(&store, "old-a", 1).as_deref(), Some("complete"), "the recently used one stays");
    for id in ["today-c", "today-d"] {
        assert_eq!(state(&store, id, 1).as_deref(), Some("complete"));
    }
    assert!(cache.paths().bytes_used() <= (3 * MB + MB / 2) as u64);

    // old-b, unpinned, may not push pinned content or another listed item out: it waits.
    clock.advance(Duration::from_secs(3600));
    let report = cache.sync_once().await.unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("no room"), "{report:?}");
    for id in ["old-a", "today-c", "today-d"] {
        assert_eq!(state(&store, id, 1).as_deref(), Some("complete"), "{id}");
    }
}

#[tokio::test]
async fn free_space_headroom_is_kept_and_nothing_is_written_when_it_would_be_breached() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::start().await;
    let store = Store::open_in_memory().unwrap();
    let clock = clock();
    set_manifest(&store, 1, vec![item(&cloud, "big", 1, &bytes_of(200_000, 20), &["cs101"])]);
    // Ask for far more headroom than the filesystem has free (with a margin: other processes
    // free space too): no download may start.
    let free = cache::free_bytes(dir.path()).unwrap();
    let headroom = free + (1 << 40);
    let cache = cache_over(&store, &clock, CacheSettings { min_free_bytes: headroom, ..settings(dir.path()) });

    let report = cache.sync_once().await.unwrap();

    assert!(report.failed[0].1.contains("no room"), "{report:?}");
    assert!(cloud.seen("big-1").is_empty(), "the cloud was not even asked");
    assert_eq!(cache.paths().bytes_used(), 0);
}

/// Opens the store and cache over `dir` as the node does at start (scrub first).
async fn start(dir: &Path, clock: &ManualClock) -> (Store, ContentCache) {
    let store = Store::open(&dir.join("edge.db")).unwrap();
    let cache = cache_over(&store, clock, settings(dir));
    cache.scrub().await.unwrap();
    (store, cache)
}

#[tokio::test]
async fn a_crash_mid_download_leaves_the_old_version_served_and_the_restart_resumes_into_the_new() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::start().await;
    let clock = clock();
    let (v1, v2) = (bytes_of(400_000, 30), bytes_of(2 * 1024 * 1024, 31));
    let cut_at = 600_000u64;
    {
        let (store, cache) = start(dir.path(), &clock).await;
        set_manifest(&store, 1, vec![item(&cloud, "doc", 1, &v1, &["cs101"])]);
        assert_eq!(cache.sync_once().await.unwrap().completed, ["doc"]);
        // Version 2 arrives; its download is cut and the uplink goes down: the node "loses power"
        // with part of version 2 on disk.
        set_manifest(&store, 2, vec![item(&cloud, "doc", 2, &v2, &["cs101"])]);
        cloud.cut_next("doc-2", cut_at);
        cloud.cut_next("doc-2", 0);
        cloud.cut_next("doc-2", 0);
        cloud.cut_next("doc-2", 0);
        let report = cache.sync_once().await.unwrap();
        assert!(report.completed.is_empty(), "{report:?}");
        assert_eq!(servable_version(&store, "doc"), Some(1), "the old version is still served");
    }
    let paths = Paths::create(&dir.path().join("content")).unwrap();
    let part = paths.part("doc", 2).unwrap();
    let part_len = std::fs::metadata(&part).unwrap().len();
    assert!(part_len > 0 && part_len <= cut_at, "a part is left behind: {part_len}");
    assert_eq!(listing(&paths.files_dir()), ["doc-1"], "only verified files are in files/");

    // Restart, with the uplink back.
    cloud.clear_faults("doc-2");
    let (store, cache) = start(dir.path(), &clock).await;
    assert_eq!(servable_version(&store, "doc"), Some(1));
    assert!(part.exists(), "the scrub keeps a pending item's part");
    clock.advance(Duration::from_secs(60));
    let report = cache.sync_once().await.unwrap();
    assert_eq!(report.completed, ["doc"], "{report:?}");
    let last = cloud.seen("doc-2").pop().unwrap();
    assert_eq!(range_start(&last), Some(part_len), "resumed from the part: {last:?}");
    assert_eq!(servable_version(&store, "doc"), Some(2));
    assert_eq!(std::fs::read(paths.file("doc", 2).unwrap()).unwrap(), v2);
    assert_eq!(listing(&paths.files_dir()), ["doc-2"], "the old version is removed once the new one is in");
    assert!(listing(&paths.partial_dir()).is_empty());
}

#[tokio::test]
async fn a_torn_part_from_a_power_cut_fails_verification_and_is_fetched_whole_never_published() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::start().await;
    let clock = clock();
    let data = bytes_of(1024 * 1024, 40);
    {
        let (store, _) = start(dir.path(), &clock).await;
        set_manifest(&store, 1, vec![item(&cloud, "doc-t", 1, &data, &["cs101"])]);
        let cache = cache_over(&store, &clock, settings(dir.path()));
        cache.reconcile().await.unwrap();
    }
    // What a power cut can leave: the right length of prefix, but its tail never reached the disk.
    let paths = Paths::create(&dir.path().join("content")).unwrap();
    let mut torn = data[..500_000].to_vec();
    torn[400_000..].fill(0);
    std::fs::write(paths.part("doc-t", 1).unwrap(), &torn).unwrap();

    let (store, cache) = start(dir.path(), &clock).await;
    assert_eq!(servable_version(&store, "doc-t"), None, "a part is never served");
    let report = cache.sync_once().await.unwrap();

    assert_eq!(report.completed, ["doc-t"], "{report:?}");
    let seen = cloud.seen("doc-t-1");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(range_start(&seen[0]), Some(500_000), "first it resumes");
    assert_eq!(seen[1].range, None, "then, the whole failing verification, it starts over");
    assert_eq!(std::fs::read(paths.file("doc-t", 1).unwrap()).unwrap(), data);
}

#[tokio::test]
async fn a_file_renamed_into_place_just_before_a_crash_is_adopted_after_verification() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::start().await;
    let clock = clock();
    let data = bytes_of(300_000, 50);
    let (store, cache) = start(dir.path(), &clock).await;
    set_manifest(&store, 1, vec![item(&cloud, "doc-x", 1, &data, &["cs101"])]);
    cache.reconcile().await.unwrap();
    // The rename happened, the database update did not.
    std::fs::write(cache.paths().file("doc-x", 1).unwrap(), &data).unwrap();
    drop((store, cache));

    let (store, cache) = start(dir.path(), &clock).await;
    assert_eq!(servable_version(&store, "doc-x"), None, "not served before it is verified");
    assert_eq!(cache.sync_once().await.unwrap().completed, ["doc-x"]);
    assert!(cloud.seen("doc-x-1").is_empty(), "adopted without downloading");
    assert_eq!(servable_version(&store, "doc-x"), Some(1));
}

#[tokio::test]
async fn with_the_uplink_down_downloads_fail_and_back_off_while_cached_content_stays_served() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::start().await;
    let store = Store::open_in_memory().unwrap();
    let clock = clock();
    let cache = cache_over(&store, &clock, settings(dir.path()));
    set_manifest(&store, 1, vec![item(&cloud, "have", 1, &bytes_of(1000, 60), &["cs101"])]);
    cache.sync_once().await.unwrap();
    cloud.set_down(true);
    set_manifest(
        &store,
        2,
        vec![
            item(&cloud, "have", 1, &bytes_of(1000, 60), &["cs101"]),
            item(&cloud, "new", 1, &bytes_of(1000, 61), &["cs101"]),
        ],
    );
    let report = cache.sync_once().await.unwrap();
    assert!(report.failed[0].1.contains("503"), "{report:?}");
    clock.advance(Duration::from_secs(6));
    cache.sync_once().await.unwrap();
    clock.advance(Duration::from_secs(6));
    cache.sync_once().await.unwrap();
    assert_eq!(cloud.seen("new-1").len(), 2, "the second retry waits 10 s, not 5");
    assert_eq!(servable_version(&store, "have"), Some(1));
    cloud.set_down(false);
    clock.advance(Duration::from_secs(30));
    assert_eq!(cache.sync_once().await.unwrap().completed, ["new"]);
}

#[tokio::test]
async fn new_unpinned_content_displaces_only_items_not_used_since_it_was_listed() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::start().await;
    let store = Store::open_in_memory().unwrap();
    let clock = clock();
    const MB: usize = 1024 * 1024;
    let (a, b, c, d) = (bytes_of(MB, 80), bytes_of(MB, 81), bytes_of(MB, 82), bytes_of(MB, 83));
    let first = vec![item(&cloud, "used", 1, &a, &["ma201"]), item(&cloud, "stale", 1, &b, &["ma201"])];
    set_manifest(&store, 1, first.clone());
    let cache =
        cache_over(&store, &clock, CacheSettings { max_bytes: (2 * MB + MB / 2) as u64, ..settings(dir.path()) });
    assert_eq!(cache.sync_once().await.unwrap().completed.len(), 2);

    // Next week's notes are published; a student opens "used" afterwards, nobody opens "stale".
    clock.advance(Duration::from_secs(60));
    let mut items = first.clone();
    items.push(item(&cloud, "next-week", 1, &c, &["ma201"]));
    set_manifest(&store, 2, items.clone());
    cache.reconcile().await.unwrap();
    clock.advance(Duration::from_secs(60));
    let now_ms = clock.now().wall_ms();
    store.with(|conn| cache::touch(conn, "used", 1, now_ms)).unwrap();

    let report = cache.sync_once().await.unwrap();
    assert_eq!(report.completed, ["next-week"], "{report:?}");
    assert_eq!(state(&store, "stale", 1).as_deref(), Some("pending"), "not used since: displaced");
    assert_eq!(state(&store, "used", 1).as_deref(), Some("complete"), "used since: kept");

    // "stale" comes back for its retry: everything cached was used (or completed) after it was
    // listed, so it waits instead of evicting in turn.
    clock.advance(Duration::from_secs(3600));
    let report = cache.sync_once().await.unwrap();
    assert!(report.failed[0].1.contains("no room"), "{report:?}");
    assert_eq!(state(&store, "next-week", 1).as_deref(), Some("complete"));
    assert_eq!(state(&store, "used", 1).as_deref(), Some("complete"));

    // An item too big to fit even after every allowed eviction evicts nothing.
    items.push(item(&cloud, "huge", 1, &[d.clone(), d.clone(), d].concat(), &["cs101"]));
    set_manifest(&store, 3, items);
    clock.advance(Duration::from_secs(3600));
    let report = cache.sync_once().await.unwrap();
    assert!(report.failed.iter().any(|(id, why)| id == "huge" && why.contains("no room")), "{report:?}");
    assert_eq!(state(&store, "next-week", 1).as_deref(), Some("complete"), "nothing evicted in vain");
    assert_eq!(state(&store, "used", 1).as_deref(), Some("complete"));
}
