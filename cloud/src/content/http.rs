//! The content routes of the admin API (`/api/v1/content…`) and the classroom nodes' download
//! route (`/api/v1/edge/content/:id/versions/:version`).
//!
//! Who sees what: holders of `content:write` (faculty, admins) see every item that is not
//! deleted; anyone else with `content:read` (students) sees published items mapped to a course
//! they are enrolled in (`course_service_db`), or granted to them or to one of those courses in
//! `content_permissions`; an item they may not see is a 404, as if it did not exist. Changing an
//! item needs `content:write` (`content:publish` to publish) and being an admin, its creator or
//! the holder of an `edit`/`manage` grant on it.
//!
//! Uploads are `multipart/form-data`: a `metadata` part (JSON, first) and a `file` part whose
//! `Content-Type` is the declared type; the file streams into GridFS ([`super::store`]). The
//! gateway's 1 MiB body limit is lifted on the two upload routes only; the store enforces
//! `content.max_bytes` while streaming.
//!
//! Downloads answer `Range` (one range; `206` with `Content-Range`, `416` when unsatisfiable),
//! `If-None-Match`, and carry `ETag` (the sha256), `Content-Type`, `Last-Modified`, and a
//! `Content-Disposition` whose file name is sanitised. Every download is logged
//! (`content_access_logs` + `CONTENT_ACCESSED`).

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Extension, Json};
use futures_util::StreamExt;
use nimbus_core::http::{ApiJson, ApiPath, AppError};
use serde_json::json;
use uuid::Uuid;

use super::items::{self, Access, ContentQuery, ContentUpdate, NewContent, NewPermission, NewVersion};
use super::state::{ContentState, is_staff};
use super::store::{Store, UploadPolicy};
use crate::error::Error;
use crate::http::{Access as RouteAccess, ApiRoutes, Caller, RequestContext};

/// Largest `metadata` part of an upload.
const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Slack for multipart framing and the metadata part above `content.max_bytes`, for the early
/// `Content-Length` check.
const MULTIPART_OVERHEAD: u64 = 1024 * 1024;

type ApiResult<T> = Result<T, AppError>;

/// The content routes over `state`.
pub fn router(state: ContentState) -> ApiRoutes {
    let read = RouteAccess::Permission("content:read");
    let write = RouteAccess::Permission("content:write");
    let publish = RouteAccess::Permission("content:publish");
    let no_limit = DefaultBodyLimit::disable();
    ApiRoutes::new()
        .route(Method::POST, "/api/v1/content", write, post(upload).layer(no_limit))
        .route(Method::GET, "/api/v1/content", read, get(search))
        .route(Method::GET, "/api/v1/content/:id", read, get(show))
        .route(Method::PATCH, "/api/v1/content/:id", write, patch(update))
        .route(Method::DELETE, "/api/v1/content/:id", write, delete(remove))
        .route(Method::PUT, "/api/v1/content/:id/courses", write, put(set_courses))
        .route(Method::POST, "/api/v1/content/:id/publish", publish, post(publish_item))
        .route(Method::POST, "/api/v1/content/:id/unpublish", publish, post(unpublish_item))
        .route(Method::GET, "/api/v1/content/:id/versions", read, get(list_versions))
        .route(Method::POST, "/api/v1/content/:id/versions", write, post(upload_version).layer(no_limit))
        .route(Method::GET, "/api/v1/content/:id/download", read, get(download_current))
        .route(Method::GET, "/api/v1/content/:id/versions/:version/download", read, get(download_version))
        .route(Method::GET, "/api/v1/content/:id/permissions", write, get(list_permissions))
        .route(Method::POST, "/api/v1/content/:id/permissions", write, post(grant))
        .route(Method::DELETE, "/api/v1/content/:id/permissions/:permission_id", write, delete(revoke))
        .route(Method::GET, "/api/v1/edge/content/:id/versions/:version", RouteAccess::Node, get(node_download))
        .merge(super::folders::routes())
        .with_state(state)
}

