//! The content routes: the admin API's (`/api/v1/content…`) and the classroom nodes' download
//! route (`/api/v1/edge/content/:id/versions/:version`), their OpenAPI document, and thin
//! handlers that check who may act and call the service: [`super::items`] for the records,
//! [`super::upload`] for multipart intake, [`super::download`] for downloads.
//!
//! Who sees what: holders of `content:write` (faculty, admins) see every item that is not
//! deleted; anyone else with `content:read` (students) sees published items mapped to a course
//! they are enrolled in (`course_service_db`), or granted to them or to one of those courses in
//! `content_permissions`; an item they may not see is a 404, as if it did not exist. Changing an
//! item needs `content:write` (`content:publish` to publish) and being an admin, its creator or
//! the holder of an `edit`/`manage` grant on it.
//!
//! The gateway's 1 MiB body limit is lifted on the two upload routes only ([`super::upload`]
//! bounds what they read).

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, patch, post, put};
use axum::{Extension, Json};
use nimbus_core::http::{ApiPath, AppError};
use uuid::Uuid;

use super::items::{self, ContentFilter, ContentUpdate, NewContent, NewPermission, NewVersion};
use super::state::ContentState;
use super::{download, upload};
use crate::error::Error;
use crate::http::body::ObjectJson;
use crate::http::{Access as RouteAccess, ApiRoutes, Caller, Listing, RequestContext};

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

/// The multipart form of a new item: its metadata (a JSON object) and its file. The file part's
/// `Content-Type` is one of the deployment's `content.allowed_mime_types` (the document lists
/// the default ones), and the bytes must be of that type (422 otherwise).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the form `upload::receive` reads
#[schema(example = json!({ "metadata": { "title": "Week 1: arrays", "course_ids": ["CS101"], "tags": ["arrays"] }, "file": "Week 1: arrays and their costs.\n" }))]
pub(super) struct UploadForm {
    metadata: NewContent,
    /// The file (at most `content.max_bytes`, not empty).
    #[schema(value_type = String, format = Binary, min_length = 1)]
    file: Vec<u8>,
}

/// The multipart form of a new version: optional metadata (a JSON object) and the file, as for
/// [`UploadForm`].
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the form `upload::receive` reads
#[schema(example = json!({ "metadata": { "change_notes": "Fixed a typo" }, "file": "Week 1: arrays and what they cost.\n" }))]
pub(super) struct VersionForm {
    #[schema(required = false)]
    metadata: Option<NewVersion>,
    /// The file (at most `content.max_bytes`, not empty).
    #[schema(value_type = String, format = Binary, min_length = 1)]
    file: Vec<u8>,
}

/// The courses an item is mapped to.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "course_ids": ["CS101", "CS102"] }))]
pub(super) struct CourseIds {
    /// At most 100 ids (duplicates count once); replaces the mapping.
    #[schema(schema_with = items::id_list_schema)]
    course_ids: Vec<String>,
}

/// Upload new content.
#[utoipa::path(post, path = "/api/v1/content", tag = "content", request_body(content = UploadForm, content_type = "multipart/form-data", description = "A `metadata` part (JSON) and a `file` part, in either order"),
    responses((status = 201, description = "Created", body = items::ContentItem), (status = 400, description = "Invalid metadata, a missing or unexpected part, or an incomplete upload"),
        (status = 413, description = "Larger than content.max_bytes"), (status = 415, description = "Not multipart/form-data, or the file part's type is not allowed"),
        (status = 422, description = "The file is empty, or its bytes are not of its declared (or of any allowed) type")))]
