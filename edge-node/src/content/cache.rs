//! The cache's bookkeeping: rows in `content_items`, the file layout, the disk budget with LRU
//! eviction, and the scrub that re-checks cached files at start.
//!
//! Layout under the content directory: `files/<content_id>-<version>` (complete, verified, the
//! only files ever served) and `partial/<content_id>-<version>.part` (being downloaded). Both
//! names are built from validated ids only (see [`super::manifest`]).

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use nimbus_core::snapshot::ManifestItem;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::manifest::valid_content_id;
use crate::error::Result;

/// Where cached content lives.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The content directory.
    pub root: PathBuf,
}

impl Paths {
    /// Creates `files/` and `partial/` under `root`.
    pub fn create(root: &Path) -> Result<Paths> {
        std::fs::create_dir_all(root.join("files"))?;
        std::fs::create_dir_all(root.join("partial"))?;
        Ok(Paths { root: root.to_path_buf() })
    }

    /// Complete files.
    pub fn files_dir(&self) -> PathBuf {
        self.root.join("files")
    }

    /// Downloads in progress.
    pub fn partial_dir(&self) -> PathBuf {
        self.root.join("partial")
    }

    /// The complete file of `content_id` at `version`; None for an id that is not safe as a name.
    pub fn file(&self, content_id: &str, version: u32) -> Option<PathBuf> {
        valid_content_id(content_id).then(|| self.files_dir().join(format!("{content_id}-{version}")))
    }

    /// The partial download of `content_id` at `version`.
    pub fn part(&self, content_id: &str, version: u32) -> Option<PathBuf> {
        valid_content_id(content_id).then(|| self.partial_dir().join(format!("{content_id}-{version}.part")))
    }

    /// Bytes held on disk by complete and partial files.
    pub fn bytes_used(&self) -> u64 {
        [self.files_dir(), self.partial_dir()]
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|entries| entries.filter_map(|e| e.ok()?.metadata().ok()))
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    }
}

/// Free bytes for unprivileged users on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let c_dir = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes only into the struct we pass; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_dir.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Fsyncs a directory, so a rename or unlink in it survives a power cut.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A file's mtime in Unix milliseconds.
pub fn mtime_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as i64)
}

/// SHA-256 of a file's first `len` bytes (all of it when None), lower-case hex, streaming.
pub fn hash_file(path: &Path, len: Option<u64>) -> std::io::Result<(Sha256, u64)> {
    let file = std::fs::File::open(path)?;
    let mut reader: Box<dyn Read> = match len {
        Some(n) => Box::new(file.take(n)),
        None => Box::new(file),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok((hasher, total));
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

/// One cached item as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    /// Content id (validated).
    pub content_id: String,
    /// Content version.
    pub version: u32,
    /// Expected sha256, lower hex.
    pub sha256: String,
    /// Expected size.
    pub size: u64,
    /// `Content-Type`.
    pub mime: String,
    /// Download name.
    pub file_name: String,
    /// Title.
    pub title: String,
    /// Courses whose students may download it.
    pub course_ids: Vec<String>,
    /// Source URL.
    pub url: String,
    /// Never evicted while set.
    pub pinned: bool,
    /// Last download by a student (LRU).
    pub last_access_ms: i64,
    /// When the file became complete (`Last-Modified`).
    pub completed_ms: Option<i64>,
    /// The file's mtime when its sha256 last matched: a file modified since is not served until
    /// the scrub has checked it again.
    pub verified_mtime_ms: Option<i64>,
    /// When the manifest first listed this version (an unpinned item may displace only items not
    /// used since then).
    pub created_ms: i64,
}

const ROW_COLUMNS: &str = "content_id, version, sha256, size, mime, file_name, title, course_ids, url, pinned, last_access_ms, completed_ms, \
     verified_mtime_ms, created_ms";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ItemRow> {
    let courses: String = r.get(7)?;
    Ok(ItemRow {
        content_id: r.get(0)?,
        version: r.get::<_, i64>(1)? as u32,
        sha256: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        mime: r.get(4)?,
        file_name: r.get(5)?,
        title: r.get(6)?,
        course_ids: serde_json::from_str(&courses).unwrap_or_default(),
        url: r.get(8)?,
        pinned: r.get(9)?,
        last_access_ms: r.get(10)?,
        completed_ms: r.get(11)?,
        verified_mtime_ms: r.get(12)?,
        created_ms: r.get(13)?,
    })
}

/// The complete version of `content_id` to serve: the manifest's, else the newest complete one.
pub fn servable(conn: &Connection, content_id: &str) -> Result<Option<ItemRow>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {ROW_COLUMNS} FROM content_items WHERE content_id = ?1 AND state = 'complete'
                 ORDER BY in_manifest DESC, version DESC LIMIT 1"
            ),
            [content_id],
            row,
        )
        .optional()?)
}

