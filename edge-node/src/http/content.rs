//! LAN content delivery: students and faculty list and download the cached course material with
//! the access token the cloud issued them, verified offline ([`crate::token`]).
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/content` | `{"items":[…]}`: complete items of the caller's courses |
//! | `GET /api/content/{content_id}` | the file: `Range` (206/416), `ETag`/`If-None-Match` (304), `If-Range`, `Last-Modified`, `Content-Type`, `Content-Disposition` |
//!
//! 401 without a valid access token, 403 for content of a course the caller neither attends
//! (roster) nor teaches (timetable), 400 for an id that is not a content id (so no path can be
//! smuggled in), 404 for content not cached. Only rows marked complete whose file exists are
//! served; a partial download is invisible.
//!
//! A file is served only while its size and mtime are those recorded when its sha256 matched.
//!
//! A GET that starts at byte 0 appends `CONTENT_ACCESSED` (`access_type: download`) to the
//! outbox as telemetry and refreshes the item's LRU clock; later ranges of the same file (a video
//! player seeking) and HEAD requests are not counted. Events are written in batches by a background task so a
//! busy classroom does not queue on the database.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nimbus_core::event::content::{AccessType, ContentAccessedPayload};
use nimbus_core::http_file::{self, ByteRange};
use nimbus_core::token::Claims;
use nimbus_core::topics::Topic;
use rusqlite::Connection;
use serde::Serialize;
use tokio::sync::mpsc;

use super::error::{ApiPath, AppError};
use super::{AppState, blocking};
use crate::clock::{Clock, Now};
use crate::content::cache::{self, ItemRow, Paths};
use crate::content::manifest::valid_content_id;
use crate::content::serve;
use crate::outbox::{self, Priority};
use crate::store::Store;
use crate::token::KeyRing;

/// Access events waiting for the writer; beyond this they are dropped (telemetry).
pub const ACCESS_QUEUE: usize = 4096;
/// Most access events written in one transaction.
pub const ACCESS_BATCH: usize = 256;

/// What the content routes need.
#[derive(Clone)]
pub struct ContentRoutes {
    store: Store,
    clock: Arc<dyn Clock>,
    keys: KeyRing,
    paths: Paths,
    access: mpsc::Sender<Access>,
    /// Access events dropped because the writer fell behind (logged sparingly).
    dropped: Arc<AtomicU64>,
}

struct Access {
    content_id: String,
    version: u32,
    user_id: String,
    ip_address: Option<String>,
    user_agent: Option<String>,
    now: Now,
}

impl ContentRoutes {
    /// The routes over the node's store and cache directory. Spawns the access-event writer,
    /// which finishes once every clone of the routes is dropped (the server stopped).
    pub fn new(store: Store, clock: Arc<dyn Clock>, paths: Paths) -> (ContentRoutes, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(ACCESS_QUEUE);
        let writer = tokio::spawn(write_access_events(store.clone(), rx));
        let keys = KeyRing::new(store.clone());
        (ContentRoutes { store, clock, keys, paths, access: tx, dropped: Arc::new(AtomicU64::new(0)) }, writer)
    }

    async fn caller(&self, headers: &HeaderMap) -> Result<Claims, AppError> {
        let token = bearer(headers).ok_or_else(|| AppError::unauthorized("Authentication required"))?;
        let now = self.clock.now().utc.timestamp();
        Ok(self.keys.verify(token, now).await?)
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub(crate) fn routes(state: &AppState) -> Result<&ContentRoutes, AppError> {
    state.content.as_ref().ok_or_else(|| AppError::not_found("Content is not enabled on this node"))
}

/// The courses a user attends (roster) or teaches (timetable).
pub fn courses_of(conn: &Connection, user_id: &str) -> crate::Result<HashSet<String>> {
    let mut stmt = conn.prepare(
        "SELECT course_id FROM roster WHERE student_id = ?1
         UNION SELECT course_id FROM timetable_entries WHERE faculty_id = ?1",
    )?;
    Ok(stmt.query_map([user_id], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?)
}

/// Whether the file on disk is the one that was verified: same size, not modified since. A file
/// changed behind the node's back is neither listed nor served until it is verified again.
fn still_verified(meta: &std::fs::Metadata, item: &ItemRow) -> bool {
    meta.is_file() && meta.len() == item.size && Some(cache::mtime_ms(meta)) == item.verified_mtime_ms
}

fn allowed(item: &ItemRow, courses: &HashSet<String>) -> bool {
    item.course_ids.iter().any(|c| courses.contains(c))
}

/// One entry of `GET /api/content`.
#[derive(Debug, Serialize)]
pub struct ContentView {
    /// Content id.
    pub content_id: String,
    /// Cached version.
    pub version: u32,
    /// Title.
    pub title: String,
    /// Download name.
    pub file_name: String,
    /// Media type.
    pub mime_type: String,
    /// Size.
    pub size_bytes: u64,
    /// SHA-256 (also the `ETag`).
    pub sha256: String,
    /// Courses it belongs to.
    pub course_ids: Vec<String>,
    /// Where to download it on this node.
    pub url: String,
}

/// The complete, still verified items of `user_id`'s courses (roster, or the timetable for
/// faculty), as `GET /api/content` lists them.
pub(crate) async fn items_for(routes: &ContentRoutes, user_id: String) -> Result<Vec<ContentView>, AppError> {
    let paths = routes.paths.clone();
    let store = routes.store.clone();
    blocking(move || {
        store
            .with(|c| {
                let courses = courses_of(c, &user_id)?;
                Ok(cache::servable_all(c)?
                    .into_iter()
                    .filter(|i| allowed(i, &courses))
                    .filter(|i| {
                        paths
                            .file(&i.content_id, i.version)
                            .and_then(|p| std::fs::metadata(p).ok())
                            .is_some_and(|m| still_verified(&m, i))
                    })
                    .map(|i| ContentView {
                        url: format!("/api/content/{}", i.content_id),
                        content_id: i.content_id,
                        version: i.version,
                        title: i.title,
                        file_name: i.file_name,
                        mime_type: i.mime,
                        size_bytes: i.size,
                        sha256: i.sha256,
                        course_ids: i.course_ids,
                    })
                    .collect::<Vec<_>>())
            })
            .map_err(AppError::from)
    })
    .await
}

/// `GET /api/content`.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let routes = routes(&state)?.clone();
    let claims = routes.caller(&headers).await?;
    let items = items_for(&routes, claims.sub).await?;
    Ok(axum::Json(serde_json::json!({ "items": items })).into_response())
}

/// `GET /api/content/{content_id}`.
pub async fn download(
    State(state): State<AppState>,
    ApiPath(content_id): ApiPath<String>,
    peer: Option<ConnectInfo<SocketAddr>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let routes = routes(&state)?.clone();
    let claims = routes.caller(&headers).await?;
    serve_to(&routes, claims.sub, content_id, peer, method, &headers).await
}

/// Serves cached item `content_id` to `user_id` (already authenticated: by an access token, or
/// by the student page's session): 403 unless it belongs to one of their courses; `Range`,
/// `If-Range`, `ETag`/`If-None-Match`, `If-Modified-Since` as the module docs say.
pub(crate) async fn serve_to(
    routes: &ContentRoutes,
    user_id: String,
    content_id: String,
    peer: Option<ConnectInfo<SocketAddr>>,
    method: Method,
    headers: &HeaderMap,
) -> Result<Response, AppError> {
    if !valid_content_id(&content_id) {
        return Err(AppError::invalid_field("content_id", "must be a content id"));
    }
    let store = routes.store.clone();
    let (id, user) = (content_id.clone(), user_id.clone());
    let (item, courses) =
        blocking(move || store.with(|c| Ok((cache::servable(c, &id)?, courses_of(c, &user)?))).map_err(AppError::from))
            .await?;
    let not_found =
        || AppError::not_found("Content not found").with_details(serde_json::json!({ "content_id": content_id }));
    let Some(item) = item else { return Err(not_found()) };
    if !allowed(&item, &courses) {
        return Err(AppError::forbidden("This content belongs to a course you are not in"));
    }
    let Some(path) = routes.paths.file(&item.content_id, item.version) else { return Err(not_found()) };
    // The file must be the one that was verified: same size, and not modified since (a change
    // while the node was off is caught here before the start-up scrub gets to it).
    let meta = match tokio::fs::metadata(&path).await {
        Ok(m) if still_verified(&m, &item) => m,
        _ => {
            tracing::warn!(content_id = %item.content_id, "a complete item's file is missing or changed since it was verified; not serving it");
            let (store, id, version) = (routes.store.clone(), item.content_id.clone(), item.version);
            if let Err(e) = store.run(move |c| cache::recheck(c, &id, version)).await {
                tracing::error!(error = %e, "could not queue a changed file for re-verification");
            }
            return Err(not_found());
        }
    };
    let size = meta.len();
    let etag = http_file::etag(&item.sha256);
    let last_modified = serve::http_date(item.completed_ms.unwrap_or_else(|| cache::mtime_ms(&meta)));
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());

    let mut res = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, &last_modified)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, no-cache");
    // RFC 9110 13.2.2: If-None-Match decides when present; If-Modified-Since only without it.
    let not_modified = match header_str(header::IF_NONE_MATCH) {
        Some(h) => http_file::none_match(h, &etag),
        None => header_str(header::IF_MODIFIED_SINCE).is_some_and(|h| serve::not_modified_since(h, &last_modified)),
    };
    if not_modified {
        return res.status(StatusCode::NOT_MODIFIED).body(axum::body::Body::empty()).map_err(AppError::internal);
    }
    // If-Range with another validator: the file changed since the client's first part; send it whole.
    let range = http_file::requested_range(
        header_str(header::RANGE),
        header_str(header::IF_RANGE),
        &etag,
        &last_modified,
        size,
    );
    let (status, start, len) = match range {
        ByteRange::Full => (StatusCode::OK, 0, size),
        ByteRange::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        ByteRange::Unsatisfiable => {
            let mut r =
                AppError::new(StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_NOT_SATISFIABLE", "Range not satisfiable")
                    .with_details(serde_json::json!({ "size": size }))
                    .into_response();
            if let Some(v) = range.content_range(size).and_then(|v| HeaderValue::from_str(&v).ok()) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    if let Some(content_range) = range.content_range(size) {
        res = res.header(header::CONTENT_RANGE, content_range);
    }
    let body = serve::file_body(&path, start, len).await.map_err(AppError::internal)?;
    let content_type =
        HeaderValue::from_str(&item.mime).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let response = res
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, len)
        .header(header::CONTENT_DISPOSITION, http_file::content_disposition(&item.file_name))
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        // Course files share the node's origin with the faculty page: even an HTML file opened
        // in the browser runs no script there.
        .header(header::CONTENT_SECURITY_POLICY, "sandbox")
        .body(body)
        .map_err(AppError::internal)?;
    if start == 0 && method == Method::GET {
        let access = Access {
            content_id: item.content_id,
            version: item.version,
            user_id,
            ip_address: peer.map(|ConnectInfo(a)| a.ip().to_string()),
            user_agent: header_str(header::USER_AGENT).map(|s| s.chars().take(256).collect()),
            now: routes.clock.now(),
        };
        if routes.access.try_send(access).is_err() {
            // Telemetry: under a burst it is dropped; one line per thousand, not per request.
            let n = routes.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n % 1000 == 1 {
                tracing::warn!(dropped_total = n, "access log queue full; dropping content access events");
            }
        }
    }
    Ok(response)
}

/// Writes queued access events in batches: `CONTENT_ACCESSED` to the outbox (telemetry) and the
/// item's LRU clock, one transaction per batch.
async fn write_access_events(store: Store, mut rx: mpsc::Receiver<Access>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < ACCESS_BATCH {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        let n = batch.len();
        let result = store
            .run(move |c| {
                let tx = c.transaction()?;
                for a in &batch {
                    let payload = ContentAccessedPayload {
                        content_id: a.content_id.clone(),
                        user_id: a.user_id.clone(),
                        access_type: AccessType::Download,
                        ip_address: a.ip_address.clone(),
                        user_agent: a.user_agent.clone(),
                        device_type: None,
                        duration_seconds: None,
                        accessed_at: a.now.utc,
                    };
                    outbox::append(
                        &tx,
                        "CONTENT_ACCESSED",
                        Topic::ContentEvents,
                        Priority::Telemetry,
                        &payload,
                        &a.now,
                    )?;
                    cache::touch(&tx, &a.content_id, a.version, a.now.wall_ms())?;
                }
                tx.commit()?;
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, events = n, "could not record content access events");
        }
    }
}