/// The content routes' OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    upload,
    search,
    show,
    update,
    remove,
    set_courses,
    publish_item,
    unpublish_item,
    list_versions,
    upload_version,
    download_current,
    download_version,
    list_permissions,
    grant,
    revoke,
    node_download
))]
pub struct ContentApi;

/// A file name safe to store and to show: no directories, no control characters, no leading
/// dots, at most 200 characters; `download` when nothing is left.
pub fn safe_file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let name: String = trimmed.chars().take(200).collect();
    if name.is_empty() { "download".to_owned() } else { name }
}

/// `attachment` with an ASCII fallback name and the UTF-8 name (RFC 6266 / 8187).
pub fn content_disposition(file_name: &str) -> String {
    let name = safe_file_name(file_name);
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ';' | '%') || c == ' ' { c } else { '_' })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// A `Range` request header against a body of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No (usable) range: the whole body, `200`.
    Full,
    /// Bytes `start..=end`, `206`.
    Partial(u64, u64),
    /// A range that starts past the end, `416`.
    Unsatisfiable,
}

/// Parses a single `bytes=` range (RFC 9110). Malformed headers and multiple ranges are ignored
/// (the whole body is sent), as the RFC allows.
pub fn parse_range(header: Option<&str>, size: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last `b` bytes.
        return match b.parse::<u64>() {
            Ok(0) => ByteRange::Unsatisfiable,
            Ok(_) if size == 0 => ByteRange::Unsatisfiable,
            Ok(n) => ByteRange::Partial(size - n.min(size), size - 1),
            Err(_) => ByteRange::Full,
        };
    }
    let Ok(start) = a.parse::<u64>() else {
        return ByteRange::Full;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return ByteRange::Full,
        }
    };
    if start >= size {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Partial(start, end.min(size - 1))
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(500).collect())
}

/// Streams `version` of an item with the download headers, answering `Range` and
/// `If-None-Match`; returns the response and the range served (for the access log).
async fn serve(
    store: &Store,
    version: &items::Version,
    headers: &HeaderMap,
) -> ApiResult<(Response, Option<Option<(u64, u64)>>)> {
    let size = u64::try_from(version.file_size).unwrap_or(0);
    let etag = format!("\"{}\"", version.sha256);
    let etag_value = HeaderValue::from_str(&etag).map_err(AppError::internal)?;
    let last_modified = httpdate(version.created_at);
    let if_none_match = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    if if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        res.headers_mut().insert(header::ETAG, etag_value);
        return Ok((res, None));
    }
    let range = parse_range(headers.get(header::RANGE).and_then(|v| v.to_str().ok()), size);
    let (status, start, end) = match range {
        ByteRange::Full => (StatusCode::OK, 0, size),
        ByteRange::Partial(a, b) => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        ByteRange::Unsatisfiable => {
            let mut res = AppError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RANGE_NOT_SATISFIABLE",
                "The requested range is outside the file",
            )
            .with_details(json!({ "size": size }))
            .into_response();
            let value = HeaderValue::from_str(&format!("bytes */{size}")).map_err(AppError::internal)?;
            res.headers_mut().insert(header::CONTENT_RANGE, value);
            return Ok((res, None));
        }
    };
    let stream = store.read(&version.mongo_document_id, start, end).await?;
    let stream = stream.map(|r| {
        if let Err(e) = &r {
            tracing::error!(error = %e, "content download stream failed");
        }
        r
    });
    let mut res = Response::new(Body::from_stream(stream));
    *res.status_mut() = status;
    let h = res.headers_mut();
    let text = |s: &str| HeaderValue::from_str(s).map_err(AppError::internal);
    h.insert(header::CONTENT_TYPE, text(&version.mime_type)?);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, etag_value);
    h.insert(header::LAST_MODIFIED, text(&last_modified)?);
    h.insert(header::CONTENT_DISPOSITION, text(&content_disposition(&version.file_name))?);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-transform"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let served = (status == StatusCode::PARTIAL_CONTENT).then(|| (start, end - 1));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(header::CONTENT_RANGE, text(&format!("bytes {start}-{}/{size}", end - 1))?);
    }
    Ok((res, Some(served)))
}

