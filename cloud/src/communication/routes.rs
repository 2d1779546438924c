//! The communication service's routes: every signed-in person's conversations. Who may do what
//! inside one is decided by the commands ([`super::conversations`], [`super::messages`]): only
//! current participants reach a conversation, and for anyone else it does not exist.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, patch, post};
use uuid::Uuid;

use super::conversations::{self, Conversation, MineFilter, NewConversation};
use super::messages::{self, EditMessage, Message, NewMessage, ReadUpTo, Since};
use crate::error::Error;
use crate::http::{Access, Acting, ApiJson, ApiPath, ApiRoutes, AppError, Caller, Listing, Params, ServicesState};
use crate::listing::Page;

type Answer<T> = Result<Json<T>, AppError>;

const SIGNED_IN: Access = Access::Authenticated;

/// The routes.
pub fn routes() -> ApiRoutes<ServicesState> {
    ApiRoutes::new()
        .route(Method::POST, "/api/v1/conversations", SIGNED_IN, post(start))
        .route(Method::GET, "/api/v1/conversations", SIGNED_IN, get(mine))
        .route(Method::GET, "/api/v1/conversations/:id", SIGNED_IN, get(one))
        .route(Method::POST, "/api/v1/conversations/:id/archive", SIGNED_IN, post(archive))
        .route(Method::POST, "/api/v1/conversations/:id/participants", SIGNED_IN, post(add))
        .route(Method::DELETE, "/api/v1/conversations/:id/participants/:user_id", SIGNED_IN, delete(remove))
        .route(Method::POST, "/api/v1/conversations/:id/messages", SIGNED_IN, post(send))
        .route(Method::GET, "/api/v1/conversations/:id/messages", SIGNED_IN, get(since))
        .route(Method::PATCH, "/api/v1/conversations/:id/messages/:message_id", SIGNED_IN, patch(edit))
        .route(Method::DELETE, "/api/v1/conversations/:id/messages/:message_id", SIGNED_IN, delete(remove_message))
        .route(Method::POST, "/api/v1/conversations/:id/read", SIGNED_IN, post(read))
}

async fn db(s: &ServicesState) -> Result<deadpool_postgres::Object, AppError> {
    Ok(s.communication.get().await.map_err(Error::from)?)
}

async fn users(s: &ServicesState) -> Result<deadpool_postgres::Object, AppError> {
    Ok(s.users.get().await.map_err(Error::from)?)
}

#[utoipa::path(post, path = "/api/v1/conversations", tag = "communication", request_body = NewConversation,
    responses((status = 201, body = Conversation, description = "Started"), (status = 200, body = Conversation, description = "The direct conversation the two already have"),
              (status = 400, description = "Unknown or inactive participants, bad type or title"), (status = 403, description = "The caller is inactive")))]
async fn start(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiJson(n): ApiJson<NewConversation>,
) -> Result<(StatusCode, Json<Conversation>), AppError> {
    let (mut c, u) = (db(&s).await?, users(&s).await?);
    let (conversation, new) = conversations::start(&mut c, &**u, &a, &caller.user_id, n).await?;
    Ok((if new { StatusCode::CREATED } else { StatusCode::OK }, Json(conversation)))
}

#[utoipa::path(get, path = "/api/v1/conversations", tag = "communication",
    params(("archived" = Option<bool>, Query), ("limit" = Option<i64>, Query, minimum = 1, maximum = 200), ("offset" = Option<i64>, Query, minimum = 0)),
    responses((status = 200, description = "The caller's conversations with unread counts, the most recently active first"), (status = 400)))]
async fn mine(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    l: Listing<MineFilter>,
) -> Answer<Page<Conversation>> {
    let (c, u) = (db(&s).await?, users(&s).await?);
    Ok(Json(conversations::mine(&**c, &**u, &caller.user_id, &l.filter, &l.query).await?))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "communication", params(("id" = Uuid, Path)),
    responses((status = 200, body = Conversation), (status = 404, description = "No such conversation for the caller")))]
async fn one(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> Answer<Conversation> {
    let (c, u) = (db(&s).await?, users(&s).await?);
    Ok(Json(conversations::get(&**c, &**u, id, &caller.user_id).await?))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/archive", tag = "communication", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Archived (again: no change)"), (status = 403, description = "A group member who is not its owner"), (status = 404)))]
