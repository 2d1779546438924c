//! Timetable routes: rooms, time slots, timetables and their entries, conflicts, schedule change
//! requests. A double booking is a 409 whose details name the conflicting entries.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, patch, post};
use uuid::Uuid;

use crate::http::ServicesState;
use crate::http::{Access, ApiJson, ApiPath, ApiRoutes, AppError, Caller};
use crate::http::{Acting, Listing};
use crate::listing::Page;
use crate::timetable::changes::{self, ChangeRequest, ChangeRequestFilter, NewChangeRequest, Review};
use crate::timetable::conflicts::{self, ConflictFilter, ConflictRecord};
use crate::timetable::entries::{self, Entry, EntryFilter, EntryUpdate, NewEntry};
use crate::timetable::rooms::{self, NewRoom, Room, RoomFilter, RoomUpdate};
use crate::timetable::slots::{self, NewTimeSlot, TimeSlot, TimeSlotFilter};
use crate::timetable::timetables::{self, NewTimetable, Timetable, TimetableFilter, TimetableUpdate};

const READ: Access = Access::Permission("timetable:read");
const WRITE: Access = Access::Permission("timetable:write");

type Answer<T> = Result<Json<T>, AppError>;
type Created<T> = Result<(StatusCode, Json<T>), AppError>;

/// The timetable routes.
pub fn routes() -> ApiRoutes<ServicesState> {
    ApiRoutes::new()
        .route(Method::GET, "/api/v1/rooms", READ, get(list_rooms))
        .route(Method::POST, "/api/v1/rooms", WRITE, post(create_room))
        .route(Method::GET, "/api/v1/rooms/:id", READ, get(get_room))
        .route(Method::PATCH, "/api/v1/rooms/:id", WRITE, patch(update_room))
        .route(Method::DELETE, "/api/v1/rooms/:id", WRITE, delete(delete_room))
        .route(Method::GET, "/api/v1/time-slots", READ, get(list_slots))
        .route(Method::POST, "/api/v1/time-slots", WRITE, post(create_slot))
        .route(Method::GET, "/api/v1/time-slots/:id", READ, get(get_slot))
        .route(Method::DELETE, "/api/v1/time-slots/:id", WRITE, delete(delete_slot))
        .route(Method::GET, "/api/v1/timetables", READ, get(list_timetables))
        .route(Method::POST, "/api/v1/timetables", WRITE, post(create_timetable))
        .route(Method::GET, "/api/v1/timetables/:id", READ, get(get_timetable))
        .route(Method::PATCH, "/api/v1/timetables/:id", WRITE, patch(update_timetable))
        .route(Method::POST, "/api/v1/timetables/:id/publish", WRITE, post(publish_timetable))
        .route(Method::POST, "/api/v1/timetables/:id/archive", WRITE, post(archive_timetable))
        .route(Method::GET, "/api/v1/timetable-entries", READ, get(list_entries))
        .route(Method::POST, "/api/v1/timetable-entries", WRITE, post(add_entry))
        .route(Method::GET, "/api/v1/timetable-entries/:id", READ, get(get_entry))
        .route(Method::PATCH, "/api/v1/timetable-entries/:id", WRITE, patch(modify_entry))
        .route(Method::DELETE, "/api/v1/timetable-entries/:id", WRITE, delete(delete_entry))
        .route(Method::GET, "/api/v1/timetable-conflicts", WRITE, get(list_conflicts))
        .route(Method::POST, "/api/v1/timetable-conflicts/:id/resolve", WRITE, post(resolve_conflict))
        .route(Method::GET, "/api/v1/schedule-change-requests", READ, get(list_change_requests))
        .route(Method::POST, "/api/v1/schedule-change-requests", READ, post(create_change_request))
        .route(Method::POST, "/api/v1/schedule-change-requests/:id/approve", WRITE, post(approve_change_request))
        .route(Method::POST, "/api/v1/schedule-change-requests/:id/reject", WRITE, post(reject_change_request))
}