/// An HTTP date (`Last-Modified`).
fn httpdate(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn multipart_error(e: impl std::fmt::Display) -> AppError {
    AppError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Invalid multipart upload")
        .with_details(json!({ "problem": e.to_string() }))
}

fn multipart_rejection(r: MultipartRejection) -> AppError {
    if r.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE || r.status() == StatusCode::BAD_REQUEST {
        AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Expected a request with Content-Type: multipart/form-data",
        )
    } else {
        multipart_error(r.body_text())
    }
}

/// 413 at once when the declared body is beyond any acceptable upload.
fn check_length(headers: &HeaderMap, policy: &UploadPolicy) -> ApiResult<()> {
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|l| l > policy.max_bytes.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(AppError::payload_too_large(Some(policy.max_bytes)));
    }
    Ok(())
}

async fn small_part(field: Field<'_>) -> ApiResult<Vec<u8>> {
    let mut buf = Vec::new();
    let mut field = field;
    while let Some(piece) = field.chunk().await.map_err(multipart_error)? {
        buf.extend_from_slice(&piece);
        if buf.len() > MAX_METADATA_BYTES {
            return Err(AppError::invalid_field("metadata", format!("must be at most {MAX_METADATA_BYTES} bytes")));
        }
    }
    Ok(buf)
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "metadata".to_owned() } else { format!("metadata.{path}") };
        AppError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Invalid metadata JSON")
            .with_details(json!({ "field": field, "problem": e.inner().to_string() }))
    })
}

/// Reads the parts of an upload: the optional `metadata` JSON (must come first), then the
/// `file`, streamed into the store. Returns the metadata and the stored file with its name.
async fn receive<M: serde::de::DeserializeOwned + Default>(
    state: &ContentState,
    mut multipart: Multipart,
    metadata_required: bool,
    check: impl FnOnce(&mut M) -> ApiResult<()>,
) -> ApiResult<(M, String, super::Stored)> {
    let mut metadata: Option<M> = None;
    let mut check = Some(check);
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("metadata") if metadata.is_none() => {
                let mut m: M = parse_json(&small_part(field).await?)?;
                if let Some(check) = check.take() {
                    check(&mut m)?;
                }
                metadata = Some(m);
            }
            Some("file") => {
                let m = match metadata.take() {
                    Some(m) => m,
                    None if metadata_required => {
                        return Err(AppError::invalid_field("metadata", "is required, before the file part"));
                    }
                    None => M::default(),
                };
                let file_name = safe_file_name(field.file_name().unwrap_or(""));
                let declared = field.content_type().map(str::to_owned);
                let stored = state.store.put(&file_name, declared.as_deref(), &state.policy, Box::pin(field)).await?;
                // Anything after the file is ignored but must be well-formed: a body cut short
                // after the file's last byte is still an incomplete upload.
                loop {
                    match multipart.next_field().await {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(e) => {
                            let _ = state.store.delete(&stored.id).await;
                            return Err(multipart_error(e));
                        }
                    }
                }
                return Ok((m, file_name, stored));
            }
            Some(other) => {
                return Err(AppError::invalid_field(
                    "multipart",
                    format!(
                        "unexpected part {:?}; expected metadata then file",
                        other.chars().take(50).collect::<String>()
                    ),
                ));
            }
            None => return Err(AppError::invalid_field("multipart", "a part has no name")),
        }
    }
    Err(AppError::invalid_field("file", "is required"))
}

