//! Serving a stored file over HTTP: the one rule for `Range` (RFC 9110 §14) and `If-Range`
//! (§13.1.5), the validators (`ETag`, `If-None-Match` §13.1.2, the `Last-Modified` date) and a
//! `Content-Disposition` whose file name cannot break the header (RFC 6266, RFC 8187
//! `filename*`). The cloud's content downloads and the classroom node's LAN downloads both answer
//! with these; each builds its own response around them. Pure functions, no I/O.
//!
//! A `Range` is honoured when it is a single `bytes=` range: `a-b`, `a-` or the suffix `-n`. The
//! unit is matched case-insensitively and whitespace around the range is tolerated; positions are
//! ASCII digits only (no sign), and a number too large for `u64` counts as "past any end". Other
//! units, multiple ranges and malformed or invalid ranges (`b < a`) are ignored and the whole file
//! is sent, which the RFC allows. A range that starts at or past the end, a zero-length suffix, or
//! any range of an empty file is unsatisfiable (`416`).

use alloc::format;
use alloc::string::{String, ToString};

use chrono::{DateTime, Utc};

/// What a `Range` header asks of a file of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No (usable) range: the whole file, `200`.
    Full,
    /// One satisfiable range, inclusive bounds within the file: `206`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// A valid range outside the file: `416`.
    Unsatisfiable,
}

impl ByteRange {
    /// The `Content-Range` of the answer for a file of `size` bytes: `bytes a-b/size` for a
    /// partial answer, `bytes */size` for a `416`, none for the whole file.
    pub fn content_range(&self, size: u64) -> Option<String> {
        match *self {
            ByteRange::Full => None,
            ByteRange::Partial { start, end } => Some(format!("bytes {start}-{end}/{size}")),
            ByteRange::Unsatisfiable => Some(format!("bytes */{size}")),
        }
    }
}

/// A position: ASCII digits only; saturates at `u64::MAX` (past the end of any file).
fn position(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))))
}

/// Parses a `Range` header against a file of `size` bytes (see the module docs for the rule).
pub fn parse_range(header: Option<&str>, size: u64) -> ByteRange {
    let Some(header) = header.map(str::trim) else { return ByteRange::Full };
    let Some((unit, spec)) = header.split_once('=') else { return ByteRange::Full };
    if !unit.eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return ByteRange::Full };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last `n` bytes, or the whole file when it is shorter.
        return match position(b) {
            None => ByteRange::Full,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if size == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Partial { start: size.saturating_sub(n), end: size - 1 },
        };
    }
    let Some(start) = position(a) else { return ByteRange::Full };
    let last = if b.is_empty() {
        u64::MAX
    } else {
        match position(b) {
            Some(e) if e >= start => e,
            _ => return ByteRange::Full,
        }
    };
    if start >= size {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Partial { start, end: last.min(size - 1) }
}

/// Whether a `Range` may be honoured given the request's `If-Range`: always without one; with
/// one, only when it names the current file, by its strong `etag` (a weak tag never matches) or
/// exactly its `last_modified` date. Otherwise the client's earlier part is of other bytes, and it
/// gets the whole file.
pub fn if_range_holds(if_range: Option<&str>, etag: &str, last_modified: &str) -> bool {
    match if_range.map(str::trim) {
        None => true,
        Some(v) => v == etag || v == last_modified,
    }
}

/// The range to answer for a request's `Range` and `If-Range` headers, against a file of `size`
/// bytes whose validators are `etag` and `last_modified`.
pub fn requested_range(
    range: Option<&str>,
    if_range: Option<&str>,
    etag: &str,
    last_modified: &str,
    size: u64,
) -> ByteRange {
    if if_range_holds(if_range, etag, last_modified) { parse_range(range, size) } else { ByteRange::Full }
}

/// The strong `ETag` of a file: its sha256, quoted.
pub fn etag(sha256: &str) -> String {
    format!("\"{sha256}\"")
}

