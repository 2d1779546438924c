//! The notification service's routes: a person's inbox, read marks, preferences and push
//! devices (`/api/v1/me/…`, any signed-in user); and for administrators, templates, sends and
//! broadcasts (as commands on `notification.commands`, through the service's outbox, so they
//! travel the same road as every other service's), statistics and a recipient's delivery history.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post, put};
use chrono::{NaiveDate, Utc};
use nimbus_core::event::NotificationCommand;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::SERVICE;
use axum::response::sse::{Event, KeepAlive, Sse};
use tokio::sync::broadcast;

use super::fields;
use super::inbox::{self, InboxItem};
use super::live::Live;
use super::preferences::{self, Preference};
use super::requests::{Broadcast, SendNotification};
use super::schedule::{self, Settings};
use super::statistics::DayCount;
use super::templates::{self, Template};
use crate::error::{Error, FieldError};
use crate::http::{Access, Acting, ApiJson, ApiPath, ApiRoutes, AppError, Caller, Listing, Params, ServicesState};
use crate::listing::Page;

const SEND: Access = Access::Permission("notification:send");
const MANAGE: Access = Access::Permission("notification:manage");

type Answer<T> = Result<Json<T>, AppError>;

/// A connection to `notification_service_db`.
async fn db(s: &ServicesState) -> Result<deadpool_postgres::Object, AppError> {
    Ok(s.notification.get().await.map_err(Error::from)?)
}

/// The routes.
pub fn routes() -> ApiRoutes<ServicesState> {
    ApiRoutes::new()
        .route(Method::GET, "/api/v1/me/notifications", Access::Authenticated, get(my_notifications))
        .route(Method::GET, "/api/v1/me/notifications/unread-count", Access::Authenticated, get(unread_count))
        .route(Method::POST, "/api/v1/me/notifications/read-all", Access::Authenticated, post(read_all))
        .route(Method::POST, "/api/v1/me/notifications/:id/read", Access::Authenticated, post(read_one))
        .route(Method::GET, "/api/v1/me/notification-preferences", Access::Authenticated, get(my_preferences))
        .route(Method::PUT, "/api/v1/me/notification-preferences", Access::Authenticated, put(set_preferences))
        .route(Method::GET, "/api/v1/me/notification-settings", Access::Authenticated, get(my_settings))
        .route(Method::PUT, "/api/v1/me/notification-settings", Access::Authenticated, put(set_settings))
        .route(Method::POST, "/api/v1/me/push-devices", Access::Authenticated, post(add_device))
        .route(Method::DELETE, "/api/v1/me/push-devices/:token", Access::Authenticated, delete(remove_device))
        .route(Method::GET, "/api/v1/notification-templates", MANAGE, get(list_templates))
        .route(Method::PUT, "/api/v1/notification-templates/:template_id/:channel", MANAGE, put(save_template))
        .route(Method::DELETE, "/api/v1/notification-templates/:template_id/:channel", MANAGE, delete(delete_template))
        .route(Method::POST, "/api/v1/notifications/send", SEND, post(send))
        .route(Method::POST, "/api/v1/notifications/broadcast", SEND, post(broadcast))
        .route(Method::GET, "/api/v1/notifications/statistics", MANAGE, get(statistics))
        .route(Method::GET, "/api/v1/users/:id/notifications", MANAGE, get(history))
}

/// What the live stream needs: the inbox, and this instance's listener.
#[derive(Clone)]
pub struct LiveApi {
    /// `notification_service_db`.
    pub pool: deadpool_postgres::Pool,
    /// The instance's `LISTEN` connection, fanned out.
    pub live: Live,
}

/// The live stream's route, with its own listener on the notification database of `config`.
pub fn live_routes(config: &crate::config::CloudConfig) -> crate::error::Result<ApiRoutes> {
    let url = config.database_url_for(super::DATABASE);
    let state = LiveApi { pool: crate::db::pool(&url, 4)?, live: Live::start(url) };
    Ok(ApiRoutes::new()
        .route(Method::GET, "/api/v1/me/notifications/stream", Access::Authenticated, get(stream))
        .with_state(state))
}