/// Upload new content.
#[utoipa::path(post, path = "/api/v1/content", tag = "content",
    request_body(content_type = "multipart/form-data", description = "`metadata` (JSON: title, description, course_ids, subject_ids, department_id, tags, is_published) then `file`"),
    responses((status = 201, description = "Created"), (status = 400, description = "Invalid metadata or incomplete upload"),
        (status = 413, description = "Larger than content.max_bytes"), (status = 415, description = "Type not allowed or not matching the bytes")))]
async fn upload(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<items::ContentItem>)> {
    check_length(&headers, &state.policy)?;
    let multipart = multipart.map_err(multipart_rejection)?;
    let caller_ref = &caller;
    let (meta, file_name, stored) = receive(&state, multipart, true, |m: &mut NewContent| {
        m.validate()?;
        if m.is_published {
            caller_ref.require("content:publish")?;
        }
        Ok(())
    })
    .await?;
    let item = items::create(&state.pool, &state.store, &caller.actor(&ctx), &meta, &file_name, &stored).await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// Upload a new version of an item's file.
#[utoipa::path(post, path = "/api/v1/content/{id}/versions", tag = "content",
    params(("id" = Uuid, Path, description = "Content id")),
    request_body(content_type = "multipart/form-data", description = "optional `metadata` (JSON: change_notes) then `file`"),
    responses((status = 201, description = "Created"), (status = 413, description = "Too large"), (status = 415, description = "Unsupported type")))]
async fn upload_version(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<items::Version>)> {
    check_length(&headers, &state.policy)?;
    let multipart = multipart.map_err(multipart_rejection)?;
    state.editable_item(&caller, id).await?;
    let (notes, file_name, stored) = receive(&state, multipart, false, |_: &mut NewVersion| Ok(())).await?;
    let v = items::add_version(&state.pool, &state.store, &caller.actor(&ctx), id, &file_name, &stored, &notes).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// Search content by title, tag, course, type, publication and folder.
#[utoipa::path(get, path = "/api/v1/content", tag = "content",
    params(("title" = Option<String>, Query, description = "Substring of the title"), ("tag" = Option<String>, Query, description = "Tag"),
        ("course_id" = Option<String>, Query, description = "Course"), ("content_type" = Option<String>, Query, description = "Type"),
        ("is_published" = Option<bool>, Query, description = "Publication"), ("folder_id" = Option<Uuid>, Query, description = "Folder"),
        ("limit" = Option<i64>, Query, description = "1..200"), ("offset" = Option<i64>, Query, description = "Rows skipped"),
        ("sort" = Option<String>, Query, description = "created_at, title, updated_at, file_size; - for descending")),
    responses((status = 200, description = "A page of content")))]
async fn search(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ContentQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<crate::listing::Page<items::ContentItem>>> {
    let Query(q) = query.map_err(|e| {
        AppError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Invalid query")
            .with_details(json!({ "problem": e.body_text() }))
    })?;
    let visibility = state.visibility(&caller).await?;
    let client = state.pool.get().await.map_err(Error::from)?;
    Ok(Json(items::list(&client, &q, &visibility).await?))
}

/// One item.
#[utoipa::path(get, path = "/api/v1/content/{id}", tag = "content", params(("id" = Uuid, Path, description = "Content id")),
    responses((status = 200, description = "The item"), (status = 404, description = "No such item, or not visible to the caller")))]
async fn show(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<items::ContentItem>> {
    Ok(Json(state.visible_item(&caller, id).await?))
}

/// Change metadata (title, description, subjects, department, tags).
#[utoipa::path(patch, path = "/api/v1/content/{id}", tag = "content", params(("id" = Uuid, Path, description = "Content id")),
    responses((status = 200, description = "The item"), (status = 403, description = "Not the caller's content")))]
async fn update(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(mut body): ApiJson<ContentUpdate>,
) -> ApiResult<Json<items::ContentItem>> {
    body.validate()?;
    state.editable_item(&caller, id).await?;
    Ok(Json(items::update(&state.pool, &caller.actor(&ctx), id, &body).await?))
}

