//! The announcement service's routes: authoring for administrators and faculty
//! (`announcement:create`; `announcement:manage` to reach anyone and manage everyone's), and
//! every signed-in person's `me/announcements` with read marks.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use uuid::Uuid;

use super::audience::Directory;
use super::fields;
use super::reading::{self, Item, MineFilter, ReadStats};
use super::store::{self, Author, Draft, Edit, ListFilter, ScheduleAt, View};
use super::targets::{Profile, Targets};
use crate::error::Error;
use crate::http::{Access, Acting, ApiJson, ApiPath, ApiRoutes, AppError, Caller, Listing, ServicesState};
use crate::listing::Page;

const CREATE: Access = Access::Permission("announcement:create");

/// The permission that lets an author announce to anyone and manage every announcement.
pub const MANAGE: &str = "announcement:manage";

type Answer<T> = Result<Json<T>, AppError>;

/// The routes.
pub fn routes() -> ApiRoutes<ServicesState> {
    ApiRoutes::new()
        .route(Method::GET, "/api/v1/me/announcements", Access::Authenticated, get(mine))
        .route(Method::POST, "/api/v1/me/announcements/:id/read", Access::Authenticated, post(read))
        .route(Method::POST, "/api/v1/announcements", CREATE, post(create))
        .route(Method::GET, "/api/v1/announcements", CREATE, get(list))
        .route(Method::GET, "/api/v1/announcements/:id", CREATE, get(one))
        .route(Method::PATCH, "/api/v1/announcements/:id", CREATE, axum::routing::patch(edit))
        .route(Method::DELETE, "/api/v1/announcements/:id", CREATE, axum::routing::delete(remove))
        .route(Method::POST, "/api/v1/announcements/:id/publish", CREATE, post(publish))
        .route(Method::POST, "/api/v1/announcements/:id/schedule", CREATE, post(schedule))
        .route(Method::POST, "/api/v1/announcements/:id/unpublish", CREATE, post(unpublish))
        .route(Method::GET, "/api/v1/announcements/:id/reads", CREATE, get(reads))
}

fn author(c: &Caller) -> Author {
    Author { user_id: c.user_id.clone(), admin: c.permissions.contains(MANAGE) }
}

fn directory(s: &ServicesState) -> Directory {
    Directory { users: s.users.clone(), courses: s.course.clone(), timetable: s.timetable.clone() }
}

async fn db(s: &ServicesState) -> Result<deadpool_postgres::Object, AppError> {
    Ok(s.announcement.get().await.map_err(Error::from)?)
}

async fn profile(s: &ServicesState, c: &Caller) -> Result<Profile, AppError> {
    Ok(directory(s).profile(&c.user_id, &c.roles).await?)
}

#[utoipa::path(get, path = "/api/v1/me/announcements", tag = "announcement", params(MineFilter, crate::listing::Paging<MineFilter>), responses((status = 200, description = "The live announcements that reach the caller, urgent first, with read marks")))]
async fn mine(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    l: Listing<MineFilter>,
) -> Answer<Page<Item>> {
    let p = profile(&s, &caller).await?;
    let c = db(&s).await?;
    Ok(Json(reading::mine(&**c, &p, &l.filter, &l.query).await?))
}

