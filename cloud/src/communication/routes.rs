//! The communication service's routes: every signed-in person's conversations. Who may do what
//! inside one is decided by the commands ([`super::conversations`], [`super::messages`]): only
//! current participants reach a conversation, and for anyone else it does not exist.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, patch, post};
use uuid::Uuid;

use super::conversations::{self, Conversation, MineFilter, NewConversation};
use super::forums::{self, Forum, Moderation, NewPost, NewThread, Post, Reader, Thread, ThreadView};
use super::live::{Bus, Push};
use super::messages::{self, EditMessage, Message, NewMessage, ReadUpTo, Since};
use super::office_hours::{self, Booking, Host, NewBooking, NewSlot, Slot, SlotFilter};
use super::{attachments, fields};
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
        .route(Method::POST, "/api/v1/office-hours", PUBLISH, post(publish_slots))
        .route(Method::GET, "/api/v1/office-hours", SIGNED_IN, get(upcoming))
        .route(Method::DELETE, "/api/v1/office-hours/:id", PUBLISH, delete(cancel_slot))
        .route(Method::GET, "/api/v1/office-hours/:id/bookings", PUBLISH, get(bookings))
        .route(Method::POST, "/api/v1/office-hours/:id/bookings", SIGNED_IN, post(book))
        .route(Method::DELETE, "/api/v1/office-hours/:id/bookings/mine", SIGNED_IN, delete(cancel_booking))
        .route(Method::GET, "/api/v1/courses/:id/forum", SIGNED_IN, get(course_forum))
        .route(Method::POST, "/api/v1/courses/:id/forum/threads", SIGNED_IN, post(start_thread))
        .route(Method::GET, "/api/v1/forum-threads/:id", SIGNED_IN, get(read_thread))
        .route(Method::POST, "/api/v1/forum-threads/:id/posts", SIGNED_IN, post(reply))
        .route(Method::PATCH, "/api/v1/forum-threads/:id", SIGNED_IN, patch(moderate))
        .route(Method::DELETE, "/api/v1/forum-posts/:id", SIGNED_IN, delete(remove_post))
}

/// The permission that lets its holder read and moderate every course forum.
pub const MODERATE_FORUMS: &str = "forum:moderate";

/// A course id with a NUL character names no course (and PostgreSQL's text cannot hold one).
fn no_such_course(course: &str) -> Result<(), AppError> {
    if course.contains('\0') {
        return Err(Error::NotFound { what: "forum", id: course.replace('\0', "") }.into());
    }
    Ok(())
}

fn reader(c: &Caller) -> Reader {
    Reader { user_id: c.user_id.clone(), moderator: c.permissions.contains(MODERATE_FORUMS) }
}

async fn courses(s: &ServicesState) -> Result<deadpool_postgres::Object, AppError> {
    Ok(s.course.get().await.map_err(Error::from)?)
}

const PUBLISH: Access = Access::Permission("office_hours:publish");

/// The permission that lets a host see and cancel everyone's office hours.
pub const MANAGE_OFFICE_HOURS: &str = "office_hours:manage";

fn host(c: &Caller) -> Host {
    Host { user_id: c.user_id.clone(), admin: c.permissions.contains(MANAGE_OFFICE_HOURS) }
}

async fn db(s: &ServicesState) -> Result<deadpool_postgres::Object, AppError> {
    Ok(s.communication.get().await.map_err(Error::from)?)
}

/// Live pushes and presence, on the state's Redis.
fn bus(s: &ServicesState) -> Bus {
    Bus::new(s.redis.0.clone(), &s.redis.1)
}

async fn users(s: &ServicesState) -> Result<deadpool_postgres::Object, AppError> {
    Ok(s.users.get().await.map_err(Error::from)?)
}

