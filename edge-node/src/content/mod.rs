//! The classroom content cache: the node downloads what its manifest lists, verifies it, keeps it
//! within a disk budget, and serves it to students on the LAN even with the uplink down.
//!
//! - [`manifest`]: the cloud's manifest, validated (no path tricks from a hostile one).
//! - [`download`]: resumable, verified fetch into `partial/` and atomic rename into `files/`.
//! - [`cache`]: rows in `content_items`, disk budget, LRU eviction, the start-up scrub.
//! - [`serve`]: streaming a cached file from disk and `If-Modified-Since` for the LAN routes in
//!   `http::content`; `Range`, `If-Range`, `ETag` and `Content-Disposition` follow the rule shared
//!   with the cloud, [`nimbus_core::http_file`].
//!
//! [`ContentCache::run`] is the node's content task: scrub at start, then reconcile with the
//! manifest whenever a new one (or a new day, which changes what is pinned) arrives, and download
//! what is due, with bounded retries and exponential backoff.

pub mod cache;
pub mod download;
pub mod manifest;
pub mod serve;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Secret;
use crate::error::{Error, Result};
use crate::store::Store;
use cache::{ItemRow, Paths};

/// Longest delay between retries of a failing download.
pub const MAX_RETRY: Duration = Duration::from_secs(3600);
/// How often the content task looks for a new manifest or due retries.
pub const POLL_EVERY: Duration = Duration::from_secs(5);

/// How the cache runs (from `[content]` in the config).
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// The content directory.
    pub dir: PathBuf,
    /// Most bytes held (complete + partial).
    pub max_bytes: u64,
    /// Free space kept on the filesystem.
    pub min_free_bytes: u64,
    /// Downloads at once.
    pub concurrency: usize,
    /// First retry delay; doubles per failure up to [`MAX_RETRY`].
    pub retry_base: Duration,
    /// Re-hash every file at start.
    pub scrub_full: bool,
    /// Basic-auth user for the cloud's download route.
    pub node_id: String,
    /// Basic-auth password (the node's broker password).
    pub password: Option<Secret>,
    /// The node's room (today's classes pin their content).
    pub room_id: String,
}

impl CacheSettings {
    /// Settings for tests and tools: everything under `dir`, no budget to speak of.
    pub fn new(dir: impl Into<PathBuf>, room_id: &str) -> Self {
        CacheSettings {
            dir: dir.into(),
            max_bytes: u64::MAX / 2,
            min_free_bytes: 0,
            concurrency: 2,
            retry_base: Duration::from_secs(5),
            scrub_full: false,
            node_id: "node-1".into(),
            password: None,
            room_id: room_id.into(),
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Items that became complete.
    pub completed: Vec<String>,
    /// Items that failed (retried later), with the reason.
    pub failed: Vec<(String, String)>,
    /// Files removed (dropped from the manifest, superseded or evicted).
    pub removed: usize,
}

struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    settings: CacheSettings,
    paths: Paths,
    client: reqwest::Client,
    auth: download::Auth,
    budget: tokio::sync::Mutex<u64>,
}

/// The cache; cheap to clone.
#[derive(Clone)]
pub struct ContentCache {
    inner: Arc<Inner>,
}

impl ContentCache {
    /// Opens the cache directory (creating it) over the node's store.
    pub fn new(store: Store, clock: Arc<dyn Clock>, settings: CacheSettings) -> Result<ContentCache> {
        let paths = Paths::create(&settings.dir)?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Config(format!("http client: {e}")))?;
        let auth = download::Auth { user: settings.node_id.clone(), password: settings.password.clone() };
        Ok(ContentCache {
            inner: Arc::new(Inner { store, clock, settings, paths, client, auth, budget: tokio::sync::Mutex::new(0) }),
        })
    }