/// The caller's new in-app notifications as server-sent events (`event: notification`, the
/// item as JSON), from any api instance's deliveries, with a keep-alive comment every 15 s. A
/// stream that fell too far behind gets `event: resync` (reload the inbox).
#[utoipa::path(get, path = "/api/v1/me/notifications/stream", tag = "notification", responses((status = 200, description = "The caller's new notifications as server-sent events, never ending (a comment every 15 s keeps it open); the schema describes one event", content_type = "text/event-stream", body = StreamEvent)))]
async fn stream(
    State(s): State<LiveApi>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let events =
        futures_util::stream::unfold((s.live.subscribe(), s.pool, caller.user_id), |(mut rx, pool, user)| async move {
            loop {
                match rx.recv().await {
                    Ok(d) if d.user_id == user => {
                        let item = match pool.get().await {
                            Ok(c) => inbox::get(&**c, &user, d.notification_id).await.ok().flatten(),
                            Err(_) => None,
                        };
                        let event = match item {
                            Some(item) => Event::default().event("notification").json_data(&item).unwrap_or_default(),
                            None => Event::default().event("notification").data(d.notification_id.to_string()),
                        };
                        return Some((Ok(event), (rx, pool, user)));
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Some((Ok(Event::default().event("resync").data("")), (rx, pool, user)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
    Sse::new(events).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
}

/// One server-sent event of the notification stream.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the events `stream` writes
struct StreamEvent {
    /// `notification` (a new in-app notification), or `resync` (the stream fell behind: reload
    /// the inbox).
    #[schema(schema_with = stream_events)]
    event: String,
    /// A `notification`'s inbox item as JSON (its id alone when it could not be read); empty for
    /// `resync`.
    data: String,
}

fn stream_events() -> utoipa::openapi::Object {
    crate::http::schema::one_of(&["notification", "resync"])
}

/// The routes' OpenAPI paths.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        my_notifications,
        unread_count,
        read_all,
        read_one,
        my_preferences,
        set_preferences,
        my_settings,
        set_settings,
        add_device,
        remove_device,
        list_templates,
        save_template,
        delete_template,
        send,
        broadcast,
        statistics,
        history,
        stream
    ),
    components(schemas(
        InboxItem,
        Preference,
        Template,
        PushDevice,
        Settings,
        SendNotification,
        Broadcast,
        Statistics
    ))
)]
pub struct Doc;

/// `?unread=true` shows unread ones only.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboxFilter {
    /// Only unread notifications.
    pub unread: Option<bool>,
}

impl crate::listing::Sorted for InboxFilter {
    const SORT: &'static [(&'static str, &'static str)] = crate::notification::inbox::INBOX_SORT;
}

#[utoipa::path(get, path = "/api/v1/me/notifications", tag = "notification", params(InboxFilter, crate::listing::Paging<InboxFilter>), responses((status = 200, description = "The caller's notifications, unread first")))]
async fn my_notifications(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    l: Listing<InboxFilter>,
) -> Answer<Page<InboxItem>> {
    let c = db(&s).await?;
    Ok(Json(inbox::list(&**c, &caller.user_id, l.filter.unread.unwrap_or(false), &l.query).await?))
}

/// `{"unread": n}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UnreadCount {
    /// Unread notifications.
    #[schema(minimum = 0)]
    pub unread: i64,
}

/// `{"marked": n}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Marked {
    /// Notifications that became read.
    #[schema(minimum = 0)]
    pub marked: u64,
}

#[utoipa::path(get, path = "/api/v1/me/notifications/unread-count", tag = "notification", responses((status = 200, description = "How many of the caller's notifications are unread", body = UnreadCount)))]
async fn unread_count(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Answer<UnreadCount> {
    let c = db(&s).await?;
    Ok(Json(UnreadCount { unread: inbox::unread_count(&**c, &caller.user_id).await? }))
}

#[utoipa::path(post, path = "/api/v1/me/notifications/read-all", tag = "notification", responses((status = 200, description = "How many became read", body = Marked)))]
async fn read_all(State(s): State<ServicesState>, axum::Extension(caller): axum::Extension<Caller>) -> Answer<Marked> {
    let mut c = db(&s).await?;
    let tx = c.transaction().await.map_err(Error::from)?;
    let marked = inbox::mark_read(&tx, &caller.user_id, None).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(Marked { marked }))
}

#[utoipa::path(post, path = "/api/v1/me/notifications/{id}/read", tag = "notification", params(("id" = Uuid, Path)), responses((status = 204, description = "Read (again: no change)"), (status = 404, description = "Not one of the caller's notifications")))]
async fn read_one(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, AppError> {
    let mut c = db(&s).await?;
    let tx = c.transaction().await.map_err(Error::from)?;
    inbox::mark_read(&tx, &caller.user_id, Some(&[id])).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/me/notification-preferences", tag = "notification", responses((status = 200, description = "The preferences the caller set (the rest are on)", body = [Preference])))]
async fn my_preferences(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Answer<Vec<Preference>> {
    let c = db(&s).await?;
    Ok(Json(preferences::list(&**c, &caller.user_id).await?))
}

#[utoipa::path(put, path = "/api/v1/me/notification-preferences", tag = "notification", request_body = [Preference], responses((status = 200, description = "Every preference the caller set, after this change", body = [Preference]), (status = 422, description = "Turning `security` notifications off")))]
async fn set_preferences(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(body): ApiJson<Vec<fields::Json<Preference>>>,
) -> Answer<Vec<Preference>> {
    let c = db(&s).await?;
    let body: Vec<Preference> = body.into_iter().map(|p| p.0).collect();
    Ok(Json(preferences::set(&**c, &caller.user_id, &body).await?))
}

#[utoipa::path(get, path = "/api/v1/me/notification-settings", tag = "notification", responses((status = 200, description = "The caller's settings (the defaults when none were saved)", body = Settings)))]
async fn my_settings(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Answer<Settings> {
    let c = db(&s).await?;
    Ok(Json(schedule::get(&**c, &caller.user_id).await?))
}

#[utoipa::path(put, path = "/api/v1/me/notification-settings", tag = "notification", request_body = Settings, responses((status = 200, description = "The saved settings", body = Settings), (status = 422, description = "A time zone PostgreSQL does not know, half a quiet window, or a window that starts where it ends")))]
async fn set_settings(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(fields::Json(body)): ApiJson<fields::Json<Settings>>,
) -> Answer<Settings> {
    let c = db(&s).await?;
    Ok(Json(schedule::set(&**c, &caller.user_id, &body).await?))
}

/// A device that receives push notifications.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "token": "fcm-registration-token-1", "platform": "android" }))]
pub struct PushDevice {
    /// The provider's registration token.
    #[schema(schema_with = token)]
    pub token: String,
    /// `web`, `android` or `ios`.
    #[serde(default = "web")]
    #[schema(schema_with = platforms)]
    pub platform: String,
}

fn token() -> utoipa::openapi::Object {
    fields::text_schema(Some(4096), false)
}

/// The platforms of push devices.
pub const PLATFORMS: &[&str] = &["web", "android", "ios"];

fn platforms() -> utoipa::openapi::Object {
    let mut o = crate::http::schema::one_of(PLATFORMS);
    o.default = Some(json!("web"));
    o
}

fn web() -> String {
    "web".into()
}

#[utoipa::path(post, path = "/api/v1/me/push-devices", tag = "notification", request_body = PushDevice, responses((status = 204, description = "Registered to the caller (a token registered before moves to them)")))]
async fn add_device(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(fields::Json(body)): ApiJson<fields::Json<PushDevice>>,
) -> Result<StatusCode, AppError> {
    let mut errors = Vec::new();
    fields::text(&mut errors, "token", &body.token, 4096);
    if !PLATFORMS.contains(&body.platform.as_str()) {
        errors.push(FieldError::new("platform", "must be web, android or ios"));
    }
    crate::listing::finish(errors)?;
    let c = db(&s).await?;
    // A token moves to whoever registers it last (a shared device changes hands).
    c.execute(
        "INSERT INTO push_devices (token, user_id, platform) VALUES ($1, $2, $3)
         ON CONFLICT (token) DO UPDATE SET user_id = EXCLUDED.user_id, platform = EXCLUDED.platform",
        &[&body.token.trim(), &caller.user_id, &body.platform],
    )
    .await
    .map_err(Error::from)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/me/push-devices/{token}", tag = "notification", params(("token" = String, Path, description = "The registration token")), responses((status = 204, description = "Removed"), (status = 404, description = "The caller has no such device")))]
async fn remove_device(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(token): ApiPath<String>,
) -> Result<StatusCode, AppError> {
    if token.contains('\0') {
        // No token has one (they are refused when registered).
        return Err(Error::NotFound { what: "push device", id: token.replace('\0', "") }.into());
    }
    let c = db(&s).await?;
    let n = c
        .execute("DELETE FROM push_devices WHERE token = $1 AND user_id = $2", &[&token, &caller.user_id])
        .await
        .map_err(Error::from)?;
    if n == 0 {
        return Err(Error::NotFound { what: "push device", id: token }.into());
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/notification-templates", tag = "notification", responses((status = 200, description = "Every template, by id and channel", body = [Template])))]
async fn list_templates(State(s): State<ServicesState>) -> Answer<Vec<Template>> {
    let c = db(&s).await?;
    Ok(Json(templates::list(&**c).await?))
}

/// A template's id and channel (the path of its routes).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TemplateKey {
    /// The seed's `template_id` (`template-new-content`).
    #[param(schema_with = template_id, required = true)]
    pub template_id: String,
    /// `email`, `sms`, `push` or `in_app`.
    #[param(schema_with = fields::channel, required = true)]
    pub channel: String,
}

fn template_id() -> utoipa::openapi::Object {
    fields::text_schema(Some(templates::MAX_ID), false)
}

fn notification_type() -> utoipa::openapi::Object {
    fields::text_schema(Some(templates::MAX_TYPE), false)
}

fn template_text() -> utoipa::openapi::Object {
    fields::text_schema(None, false)
}

impl TemplateKey {
    /// Field errors of the key, as the document states them.
    fn check(&self) -> Result<(), Error> {
        let mut errors = Vec::new();
        fields::text(&mut errors, "template_id", &self.template_id, templates::MAX_ID);
        if !fields::CHANNELS.contains(&self.channel.as_str()) {
            errors.push(FieldError::new("channel", "must be email, sms, push or in_app"));
        }
        crate::listing::finish(errors)
    }
}

/// A template's content (its id and channel are in the path).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "notification_type": "content", "subject": "New in {{ course }}", "body": "{{ title }} was published in {{ course }}.", "variables": ["course", "title"] }))]
pub struct TemplateBody {
    /// The notification type it is for.
    #[schema(schema_with = notification_type)]
    pub notification_type: String,
    /// Subject or title (a minijinja template of the variables).
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000]*$")]
    pub subject: String,
    /// Text (a minijinja template of the variables).
    #[schema(schema_with = template_text)]
    pub body: String,
    /// Variables it may use (ASCII letters, digits and `_`).
    #[serde(default)]
    #[schema(schema_with = templates::variables)]
    pub variables: Vec<String>,
    /// Whether it is used.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub is_active: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(put, path = "/api/v1/notification-templates/{template_id}/{channel}", tag = "notification", params(TemplateKey), request_body = TemplateBody, responses((status = 200, description = "The saved template", body = Template), (status = 422, description = "Broken template syntax, or a variable it uses is not in `variables`")))]
async fn save_template(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(key): ApiPath<TemplateKey>,
    ApiJson(fields::Json(body)): ApiJson<fields::Json<TemplateBody>>,
) -> Answer<Template> {
    let t = Template {
        template_id: key.template_id,
        channel: key.channel,
        notification_type: body.notification_type,
        subject: body.subject,
        body: body.body,
        variables: body.variables,
        is_active: body.is_active,
        updated_at: None,
    };
    let c = db(&s).await?;
    Ok(Json(templates::save(&**c, &t, &a.id()).await?))
}

#[utoipa::path(delete, path = "/api/v1/notification-templates/{template_id}/{channel}", tag = "notification", params(TemplateKey), responses((status = 204, description = "Deleted"), (status = 404, description = "No such template")))]
async fn delete_template(
    State(s): State<ServicesState>,
    ApiPath(key): ApiPath<TemplateKey>,
) -> Result<StatusCode, AppError> {
    key.check()?;
    let c = db(&s).await?;
    templates::delete(&**c, &key.template_id, &key.channel).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Writes `command` into the notification service's outbox; the worker's relay publishes it on
/// `notification.commands` and the worker consumes it like any other service's command.
async fn enqueue_command(
    s: &ServicesState,
    a: &crate::actor::Actor,
    command: NotificationCommand,
) -> Result<(), AppError> {
    let mut c = db(s).await?;
    let tx = c.transaction().await.map_err(Error::from)?;
    crate::outbox::publish(&tx, SERVICE, a, command).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/notifications/send", tag = "notification", request_body = SendNotification, responses((status = 202, description = "Queued for the worker", body = Accepted), (status = 422, description = "No title and no template, or a time after the year 9999")))]
async fn send(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(fields::Json(body)): ApiJson<fields::Json<SendNotification>>,
) -> Result<(StatusCode, Json<Accepted>), AppError> {
    body.validate()?;
    let mut body = body.payload();
    if body.notification_id.trim().is_empty() {
        body.notification_id = Uuid::new_v4().to_string();
    }
    let id = body.notification_id.clone();
    let command = if body.scheduled_at.is_some_and(|at| at > Utc::now()) {
        NotificationCommand::ScheduleNotification(body)
    } else {
        NotificationCommand::SendNotification(body)
    };
    enqueue_command(&s, &a, command).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { notification_id: Some(id), batch_id: None })))
}

/// What a send or broadcast was queued as.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// A send's notification id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_id: Option<String>,
    /// A broadcast's batch id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/notifications/broadcast", tag = "notification", request_body = Broadcast, responses((status = 202, description = "Queued for the worker, which expands it in chunks", body = Accepted), (status = 422, description = "No title and no template")))]
async fn broadcast(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(fields::Json(body)): ApiJson<fields::Json<Broadcast>>,
) -> Result<(StatusCode, Json<Accepted>), AppError> {
    body.validate()?;
    let mut body = body.payload();
    if body.batch_id.trim().is_empty() {
        body.batch_id = Uuid::new_v4().to_string();
    }
    let id = body.batch_id.clone();
    enqueue_command(&s, &a, NotificationCommand::SendBulk(body)).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { notification_id: None, batch_id: Some(id) })))
}

/// `?from=&to=` (dates, default the last 30 days).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatisticsQuery {
    /// First day (default: 30 days before `to`); not after `to` (422).
    #[serde(default, deserialize_with = "fields::strict_date_opt")]
    pub from: Option<NaiveDate>,
    /// Last day (default: today, UTC).
    #[serde(default, deserialize_with = "fields::strict_date_opt")]
    pub to: Option<NaiveDate>,
}

/// The first day a `YYYY-MM-DD` date can name.
const FIRST_DAY: NaiveDate = NaiveDate::from_ymd_opt(0, 1, 1).unwrap();

/// The statistics of some days.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Statistics {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// Per day, channel and template.
    pub rows: Vec<DayCount>,
}

#[utoipa::path(get, path = "/api/v1/notifications/statistics", tag = "notification", params(StatisticsQuery), responses((status = 200, description = "Counts per day, channel and template", body = Statistics), (status = 422, description = "`from` is after `to`")))]
async fn statistics(State(s): State<ServicesState>, Params(q): Params<StatisticsQuery>) -> Answer<Statistics> {
    let to = q.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = match q.from {
        Some(from) => from,
        // Not before year 0: the answer's dates are `YYYY-MM-DD` too.
        None => to.checked_sub_days(chrono::Days::new(30)).unwrap_or(NaiveDate::MIN).max(FIRST_DAY),
    };
    if from > to {
        return Err(Error::Unprocessable(vec![FieldError::new("from", "must not be after `to`")]).into());
    }
    let c = db(&s).await?;
    let rows = super::statistics::days(&**c, from, to).await?;
    Ok(Json(Statistics { from, to, rows }))
}

/// The history takes paging only.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryFilter {}

impl crate::listing::Sorted for HistoryFilter {
    const SORT: &'static [(&'static str, &'static str)] = &[("created_at", "created_at")];
}

#[utoipa::path(get, path = "/api/v1/users/{id}/notifications", tag = "notification", params(("id" = String, Path, description = "The user id"), HistoryFilter, crate::listing::Paging<HistoryFilter>), responses((status = 200, description = "Deliveries to the user, newest first (none for an unknown user)")))]
async fn history(
    State(s): State<ServicesState>,
    ApiPath(id): ApiPath<String>,
    l: Listing<HistoryFilter>,
) -> Answer<Page<Value>> {
    let (limit, offset, _) = l.query.resolve(<HistoryFilter as crate::listing::Sorted>::SORT)?;
    if id.contains('\0') {
        // No user id has one.
        return Ok(Json(Page { items: Vec::new(), total: 0, limit, offset }));
    }
    let c = db(&s).await?;
    let total: i64 = c
        .query_one("SELECT count(*) FROM notification_queue WHERE user_id = $1", &[&id])
        .await
        .map_err(Error::from)?
        .get(0);
    let rows = c
        .query(
            "SELECT q.id, q.notification_id, n.notification_type, n.title, q.channel, q.status, q.attempts,
                    q.last_error, q.created_at, q.sent_at
             FROM notification_queue q JOIN notifications n ON n.id = q.notification_id
             WHERE q.user_id = $1 ORDER BY q.created_at DESC, q.seq DESC LIMIT $2 OFFSET $3",
            &[&id, &limit, &offset],
        )
        .await
        .map_err(Error::from)?;
    let items = rows
        .iter()
        .map(|r| {
            json!({
                "queue_id": r.get::<_, Uuid>(0), "notification_id": r.get::<_, Uuid>(1),
                "notification_type": r.get::<_, String>(2), "title": r.get::<_, String>(3),
                "channel": r.get::<_, String>(4), "status": r.get::<_, String>(5),
                "attempts": r.get::<_, i32>(6), "last_error": r.get::<_, Option<String>>(7),
                "created_at": r.get::<_, chrono::DateTime<Utc>>(8),
                "sent_at": r.get::<_, Option<chrono::DateTime<Utc>>>(9),
            })
        })
        .collect();
    Ok(Json(Page { items, total, limit, offset }))
}