#[utoipa::path(post, path = "/api/v1/conversations", tag = "communication", request_body = NewConversation, responses((status = 201, body = Conversation, description = "Started"), (status = 200, body = Conversation, description = "The direct conversation the two already have, or the course's"),
              (status = 403, description = "The caller is inactive, or starts a course's conversation without teaching it"), (status = 422, description = "The fields break the rules of the conversation type, or a participant is not an active user")))]
async fn start(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiJson(fields::Json(n)): ApiJson<fields::Json<NewConversation>>,
) -> Result<(StatusCode, Json<Conversation>), AppError> {
    let (mut c, u, k) = (db(&s).await?, users(&s).await?, courses(&s).await?);
    let (conversation, new) = conversations::start(&mut c, &**u, &**k, &a, &caller.user_id, n).await?;
    Ok((if new { StatusCode::CREATED } else { StatusCode::OK }, Json(conversation)))
}

#[utoipa::path(get, path = "/api/v1/conversations", tag = "communication", params(MineFilter, crate::listing::Paging<MineFilter>), responses((status = 200, description = "The caller's conversations with unread counts, the most recently active first")))]
async fn mine(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    l: Listing<MineFilter>,
) -> Answer<Page<Conversation>> {
    let (c, u) = (db(&s).await?, users(&s).await?);
    Ok(Json(conversations::mine(&**c, &**u, &caller.user_id, &l.filter, &l.query).await?))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "communication", params(("id" = Uuid, Path)), responses((status = 200, description = "The conversation", body = Conversation), (status = 404, description = "No such conversation for the caller")))]
