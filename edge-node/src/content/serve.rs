//! HTTP details of serving a cached file: byte ranges, validators and the download name. Pure
//! functions, so the rules are unit-tested apart from the server.

use std::io::{Read, Seek};
use std::path::Path;

use axum::body::Body;
use bytes::Bytes;
use chrono::{DateTime, Utc};

/// Size of one body frame read from disk: memory per download stays near this, whatever the file
/// size.
pub const CHUNK: usize = 64 * 1024;

/// What a `Range` header asks of a file of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No (usable) range: the whole file, 200.
    Full,
    /// One satisfiable range, inclusive bounds: 206.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// A syntactically valid range outside the file: 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range (`a-b`, `a-`, `-n`). Multiple ranges and other units are
/// answered with the whole file (which RFC 9110 allows); malformed ranges are ignored.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return RangeRequest::Full };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeRequest::Full };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeRequest::Full,
        (true, false) => match parse(b) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if size == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Partial { start: size.saturating_sub(n), end: size - 1 },
            None => RangeRequest::Full,
        },
        (false, _) => {
            let Some(start) = parse(a) else { return RangeRequest::Full };
            let end = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                match parse(b) {
                    Some(e) if e >= start => e.min(size.saturating_sub(1)),
                    _ => return RangeRequest::Full,
                }
            };
            if start >= size { RangeRequest::Unsatisfiable } else { RangeRequest::Partial { start, end } }
        }
    }
}

/// The strong `ETag` of a file: its sha256, quoted.
pub fn etag(sha256: &str) -> String {
    format!("\"{sha256}\"")
}

/// Whether an `If-None-Match` value matches `etag` (`*`, a list, weak or strong forms).
pub fn none_match(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

/// Whether an `If-Modified-Since` date is at or after `last_modified` (both HTTP dates, second
/// precision); an unparsable date never matches, so the client gets the file.
pub fn not_modified_since(header: &str, last_modified: &str) -> bool {
    let parse = |s: &str| DateTime::parse_from_rfc2822(s.trim()).ok();
    matches!((parse(header), parse(last_modified)), (Some(since), Some(modified)) if modified <= since)
}

/// `Content-Disposition: attachment` with an ASCII fallback name and the exact name as RFC 5987
/// `filename*`. Quotes, backslashes, control and non-ASCII characters never reach the fallback.
pub fn content_disposition(file_name: &str) -> String {
    let fallback: String = file_name
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' && c != '%' || c == ' ' { c } else { '_' })
        .collect();
    let mut encoded = String::new();
    for b in file_name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// An HTTP date (`Last-Modified`) for Unix milliseconds.
pub fn http_date(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().format("%a, %d %b %Y %H:%M:%S GMT").to_string()
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
    use RangeRequest::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        let r = |h: &str| parse_range(Some(h), 100);
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(r("bytes=0-9"), Partial { start: 0, end: 9 });
        assert_eq!(r("bytes=90-"), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=90-500"), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=-10"), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=-500"), Partial { start: 0, end: 99 });
        assert_eq!(r("bytes=100-"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(r("bytes=0-1,5-6"), Full);
        assert_eq!(r("bytes=9-3"), Full);
        assert_eq!(r("items=0-1"), Full);
        assert_eq!(r("bytes=x-"), Full);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
    }

    #[test]
    fn etags_match_lists_weak_forms_and_star() {
        let e = etag("ab");
        assert_eq!(e, "\"ab\"");
        assert!(none_match("\"ab\"", &e));
        assert!(none_match("\"x\", W/\"ab\"", &e));
        assert!(none_match("*", &e));
        assert!(!none_match("\"abc\"", &e));
        let lm = http_date(1_700_000_000_000);
        assert!(not_modified_since(&lm, &lm));
        assert!(not_modified_since(&http_date(1_700_000_001_000), &lm));
        assert!(!not_modified_since(&http_date(1_699_999_999_000), &lm));
        assert!(!not_modified_since("yesterday", &lm));
    }

    #[test]
    fn download_names_cannot_break_the_header() {
        let d = content_disposition("Week 1 \"notes\"\\é.pdf");
        assert_eq!(
            d,
            "attachment; filename=\"Week 1 _notes___.pdf\"; filename*=UTF-8''Week%201%20%22notes%22%5C%C3%A9.pdf"
        );
        assert!(d.parse::<axum::http::HeaderValue>().is_ok());
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
