//! What the classroom pages (faculty [`super::page`], student [`super::student`]) share: one
//! layout, one stylesheet, the response headers and the QR code of the student page.
//!
//! Pages are written with `maud`, a compile-time template language that escapes every value put
//! into the HTML unless it is wrapped in `PreEscaped` (used here only for markup the node builds
//! itself from numbers: the QR code's path, and the constant refresh script). A template that
//! does not compile does not ship, and no string is concatenated into HTML by hand.
//!
//! The stylesheet is served under a name carrying its content hash ([`stylesheet_path`]), so
//! browsers may keep it for a year (`immutable`) and a new build's stylesheet is a new name. The
//! pages' `Content-Security-Policy` allows styles from the node itself only, and scripts only
//! with the page's nonce (the faculty page's refresh): no inline style or script runs.

use std::fmt::Write as _;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

use super::error::AppError;

/// The pages' stylesheet.
pub const STYLESHEET: &str = include_str!("assets/app.css");

/// `app.<first 16 hex digits of its sha256>.css`, computed once.
static STYLESHEET_NAME: LazyLock<String> =
    LazyLock::new(|| format!("app.{}.css", hex::encode(&Sha256::digest(STYLESHEET.as_bytes())[..8])));

/// Where the stylesheet is served: `/static/app.<hash>.css`.
pub fn stylesheet_path() -> String {
    format!("/static/{}", *STYLESHEET_NAME)
}

/// The faculty page reloads itself every 15 s (so taps show up), unless the user is typing.
const REFRESH: &str = "setInterval(function(){var a=document.activeElement;if(a&&a!==document.body)return;\
var f=document.querySelectorAll('input:not([type=hidden])');for(var i=0;i<f.length;i++)if(f[i].value)return;\
location.replace(location.pathname)},15000);";

/// A whole HTML document around `body`; with a nonce, it refreshes itself.
pub(crate) fn layout(title: &str, nonce: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · NimbusU Edge" }
                link rel="stylesheet" href=(stylesheet_path());
                @if let Some(n) = nonce {
                    script nonce=(n) { (PreEscaped(REFRESH)) }
                }
            }
            body { main { (body) } }
        }
    }
}

/// Which fetches a page may make besides loading itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetches {
    /// None (`connect-src 'none'`).
    None,
    /// Same-origin `fetch` (the student page: a download checked from the page itself).
    SameOrigin,
}

/// An HTML response with the pages' security headers; `nonce` allows that one inline script.
pub(crate) fn html_page(status: StatusCode, page: Markup, nonce: Option<&str>, fetches: Fetches) -> Response {
    let script_src = nonce.map_or_else(|| "'none'".to_owned(), |n| format!("'nonce-{n}'"));
    let connect = if fetches == Fetches::SameOrigin { "'self'" } else { "'none'" };
    let csp = format!(
        "default-src 'none'; style-src 'self'; script-src {script_src}; connect-src {connect}; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut res = (status, Html(page.into_string())).into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: under it Chromium sends `Origin: null` even for our own form posts.
    // `same-origin` still sends nothing to other sites.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    res
}

/// `GET /static/{name}`: the stylesheet under its current name, cacheable for a year; any other
/// name (an old build's) is 404.
pub(crate) async fn static_file(Path(name): Path<String>) -> Result<Response, AppError> {
    if name != *STYLESHEET_NAME {
        return Err(AppError::not_found("Resource not found"));
    }
    let mut res = STYLESHEET.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(res)
}

/// A QR code of `text` as inline SVG (no script, no style attribute: allowed by the CSP), or
/// `None` if the text is too long for a QR code. Dark modules are one path; 4 modules of quiet
/// zone around them, as scanners expect.
pub(crate) fn qr_svg(text: &str, label: &str) -> Option<Markup> {
    let qr = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium).ok()?;
    let border = 4;
    let size = qr.size();
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                let _ = write!(path, "M{},{}h1v1h-1z", x + border, y + border);
            }
        }
    }
    let view = size + 2 * border;
    Some(html! {
        svg xmlns="http://www.w3.org/2000/svg" class="qr" viewBox=(format!("0 0 {view} {view}"))
            role="img" aria-label=(label) shape-rendering="crispEdges" {
            rect width="100%" height="100%" fill="#fff" {}
            path d=(path) fill="#000" {}
        }
    })
}

/// A human size: `532 B`, `14.2 kB`, `3.1 MB`, `1.4 GB` (decimal units, as phones show them).
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    while v >= 999.95 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// What a person calls a file of MIME type `mime`.
pub(crate) fn kind_of(mime: &str) -> String {
    let essence = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let known = match essence.as_str() {
        "application/pdf" => "PDF",
        "application/zip" => "ZIP archive",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "Slides (PowerPoint)",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "Document (Word)",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "Spreadsheet (Excel)",
        "application/vnd.oasis.opendocument.presentation" => "Slides (ODP)",
        "application/vnd.oasis.opendocument.text" => "Document (ODT)",
        "text/plain" => "Text",
        "text/html" => "Web page",
        "text/csv" => "CSV table",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    match essence.split_once('/') {
        Some(("video", sub)) => format!("Video ({})", sub.to_ascii_uppercase()),
        Some(("audio", sub)) => format!("Audio ({})", sub.to_ascii_uppercase()),
        Some(("image", sub)) => format!("Image ({})", sub.to_ascii_uppercase()),
        _ if essence.is_empty() => "File".to_owned(),
        _ => essence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_every_value() {
        let evil = r#"<script>alert("x")</script> & 'y'"#;
        let page = layout(evil, None, html! { p title=(evil) { (evil) } }).into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 'y'"), "{page}");
    }

    #[test]
    fn the_stylesheet_name_carries_its_hash() {
        let p = stylesheet_path();
        assert!(p.starts_with("/static/app.") && p.ends_with(".css") && p.len() == "/static/app..css".len() + 16);
    }

    #[test]
    fn a_qr_code_is_an_svg_path_with_a_quiet_zone() {
        let svg = qr_svg("http://10.0.0.5:8480/student", "QR").unwrap().into_string();
        assert!(svg.starts_with("<svg") && svg.contains("<path d=\"M") && svg.contains("viewBox=\"0 0 "), "{svg}");
        assert!(qr_svg(&"x".repeat(5000), "QR").is_none(), "too long for a QR code");
    }

    #[test]
    fn sizes_and_kinds_read_as_people_say_them() {
        assert_eq!(human_size(532), "532 B");
        assert_eq!(human_size(14_200), "14.2 kB");
        assert_eq!(human_size(3_100_000), "3.1 MB");
        assert_eq!(human_size(999_999), "1.0 MB");
        assert_eq!(kind_of("application/pdf"), "PDF");
        assert_eq!(kind_of("video/mp4"), "Video (MP4)");
        assert_eq!(kind_of("text/plain; charset=utf-8"), "Text");
        assert_eq!(kind_of("application/x-thing"), "application/x-thing");
        assert_eq!(kind_of(""), "File");
    }
}