/// The courses an item is mapped to.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CourseIds {
    course_ids: Vec<String>,
}

/// Replace the courses an item is mapped to.
#[utoipa::path(put, path = "/api/v1/content/{id}/courses", tag = "content", params(("id" = Uuid, Path, description = "Content id")),
    request_body(content_type = "application/json", description = "{\"course_ids\": [...]}"),
    responses((status = 200, description = "The item")))]
async fn set_courses(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CourseIds>,
) -> ApiResult<Json<items::ContentItem>> {
    state.editable_item(&caller, id).await?;
    Ok(Json(items::set_courses(&state.pool, &caller.actor(&ctx), id, body.course_ids).await?))
}

async fn set_published(
    state: ContentState,
    caller: Caller,
    ctx: RequestContext,
    id: Uuid,
    publish: bool,
) -> ApiResult<Json<items::ContentItem>> {
    state.editable_item(&caller, id).await?;
    Ok(Json(items::set_published(&state.pool, &caller.actor(&ctx), id, publish).await?))
}

/// Publish an item to its courses.
#[utoipa::path(post, path = "/api/v1/content/{id}/publish", tag = "content", params(("id" = Uuid, Path, description = "Content id")),
    responses((status = 200, description = "The item")))]
async fn publish_item(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<items::ContentItem>> {
    set_published(state, caller, ctx, id, true).await
}

/// Hide an item from its courses again.
#[utoipa::path(post, path = "/api/v1/content/{id}/unpublish", tag = "content", params(("id" = Uuid, Path, description = "Content id")),
    responses((status = 200, description = "The item")))]
async fn unpublish_item(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<items::ContentItem>> {
    set_published(state, caller, ctx, id, false).await
}

/// Delete an item (soft: it disappears everywhere, the bytes stay for audit).
#[utoipa::path(delete, path = "/api/v1/content/{id}", tag = "content", params(("id" = Uuid, Path, description = "Content id")),
    responses((status = 204, description = "Deleted")))]
async fn remove(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    state.editable_item(&caller, id).await?;
    items::delete(&state.pool, &caller.actor(&ctx), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every version of an item, newest first.
#[utoipa::path(get, path = "/api/v1/content/{id}/versions", tag = "content", params(("id" = Uuid, Path, description = "Content id")),
    responses((status = 200, description = "The versions")))]
async fn list_versions(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Vec<items::Version>>> {
    state.visible_item(&caller, id).await?;
    let client = state.pool.get().await.map_err(Error::from)?;
    Ok(Json(items::versions(&client, id).await?))
}

async fn download(
    state: ContentState,
    caller: Caller,
    ctx: RequestContext,
    headers: HeaderMap,
    id: Uuid,
    version: Option<i32>,
) -> ApiResult<Response> {
    let item = state.visible_item(&caller, id).await?;
    let n = version.unwrap_or(item.current_version);
    if n != item.current_version && !is_staff(&caller) {
        // Students get the current version only.
        return Err(AppError::from(Error::NotFound { what: "content version", id: format!("{id}/{n}") }));
    }
    let v = {
        let client = state.pool.get().await.map_err(Error::from)?;
        items::get_version(&client, id, n).await?
    };
    let (res, served) = serve(&state.store, &v, &headers).await?;
    if let Some(range) = served {
        let access = Access {
            user_id: caller.user_id.clone(),
            version: n,
            ip_address: ctx.client_ip.clone(),
            user_agent: header_text(&headers, header::USER_AGENT),
            device_type: None,
            range,
        };
        items::record_access(&state.pool, &caller.actor(&ctx), id, &access).await?;
    }
    Ok(res)
}

/// Download an item's current version (`Range` supported).
#[utoipa::path(get, path = "/api/v1/content/{id}/download", tag = "content", params(("id" = Uuid, Path, description = "Content id")),
    responses((status = 200, description = "The bytes"), (status = 206, description = "The requested range"),
        (status = 304, description = "Not modified"), (status = 416, description = "Range not satisfiable")))]