    /// The file layout.
    pub fn paths(&self) -> &Paths {
        &self.inner.paths
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Checks the cached files (see [`cache::scrub`]).
    pub async fn scrub(&self) -> Result<cache::ScrubReport> {
        let (paths, full) = (self.inner.paths.clone(), self.inner.settings.scrub_full);
        self.inner.store.run(move |c| cache::scrub(c, &paths, full)).await
    }

    /// Brings the rows in line with the cached manifest and today's timetable.
    pub async fn reconcile(&self) -> Result<usize> {
        let now = self.inner.clock.now();
        let (paths, room) = (self.inner.paths.clone(), self.inner.settings.room_id.clone());
        let delete = self
            .inner
            .store
            .run(move |c| {
                let Some(snap) = manifest::current(c)? else { return Ok(Vec::new()) };
                let items = manifest::valid_items(&snap);
                let today: HashSet<String> = crate::timetable::entries(c)?
                    .into_iter()
                    .filter(|e| e.room_id == room && e.applies_on(now.local.date()))
                    .map(|e| e.course_id)
                    .collect();
                cache::reconcile(c, &items, &today, &paths, now.wall_ms())
            })
            .await?;
        let n = delete.len();
        let paths = self.inner.paths.clone();
        tokio::task::spawn_blocking(move || cache::remove_files(&paths, &delete))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        Ok(n)
    }

    /// Downloads every item that is due, up to `concurrency` at once.
    pub async fn download_due(&self) -> Result<PassReport> {
        let now_ms = self.inner.clock.now().wall_ms();
        let due = self.inner.store.run(move |c| cache::due(c, now_ms)).await?;
        let results: Vec<(String, Result<usize>)> = futures_util::stream::iter(due)
            .map(|item| async move {
                let id = item.content_id.clone();
                (id, self.download_one(item).await)
            })
            .buffer_unordered(self.inner.settings.concurrency.max(1))
            .collect()
            .await;
        let mut report = PassReport::default();
        for (id, r) in results {
            match r {
                Ok(removed) => {
                    report.removed += removed;
                    report.completed.push(id);
                }
                Err(e) => report.failed.push((id, e.to_string())),
            }
        }
        Ok(report)
    }

    /// Reconciles and downloads what is due: one full pass.
    pub async fn sync_once(&self) -> Result<PassReport> {
        let removed = self.reconcile().await?;
        let mut report = self.download_due().await?;
        report.removed += removed;
        Ok(report)
    }

    async fn download_one(&self, item: ItemRow) -> Result<usize> {
        let inner = &self.inner;
        let need = {
            let have = inner.paths.part(&item.content_id, item.version).and_then(|p| std::fs::metadata(p).ok());
            item.size.saturating_sub(have.map_or(0, |m| m.len()))
        };
        let reserved = match self.make_room(&item, need).await {
            Ok(r) => r,
            Err(e) => return Err(self.failed(&item, e).await),
        };
        let result = download::fetch(&inner.client, &inner.auth, &inner.paths, &item).await;
        *inner.budget.lock().await -= reserved;
        match result {
            Ok(mtime) => {
                let now_ms = inner.clock.now().wall_ms();
                let (paths, row) = (inner.paths.clone(), item.clone());
                let old = inner.store.run(move |c| cache::mark_complete(c, &row, mtime, now_ms, &paths)).await?;
                let n = old.len();
                let paths = inner.paths.clone();
                let _ = tokio::task::spawn_blocking(move || cache::remove_files(&paths, &old)).await;
                tracing::info!(content_id = %item.content_id, version = item.version, bytes = item.size, "content cached");
                Ok(n)
            }
            Err(e) => Err(self.failed(&item, e).await),
        }
    }

    async fn failed(&self, item: &ItemRow, e: Error) -> Error {
        let inner = &self.inner;
        let now_ms = inner.clock.now().wall_ms();
        let (row, why) = (item.clone(), e.to_string());
        let base_ms = inner.settings.retry_base.as_millis() as i64;
        let attempts = inner
            .store
            .run(move |c| {
                let prior: i64 = c.query_row(
                    "SELECT attempts FROM content_items WHERE content_id = ?1 AND version = ?2",
                    rusqlite::params![row.content_id, row.version],
                    |r| r.get(0),
                )?;
                let delay = backoff(base_ms, prior as u32);
                cache::mark_failed(c, &row, &why, now_ms, delay)
            })
            .await;
        tracing::warn!(content_id = %item.content_id, version = item.version, error = %e, ?attempts, "content download failed; will retry");
        e
    }

    /// Makes room for `need` more bytes, evicting (see [`cache::eviction_candidates`]) superseded
    /// versions first, then least recently used unpinned items: for an item pinned for today any
    /// of them, for an unpinned item only those not used since it was listed (so two items can
    /// never evict each other in turn). Nothing is evicted unless that makes enough room. Returns
    /// the bytes reserved for this download.
    async fn make_room(&self, item: &ItemRow, need: u64) -> Result<u64> {
        let inner = &self.inner;
        let mut reserved = inner.budget.lock().await;
        let s = &inner.settings;
        // Bytes reserved by downloads in flight are not on disk yet: they count against both the
        // budget and the free space. `freed` is what evictions would give back.
        let fits = |paths: &Paths, reserved: u64, freed: u64| {
            let used = paths.bytes_used().saturating_add(reserved).saturating_sub(freed);
            let free =
                cache::free_bytes(&paths.root).unwrap_or(u64::MAX).saturating_sub(reserved).saturating_add(freed);
            used.saturating_add(need) <= s.max_bytes && free >= need.saturating_add(s.min_free_bytes)
        };
        if !fits(&inner.paths, *reserved, 0) {
            let except = item.content_id.clone();
            let candidates: Vec<cache::Candidate> = inner
                .store
                .run(move |c| cache::eviction_candidates(c, &except))
                .await?
                .into_iter()
                .take_while(|c| !c.in_manifest || item.pinned || c.last_access_ms < item.created_ms)
                .collect();
            let freeable = candidates.iter().map(|c| c.size).sum();
            if !fits(&inner.paths, *reserved, freeable) {
                return Err(Error::Download(format!("no room for {need} more bytes within the content budget")));
            }
            for c in candidates {
                let now_ms = inner.clock.now().wall_ms();
                let (paths, retry) = (inner.paths.clone(), s.retry_base.as_millis() as i64);
                let files = inner.store.run(move |conn| cache::evict(conn, &c, &paths, now_ms, retry)).await?;
                tracing::info!(for_item = %item.content_id, files = files.len(), "evicting cached content for space");
                cache::remove_files(&inner.paths, &files);
                if fits(&inner.paths, *reserved, 0) {
                    break;
                }
            }
            if !fits(&inner.paths, *reserved, 0) {
                return Err(Error::Download(format!("no room for {need} more bytes within the content budget")));
            }
        }
        *reserved += need;
        Ok(need)
    }

    /// The content task: scrub, then poll for manifest changes and due downloads until
    /// `shutdown`. A download in flight at shutdown is dropped; its part is resumed next start.
    pub async fn run(self, shutdown: CancellationToken) {
        match self.scrub().await {
            Ok(r) if !r.corrupt.is_empty() || r.orphans > 0 => {
                tracing::warn!(corrupt = r.corrupt.len(), orphans = r.orphans, "content scrub repaired the cache")
            }
            Ok(r) => tracing::info!(checked = r.checked, rehashed = r.rehashed, "content scrub found nothing wrong"),
            Err(e) => tracing::error!(error = %e, "content scrub failed"),
        }
        let mut seen: Option<(Option<u64>, Option<u64>, chrono::NaiveDate)> = None;
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let pass = async {
                let key = self
                    .inner
                    .store
                    .run(|c| {
                        Ok((
                            crate::timetable::snapshot_version(c, "manifest")?,
                            crate::timetable::snapshot_version(c, "timetable")?,
                        ))
                    })
                    .await?;
                let key = (key.0, key.1, self.inner.clock.now().local.date());
                if seen != Some(key) {
                    self.reconcile().await?;
                    seen = Some(key);
                }
                self.download_due().await
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = pass => match r {
                    Ok(r) if !r.completed.is_empty() || !r.failed.is_empty() => {
                        tracing::info!(completed = r.completed.len(), failed = r.failed.len(), "content pass");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "content pass failed"),
                }
            }
        }
    }
}

/// Exponential backoff: `base * 2^attempts`, capped at [`MAX_RETRY`].
pub fn backoff(base_ms: i64, attempts: u32) -> i64 {
    base_ms.saturating_mul(1i64 << attempts.min(20)).min(MAX_RETRY.as_millis() as i64)
}