/// Every servable item (one version per content id), by title.
pub fn servable_all(conn: &Connection) -> Result<Vec<ItemRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ROW_COLUMNS} FROM content_items WHERE state = 'complete' ORDER BY title, content_id, in_manifest DESC, version DESC"
    ))?;
    let rows = stmt.query_map([], row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    let mut seen = HashSet::new();
    Ok(rows.into_iter().filter(|r| seen.insert(r.content_id.clone())).collect())
}

/// Downloads due at `now_ms`: pending items of the current manifest, pinned first.
pub fn due(conn: &Connection, now_ms: i64) -> Result<Vec<ItemRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ROW_COLUMNS} FROM content_items
         WHERE state = 'pending' AND in_manifest = 1 AND next_attempt_ms <= ?1
         ORDER BY pinned DESC, created_ms, content_id"
    ))?;
    Ok(stmt.query_map([now_ms], row)?.collect::<rusqlite::Result<_>>()?)
}

/// Records a verified download: the row becomes servable and older versions of the same content
/// (already superseded) are dropped. Returns the files to delete.
pub fn mark_complete(
    conn: &mut Connection,
    item: &ItemRow,
    mtime: i64,
    now_ms: i64,
    paths: &Paths,
) -> Result<Vec<PathBuf>> {
    let tx = conn.transaction()?;
    let updated = tx.execute(
        "UPDATE content_items SET state = 'complete', verified_mtime_ms = ?3, completed_ms = ?4,
             last_access_ms = max(last_access_ms, ?4), attempts = 0, next_attempt_ms = 0, last_error = NULL
         WHERE content_id = ?1 AND version = ?2",
        params![item.content_id, item.version, mtime, now_ms],
    )?;
    if updated == 0 {
        // The manifest dropped the item while it downloaded: the file has no row to serve it.
        tx.commit()?;
        return Ok(files_of(paths, &item.content_id, item.version));
    }
    let old = versions_except(&tx, &item.content_id, item.version)?;
    tx.execute(
        "DELETE FROM content_items WHERE content_id = ?1 AND version != ?2 AND in_manifest = 0",
        params![item.content_id, item.version],
    )?;
    tx.commit()?;
    Ok(old.into_iter().flat_map(|v| files_of(paths, &item.content_id, v)).collect())
}

fn versions_except(conn: &Connection, content_id: &str, version: u32) -> Result<Vec<u32>> {
    let mut stmt =
        conn.prepare("SELECT version FROM content_items WHERE content_id = ?1 AND version != ?2 AND in_manifest = 0")?;
    Ok(stmt
        .query_map(params![content_id, version], |r| r.get::<_, i64>(0))?
        .map(|v| v.map(|v| v as u32))
        .collect::<rusqlite::Result<_>>()?)
}

fn files_of(paths: &Paths, content_id: &str, version: u32) -> Vec<PathBuf> {
    paths.file(content_id, version).into_iter().chain(paths.part(content_id, version)).collect()
}

