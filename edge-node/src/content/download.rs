//! Fetching one item from the cloud into the cache, resumably and verified.
//!
//! Bytes go to `partial/<id>-<version>.part`. After an interruption (a cut connection, a crash, a
//! power cut) the next attempt hashes what the part already holds and asks for the rest with
//! `Range: bytes=<len>-`; a `206` whose `Content-Range` starts there is appended, a `200` restarts
//! from zero. When the part has every byte it is fsynced, its size and sha256 are checked against
//! the manifest, and only then is it renamed into `files/` (and the directory fsynced). A part that
//! fails the check is deleted: the cache never holds a file that claims to be complete and is not.

use std::path::Path;

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::cache::{ItemRow, Paths, hash_file, sync_dir};
use crate::error::{Error, Result};

/// Attempts within one fetch while the transport fails but bytes keep arriving.
pub const MAX_RESUMES: u32 = 3;

/// The cloud's node download route credentials: HTTP Basic `node_id:mqtt_password`.
#[derive(Clone)]
pub struct Auth {
    /// The node id.
    pub user: String,
    /// The node's broker password.
    pub password: Option<crate::config::Secret>,
}

/// Why an attempt stopped.
enum Attempt {
    /// Every byte is in the part.
    Done,
    /// The transport failed after the part grew; resume.
    Interrupted(String),
}

