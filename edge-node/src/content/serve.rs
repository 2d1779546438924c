//! The node's own details of serving a cached file: streaming it from disk a chunk at a time,
//! `If-Modified-Since`, and `Last-Modified` from a Unix-millisecond time. The rules it shares with
//! the cloud (`Range`, `If-Range`, `ETag`/`If-None-Match`, `Content-Disposition`) are
//! [`nimbus_core::http_file`].

use std::io::{Read, Seek};
use std::path::Path;

use axum::body::Body;
use bytes::Bytes;
use chrono::{DateTime, Utc};

/// Size of one body frame read from disk: memory per download stays near this, whatever the file
/// size.
pub const CHUNK: usize = 64 * 1024;

/// Whether an `If-Modified-Since` date is at or after `last_modified` (both HTTP dates, second
/// precision); an unparsable date never matches, so the client gets the file.
pub fn not_modified_since(header: &str, last_modified: &str) -> bool {
    let parse = |s: &str| DateTime::parse_from_rfc2822(s.trim()).ok();
    matches!((parse(header), parse(last_modified)), (Some(since), Some(modified)) if modified <= since)
}

/// An HTTP date (`Last-Modified`) for Unix milliseconds.
pub fn http_date(ms: i64) -> String {
    nimbus_core::http_file::http_date(DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default())
}

/// Streams `len` bytes of `path` from `start`, [`CHUNK`] at a time. Each chunk is read straight
/// into the buffer that becomes the body frame (one blocking-pool hop and no second copy per
/// chunk, unlike `tokio::fs::File` under a `ReaderStream`), so a download holds about one chunk
/// in the node plus what hyper has queued, whatever the file size.
pub async fn file_body(path: &Path, start: u64, len: u64) -> std::io::Result<Body> {
    let path = path.to_path_buf();
    let file = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(path)?;
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start))?;
        }
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(std::io::Error::other)??;
    let chunks = futures_util::stream::try_unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        let want = left.min(CHUNK as u64) as usize;
        let (file, buf) = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; want];
            file.read_exact(&mut buf)?;
            Ok::<_, std::io::Error>((file, buf))
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(Some((Bytes::from(buf), (file, left - want as u64))))
    });
    Ok(Body::from_stream(chunks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modified_since_compares_http_dates_to_the_second() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        let lm = http_date(1_700_000_000_000);
        assert!(not_modified_since(&lm, &lm));
        assert!(not_modified_since(&http_date(1_700_000_001_000), &lm));
        assert!(!not_modified_since(&http_date(1_699_999_999_000), &lm));
        assert!(!not_modified_since("yesterday", &lm));
    }
}