async fn one(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> Answer<Conversation> {
    let (c, u) = (db(&s).await?, users(&s).await?);
    Ok(Json(conversations::get(&**c, &**u, id, &caller.user_id).await?))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/archive", tag = "communication", params(("id" = Uuid, Path)), responses((status = 204, description = "Archived (again: no change)"), (status = 403, description = "A group member who is not its owner"), (status = 404, description = "No such conversation for the caller")))]
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
#[schema(example = json!({ "user_id": "8d0c2f4e-3b7a-4c1e-9f6a-2d5b8e7c1a90" }))]
pub struct AddParticipant {
    /// An active user's id (else 422).
    #[schema(format = Uuid)]
    pub user_id: String,
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/participants", tag = "communication", params(("id" = Uuid, Path)), request_body = AddParticipant, responses((status = 204, description = "Added (already in: no change)"), (status = 403, description = "Not the group's owner"), (status = 404, description = "No such conversation for the caller"), (status = 409, description = "A direct or archived conversation, or a full group"), (status = 422, description = "Not an active user")))]
async fn add(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(fields::Json(p)): ApiJson<fields::Json<AddParticipant>>,
) -> Result<StatusCode, AppError> {
    let (mut c, u) = (db(&s).await?, users(&s).await?);
    conversations::add(&mut c, &**u, &a, &caller.user_id, id, &p.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/participants/{user_id}", tag = "communication", params(("id" = Uuid, Path), ("user_id" = String, Path, description = "The participant")), responses((status = 204, description = "Removed, or left (one's own id)"), (status = 403, description = "Removing someone else without owning the group"), (status = 404, description = "No such conversation for the caller, or no such participant"), (status = 409, description = "A direct conversation")))]
async fn remove(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath((id, user)): ApiPath<(Uuid, String)>,
) -> Result<StatusCode, AppError> {
    if user.contains('\0') {
        // No user id has one.
        return Err(Error::NotFound { what: "participant", id: user.replace('\0', "") }.into());
    }
    let mut c = db(&s).await?;
    conversations::remove(&mut c, &a, &caller.user_id, id, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "communication", params(("id" = Uuid, Path)), request_body = NewMessage, responses((status = 201, description = "Sent", body = Message), (status = 403, description = "The caller is inactive"), (status = 404, description = "No such conversation for the caller"), (status = 409, description = "Archived"), (status = 422, description = "No text and no attachment, an attachment not every participant may open, or replying to a message elsewhere")))]
async fn send(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(fields::Json(m)): ApiJson<fields::Json<NewMessage>>,
) -> Result<(StatusCode, Json<Message>), AppError> {
    let (mut c, u, bus) = (db(&s).await?, users(&s).await?, bus(&s));
    // Who is in it now: the attachment check, presence (a connected participant is not
    // alerted) and the live push. A non-participant is refused by the send itself, exactly as
    // for a conversation that does not exist.
    let people = super::live::participants(&**c, id).await?;
    if let Some(item) = m.attachment_content_id
        && people.contains(&caller.user_id)
    {
        let others: Vec<String> = people.iter().filter(|p| **p != caller.user_id).cloned().collect();
        let (content, course) = (s.content.get().await.map_err(Error::from)?, courses(&s).await?);
        attachments::check(&content, &course, &**u, item, &caller.user_id, &others).await?;
    }
    let online = bus.online(&people).await;
    let sent = messages::send(&mut c, &**u, &online, &a, &caller.user_id, id, m).await?;
    bus.publish(people, Push::Message { message: sent.clone() }).await;
    Ok((StatusCode::CREATED, Json(sent)))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "communication", params(("id" = Uuid, Path), Since), responses((status = 200, description = "Messages after `after_seq`, oldest first (deleted ones as tombstones)", body = [Message]), (status = 404, description = "No such conversation for the caller")))]
async fn since(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
    Params(q): Params<Since>,
) -> Answer<Vec<Message>> {
    let mut c = db(&s).await?;
    Ok(Json(messages::since(&mut c, &caller.user_id, id, &q).await?))
}

#[utoipa::path(patch, path = "/api/v1/conversations/{id}/messages/{message_id}", tag = "communication", params(("id" = Uuid, Path), ("message_id" = Uuid, Path)), request_body = EditMessage, responses((status = 200, description = "The edited message", body = Message), (status = 403, description = "Someone else's message, or the caller is inactive"), (status = 404, description = "No such conversation for the caller, or no such message in it"), (status = 409, description = "Past the edit window, deleted, or archived")))]
async fn edit(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath((id, message_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(fields::Json(e)): ApiJson<fields::Json<EditMessage>>,
) -> Answer<Message> {
    let mut c = db(&s).await?;
    let edited = messages::edit(&mut c, &caller.user_id, id, message_id, e).await?;
    bus(&s).publish_to_conversation(&**c, id, Push::MessageUpdated { message: edited.clone() }).await;
    Ok(Json(edited))
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/messages/{message_id}", tag = "communication", params(("id" = Uuid, Path), ("message_id" = Uuid, Path)), responses((status = 204, description = "Deleted (again: no change); a tombstone keeps its place"), (status = 403, description = "Neither its author nor the group's owner"), (status = 404, description = "No such conversation for the caller, or no such message in it")))]
async fn remove_message(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath((id, message_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, AppError> {
    let mut c = db(&s).await?;
    if let Some(tombstone) = messages::delete(&mut c, &a, &caller.user_id, id, message_id).await? {
        bus(&s).publish_to_conversation(&**c, id, Push::MessageUpdated { message: tombstone }).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", tag = "communication", params(("id" = Uuid, Path)), request_body = ReadUpTo, responses((status = 204, description = "The read position is at least `seq`"), (status = 404, description = "No such conversation for the caller"), (status = 422, description = "No message of the conversation has that seq")))]
async fn read(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(fields::Json(r)): ApiJson<fields::Json<ReadUpTo>>,
) -> Result<StatusCode, AppError> {
    let mut c = db(&s).await?;
    let seq = r.seq;
    if messages::read(&mut c, &a, &caller.user_id, id, r).await? {
        let push = Push::Read { conversation_id: id, user_id: caller.user_id.clone(), seq };
        bus(&s).publish_to_conversation(&**c, id, push).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/office-hours", tag = "communication", request_body = NewSlot, responses((status = 201, description = "The slot, or each week's slot of the series", body = [Slot]), (status = 409, description = "Overlaps another of the caller's office hours"), (status = 422, description = "Starts in the past, ends before it starts or more than 8 hours later, or its last week ends after the year 9999")))]
async fn publish_slots(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(fields::Json(n)): ApiJson<fields::Json<NewSlot>>,
) -> Result<(StatusCode, Json<Vec<Slot>>), AppError> {
    let mut c = db(&s).await?;
    Ok((StatusCode::CREATED, Json(office_hours::publish(&mut c, &host(&caller), n).await?)))
}

#[utoipa::path(get, path = "/api/v1/office-hours", tag = "communication", params(SlotFilter, crate::listing::Paging<SlotFilter>), responses((status = 200, description = "Upcoming office hours, soonest first, with `booked` and the caller's `mine`")))]
async fn upcoming(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    l: Listing<SlotFilter>,
) -> Answer<Page<Slot>> {
    let c = db(&s).await?;
    Ok(Json(office_hours::upcoming(&**c, &caller.user_id, &l.filter, &l.query).await?))
}

#[utoipa::path(delete, path = "/api/v1/office-hours/{id}", tag = "communication", params(("id" = Uuid, Path)), responses((status = 204, description = "Cancelled (again: no change); booked students are told"), (status = 404, description = "Not the caller's")))]
async fn cancel_slot(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    let mut c = db(&s).await?;
    office_hours::cancel_slot(&mut c, &a, &host(&caller), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/office-hours/{id}/bookings", tag = "communication", params(("id" = Uuid, Path)), responses((status = 200, description = "The slot's live bookings, in booking order", body = [Booking]), (status = 404, description = "Not the caller's")))]
async fn bookings(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> Answer<Vec<Booking>> {
    let c = db(&s).await?;
    Ok(Json(office_hours::bookings(&**c, &host(&caller), id).await?))
}

#[utoipa::path(post, path = "/api/v1/office-hours/{id}/bookings", tag = "communication", params(("id" = Uuid, Path)), request_body = NewBooking, responses((status = 201, description = "Booked", body = Booking), (status = 403, description = "The caller is inactive"), (status = 404, description = "No such office hour"), (status = 409, description = "Full, started, cancelled, already booked, the caller's own, or overlapping another booking")))]
async fn book(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(fields::Json(b)): ApiJson<fields::Json<NewBooking>>,
) -> Result<(StatusCode, Json<Booking>), AppError> {
    let mut c = db(&s).await?;
    Ok((StatusCode::CREATED, Json(office_hours::book(&mut c, &caller.user_id, id, b).await?)))
}

#[utoipa::path(delete, path = "/api/v1/office-hours/{id}/bookings/mine", tag = "communication", params(("id" = Uuid, Path)), responses((status = 204, description = "Cancelled"), (status = 404, description = "The caller holds no booking of it")))]
async fn cancel_booking(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    let c = db(&s).await?;
    office_hours::cancel_booking(&**c, &caller.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/courses/{id}/forum", tag = "communication", params(("id" = String, Path, description = "The course id")), responses((status = 200, description = "The forum with its threads", body = Forum), (status = 404, description = "No forum, or the caller neither teaches nor attends the course")))]
async fn course_forum(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(course): ApiPath<String>,
) -> Answer<Forum> {
    no_such_course(&course)?;
    let (c, k) = (db(&s).await?, courses(&s).await?);
    Ok(Json(forums::forum(&**c, &**k, &reader(&caller), &course).await?))
}

#[utoipa::path(post, path = "/api/v1/courses/{id}/forum/threads", tag = "communication", params(("id" = String, Path, description = "The course id")), request_body = NewThread, responses((status = 201, description = "The thread with its first post", body = ThreadView), (status = 403, description = "The caller is inactive"), (status = 404, description = "No forum, or the caller neither teaches nor attends the course"), (status = 409, description = "The forum is closed")))]
async fn start_thread(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(course): ApiPath<String>,
    ApiJson(fields::Json(n)): ApiJson<fields::Json<NewThread>>,
) -> Result<(StatusCode, Json<ThreadView>), AppError> {
    no_such_course(&course)?;
    let (mut c, k) = (db(&s).await?, courses(&s).await?);
    Ok((StatusCode::CREATED, Json(forums::start_thread(&mut c, &**k, &a, &reader(&caller), &course, n).await?)))
}

#[utoipa::path(get, path = "/api/v1/forum-threads/{id}", tag = "communication", params(("id" = Uuid, Path)), responses((status = 200, description = "The thread with its posts, oldest first", body = ThreadView), (status = 404, description = "No such thread in a forum of the caller's courses")))]
async fn read_thread(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> Answer<ThreadView> {
    let (mut c, k) = (db(&s).await?, courses(&s).await?);
    Ok(Json(forums::read_thread(&mut c, &**k, &reader(&caller), id).await?))
}

#[utoipa::path(post, path = "/api/v1/forum-threads/{id}/posts", tag = "communication", params(("id" = Uuid, Path)), request_body = NewPost, responses((status = 201, description = "The reply", body = Post), (status = 403, description = "The caller is inactive"), (status = 404, description = "No such thread in a forum of the caller's courses"), (status = 409, description = "Locked thread or closed forum"), (status = 422, description = "`parent_post_id` is not a post of the thread")))]
async fn reply(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(fields::Json(p)): ApiJson<fields::Json<NewPost>>,
) -> Result<(StatusCode, Json<Post>), AppError> {
    let (mut c, k) = (db(&s).await?, courses(&s).await?);
    Ok((StatusCode::CREATED, Json(forums::reply(&mut c, &**k, &a, &reader(&caller), id, p).await?)))
}

#[utoipa::path(patch, path = "/api/v1/forum-threads/{id}", tag = "communication", params(("id" = Uuid, Path)), request_body = Moderation, responses((status = 200, description = "The thread", body = Thread), (status = 403, description = "Not a moderator of the course's forum"), (status = 404, description = "No such thread in a forum of the caller's courses")))]
async fn moderate(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(fields::Json(m)): ApiJson<fields::Json<Moderation>>,
) -> Answer<Thread> {
    let (mut c, k) = (db(&s).await?, courses(&s).await?);
    Ok(Json(forums::moderate(&mut c, &**k, &reader(&caller), id, m).await?))
}

#[utoipa::path(delete, path = "/api/v1/forum-posts/{id}", tag = "communication", params(("id" = Uuid, Path)), responses((status = 204, description = "Removed (a tombstone; a thread's first post removes the thread)"), (status = 403, description = "Neither its author nor a moderator (a thread's first post: not a moderator)"), (status = 404, description = "No such post in a forum of the caller's courses")))]
async fn remove_post(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    let (mut c, k) = (db(&s).await?, courses(&s).await?);
    forums::remove_post(&mut c, &**k, &reader(&caller), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The routes' OpenAPI paths.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        start,
        mine,
        one,
        archive,
        add,
        remove,
        send,
        since,
        edit,
        remove_message,
        read,
        publish_slots,
        upcoming,
        cancel_slot,
        bookings,
        book,
        cancel_booking,
        course_forum,
        start_thread,
        read_thread,
        reply,
        moderate,
        remove_post
    ),
    components(schemas(
        NewConversation,
        Conversation,
        conversations::Participant,
        AddParticipant,
        NewMessage,
        EditMessage,
        ReadUpTo,
        Message,
        NewSlot,
        Slot,
        Booking,
        NewBooking,
        Forum,
        Thread,
        ThreadView,
        Post,
        NewThread,
        NewPost,
        Moderation
    ))
)]
pub struct Doc;