async fn upload(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<items::ContentItem>)> {
    let multipart = upload::intake(&headers, &state.policy, multipart)?;
    let caller_ref = &caller;
    let (meta, file_name, stored) = upload::receive(&state, multipart, true, |m: &mut NewContent| {
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
#[utoipa::path(post, path = "/api/v1/content/{id}/versions", tag = "content", params(("id" = Uuid, Path, description = "Content id")), request_body(content = VersionForm, content_type = "multipart/form-data", description = "An optional `metadata` part (JSON) and a `file` part, in either order"),
    responses((status = 201, description = "Created", body = items::Version), (status = 400, description = "Invalid metadata, a missing or unexpected part, or an incomplete upload"),
        (status = 403, description = "Not the caller's content"), (status = 413, description = "Larger than content.max_bytes"),
        (status = 415, description = "Not multipart/form-data, or the file part's type is not allowed"),
        (status = 422, description = "The file is empty, or its bytes are not of its declared (or of any allowed) type")))]
async fn upload_version(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<items::Version>)> {
    let multipart = upload::intake(&headers, &state.policy, multipart)?;
    state.editable_item(&caller, id).await?;
    let (notes, file_name, stored) = upload::receive(&state, multipart, false, |_: &mut NewVersion| Ok(())).await?;
    let v = items::add_version(&state.pool, &state.store, &caller.actor(&ctx), id, &file_name, &stored, &notes).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// Search content by title, tag, course, type, publication and folder.
#[utoipa::path(get, path = "/api/v1/content", tag = "content", params(ContentFilter, crate::listing::Paging<ContentFilter>), responses((status = 200, description = "A page of content: items, total, limit, offset")))]
async fn search(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    l: Listing<ContentFilter>,
) -> ApiResult<Json<crate::listing::Page<items::ContentItem>>> {
    l.filter.validate()?;
    let visibility = state.visibility(&caller).await?;
    let client = state.pool.get().await.map_err(Error::from)?;
    Ok(Json(items::list(&client, &l.filter, &l.query, &visibility).await?))
}

/// One item.
#[utoipa::path(get, path = "/api/v1/content/{id}", tag = "content", params(("id" = Uuid, Path, description = "Content id")), responses((status = 200, description = "The item", body = items::ContentItem), (status = 404, description = "No such item, or not visible to the caller")))]
async fn show(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<items::ContentItem>> {
    Ok(Json(state.visible_item(&caller, id).await?))
}

/// Change metadata (title, description, subjects, department, tags).
#[utoipa::path(patch, path = "/api/v1/content/{id}", tag = "content", params(("id" = Uuid, Path, description = "Content id")), request_body = ContentUpdate, responses((status = 200, description = "The item", body = items::ContentItem), (status = 403, description = "Not the caller's content")))]
async fn update(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
    ObjectJson(mut body): ObjectJson<ContentUpdate>,
) -> ApiResult<Json<items::ContentItem>> {
    body.validate()?;
    state.editable_item(&caller, id).await?;
    Ok(Json(items::update(&state.pool, &caller.actor(&ctx), id, &body).await?))
}

/// Replace the courses an item is mapped to.
#[utoipa::path(put, path = "/api/v1/content/{id}/courses", tag = "content", params(("id" = Uuid, Path, description = "Content id")), request_body = CourseIds, responses((status = 200, description = "The item", body = items::ContentItem), (status = 403, description = "Not the caller's content")))]
async fn set_courses(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
    ObjectJson(body): ObjectJson<CourseIds>,
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
#[utoipa::path(post, path = "/api/v1/content/{id}/publish", tag = "content", params(("id" = Uuid, Path, description = "Content id")), responses((status = 200, description = "The item", body = items::ContentItem), (status = 403, description = "Not the caller's content")))]
async fn publish_item(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<items::ContentItem>> {
    set_published(state, caller, ctx, id, true).await
}

/// Hide an item from its courses again.
#[utoipa::path(post, path = "/api/v1/content/{id}/unpublish", tag = "content", params(("id" = Uuid, Path, description = "Content id")), responses((status = 200, description = "The item", body = items::ContentItem), (status = 403, description = "Not the caller's content")))]
async fn unpublish_item(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<items::ContentItem>> {
    set_published(state, caller, ctx, id, false).await
}

/// Delete an item (soft: it disappears everywhere, the bytes stay for audit).
#[utoipa::path(delete, path = "/api/v1/content/{id}", tag = "content", params(("id" = Uuid, Path, description = "Content id")), responses((status = 204, description = "Deleted"), (status = 403, description = "Not the caller's content")))]
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
#[utoipa::path(get, path = "/api/v1/content/{id}/versions", tag = "content", params(("id" = Uuid, Path, description = "Content id")), responses((status = 200, description = "The versions", body = Vec<items::Version>)))]
async fn list_versions(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Vec<items::Version>>> {
    state.visible_item(&caller, id).await?;
    let client = state.pool.get().await.map_err(Error::from)?;
    Ok(Json(items::versions(&client, id).await?))
}

/// Download an item's current version. The request may send `Range` (one `bytes=` range),
/// `If-Range` (the `ETag` or `Last-Modified` it was read with) and `If-None-Match`.
#[utoipa::path(get, path = "/api/v1/content/{id}/download", tag = "content", params(("id" = Uuid, Path, description = "Content id")),
    responses((status = 200, description = "The bytes, of the file's own type", content_type = "*/*", body = String, headers(("ETag" = String, description = "The sha256, quoted"), ("Last-Modified" = String), ("Accept-Ranges" = String, description = "`bytes`"), ("Content-Disposition" = String, description = "`attachment` with the file name"))),
        (status = 206, description = "The requested range", content_type = "*/*", body = String, headers(("Content-Range" = String, description = "`bytes first-last/size`"), ("ETag" = String), ("Last-Modified" = String), ("Accept-Ranges" = String), ("Content-Disposition" = String))),
        (status = 304, description = "Not modified (`If-None-Match` matched)", headers(("ETag" = String))),
        (status = 416, description = "Range not satisfiable", headers(("Content-Range" = String, description = "`bytes */size`")))))]
async fn download_current(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    download::for_caller(state, caller, ctx, headers, id, None).await
}

/// Download one version of an item (staff; students get the current one only). `Range`,
/// `If-Range` and `If-None-Match` as for the current version.
#[utoipa::path(get, path = "/api/v1/content/{id}/versions/{version}/download", tag = "content", params(("id" = Uuid, Path, description = "Content id"), ("version" = i32, Path, description = "Version number")),
    responses((status = 200, description = "The bytes, of the file's own type", content_type = "*/*", body = String, headers(("ETag" = String, description = "The sha256, quoted"), ("Last-Modified" = String), ("Accept-Ranges" = String, description = "`bytes`"), ("Content-Disposition" = String, description = "`attachment` with the file name"))),
        (status = 206, description = "The requested range", content_type = "*/*", body = String, headers(("Content-Range" = String, description = "`bytes first-last/size`"), ("ETag" = String), ("Last-Modified" = String), ("Accept-Ranges" = String), ("Content-Disposition" = String))),
        (status = 304, description = "Not modified (`If-None-Match` matched)", headers(("ETag" = String))),
        (status = 404, description = "No such item or version, or not visible to the caller"),
        (status = 416, description = "Range not satisfiable", headers(("Content-Range" = String, description = "`bytes */size`")))))]
async fn download_version(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath((id, version)): ApiPath<(Uuid, i32)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    download::for_caller(state, caller, ctx, headers, id, Some(version)).await
}

/// The grants on an item.
#[utoipa::path(get, path = "/api/v1/content/{id}/permissions", tag = "content", params(("id" = Uuid, Path, description = "Content id")), responses((status = 200, description = "The grants", body = Vec<items::Permission>), (status = 403, description = "Not the caller's content")))]
async fn list_permissions(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Vec<items::Permission>>> {
    state.editable_item(&caller, id).await?;
    let client = state.pool.get().await.map_err(Error::from)?;
    Ok(Json(items::permissions(&client, id).await?))
}

/// Grant a user, a course or a role a permission on an item (granting it again returns the
/// existing grant).
#[utoipa::path(post, path = "/api/v1/content/{id}/permissions", tag = "content", params(("id" = Uuid, Path, description = "Content id")), request_body = NewPermission, responses((status = 201, description = "The grant", body = items::Permission), (status = 403, description = "Not the caller's content")))]
async fn grant(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
    ObjectJson(body): ObjectJson<NewPermission>,
) -> ApiResult<(StatusCode, Json<items::Permission>)> {
    state.editable_item(&caller, id).await?;
    let p = items::grant(&state.pool, &caller.actor(&ctx), id, &body).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Revoke a grant.
#[utoipa::path(delete, path = "/api/v1/content/{id}/permissions/{permission_id}", tag = "content", params(("id" = Uuid, Path, description = "Content id"), ("permission_id" = Uuid, Path, description = "Grant id")), responses((status = 204, description = "Revoked"), (status = 403, description = "Not the caller's content")))]
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
#[utoipa::path(get, path = "/api/v1/edge/content/{id}/versions/{version}", tag = "content", params(("id" = Uuid, Path, description = "Content id"), ("version" = i32, Path, description = "Version number")),
    responses((status = 200, description = "The bytes, of the file's own type", content_type = "*/*", body = String, headers(("ETag" = String, description = "The sha256, quoted"), ("Last-Modified" = String), ("Accept-Ranges" = String, description = "`bytes`"), ("Content-Disposition" = String, description = "`attachment` with the file name"))),
        (status = 206, description = "The requested range", content_type = "*/*", body = String, headers(("Content-Range" = String, description = "`bytes first-last/size`"), ("ETag" = String), ("Last-Modified" = String), ("Accept-Ranges" = String), ("Content-Disposition" = String))),
        (status = 304, description = "Not modified (`If-None-Match` matched)", headers(("ETag" = String))),
        (status = 401, description = "Bad node credentials (with the Basic challenge)", headers(("WWW-Authenticate" = String))), (status = 404, description = "Not content of this node's room"),
        (status = 416, description = "Range not satisfiable", headers(("Content-Range" = String, description = "`bytes */size`")))))]
async fn node_download(
    State(state): State<ContentState>,
    ctx: Option<Extension<RequestContext>>,
    path: Result<ApiPath<(Uuid, i32)>, AppError>,
    headers: HeaderMap,
) -> Response {
    download::for_node(state, ctx, path, headers).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::store::{Store, UploadPolicy};

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
}