async fn download_current(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    download(state, caller, ctx, headers, id, None).await
}

/// Download one version of an item (staff; students get the current one).
#[utoipa::path(get, path = "/api/v1/content/{id}/versions/{version}/download", tag = "content",
    params(("id" = Uuid, Path, description = "Content id"), ("version" = i32, Path, description = "Version number")),
    responses((status = 200, description = "The bytes"), (status = 206, description = "The requested range")))]
async fn download_version(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath((id, version)): ApiPath<(Uuid, i32)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    download(state, caller, ctx, headers, id, Some(version)).await
}

/// The grants on an item.
#[utoipa::path(get, path = "/api/v1/content/{id}/permissions", tag = "content", params(("id" = Uuid, Path, description = "Content id")),
    responses((status = 200, description = "The grants")))]
async fn list_permissions(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Vec<items::Permission>>> {
    state.editable_item(&caller, id).await?;
    let client = state.pool.get().await.map_err(Error::from)?;
    Ok(Json(items::permissions(&client, id).await?))
}

/// Grant a user, a course or a role a permission on an item.
#[utoipa::path(post, path = "/api/v1/content/{id}/permissions", tag = "content", params(("id" = Uuid, Path, description = "Content id")),
    request_body(content_type = "application/json", description = "{grantee_type: user|course|role, grantee_id, permission: view|download|edit|manage}"),
    responses((status = 201, description = "The grant")))]
async fn grant(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NewPermission>,
) -> ApiResult<(StatusCode, Json<items::Permission>)> {
    state.editable_item(&caller, id).await?;
    let p = items::grant(&state.pool, &caller.actor(&ctx), id, &body).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Revoke a grant.
#[utoipa::path(delete, path = "/api/v1/content/{id}/permissions/{permission_id}", tag = "content",
    params(("id" = Uuid, Path, description = "Content id"), ("permission_id" = Uuid, Path, description = "Grant id")),
    responses((status = 204, description = "Revoked")))]