async fn archive(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    let mut c = db(&s).await?;
    conversations::archive(&mut c, &a, &caller.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who to add to a group.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddParticipant {
    /// The user id.
    pub user_id: String,
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/participants", tag = "communication", params(("id" = Uuid, Path)), request_body = AddParticipant,
    responses((status = 204, description = "Added (already in: no change)"), (status = 400, description = "Not an active user"), (status = 403, description = "Not the group's owner"), (status = 404), (status = 409, description = "A direct or archived conversation, or a full group")))]
async fn add(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(p): ApiJson<AddParticipant>,
) -> Result<StatusCode, AppError> {
    let (mut c, u) = (db(&s).await?, users(&s).await?);
    conversations::add(&mut c, &**u, &a, &caller.user_id, id, &p.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/participants/{user_id}", tag = "communication", params(("id" = Uuid, Path), ("user_id" = String, Path)),
    responses((status = 204, description = "Removed, or left (one's own id)"), (status = 403, description = "Removing someone else without owning the group"), (status = 404), (status = 409, description = "A direct conversation")))]
async fn remove(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath((id, user)): ApiPath<(Uuid, String)>,
) -> Result<StatusCode, AppError> {
    let mut c = db(&s).await?;
    conversations::remove(&mut c, &a, &caller.user_id, id, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "communication", params(("id" = Uuid, Path)), request_body = NewMessage,
    responses((status = 201, body = Message), (status = 400, description = "Empty, too long, or replying to a message elsewhere"), (status = 403, description = "The caller is inactive"), (status = 404), (status = 409, description = "Archived")))]
async fn send(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(m): ApiJson<NewMessage>,
) -> Result<(StatusCode, Json<Message>), AppError> {
    let (mut c, u) = (db(&s).await?, users(&s).await?);
    Ok((StatusCode::CREATED, Json(messages::send(&mut c, &**u, &a, &caller.user_id, id, m).await?)))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "communication",
    params(("id" = Uuid, Path), ("after_seq" = Option<i64>, Query, minimum = 0), ("limit" = Option<i64>, Query, minimum = 1, maximum = 200)),
    responses((status = 200, description = "Messages after `after_seq`, oldest first (deleted ones as tombstones)"), (status = 400), (status = 404)))]
async fn since(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
    Params(q): Params<Since>,
) -> Answer<Vec<Message>> {
    let mut c = db(&s).await?;
    Ok(Json(messages::since(&mut c, &caller.user_id, id, &q).await?))
}

#[utoipa::path(patch, path = "/api/v1/conversations/{id}/messages/{message_id}", tag = "communication", params(("id" = Uuid, Path), ("message_id" = Uuid, Path)), request_body = EditMessage,
    responses((status = 200, body = Message), (status = 400), (status = 403, description = "Someone else's message"), (status = 404), (status = 409, description = "Past the edit window, deleted, or archived")))]
async fn edit(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath((id, message_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(e): ApiJson<EditMessage>,
) -> Answer<Message> {
    let mut c = db(&s).await?;
    Ok(Json(messages::edit(&mut c, &caller.user_id, id, message_id, e).await?))
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/messages/{message_id}", tag = "communication", params(("id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 204, description = "Deleted (again: no change); a tombstone keeps its place"), (status = 403, description = "Neither its author nor the group's owner"), (status = 404)))]
async fn remove_message(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath((id, message_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, AppError> {
    let mut c = db(&s).await?;
    messages::delete(&mut c, &a, &caller.user_id, id, message_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", tag = "communication", params(("id" = Uuid, Path)), request_body = ReadUpTo,
    responses((status = 204, description = "The read position is at least `seq`"), (status = 400, description = "No message has that seq"), (status = 404)))]
async fn read(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(r): ApiJson<ReadUpTo>,
) -> Result<StatusCode, AppError> {
    let mut c = db(&s).await?;
    messages::read(&mut c, &a, &caller.user_id, id, r).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The routes' OpenAPI paths.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(start, mine, one, archive, add, remove, send, since, edit, remove_message, read),
    components(schemas(
        NewConversation,
        Conversation,
        conversations::Participant,
        AddParticipant,
        NewMessage,
        EditMessage,
        ReadUpTo,
        Message
    ))
)]
pub struct Doc;