#[utoipa::path(post, path = "/api/v1/me/announcements/{id}/read", tag = "announcement", params(("id" = Uuid, Path)), responses((status = 204, description = "Marked (again: no change)"), (status = 404, description = "No live announcement for the caller")))]
async fn read(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    let p = profile(&s, &caller).await?;
    let c = db(&s).await?;
    reading::mark_read(&**c, &p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/announcements", tag = "announcement", request_body = Draft, responses((status = 201, description = "The draft", body = View), (status = 403, description = "Faculty: a target beyond the courses they teach"), (status = 422, description = "No target, more than 1,000 target values, or an expiry in the past or after the year 9999")))]
async fn create(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiJson(fields::Json(d)): ApiJson<fields::Json<Draft>>,
) -> Result<(StatusCode, Json<View>), AppError> {
    let mut c = db(&s).await?;
    Ok((StatusCode::CREATED, Json(store::create(&mut c, &directory(&s), &a, &author(&caller), d).await?)))
}

#[utoipa::path(get, path = "/api/v1/announcements", tag = "announcement", params(ListFilter, crate::listing::Paging<ListFilter>), responses((status = 200, description = "The caller's announcements (an administrator's: everyone's), newest first")))]
async fn list(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    l: Listing<ListFilter>,
) -> Answer<Page<View>> {
    let c = db(&s).await?;
    Ok(Json(store::list(&c, &author(&caller), &l.filter, &l.query).await?))
}

#[utoipa::path(get, path = "/api/v1/announcements/{id}", tag = "announcement", params(("id" = Uuid, Path)), responses((status = 200, description = "The announcement", body = View), (status = 404, description = "No such announcement, or another author's")))]
async fn one(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> Answer<View> {
    let c = db(&s).await?;
    Ok(Json(store::get(&**c, &author(&caller), id).await?))
}

#[utoipa::path(patch, path = "/api/v1/announcements/{id}", tag = "announcement", params(("id" = Uuid, Path)), request_body = Edit, responses((status = 200, description = "The edited announcement", body = View), (status = 403, description = "Faculty: a target beyond the courses they teach"), (status = 404, description = "No such announcement, or another author's"), (status = 409, description = "Expired"), (status = 422, description = "No target, more than 1,000 target values, or an expiry in the past, after the year 9999 or before the scheduled publication")))]
async fn edit(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(fields::Json(e)): ApiJson<fields::Json<Edit>>,
) -> Answer<View> {
    let mut c = db(&s).await?;
    Ok(Json(store::edit(&mut c, &directory(&s), &a, &author(&caller), id, e).await?))
}

#[utoipa::path(delete, path = "/api/v1/announcements/{id}", tag = "announcement", params(("id" = Uuid, Path)), responses((status = 204, description = "Deleted"), (status = 404, description = "No such announcement, or another author's")))]
async fn remove(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    let mut c = db(&s).await?;
    store::delete(&mut c, &a, &author(&caller), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/announcements/{id}/publish", tag = "announcement", params(("id" = Uuid, Path)), responses((status = 200, description = "Published", body = View), (status = 404, description = "No such announcement, or another author's"), (status = 409, description = "Not a draft or scheduled, or its expiry has passed")))]
async fn publish(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Answer<View> {
    let mut c = db(&s).await?;
    Ok(Json(store::publish(&mut c, &a, &author(&caller), id).await?))
}

#[utoipa::path(post, path = "/api/v1/announcements/{id}/schedule", tag = "announcement", params(("id" = Uuid, Path)), request_body = ScheduleAt, responses((status = 200, description = "Scheduled", body = View), (status = 404, description = "No such announcement, or another author's"), (status = 409, description = "Not a draft or scheduled"), (status = 422, description = "`publish_at` is in the past, after the year 9999, or not before the expiry")))]
async fn schedule(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(fields::Json(at)): ApiJson<fields::Json<ScheduleAt>>,
) -> Answer<View> {
    let mut c = db(&s).await?;
    Ok(Json(store::schedule(&mut c, &a, &author(&caller), id, at.publish_at).await?))
}

#[utoipa::path(post, path = "/api/v1/announcements/{id}/unpublish", tag = "announcement", params(("id" = Uuid, Path)), responses((status = 200, description = "A draft again", body = View), (status = 404, description = "No such announcement, or another author's"), (status = 409, description = "Not published or scheduled")))]
async fn unpublish(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Answer<View> {
    let mut c = db(&s).await?;
    Ok(Json(store::unpublish(&mut c, &a, &author(&caller), id).await?))
}

#[utoipa::path(get, path = "/api/v1/announcements/{id}/reads", tag = "announcement", params(("id" = Uuid, Path)), responses((status = 200, description = "Who of its current audience read it", body = ReadStats), (status = 404, description = "No such announcement, or another author's")))]
async fn reads(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> Answer<ReadStats> {
    let c = db(&s).await?;
    Ok(Json(reading::stats(&**c, &directory(&s), &author(&caller), id).await?))
}

/// The routes' OpenAPI paths.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(mine, read, create, list, one, edit, remove, publish, schedule, unpublish, reads),
    components(schemas(Draft, Edit, View, Item, ReadStats, ScheduleAt, Targets))
)]
pub struct Doc;
