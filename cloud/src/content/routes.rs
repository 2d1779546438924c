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
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, patch, post, put};
use axum::{Extension, Json};
use nimbus_core::http::{ApiJson, ApiPath, AppError};
use serde_json::json;
use uuid::Uuid;

use super::items::{self, ContentQuery, ContentUpdate, NewContent, NewPermission, NewVersion};
use super::state::ContentState;
use super::{download, upload};
use crate::error::Error;
use crate::http::{Access as RouteAccess, ApiRoutes, Caller, RequestContext};

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

/// Upload new content.
#[utoipa::path(post, path = "/api/v1/content", tag = "content", request_body(content_type = "multipart/form-data", description = "`metadata` (JSON: title, description, course_ids, subject_ids, department_id, tags, is_published) then `file`"), responses((status = 201, description = "Created"), (status = 400, description = "Invalid metadata or incomplete upload"),
        (status = 413, description = "Larger than content.max_bytes"), (status = 415, description = "Type not allowed or not matching the bytes")))]
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
#[utoipa::path(post, path = "/api/v1/content/{id}/versions", tag = "content", params(("id" = Uuid, Path, description = "Content id")), request_body(content_type = "multipart/form-data", description = "optional `metadata` (JSON: change_notes) then `file`"), responses((status = 201, description = "Created"), (status = 413, description = "Too large"), (status = 415, description = "Unsupported type")))]
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
#[utoipa::path(get, path = "/api/v1/content", tag = "content", responses((status = 200, description = "A page of content")))]
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
#[utoipa::path(get, path = "/api/v1/content/{id}", tag = "content", params(("id" = Uuid, Path, description = "Content id")), responses((status = 200, description = "The item"), (status = 404, description = "No such item, or not visible to the caller")))]
async fn show(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<items::ContentItem>> {
    Ok(Json(state.visible_item(&caller, id).await?))
}

/// Change metadata (title, description, subjects, department, tags).
#[utoipa::path(patch, path = "/api/v1/content/{id}", tag = "content", params(("id" = Uuid, Path, description = "Content id")), request_body = ContentUpdate, responses((status = 200, description = "The item"), (status = 403, description = "Not the caller's content")))]
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
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CourseIds {
    course_ids: Vec<String>,
}

/// Replace the courses an item is mapped to.
#[utoipa::path(put, path = "/api/v1/content/{id}/courses", tag = "content", params(("id" = Uuid, Path, description = "Content id")), request_body(content_type = "application/json", description = "{\"course_ids\": [...]}"), responses((status = 200, description = "The item")))]
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
#[utoipa::path(post, path = "/api/v1/content/{id}/publish", tag = "content", params(("id" = Uuid, Path, description = "Content id")), responses((status = 200, description = "The item")))]
async fn publish_item(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<items::ContentItem>> {
    set_published(state, caller, ctx, id, true).await
}

/// Hide an item from its courses again.
#[utoipa::path(post, path = "/api/v1/content/{id}/unpublish", tag = "content", params(("id" = Uuid, Path, description = "Content id")), responses((status = 200, description = "The item")))]
async fn unpublish_item(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<items::ContentItem>> {
    set_published(state, caller, ctx, id, false).await
}

/// Delete an item (soft: it disappears everywhere, the bytes stay for audit).
#[utoipa::path(delete, path = "/api/v1/content/{id}", tag = "content", params(("id" = Uuid, Path, description = "Content id")), responses((status = 204, description = "Deleted")))]
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
#[utoipa::path(get, path = "/api/v1/content/{id}/versions", tag = "content", params(("id" = Uuid, Path, description = "Content id")), responses((status = 200, description = "The versions")))]
async fn list_versions(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Vec<items::Version>>> {
    state.visible_item(&caller, id).await?;
    let client = state.pool.get().await.map_err(Error::from)?;
    Ok(Json(items::versions(&client, id).await?))
}

/// Download an item's current version (`Range` supported).
#[utoipa::path(get, path = "/api/v1/content/{id}/download", tag = "content", params(("id" = Uuid, Path, description = "Content id")), responses((status = 200, description = "The bytes"), (status = 206, description = "The requested range"),
        (status = 304, description = "Not modified"), (status = 416, description = "Range not satisfiable")))]
async fn download_current(
    State(state): State<ContentState>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    download::for_caller(state, caller, ctx, headers, id, None).await
}

/// Download one version of an item (staff; students get the current one).
#[utoipa::path(get, path = "/api/v1/content/{id}/versions/{version}/download", tag = "content", params(("id" = Uuid, Path, description = "Content id"), ("version" = i32, Path, description = "Version number")), responses((status = 200, description = "The bytes"), (status = 206, description = "The requested range")))]
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
#[utoipa::path(get, path = "/api/v1/content/{id}/permissions", tag = "content", params(("id" = Uuid, Path, description = "Content id")), responses((status = 200, description = "The grants")))]
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
#[utoipa::path(post, path = "/api/v1/content/{id}/permissions", tag = "content", params(("id" = Uuid, Path, description = "Content id")), request_body(content_type = "application/json", description = "{grantee_type: user|course|role, grantee_id, permission: view|download|edit|manage}"), responses((status = 201, description = "The grant")))]
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
#[utoipa::path(delete, path = "/api/v1/content/{id}/permissions/{permission_id}", tag = "content", params(("id" = Uuid, Path, description = "Content id"), ("permission_id" = Uuid, Path, description = "Grant id")), responses((status = 204, description = "Revoked")))]
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
#[utoipa::path(get, path = "/api/v1/edge/content/{id}/versions/{version}", tag = "content", params(("id" = Uuid, Path, description = "Content id"), ("version" = i32, Path, description = "Version number")), responses((status = 200, description = "The bytes"), (status = 206, description = "The requested range"),
        (status = 401, description = "Bad node credentials"), (status = 404, description = "Not content of this node's room")))]
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
