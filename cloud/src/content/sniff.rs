//! What an upload really is, from its first bytes: a declared `Content-Type` is only a claim, and
//! a student's browser trusts what the cloud (and later the node) says the file is. The handful
//! of magic numbers course material uses is a short table; the check is the part that matters:
//! the declared type must be on the allow-list **and** agree with the bytes (a `.docx` is a ZIP
//! container, so `application/zip` bytes satisfy an Office type, but never a PDF).

/// Bytes the sniffer wants before deciding (fewer only when the file is shorter).
pub const SNIFF_BYTES: usize = 512;

/// The family the first bytes belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// `%PDF-`.
    Pdf,
    /// PNG signature.
    Png,
    /// JPEG SOI marker.
    Jpeg,
    /// `GIF87a` / `GIF89a`.
    Gif,
    /// A ZIP container (ZIP, Office Open XML, EPUB).
    Zip,
    /// An ISO base media file (`ftyp` box): MP4 video or audio.
    Mp4,
    /// MP3 (ID3 tag or an MPEG audio frame sync).
    Mp3,
    /// UTF-8 text without NUL bytes.
    Text,
    /// None of the above.
    Unknown,
}

impl Sniffed {
    /// A name for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Sniffed::Pdf => "application/pdf",
            Sniffed::Png => "image/png",
            Sniffed::Jpeg => "image/jpeg",
            Sniffed::Gif => "image/gif",
            Sniffed::Zip => "application/zip",
            Sniffed::Mp4 => "video/mp4",
            Sniffed::Mp3 => "audio/mpeg",
            Sniffed::Text => "text/plain",
            Sniffed::Unknown => "application/octet-stream",
        }
    }

    /// Whether a file declared as `mime` may have these first bytes.
    pub fn agrees_with(self, mime: &str) -> bool {
        match self {
            Sniffed::Pdf => mime == "application/pdf",
            Sniffed::Png => mime == "image/png",
            Sniffed::Jpeg => mime == "image/jpeg",
            Sniffed::Gif => mime == "image/gif",
            Sniffed::Zip => {
                mime == "application/zip"
                    || mime == "application/epub+zip"
                    || mime.starts_with("application/vnd.openxmlformats-officedocument.")
                    || mime.starts_with("application/vnd.oasis.opendocument.")
            }
            Sniffed::Mp4 => matches!(mime, "video/mp4" | "audio/mp4" | "video/quicktime"),
            Sniffed::Mp3 => mime == "audio/mpeg",
            Sniffed::Text => mime.starts_with("text/") || mime == "application/json",
            Sniffed::Unknown => false,
        }
    }
}

/// Classifies `head`, the first bytes of a file (up to [`SNIFF_BYTES`]; `complete` when that is
/// the whole file, so a cut-off UTF-8 sequence at the end is a real error).
pub fn sniff(head: &[u8], complete: bool) -> Sniffed {
    let starts = |sig: &[u8]| head.starts_with(sig);
    if starts(b"%PDF-") {
        Sniffed::Pdf
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Sniffed::Png
    } else if starts(&[0xFF, 0xD8, 0xFF]) {
        Sniffed::Jpeg
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Sniffed::Gif
    } else if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
        Sniffed::Zip
    } else if head.len() >= 12 && &head[4..8] == b"ftyp" {
        Sniffed::Mp4
    } else if starts(b"ID3") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0) {
        Sniffed::Mp3
    } else if !head.is_empty() && is_text(head, complete) {
        Sniffed::Text
    } else {
        Sniffed::Unknown
    }
}

fn is_text(head: &[u8], complete: bool) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        // A multi-byte character cut by the sample's end is fine unless the file ends there.
        Err(e) => !complete && e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

/// The seed's `content_type` for a MIME type.
pub fn content_type_of(mime: &str) -> &'static str {
    match mime {
        m if m.starts_with("video/") => "video",
        m if m.starts_with("audio/") => "audio",
        m if m.starts_with("image/") => "image",
        m if m.contains("presentationml") => "slides",
        m if m.contains("spreadsheetml") || m == "text/csv" => "spreadsheet",
        "application/zip" => "archive",
        "application/pdf" | "application/epub+zip" => "document",
        m if m.contains("wordprocessingml") || m.starts_with("text/") => "document",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_decide_the_family() {
        assert_eq!(sniff(b"%PDF-1.7\n...", false), Sniffed::Pdf);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", false), Sniffed::Png);
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10], false), Sniffed::Jpeg);
        assert_eq!(sniff(b"PK\x03\x04\x14\0\x06\0", false), Sniffed::Zip);
        assert_eq!(sniff(b"\0\0\0\x20ftypisom\0\0\x02\0", false), Sniffed::Mp4);
        assert_eq!(sniff("Week 1: arrays — notes\n".as_bytes(), true), Sniffed::Text);
        assert_eq!(sniff(b"MZ\x90\0\x03\0\0\0", false), Sniffed::Unknown);
        assert_eq!(sniff(b"", true), Sniffed::Unknown);
    }

    #[test]
    fn text_cut_mid_character_is_text_only_when_more_follows() {
        let s = "naïve".as_bytes();
        let cut = &s[..3]; // "na" + the first byte of "ï"
        assert_eq!(sniff(cut, false), Sniffed::Text);
        assert_eq!(sniff(cut, true), Sniffed::Unknown);
    }

    #[test]
    fn declared_types_must_agree_with_the_bytes() {
        let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
        assert!(Sniffed::Zip.agrees_with(docx));
        assert!(!Sniffed::Zip.agrees_with("application/pdf"));
        assert!(!Sniffed::Pdf.agrees_with("image/png"));
        assert!(Sniffed::Text.agrees_with("text/markdown"));
        assert!(!Sniffed::Unknown.agrees_with("application/octet-stream"));
        assert_eq!(content_type_of(docx), "document");
        assert_eq!(content_type_of("video/mp4"), "video");
    }
}
