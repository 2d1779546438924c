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
use nimbus_core::event::notification::{BulkNotificationPayload, NotificationPayload};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::SERVICE;
use axum::response::sse::{Event, KeepAlive, Sse};
use tokio::sync::broadcast;

use super::inbox::{self, InboxItem};
use super::live::Live;
use super::preferences::{self, Preference};
use super::schedule::{self, Settings};
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
#[utoipa::path(get, path = "/api/v1/me/notifications/stream", tag = "notification", responses((status = 200, description = "text/event-stream of the caller's new notifications")))]
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
    components(schemas(InboxItem, Preference, Template, PushDevice, Settings))
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

#[utoipa::path(get, path = "/api/v1/me/notifications/unread-count", tag = "notification", responses((status = 200, description = "`{\"unread\": n}`")))]
async fn unread_count(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Answer<Value> {
    let c = db(&s).await?;
    Ok(Json(json!({ "unread": inbox::unread_count(&**c, &caller.user_id).await? })))
}

#[utoipa::path(post, path = "/api/v1/me/notifications/read-all", tag = "notification", responses((status = 200, description = "`{\"marked\": n}`")))]
async fn read_all(State(s): State<ServicesState>, axum::Extension(caller): axum::Extension<Caller>) -> Answer<Value> {
    let mut c = db(&s).await?;
    let tx = c.transaction().await.map_err(Error::from)?;
    let marked = inbox::mark_read(&tx, &caller.user_id, None).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(Json(json!({ "marked": marked })))
}

#[utoipa::path(post, path = "/api/v1/me/notifications/{id}/read", tag = "notification", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
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

#[utoipa::path(get, path = "/api/v1/me/notification-preferences", tag = "notification", responses((status = 200, body = [Preference])))]
async fn my_preferences(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Answer<Vec<Preference>> {
    let c = db(&s).await?;
    Ok(Json(preferences::list(&**c, &caller.user_id).await?))
}

#[utoipa::path(put, path = "/api/v1/me/notification-preferences", tag = "notification", request_body = [Preference], responses((status = 200, body = [Preference]), (status = 400)))]
async fn set_preferences(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(body): ApiJson<Vec<Preference>>,
) -> Answer<Vec<Preference>> {
    let c = db(&s).await?;
    Ok(Json(preferences::set(&**c, &caller.user_id, &body).await?))
}

#[utoipa::path(get, path = "/api/v1/me/notification-settings", tag = "notification", responses((status = 200, body = Settings)))]
async fn my_settings(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Answer<Settings> {
    let c = db(&s).await?;
    Ok(Json(schedule::get(&**c, &caller.user_id).await?))
}

#[utoipa::path(put, path = "/api/v1/me/notification-settings", tag = "notification", request_body = Settings, responses((status = 200, body = Settings), (status = 400, description = "Unknown time zone, half a quiet window, bad digest")))]
async fn set_settings(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(body): ApiJson<Settings>,
) -> Answer<Settings> {
    let c = db(&s).await?;
    Ok(Json(schedule::set(&**c, &caller.user_id, &body).await?))
}

/// A device that receives push notifications.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushDevice {
    /// The provider's registration token.
    pub token: String,
    /// `web`, `android` or `ios`.
    #[serde(default = "web")]
    pub platform: String,
}

fn web() -> String {
    "web".into()
}

#[utoipa::path(post, path = "/api/v1/me/push-devices", tag = "notification", request_body = PushDevice, responses((status = 204), (status = 400)))]
async fn add_device(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(body): ApiJson<PushDevice>,
) -> Result<StatusCode, AppError> {
    let mut errors = Vec::new();
    if body.token.trim().is_empty() || body.token.len() > 4096 {
        errors.push(FieldError::new("token", "must be 1 to 4096 characters"));
    }
    if !matches!(body.platform.as_str(), "web" | "android" | "ios") {
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

#[utoipa::path(delete, path = "/api/v1/me/push-devices/{token}", tag = "notification", params(("token" = String, Path)), responses((status = 204), (status = 404)))]
async fn remove_device(
    State(s): State<ServicesState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(token): ApiPath<String>,
) -> Result<StatusCode, AppError> {
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

#[utoipa::path(get, path = "/api/v1/notification-templates", tag = "notification", responses((status = 200, body = [Template])))]
async fn list_templates(State(s): State<ServicesState>) -> Answer<Vec<Template>> {
    let c = db(&s).await?;
    Ok(Json(templates::list(&**c).await?))
}

/// A template's content (its id and channel are in the path).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    /// The notification type it is for.
    pub notification_type: String,
    /// Subject or title.
    #[serde(default)]
    pub subject: String,
    /// Text.
    pub body: String,
    /// Variables it may use.
    #[serde(default)]
    pub variables: Vec<String>,
    /// Whether it is used.
    #[serde(default = "yes")]
    pub is_active: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(put, path = "/api/v1/notification-templates/{template_id}/{channel}", tag = "notification", params(("template_id" = String, Path), ("channel" = String, Path)), request_body = TemplateBody, responses((status = 200, body = Template), (status = 400, description = "Unknown variables, bad syntax")))]
async fn save_template(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath((template_id, channel)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Answer<Template> {
    let t = Template {
        template_id,
        channel,
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

#[utoipa::path(delete, path = "/api/v1/notification-templates/{template_id}/{channel}", tag = "notification", params(("template_id" = String, Path), ("channel" = String, Path)), responses((status = 204), (status = 404)))]
async fn delete_template(
    State(s): State<ServicesState>,
    ApiPath((template_id, channel)): ApiPath<(String, String)>,
) -> Result<StatusCode, AppError> {
    let c = db(&s).await?;
    templates::delete(&**c, &template_id, &channel).await?;
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

#[utoipa::path(post, path = "/api/v1/notifications/send", tag = "notification", request_body(content = Object, description = "The seed's NotificationPayload"), responses((status = 202, description = "`{\"notification_id\": …}`"), (status = 400)))]
async fn send(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(mut body): ApiJson<NotificationPayload>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let mut errors = Vec::new();
    if body.recipient_user_id.trim().is_empty() {
        errors.push(FieldError::new("recipient_user_id", "is required"));
    }
    if body.channels.is_empty() {
        errors.push(FieldError::new("channels", "must name at least one channel"));
    }
    if body.title.trim().is_empty() && body.template_id.is_none() {
        errors.push(FieldError::new("title", "is required without a template"));
    }
    crate::listing::finish(errors)?;
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
    Ok((StatusCode::ACCEPTED, Json(json!({ "notification_id": id }))))
}

#[utoipa::path(post, path = "/api/v1/notifications/broadcast", tag = "notification", request_body(content = Object, description = "The seed's BulkNotificationPayload"), responses((status = 202, description = "`{\"batch_id\": …}`"), (status = 400)))]
async fn broadcast(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiJson(mut body): ApiJson<BulkNotificationPayload>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let mut errors = Vec::new();
    if body.channels.is_empty() {
        errors.push(FieldError::new("channels", "must name at least one channel"));
    }
    if body.title.trim().is_empty() && body.template_id.is_none() {
        errors.push(FieldError::new("title", "is required without a template"));
    }
    crate::listing::finish(errors)?;
    if body.batch_id.trim().is_empty() {
        body.batch_id = Uuid::new_v4().to_string();
    }
    let id = body.batch_id.clone();
    enqueue_command(&s, &a, NotificationCommand::SendBulk(body)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "batch_id": id }))))
}

/// `?from=&to=` (dates, default the last 30 days).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatisticsQuery {
    /// First day.
    pub from: Option<NaiveDate>,
    /// Last day.
    pub to: Option<NaiveDate>,
}

#[utoipa::path(get, path = "/api/v1/notifications/statistics", tag = "notification", params(StatisticsQuery), responses((status = 200, description = "Counts per day, channel and template")))]
async fn statistics(State(s): State<ServicesState>, Params(q): Params<StatisticsQuery>) -> Answer<Value> {
    let to = q.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = q.from.unwrap_or(to - chrono::Days::new(30));
    if from > to {
        return Err(AppError::invalid_field("from", "must not be after `to`"));
    }
    let c = db(&s).await?;
    let rows = super::statistics::days(&**c, from, to).await?;
    Ok(Json(json!({ "from": from, "to": to, "rows": rows })))
}

/// The history takes paging only.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryFilter {}

impl crate::listing::Sorted for HistoryFilter {
    const SORT: &'static [(&'static str, &'static str)] = &[("created_at", "created_at")];
}

#[utoipa::path(get, path = "/api/v1/users/{id}/notifications", tag = "notification", params(("id" = String, Path), HistoryFilter, crate::listing::Paging<HistoryFilter>), responses((status = 200, description = "Deliveries to the user, newest first")))]
async fn history(
    State(s): State<ServicesState>,
    ApiPath(id): ApiPath<String>,
    l: Listing<HistoryFilter>,
) -> Answer<Page<Value>> {
    let (limit, offset, _) = l.query.resolve(<HistoryFilter as crate::listing::Sorted>::SORT)?;
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