async fn revoke(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath((id, permission_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    state.editable_item(&caller, id).await?;
    items::revoke(&state.pool, &caller.actor(&ctx), id, permission_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A classroom node downloads a version listed in its manifest (HTTP Basic with its registry
/// credentials; only content of the courses on its room's published timetable; `Range` to
/// resume).
#[utoipa::path(get, path = "/api/v1/edge/content/{id}/versions/{version}", tag = "content",
    params(("id" = Uuid, Path, description = "Content id"), ("version" = i32, Path, description = "Version number")),
    responses((status = 200, description = "The bytes"), (status = 206, description = "The requested range"),
        (status = 401, description = "Bad node credentials"), (status = 404, description = "Not content of this node's room")))]
async fn node_download(
    State(state): State<ContentState>,
    ctx: Option<Extension<RequestContext>>,
    path: Result<ApiPath<(Uuid, i32)>, AppError>,
    headers: HeaderMap,
) -> Response {
    let result: ApiResult<Response> = async {
        let (node_id, room) = crate::registry::node_auth::authenticate_node(&state.registry, &headers).await?;
        let ApiPath((id, n)) = path?;
        let courses: Vec<String> = {
            let client = state.timetable.get().await.map_err(Error::from)?;
            let mut ids: Vec<String> =
                crate::timetable::room_schedule(&client, &room).await?.into_iter().map(|e| e.course_id).collect();
            ids.sort();
            ids.dedup();
            ids
        };
        let client = state.pool.get().await.map_err(Error::from)?;
        let allowed = items::published_for_courses(&client, &courses).await?;
        if !allowed.iter().any(|(item, _)| item.id == id) {
            return Err(AppError::from(Error::NotFound { what: "content", id: id.to_string() }));
        }
        let v = items::get_version(&client, id, n).await?;
        drop(client);
        let (res, served) = serve(&state.store, &v, &headers).await?;
        if let Some(range) = served {
            let ctx = ctx.map(|Extension(c)| c);
            let actor = crate::actor::Actor {
                user_id: Some(format!("node:{node_id}")),
                correlation_id: ctx.as_ref().map(|c| c.correlation_id.clone()),
                client_ip: ctx.as_ref().and_then(|c| c.client_ip.clone()),
            };
            let access = Access {
                user_id: format!("node:{node_id}"),
                version: n,
                ip_address: actor.client_ip.clone(),
                user_agent: header_text(&headers, header::USER_AGENT),
                device_type: Some("edge-node".into()),
                range,
            };
            items::record_access(&state.pool, &actor, id, &access).await?;
        }
        Ok(res)
    }
    .await;
    match result {
        Ok(res) => res,
        Err(e) => crate::registry::node_auth::with_basic_challenge(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_openapi_document_lists_exactly_the_declared_routes() {
        // Nothing connects: pools and the MongoDB client are lazy.
        let pool = crate::db::pool("postgres://nobody@127.0.0.1:1/none", 2).unwrap();
        let mongo = mongodb::Client::with_uri_str("mongodb://127.0.0.1:1/?directConnection=true").await.unwrap();
        let state = ContentState {
            pool: pool.clone(),
            courses: pool.clone(),
            timetable: pool.clone(),
            registry: pool,
            store: Store::new(mongo.database("none"), "fs"),
            policy: UploadPolicy { max_bytes: 1, allowed_mime_types: vec!["text/plain".into()] },
        };
        let mut declared: Vec<(String, String)> =
            router(state).into_parts().1.iter().map(|s| (s.method.as_str().to_lowercase(), s.openapi_path())).collect();
        let doc = super::super::openapi();
        let mut documented = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("get", &item.get),
                ("post", &item.post),
                ("put", &item.put),
                ("patch", &item.patch),
                ("delete", &item.delete),
            ] {
                if op.is_some() {
                    documented.push((method.to_owned(), path.clone()));
                }
            }
        }
        declared.sort();
        documented.sort();
        assert_eq!(declared, documented);
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range(None, 100), ByteRange::Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), ByteRange::Partial(0, 9));
        assert_eq!(parse_range(Some("bytes=90-"), 100), ByteRange::Partial(90, 99));
        assert_eq!(parse_range(Some("bytes=90-500"), 100), ByteRange::Partial(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), ByteRange::Partial(90, 99));
        assert_eq!(parse_range(Some("bytes=-500"), 100), ByteRange::Partial(0, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), ByteRange::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), ByteRange::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-1"), 100), ByteRange::Full);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), ByteRange::Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), ByteRange::Full);
        assert_eq!(parse_range(Some("bytes=x-1"), 100), ByteRange::Full);
        assert_eq!(parse_range(Some("bytes=0-"), 0), ByteRange::Unsatisfiable);
    }

    #[test]
    fn hostile_file_names_are_sanitised() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("C:\\Windows\\system32\\evil.exe"), "evil.exe");
        assert_eq!(safe_file_name("..\u{0}hidden\r\n"), "hidden");
        assert_eq!(safe_file_name("/"), "download");
        assert_eq!(safe_file_name("..."), "download");
        let d = content_disposition("notes \"week 1\"; rm -rf.pdf");
        assert_eq!(
            d,
            "attachment; filename=\"notes _week 1__ rm -rf.pdf\"; filename*=UTF-8''notes%20%22week%201%22%3B%20rm%20-rf.pdf"
        );
        assert!(content_disposition("Résumé.pdf").contains("filename*=UTF-8''R%C3%A9sum%C3%A9.pdf"));
        assert!(!content_disposition("a\r\nSet-Cookie: x").contains('\n'));
    }
}