/// Fetches `item` into the cache (resuming a part left by an earlier attempt) and verifies it.
/// On success the complete file exists at `paths.file(..)`; its mtime is returned.
pub async fn fetch(client: &reqwest::Client, auth: &Auth, paths: &Paths, item: &ItemRow) -> Result<i64> {
    let bad_id = || Error::Download(format!("unsafe content id {:?}", item.content_id));
    let part = paths.part(&item.content_id, item.version).ok_or_else(bad_id)?;
    let dest = paths.file(&item.content_id, item.version).ok_or_else(bad_id)?;

    // A crash between the rename and the database update leaves a complete file: adopt it if it
    // verifies.
    if let Ok(meta) = tokio::fs::metadata(&dest).await {
        if meta.len() == item.size && sha_of(&dest).await? == item.sha256 {
            return Ok(super::cache::mtime_ms(&meta));
        }
        tokio::fs::remove_file(&dest).await?;
    }

    // Hash what an earlier attempt left, then continue from there.
    let (mut hasher, mut have) = match tokio::fs::metadata(&part).await {
        Ok(m) if m.len() <= item.size => {
            let p = part.clone();
            let len = m.len();
            tokio::task::spawn_blocking(move || hash_file(&p, Some(len)))
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e)))??
        }
        Ok(_) => {
            // Longer than the item: not a prefix of it.
            tokio::fs::remove_file(&part).await?;
            (Sha256::new(), 0)
        }
        Err(_) => (Sha256::new(), 0),
    };
    // A prefix from an earlier attempt may itself be bad (a torn write, a changed source): if the
    // whole fails verification after a resume, it is fetched once more from byte zero.
    let mut resumed_from_part = have > 0;
    let mut resumes = 0;
    loop {
        match attempt(client, auth, &part, item, &mut hasher, &mut have).await? {
            Attempt::Done => {}
            Attempt::Interrupted(why) if resumes < MAX_RESUMES => {
                resumes += 1;
                resumed_from_part = true;
                tracing::info!(content_id = %item.content_id, why, resumes, "download interrupted; resuming");
                continue;
            }
            Attempt::Interrupted(why) => return Err(Error::Download(format!("interrupted {resumes} times: {why}"))),
        }
        let sha = hex::encode(std::mem::take(&mut hasher).finalize());
        if have == item.size && sha == item.sha256 {
            break;
        }
        // Never keep bytes that failed verification: the part is dropped before anything else.
        let _ = tokio::fs::remove_file(&part).await;
        if resumed_from_part {
            tracing::warn!(content_id = %item.content_id, "resumed download failed verification; fetching it whole");
            resumed_from_part = false;
            have = 0;
            continue;
        }
        return Err(Error::Download(format!(
            "verification failed: {have} bytes, sha256 {sha}; expected {} bytes, {}",
            item.size, item.sha256
        )));
    }
    // The part's bytes were fsynced by `attempt`; the rename below publishes them atomically.
    tokio::fs::rename(&part, &dest).await?;
    let files = paths.files_dir();
    let partial = paths.partial_dir();
    tokio::task::spawn_blocking(move || {
        sync_dir(&files)?;
        sync_dir(&partial)
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    let meta = tokio::fs::metadata(&dest).await?;
    Ok(super::cache::mtime_ms(&meta))
}

async fn sha_of(path: &Path) -> Result<String> {
    let path = path.to_path_buf();
    let (hasher, _) = tokio::task::spawn_blocking(move || hash_file(&path, None))
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    Ok(hex::encode(hasher.finalize()))
}

/// One request: continues the part from `have` bytes (whose hash is in `hasher`).
async fn attempt(
    client: &reqwest::Client,
    auth: &Auth,
    part: &Path,
    item: &ItemRow,
    hasher: &mut Sha256,
    have: &mut u64,
) -> Result<Attempt> {
    if *have == item.size {
        return Ok(Attempt::Done);
    }
    let mut request =
        client.get(&item.url).basic_auth(&auth.user, auth.password.as_ref().map(crate::config::Secret::expose));
    if *have > 0 {
        request = request.header(RANGE, format!("bytes={have}-"));
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Err(Error::Download(format!("request failed: {}", without_url(&e)))),
    };
    let status = response.status();
    match status {
        StatusCode::PARTIAL_CONTENT if *have > 0 => {
            let range = response.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !resume_range_ok(range, *have, item.size) {
                remove_part(part).await?;
                return Err(Error::Download(format!("resume answered with Content-Range {range:?}")));
            }
        }
        StatusCode::OK => {
            // The whole body: start over.
            *hasher = Sha256::new();
            *have = 0;
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            remove_part(part).await?;
            return Err(Error::Download("the cloud refused the resume range".into()));
        }
        other => return Err(Error::Download(format!("the cloud answered {other}"))),
    }
    let mut file = tokio::fs::OpenOptions::new().create(true).write(true).truncate(false).open(part).await?;
    // Drop anything past what was hashed (a write torn by a crash), then append.
    file.set_len(*have).await?;
    file.seek(std::io::SeekFrom::Start(*have)).await?;
    let started = *have;
    let mut body = response.bytes_stream();
    let result = loop {
        match body.next().await {
            None => break Ok(()),
            Some(Ok(chunk)) => {
                if *have + chunk.len() as u64 > item.size {
                    break Err(Overrun(Error::Download(format!("the cloud sent more than {} bytes", item.size))));
                }
                file.write_all(&chunk).await?;
                hasher.update(&chunk);
                *have += chunk.len() as u64;
            }
            Some(Err(e)) => break Err(Transport(Error::Download(without_url(&e)))),
        }
    };
    file.flush().await?;
    file.sync_all().await?;
    drop(file);
    match result {
        Ok(()) if *have == item.size => Ok(Attempt::Done),
        Err(Overrun(e)) => {
            // Not a prefix of the item: none of it is worth keeping.
            let _ = tokio::fs::remove_file(part).await;
            Err(e)
        }
        Ok(()) | Err(Transport(_)) if *have > started => {
            let why = match result {
                Err(Transport(e)) | Err(Overrun(e)) => e.to_string(),
                Ok(()) => format!("body ended at {have} of {} bytes", item.size),
            };
            Ok(Attempt::Interrupted(why))
        }
        // No progress: keep the part (what it holds is still a verified-as-we-go prefix) and let
        // the retry schedule decide when to try again.
        Ok(()) => Err(Error::Download(format!("body ended at {have} of {} bytes", item.size))),
        Err(Transport(e)) => Err(e),
    }
}

/// How a body stopped short.
enum BodyError {
    /// The connection failed; the bytes so far are good.
    Transport(Error),
    /// The cloud sent more than the manifest's size.
    Overrun(Error),
}
use BodyError::{Overrun, Transport};

/// Whether a resume's `Content-Range` continues exactly at `have` of an item of `size` bytes.
fn resume_range_ok(range: &str, have: u64, size: u64) -> bool {
    let Some(rest) = range.strip_prefix("bytes ") else { return false };
    let Some((span, total)) = rest.split_once('/') else { return false };
    let Some((start, end)) = span.split_once('-') else { return false };
    start.parse::<u64>().ok() == Some(have)
        && end.parse::<u64>().is_ok_and(|e| e < size)
        && (total == "*" || total.parse::<u64>().ok() == Some(size))
}

async fn remove_part(part: &Path) -> Result<()> {
    match tokio::fs::remove_file(part).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// A reqwest error without its URL.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<url>");
    }
    s
}

/// Hashes incrementally; exposed for the scrub's cost measurement in the benchmark.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_must_continue_exactly_where_the_part_ends_and_name_the_same_size() {
        assert!(resume_range_ok("bytes 100-999/1000", 100, 1000));
        assert!(resume_range_ok("bytes 100-499/*", 100, 1000), "a shorter range is fine: the rest comes next");
        assert!(!resume_range_ok("bytes 0-999/1000", 100, 1000), "from the start");
        assert!(!resume_range_ok("bytes 101-999/1000", 100, 1000), "a gap");
        assert!(!resume_range_ok("bytes 100-1999/2000", 100, 1000), "another file");
        assert!(!resume_range_ok("bytes 100-1000/1000", 100, 1000), "past the end");
        assert!(!resume_range_ok("items 100-999/1000", 100, 1000));
        assert!(!resume_range_ok("", 100, 1000));
    }
}
