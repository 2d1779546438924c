//! The content manifest from the cloud, checked before anything touches the disk: ids become
//! file names and file names go into `Content-Disposition`, so a hostile or broken manifest must
//! not be able to name a path outside the cache or smuggle header syntax.

use nimbus_core::snapshot::{ManifestItem, ManifestSnapshot};
use rusqlite::Connection;

use crate::error::{Error, Result};

/// Longest content id accepted (a UUID is 36).
pub const MAX_ID_LEN: usize = 64;
/// Longest file name accepted, in bytes.
pub const MAX_FILE_NAME_LEN: usize = 255;

/// Whether `id` is safe as a file-name component: 1 to [`MAX_ID_LEN`] ASCII letters, digits,
/// `-` or `_` (UUIDs and the like), so never `.`, `..` or a separator.
pub fn valid_content_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `name` is a plain file name: no separators, no control characters, not `.`/`..`.
pub fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FILE_NAME_LEN
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

/// Checks one item; the reason names the field.
pub fn validate_item(item: &ManifestItem) -> Result<()> {
    let bad = |what: &str| Error::Snapshot(format!("manifest item {:?}: {what}", item.content_id));
    if !valid_content_id(&item.content_id) {
        return Err(bad("content_id must be 1-64 letters, digits, '-' or '_'"));
    }
    if !valid_file_name(&item.file_name) {
        return Err(bad("file_name must be a plain file name"));
    }
    if item.sha256.len() != 64 || !item.sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad("sha256 must be 64 lower-case hex digits"));
    }
    if item.mime_type.parse::<axum::http::HeaderValue>().is_err() || !item.mime_type.contains('/') {
        return Err(bad("mime_type is not a media type"));
    }
    if !(item.url.starts_with("http://") || item.url.starts_with("https://")) {
        return Err(bad("url must be http(s)"));
    }
    if item.course_ids.is_empty() {
        return Err(bad("course_ids must not be empty"));
    }
    Ok(())
}

/// The items of a manifest that pass [`validate_item`]; the others are logged and skipped, so one
/// bad item does not keep a classroom from the rest. Duplicate ids keep the first.
pub fn valid_items(snap: &ManifestSnapshot) -> Vec<ManifestItem> {
    let mut seen = std::collections::HashSet::new();
    snap.items
        .iter()
        .filter(|item| match validate_item(item) {
            Ok(()) => seen.insert(item.content_id.clone()),
            Err(e) => {
                tracing::warn!(error = %e, "refusing a manifest item");
                false
            }
        })
        .cloned()
        .collect()
}

/// The cached manifest and its version, if one was received.
pub fn current(conn: &Connection) -> Result<Option<ManifestSnapshot>> {
    let Some(raw) = crate::timetable::raw_snapshot(conn, "manifest")? else { return Ok(None) };
    Ok(Some(serde_json::from_str(&raw)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> ManifestItem {
        ManifestItem {
            content_id: "0b6f5c1e-7d1a-4c8e-9a55-2f1f3c0d9e10".into(),
            version: 1,
            title: "Week 1".into(),
            file_name: "week-1 notes.pdf".into(),
            mime_type: "application/pdf".into(),
            size_bytes: 10,
            sha256: "a".repeat(64),
            course_ids: vec!["cs101".into()],
            url: "http://cloud/x".into(),
        }
    }

    #[test]
    fn hostile_ids_and_names_are_refused() {
        assert!(validate_item(&item()).is_ok());
        for id in ["", "..", ".", "../etc", "a/b", "a\\b", "a.b", "x%2F", &"a".repeat(65), "é"] {
            assert!(validate_item(&ManifestItem { content_id: id.into(), ..item() }).is_err(), "{id:?}");
        }
        for name in ["", ".", "..", "../../passwd", "a/b.pdf", "a\\b.pdf", "a\r\nSet-Cookie: x", "nul\0"] {
            assert!(validate_item(&ManifestItem { file_name: name.into(), ..item() }).is_err(), "{name:?}");
        }
        assert!(validate_item(&ManifestItem { sha256: "A".repeat(64), ..item() }).is_err());
        assert!(validate_item(&ManifestItem { url: "file:///etc/passwd".into(), ..item() }).is_err());
        assert!(validate_item(&ManifestItem { mime_type: "text\nplain".into(), ..item() }).is_err());
    }

    #[test]
    fn one_bad_item_does_not_hide_the_others() {
        let snap = ManifestSnapshot {
            version: 1,
            items: vec![ManifestItem { content_id: "../x".into(), ..item() }, item(), item()],
        };
        assert_eq!(valid_items(&snap), vec![item()]);
    }
}