/// Records a failed download: retried after `retry_after_ms`.
pub fn mark_failed(conn: &Connection, item: &ItemRow, error: &str, now_ms: i64, retry_after_ms: i64) -> Result<u32> {
    conn.execute(
        "UPDATE content_items SET attempts = attempts + 1, next_attempt_ms = ?3, last_error = ?4
         WHERE content_id = ?1 AND version = ?2",
        params![item.content_id, item.version, now_ms.saturating_add(retry_after_ms), error],
    )?;
    Ok(conn
        .query_row(
            "SELECT attempts FROM content_items WHERE content_id = ?1 AND version = ?2",
            params![item.content_id, item.version],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .unwrap_or(0) as u32)
}

/// Makes the cache agree with `items` (the validated current manifest): new items become
/// pending rows, items no longer listed are dropped, older versions are kept (still served) until
/// the new one completes, and items for `today_courses` are pinned. Returns files to delete.
pub fn reconcile(
    conn: &mut Connection,
    items: &[ManifestItem],
    today_courses: &HashSet<String>,
    paths: &Paths,
    now_ms: i64,
) -> Result<Vec<PathBuf>> {
    let tx = conn.transaction()?;
    let listed: HashSet<(&str, u32)> = items.iter().map(|i| (i.content_id.as_str(), i.version)).collect();
    let ids: HashSet<&str> = items.iter().map(|i| i.content_id.as_str()).collect();
    let existing: Vec<(String, u32, String, i64)> = {
        let mut stmt = tx.prepare("SELECT content_id, version, sha256, size FROM content_items")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u32, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut delete = Vec::new();
    for (id, version, _, _) in &existing {
        if !ids.contains(id.as_str()) {
            tx.execute("DELETE FROM content_items WHERE content_id = ?1 AND version = ?2", params![id, version])?;
            delete.extend(files_of(paths, id, *version));
        } else if !listed.contains(&(id.as_str(), *version)) {
            tx.execute(
                "UPDATE content_items SET in_manifest = 0, pinned = 0 WHERE content_id = ?1 AND version = ?2",
                params![id, version],
            )?;
        }
    }
    for item in items {
        let courses = serde_json::to_string(&item.course_ids)?;
        let pinned = item.course_ids.iter().any(|c| today_courses.contains(c));
        let same = existing.iter().find(|(id, v, _, _)| *id == item.content_id && *v == item.version);
        if let Some((_, _, sha, size)) = same
            && (sha != &item.sha256 || *size != item.size_bytes as i64)
        {
            // Same version, different bytes: the cached file is not what the cloud now lists.
            tx.execute(
                "UPDATE content_items SET state = 'pending', attempts = 0, next_attempt_ms = 0
                 WHERE content_id = ?1 AND version = ?2",
                params![item.content_id, item.version],
            )?;
            delete.extend(files_of(paths, &item.content_id, item.version));
        }
        tx.execute(
            "INSERT INTO content_items (content_id, version, sha256, size, mime, file_name, title, course_ids, url,
                 state, in_manifest, pinned, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', 1, ?10, ?11)
             ON CONFLICT (content_id, version) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size,
                 mime = excluded.mime, file_name = excluded.file_name, title = excluded.title,
                 course_ids = excluded.course_ids, url = excluded.url, in_manifest = 1, pinned = excluded.pinned",
            params![
                item.content_id,
                item.version,
                item.sha256,
                item.size_bytes as i64,
                item.mime_type,
                item.file_name,
                item.title,
                courses,
                item.url,
                pinned,
                now_ms
            ],
        )?;
    }
    tx.commit()?;
    Ok(delete)
}

/// An item that may be evicted to make room.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Content id.
    pub content_id: String,
    /// Version.
    pub version: u32,
    /// Whether the current manifest still lists it.
    pub in_manifest: bool,
    /// Bytes its file holds.
    pub size: u64,
    /// Last download by a student, or when it became complete.
    pub last_access_ms: i64,
}

/// Unpinned complete items in eviction order: superseded versions first, then least recently
/// used.
pub fn eviction_candidates(conn: &Connection, except: &str) -> Result<Vec<Candidate>> {
    let mut stmt = conn.prepare(
        "SELECT content_id, version, in_manifest, size, last_access_ms FROM content_items
         WHERE state = 'complete' AND pinned = 0 AND content_id != ?1
         ORDER BY in_manifest ASC, last_access_ms ASC, completed_ms ASC",
    )?;
    Ok(stmt
        .query_map([except], |r| {
            Ok(Candidate {
                content_id: r.get(0)?,
                version: r.get::<_, i64>(1)? as u32,
                in_manifest: r.get(2)?,
                size: r.get::<_, i64>(3)? as u64,
                last_access_ms: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// Evicts one item: a superseded version's row goes; a listed item goes back to pending (it is
/// fetched again when there is room) but waits `retry_after_ms`, so two items cannot evict each
/// other in a loop.
pub fn evict(
    conn: &Connection,
    c: &Candidate,
    paths: &Paths,
    now_ms: i64,
    retry_after_ms: i64,
) -> Result<Vec<PathBuf>> {
    if c.in_manifest {
        conn.execute(
            "UPDATE content_items SET state = 'pending', next_attempt_ms = ?3, last_error = 'evicted for space'
             WHERE content_id = ?1 AND version = ?2",
            params![c.content_id, c.version, now_ms.saturating_add(retry_after_ms)],
        )?;
    } else {
        conn.execute(
            "DELETE FROM content_items WHERE content_id = ?1 AND version = ?2",
            params![c.content_id, c.version],
        )?;
    }
    Ok(files_of(paths, &c.content_id, c.version))
}

/// Sends a complete item whose file changed on disk since it was verified back to pending: the
/// content task then re-verifies the file (adopting it if its sha256 still matches) or fetches it
/// again. Returns whether a row changed.
pub fn recheck(conn: &Connection, content_id: &str, version: u32) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE content_items SET state = 'pending', attempts = 0, next_attempt_ms = 0,
             last_error = 'changed on disk since verified'
         WHERE content_id = ?1 AND version = ?2 AND state = 'complete'",
        params![content_id, version],
    )? > 0)
}

/// Updates the LRU clock of an item (a download by a student).
pub fn touch(conn: &Connection, content_id: &str, version: u32, now_ms: i64) -> Result<()> {
    conn.execute(
        "UPDATE content_items SET last_access_ms = max(last_access_ms, ?3) WHERE content_id = ?1 AND version = ?2",
        params![content_id, version, now_ms],
    )?;
    Ok(())
}

/// Deletes files, ignoring those already gone, then fsyncs their directories.
pub fn remove_files(paths: &Paths, files: &[PathBuf]) {
    for f in files {
        match std::fs::remove_file(f) {
            Ok(()) => tracing::info!(file = %f.display(), "removed cached content"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = %f.display(), error = %e, "could not remove cached content"),
        }
    }
    if !files.is_empty() {
        let _ = sync_dir(&paths.files_dir());
        let _ = sync_dir(&paths.partial_dir());
    }
}

/// What a scrub found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScrubReport {
    /// Complete items checked.
    pub checked: usize,
    /// Items re-hashed (modified since verification, or a full scrub).
    pub rehashed: usize,
    /// Bytes re-hashed.
    pub rehashed_bytes: u64,
    /// Items found missing, truncated or corrupt; they go back to pending and are fetched again.
    pub corrupt: Vec<String>,
    /// Files on disk no row accounts for, removed.
    pub orphans: usize,
}

/// Checks every complete item: the file exists and has the right size; its sha256 is recomputed
/// if the file was modified since it was verified (or always, with `full`). Bad files are deleted
/// and their rows go back to pending. Files no row accounts for are removed. Blocking.
pub fn scrub(conn: &mut Connection, paths: &Paths, full: bool) -> Result<ScrubReport> {
    let mut report = ScrubReport::default();
    let rows: Vec<(String, u32, String, u64, Option<i64>, String)> = {
        let mut stmt =
            conn.prepare("SELECT content_id, version, sha256, size, verified_mtime_ms, state FROM content_items")?;
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u32, r.get(2)?, r.get::<_, i64>(3)? as u64, r.get(4)?, r.get(5)?))
        })?
        .collect::<rusqlite::Result<_>>()?
    };
    let mut known = HashSet::new();
    for (id, version, sha, size, verified, state) in &rows {
        let (Some(file), Some(part)) = (paths.file(id, *version), paths.part(id, *version)) else { continue };
        known.insert(file.clone());
        if state != "complete" {
            known.insert(part);
            continue;
        }
        report.checked += 1;
        let problem = match std::fs::metadata(&file) {
            Err(_) => Some("missing".to_owned()),
            Ok(m) if m.len() != *size => Some(format!("size {} != {size}", m.len())),
            Ok(m) if full || Some(mtime_ms(&m)) != *verified => {
                report.rehashed += 1;
                report.rehashed_bytes += m.len();
                match hash_file(&file, None).map(|(h, _)| hex::encode(h.finalize())) {
                    Err(e) => Some(format!("unreadable: {e}")),
                    Ok(got) if got == *sha => {
                        conn.execute(
                            "UPDATE content_items SET verified_mtime_ms = ?3 WHERE content_id = ?1 AND version = ?2",
                            params![id, version, mtime_ms(&m)],
                        )?;
                        None
                    }
                    Ok(_) => Some("sha256 mismatch".to_owned()),
                }
            }
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            tracing::warn!(content_id = %id, version, problem, "cached content is damaged; fetching it again");
            conn.execute(
                "UPDATE content_items SET state = 'pending', attempts = 0, next_attempt_ms = 0, last_error = ?3
                 WHERE content_id = ?1 AND version = ?2",
                params![id, version, format!("scrub: {problem}")],
            )?;
            remove_files(paths, &[file]);
            report.corrupt.push(id.clone());
        }
    }
    for dir in [paths.files_dir(), paths.partial_dir()] {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let path = entry.path();
            if !known.contains(&path) {
                remove_files(paths, std::slice::from_ref(&path));
                report.orphans += 1;
            }
        }
    }
    Ok(report)
}

/// Looks up a row of any state (tests and tools).
pub fn row_state(conn: &Connection, content_id: &str, version: u32) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT state FROM content_items WHERE content_id = ?1 AND version = ?2",
            params![content_id, version],
            |r| r.get(0),
        )
        .optional()?)
}