/// Whether an `If-None-Match` value matches `etag` (`*`, a list, weak or strong forms: the weak
/// comparison the RFC asks for).
pub fn none_match(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

/// An HTTP date (`Last-Modified`, IMF-fixdate).
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// A file name safe to store and to show: no directories (`/` and `\` both separate), no control
/// characters, no leading dots, no surrounding whitespace, at most 200 characters; `download`
/// when nothing is left.
pub fn safe_file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let name: String = trimmed.chars().take(200).collect();
    if name.is_empty() { "download".to_string() } else { name }
}

/// `Content-Disposition: attachment` for [`safe_file_name`] of `file_name`: an ASCII fallback
/// `filename` (printable ASCII and spaces; `"`, `\`, `;`, `%`, non-ASCII and anything else become
/// `_`) and the exact name as RFC 8187 `filename*=UTF-8''…` (every byte outside `attr-char`
/// percent-encoded). Always a valid header value.
pub fn content_disposition(file_name: &str) -> String {
    let name = safe_file_name(file_name);
    let fallback: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ';' | '%') || c == ' ' { c } else { '_' })
        .collect();
    let mut encoded = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::ByteRange::*;
    use super::*;

    fn r(h: &str) -> ByteRange {
        parse_range(Some(h), 100)
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(r("bytes=0-9"), Partial { start: 0, end: 9 });
        assert_eq!(r("bytes=90-"), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=90-500"), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=-10"), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=-500"), Partial { start: 0, end: 99 });
        assert_eq!(r("bytes=100-"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(r("bytes=5-1"), Full);
        assert_eq!(r("bytes=9-3"), Full);
        assert_eq!(r("bytes=0-1,5-6"), Full);
        assert_eq!(r("items=0-1"), Full);
        assert_eq!(r("bytes=x-1"), Full);
        assert_eq!(r("bytes=x-"), Full);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
    }

    #[test]
    fn ranges_of_an_empty_file_are_unsatisfiable() {
        assert_eq!(parse_range(Some("bytes=-5"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 1), Partial { start: 0, end: 0 });
        assert_eq!(parse_range(Some("bytes=-1"), 1), Partial { start: 0, end: 0 });
    }

    #[test]
    fn odd_but_harmless_spellings_are_accepted() {
        assert_eq!(r("  bytes=0-9  "), Partial { start: 0, end: 9 });
        assert_eq!(r("bytes= 0 - 9"), Partial { start: 0, end: 9 });
        assert_eq!(r("Bytes=0-9"), Partial { start: 0, end: 9 });
        assert_eq!(r("BYTES=-10"), Partial { start: 90, end: 99 });
    }

    #[test]
    fn malformed_ranges_are_ignored() {
        for h in ["bytes=", "bytes=-", "bytes", "bytes 0-9", "bytes=0", "bytes=+0-9", "bytes=0-+9", "bytes=--5"] {
            assert_eq!(r(h), Full, "{h:?}");
        }
        assert_eq!(r("bytes=0-9,"), Full);
        assert_eq!(r("bytes=0x10-"), Full);
        assert_eq!(r("bytes=1.5-2"), Full);
    }

    #[test]
    fn numbers_too_large_for_u64_mean_past_any_end() {
        let huge = "99999999999999999999999";
        assert_eq!(r(&format!("bytes={huge}-")), Unsatisfiable);
        assert_eq!(r(&format!("bytes=10-{huge}")), Partial { start: 10, end: 99 });
        assert_eq!(r(&format!("bytes=-{huge}")), Partial { start: 0, end: 99 });
        assert_eq!(r(&format!("bytes={huge}-5")), Full);
        assert_eq!(parse_range(Some("bytes=0-"), u64::MAX), Partial { start: 0, end: u64::MAX - 1 });
        assert_eq!(parse_range(Some("bytes=-18446744073709551615"), u64::MAX), Partial { start: 0, end: u64::MAX - 1 });
    }

    #[test]
    fn content_range_names_the_part_or_the_size() {
        assert_eq!(Full.content_range(100), None);
        assert_eq!(Partial { start: 90, end: 99 }.content_range(100).as_deref(), Some("bytes 90-99/100"));
        assert_eq!(Unsatisfiable.content_range(100).as_deref(), Some("bytes */100"));
    }

    #[test]
    fn a_stale_if_range_gets_the_whole_file() {
        let (e, lm) = (etag("ab"), http_date(DateTime::from_timestamp(1_700_000_000, 0).unwrap()));
        let range = Some("bytes=0-9");
        assert_eq!(requested_range(range, None, &e, &lm, 100), Partial { start: 0, end: 9 });
        assert_eq!(requested_range(range, Some("\"ab\""), &e, &lm, 100), Partial { start: 0, end: 9 });
        assert_eq!(requested_range(range, Some(" \"ab\" "), &e, &lm, 100), Partial { start: 0, end: 9 });
        assert_eq!(requested_range(range, Some(&lm), &e, &lm, 100), Partial { start: 0, end: 9 });
        assert_eq!(requested_range(range, Some("\"old\""), &e, &lm, 100), Full);
        // If-Range asks for the strong comparison: a weak tag never matches.
        assert_eq!(requested_range(range, Some("W/\"ab\""), &e, &lm, 100), Full);
        assert_eq!(requested_range(range, Some("Thu, 01 Jan 1970 00:00:00 GMT"), &e, &lm, 100), Full);
        assert_eq!(requested_range(None, Some("\"ab\""), &e, &lm, 100), Full);
        assert_eq!(requested_range(Some("bytes=100-"), Some("\"ab\""), &e, &lm, 100), Unsatisfiable);
    }

    #[test]
    fn etags_match_lists_weak_forms_and_star() {
        let e = etag("ab");
        assert_eq!(e, "\"ab\"");
        assert!(none_match("\"ab\"", &e));
        assert!(none_match("\"x\", W/\"ab\"", &e));
        assert!(none_match("*", &e));
        assert!(!none_match("\"abc\"", &e));
        assert!(!none_match("ab", &e));
        assert_eq!(http_date(DateTime::UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn hostile_file_names_are_sanitised() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("C:\\Windows\\system32\\evil.exe"), "evil.exe");
        assert_eq!(safe_file_name("..\u{0}hidden\r\n"), "hidden");
        assert_eq!(safe_file_name("/"), "download");
        assert_eq!(safe_file_name("..."), "download");
        assert_eq!(safe_file_name(""), "download");
        assert_eq!(safe_file_name(" .bashrc "), "bashrc");
        assert_eq!(safe_file_name(&"é".repeat(300)).chars().count(), 200);
    }

    #[test]
    fn download_names_cannot_break_the_header() {
        let d = content_disposition("notes \"week 1\"; rm -rf.pdf");
        assert_eq!(
            d,
            "attachment; filename=\"notes _week 1__ rm -rf.pdf\"; filename*=UTF-8''notes%20%22week%201%22%3B%20rm%20-rf.pdf"
        );
        assert_eq!(
            content_disposition("Week 1 \"notes\"é%.pdf"),
            "attachment; filename=\"Week 1 _notes___.pdf\"; filename*=UTF-8''Week%201%20%22notes%22%C3%A9%25.pdf"
        );
        // A backslash separates directories, as in an upload from Windows: only the last part
        // is the name.
        assert_eq!(
            content_disposition("Week 1 \"notes\"\\é.pdf"),
            "attachment; filename=\"_.pdf\"; filename*=UTF-8''%C3%A9.pdf"
        );
        assert!(content_disposition("Résumé.pdf").contains("filename*=UTF-8''R%C3%A9sum%C3%A9.pdf"));
        assert!(content_disposition("Week 1 – Trees.pdf").starts_with("attachment; filename=\"Week 1 _ Trees.pdf\""));
        assert_eq!(content_disposition(""), "attachment; filename=\"download\"; filename*=UTF-8''download");
        for hostile in ["a\r\nSet-Cookie: x", "a\0b", "\u{7f}x\u{85}y", "x\"; filename=\"evil.exe", "\u{202e}fdp.exe"] {
            let d = content_disposition(hostile);
            assert!(!d.contains(['\r', '\n', '\0']), "{d:?}");
            assert!(d.bytes().all(|b| b == b' ' || b.is_ascii_graphic()), "{d:?}");
            assert_eq!(d.matches('"').count(), 2, "{d:?}");
        }
    }
}
