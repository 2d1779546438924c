//! Downloads: who may fetch which version, the ranged response streamed from GridFS, and the
//! access log.
//!
//! - A caller of the admin API ([`for_caller`]) downloads an item it may see; students get the
//!   current version only (another is a 404).
//! - A classroom node ([`for_node`], HTTP Basic with its registry credentials,
//!   [`crate::registry::node_auth`]) downloads only published content of the courses on its
//!   room's timetable; every failure carries the Basic challenge.
//!
//! The response follows the rules shared with the node's LAN server
//! ([`nimbus_core::http_file`]): one `Range` (`206` with `Content-Range`, `416` when
//! unsatisfiable), honoured only while `If-Range` names this version; `If-None-Match` (`304`);
//! `ETag` (the sha256), `Content-Type`, `Last-Modified` and a `Content-Disposition` with a
//! sanitised name. Every download that sends bytes is logged (`content_access_logs` +
//! `CONTENT_ACCESSED`), with the range served.

use axum::Extension;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use nimbus_core::http::{ApiPath, AppError};
use nimbus_core::http_file::{self, ByteRange};
use serde_json::json;
use uuid::Uuid;

use super::items::{self, Access};
use super::state::{ContentState, is_staff};
use super::store::Store;
use crate::error::Error;
use crate::http::{Caller, RequestContext};

type ApiResult<T> = Result<T, AppError>;

/// The `User-Agent` to log, at most 500 characters.
fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(500).collect())
}

/// Streams `version` of an item with the download headers, answering `Range`, `If-Range` and
/// `If-None-Match`; returns the response and, when bytes are sent, the range served (for the
/// access log; none for the whole file).
async fn serve(
    store: &Store,
    version: &items::Version,
    headers: &HeaderMap,
) -> ApiResult<(Response, Option<Option<(u64, u64)>>)> {
    let size = u64::try_from(version.file_size).unwrap_or(0);
    let etag = http_file::etag(&version.sha256);
    let etag_value = HeaderValue::from_str(&etag).map_err(AppError::internal)?;
    let last_modified = http_file::http_date(version.created_at);
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if header_str(header::IF_NONE_MATCH).is_some_and(|v| http_file::none_match(v, &etag)) {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        res.headers_mut().insert(header::ETAG, etag_value);
        return Ok((res, None));
    }
    let range = http_file::requested_range(
        header_str(header::RANGE),
        header_str(header::IF_RANGE),
        &etag,
        &last_modified,
        size,
    );
    let text = |s: &str| HeaderValue::from_str(s).map_err(AppError::internal);
    let (status, start, end) = match range {
        ByteRange::Full => (StatusCode::OK, 0, size),
        ByteRange::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end + 1),
        ByteRange::Unsatisfiable => {
            let mut res = AppError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RANGE_NOT_SATISFIABLE",
                "The requested range is outside the file",
            )
            .with_details(json!({ "size": size }))
            .into_response();
            if let Some(content_range) = range.content_range(size) {
                res.headers_mut().insert(header::CONTENT_RANGE, text(&content_range)?);
            }
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
    h.insert(header::CONTENT_TYPE, text(&version.mime_type)?);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, etag_value);
    h.insert(header::LAST_MODIFIED, text(&last_modified)?);
    h.insert(header::CONTENT_DISPOSITION, text(&http_file::content_disposition(&version.file_name))?);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-transform"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Some(content_range) = range.content_range(size) {
        h.insert(header::CONTENT_RANGE, text(&content_range)?);
    }
    let served = (status == StatusCode::PARTIAL_CONTENT).then(|| (start, end - 1));
    Ok((res, Some(served)))
}

/// A caller of the admin API downloads `version` (the current one when none) of item `id`.
pub(super) async fn for_caller(
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
            user_agent: user_agent(&headers),
            device_type: None,
            range,
        };
        items::record_access(&state.pool, &caller.actor(&ctx), id, &access).await?;
    }
    Ok(res)
}

/// A classroom node downloads a version listed in its manifest; any failure (bad credentials
/// first, then a bad path, then content not of its room) answers with the Basic challenge.
pub(super) async fn for_node(
    state: ContentState,
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
                user_agent: user_agent(&headers),
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