/// The timetable routes' OpenAPI paths.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_rooms,
    create_room,
    get_room,
    update_room,
    delete_room,
    list_slots,
    create_slot,
    get_slot,
    delete_slot,
    list_timetables,
    create_timetable,
    get_timetable,
    update_timetable,
    publish_timetable,
    archive_timetable,
    list_entries,
    add_entry,
    get_entry,
    modify_entry,
    delete_entry,
    list_conflicts,
    resolve_conflict,
    list_change_requests,
    create_change_request,
    approve_change_request,
    reject_change_request
))]
pub struct Doc;

#[utoipa::path(get, path = "/api/v1/rooms", tag = "timetable", params(RoomFilter, crate::listing::Paging<RoomFilter>), responses((status = 200, description = "A page of rooms")))]
async fn list_rooms(State(s): State<ServicesState>, l: Listing<RoomFilter>) -> Answer<Page<Room>> {
    Ok(Json(rooms::list_rooms(&s.timetable, l.filter, l.query).await?))
}

#[utoipa::path(post, path = "/api/v1/rooms", tag = "timetable", request_body = NewRoom, responses((status = 201, description = "The room"), (status = 409, description = "Room number taken")))]
async fn create_room(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(input): ApiJson<NewRoom>,
) -> Created<Room> {
    Ok((StatusCode::CREATED, Json(rooms::create_room(&s.timetable, &a, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/rooms/{id}", tag = "timetable", params(("id" = Uuid, Path)), responses((status = 200, description = "The room"), (status = 404, description = "No such room")))]
async fn get_room(State(s): State<ServicesState>, ApiPath(id): ApiPath<Uuid>) -> Answer<Room> {
    Ok(Json(rooms::get_room(&s.timetable, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/rooms/{id}", tag = "timetable", params(("id" = Uuid, Path)), request_body = RoomUpdate, responses((status = 200, description = "The updated room")))]
async fn update_room(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<RoomUpdate>,
) -> Answer<Room> {
    Ok(Json(rooms::update_room(&s.timetable, &a, id, input).await?))
}

#[utoipa::path(delete, path = "/api/v1/rooms/{id}", tag = "timetable", params(("id" = Uuid, Path)), responses((status = 204, description = "Deleted"), (status = 409, description = "The room is still booked")))]
async fn delete_room(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    rooms::delete_room(&s.timetable, &a, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/time-slots", tag = "timetable", params(TimeSlotFilter, crate::listing::Paging<TimeSlotFilter>), responses((status = 200, description = "A page of time slots")))]
async fn list_slots(State(s): State<ServicesState>, l: Listing<TimeSlotFilter>) -> Answer<Page<TimeSlot>> {
    Ok(Json(slots::list_time_slots(&s.timetable, l.filter, l.query).await?))
}

#[utoipa::path(post, path = "/api/v1/time-slots", tag = "timetable", request_body = NewTimeSlot, responses((status = 201, description = "The time slot"), (status = 422, description = "The fields break a rule together (an end before its start, a time slot and explicit times, a room or time slot that does not exist or is inactive)")))]
async fn create_slot(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(input): ApiJson<NewTimeSlot>,
) -> Created<TimeSlot> {
    Ok((StatusCode::CREATED, Json(slots::create_time_slot(&s.timetable, &a, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/time-slots/{id}", tag = "timetable", params(("id" = Uuid, Path)), responses((status = 200, description = "The time slot")))]
async fn get_slot(State(s): State<ServicesState>, ApiPath(id): ApiPath<Uuid>) -> Answer<TimeSlot> {
    Ok(Json(slots::get_time_slot(&s.timetable, id).await?))
}

#[utoipa::path(delete, path = "/api/v1/time-slots/{id}", tag = "timetable", params(("id" = Uuid, Path)), responses((status = 204, description = "Deleted")))]
async fn delete_slot(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    slots::delete_time_slot(&s.timetable, &a, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/timetables", tag = "timetable", params(TimetableFilter, crate::listing::Paging<TimetableFilter>), responses((status = 200, description = "A page of timetables")))]
async fn list_timetables(State(s): State<ServicesState>, l: Listing<TimetableFilter>) -> Answer<Page<Timetable>> {
    Ok(Json(timetables::list_timetables(&s.timetable, l.filter, l.query).await?))
}

#[utoipa::path(post, path = "/api/v1/timetables", tag = "timetable", request_body = NewTimetable, responses((status = 201, description = "The draft timetable"), (status = 422, description = "The fields break a rule together (an end before its start, a time slot and explicit times, a room or time slot that does not exist or is inactive)")))]
async fn create_timetable(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(input): ApiJson<NewTimetable>,
) -> Created<Timetable> {
    Ok((StatusCode::CREATED, Json(timetables::create_timetable(&s.timetable, &a, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/timetables/{id}", tag = "timetable", params(("id" = Uuid, Path)), responses((status = 200, description = "The timetable")))]
async fn get_timetable(State(s): State<ServicesState>, ApiPath(id): ApiPath<Uuid>) -> Answer<Timetable> {
    Ok(Json(timetables::get_timetable(&s.timetable, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/timetables/{id}", tag = "timetable", params(("id" = Uuid, Path)), request_body = TimetableUpdate, responses((status = 200, description = "The updated timetable"), (status = 422, description = "The fields break a rule together (an end before its start, a time slot and explicit times, a room or time slot that does not exist or is inactive)")))]
async fn update_timetable(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<TimetableUpdate>,
) -> Answer<Timetable> {
    Ok(Json(timetables::update_timetable(&s.timetable, &a, id, input).await?))
}

#[utoipa::path(post, path = "/api/v1/timetables/{id}/publish", tag = "timetable", params(("id" = Uuid, Path)), responses((status = 200, description = "Published: nodes receive it through the downlink")))]
async fn publish_timetable(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Answer<Timetable> {
    Ok(Json(timetables::publish_timetable(&s.timetable, &a, id).await?))
}

#[utoipa::path(post, path = "/api/v1/timetables/{id}/archive", tag = "timetable", params(("id" = Uuid, Path)), responses((status = 200, description = "Archived")))]
async fn archive_timetable(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Answer<Timetable> {
    Ok(Json(timetables::archive_timetable(&s.timetable, &a, id).await?))
}

#[utoipa::path(get, path = "/api/v1/timetable-entries", tag = "timetable", params(EntryFilter, crate::listing::Paging<EntryFilter>), responses((status = 200, description = "A page of entries")))]
async fn list_entries(State(s): State<ServicesState>, l: Listing<EntryFilter>) -> Answer<Page<Entry>> {
    Ok(Json(entries::list_entries(&s.timetable, l.filter, l.query).await?))
}

#[utoipa::path(post, path = "/api/v1/timetable-entries", tag = "timetable", request_body = NewEntry, responses((status = 201, description = "The entry"), (status = 404, description = "No such timetable"), (status = 409, description = "Room or faculty double-booked; details list the conflicting entries"), (status = 422, description = "The fields break a rule together (an end before its start, a time slot and explicit times, a room or time slot that does not exist or is inactive)")))]
async fn add_entry(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(input): ApiJson<NewEntry>,
) -> Created<Entry> {
    Ok((StatusCode::CREATED, Json(entries::add_entry(&s.timetable, &a, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/timetable-entries/{id}", tag = "timetable", params(("id" = Uuid, Path)), responses((status = 200, description = "The entry")))]
async fn get_entry(State(s): State<ServicesState>, ApiPath(id): ApiPath<Uuid>) -> Answer<Entry> {
    Ok(Json(entries::get_entry(&s.timetable, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/timetable-entries/{id}", tag = "timetable", params(("id" = Uuid, Path)), request_body = EntryUpdate, responses((status = 200, description = "The moved or changed entry"), (status = 409, description = "Double booking"), (status = 422, description = "The fields break a rule together (an end before its start, a time slot and explicit times, a room or time slot that does not exist or is inactive)")))]
async fn modify_entry(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<EntryUpdate>,
) -> Answer<Entry> {
    Ok(Json(entries::modify_entry(&s.timetable, &a, id, input).await?))
}

#[utoipa::path(delete, path = "/api/v1/timetable-entries/{id}", tag = "timetable", params(("id" = Uuid, Path)), responses((status = 204, description = "Deleted")))]
async fn delete_entry(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    entries::delete_entry(&s.timetable, &a, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/timetable-conflicts", tag = "timetable", params(ConflictFilter, crate::listing::Paging<ConflictFilter>), responses((status = 200, description = "A page of recorded conflicts")))]
async fn list_conflicts(State(s): State<ServicesState>, l: Listing<ConflictFilter>) -> Answer<Page<ConflictRecord>> {
    Ok(Json(conflicts::list_conflicts(&s.timetable, l.filter, l.query).await?))
}

#[utoipa::path(post, path = "/api/v1/timetable-conflicts/{id}/resolve", tag = "timetable", params(("id" = Uuid, Path)), responses((status = 200, description = "Marked resolved")))]
async fn resolve_conflict(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Answer<ConflictRecord> {
    Ok(Json(conflicts::resolve_conflict(&s.timetable, &a, id).await?))
}

#[utoipa::path(get, path = "/api/v1/schedule-change-requests", tag = "timetable", params(ChangeRequestFilter, crate::listing::Paging<ChangeRequestFilter>), responses((status = 200, description = "A page of change requests")))]
async fn list_change_requests(
    State(s): State<ServicesState>,
    l: Listing<ChangeRequestFilter>,
) -> Answer<Page<ChangeRequest>> {
    Ok(Json(changes::list_change_requests(&s.timetable, l.filter, l.query).await?))
}

/// Faculty ask for a change of their classes; admins review it. Students read timetables but
/// cannot ask.
#[utoipa::path(post, path = "/api/v1/schedule-change-requests", tag = "timetable", request_body = NewChangeRequest, responses((status = 201, description = "The pending request"), (status = 403, description = "Only faculty and admins"), (status = 422, description = "The fields break a rule together (an end before its start, a time slot and explicit times, a room or time slot that does not exist or is inactive)")))]
async fn create_change_request(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiJson(input): ApiJson<NewChangeRequest>,
) -> Created<ChangeRequest> {
    if !(caller.has_role("faculty") || caller.has_role("admin")) {
        return Err(AppError::forbidden("Only faculty and admins can request schedule changes"));
    }
    Ok((StatusCode::CREATED, Json(changes::create_change_request(&s.timetable, &a, input).await?)))
}

#[utoipa::path(post, path = "/api/v1/schedule-change-requests/{id}/approve", tag = "timetable", params(("id" = Uuid, Path)), request_body = Review, responses((status = 200, description = "Approved and applied"), (status = 409, description = "The change would double-book"), (status = 422, description = "The fields break a rule together (an end before its start, a time slot and explicit times, a room or time slot that does not exist or is inactive)")))]
async fn approve_change_request(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(review): ApiJson<Review>,
) -> Answer<serde_json::Value> {
    let (request, entry) = changes::approve_change_request(&s.timetable, &a, id, review).await?;
    Ok(Json(serde_json::json!({ "request": request, "entry": entry })))
}

#[utoipa::path(post, path = "/api/v1/schedule-change-requests/{id}/reject", tag = "timetable", params(("id" = Uuid, Path)), request_body = Review, responses((status = 200, description = "Rejected")))]
async fn reject_change_request(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(review): ApiJson<Review>,
) -> Answer<ChangeRequest> {
    Ok(Json(changes::reject_change_request(&s.timetable, &a, id, review).await?))
}
