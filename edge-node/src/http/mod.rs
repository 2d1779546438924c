//! The LAN server: the faculty page at the classroom device, the student page for phones, a JSON
//! API for tooling, health and metrics.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET /health` | – | 200 `{"status":"ok"}` (liveness, no I/O) |
//! | `GET /health/ready` | – | 200 `{"status":"ready","checks":{"database":"ok"}}`, 503 when SQLite does not answer `SELECT 1` |
//! | `GET /metrics` | – | Prometheus text |
//! | `GET /login`, `POST /login`, `POST /logout` | – | the sign-in form; cookie `nimbus_session` |
//! | `GET /` | cookie | the page (redirects to `/login` without a login) |
//! | `POST /page/{open,close,mark,correct}` | cookie | redirect to `/` with a flash message |
//! | `GET /student/login`, `POST /student/login`, `POST /student/logout` | – | the student sign-in; cookie `nimbus_student` |
//! | `GET /student` | student cookie | the student page (see [`student`]) |
//! | `GET /student/content/{content_id}` | student cookie, student's course | the file, as `/api/content/{id}` serves it |
//! | `GET /static/app.<hash>.css` | – | the pages' stylesheet, cached for a year (see [`view`]) |
//! | `POST /api/login` | – | `{"token","expires_at","user_id","name"}`; 401; 429 |
//! | `POST /api/logout` | bearer | 204 |
//! | `GET /api/status` | – | entry, open session, outbox backlog, clock |
//! | `POST /api/sessions` | bearer | 201 + session |
//! | `GET /api/sessions/{id}` | bearer | session; 404 |
//! | `POST /api/sessions/{id}/close` | bearer, session's faculty | `ATTENDANCE_MARKED` payload |
//! | `PUT /api/sessions/{id}/marks/{student_id}` | bearer, session's faculty | 204 |
//! | `POST /api/sessions/{id}/corrections` | bearer, session's faculty | 201 + `ATTENDANCE_UPDATED` payload |
//! | `POST /api/taps` | – (simulate mode only; 404 otherwise) | `{"feedback":"accepted"}` |
//! | `GET /api/content` | cloud access token | cached content of the caller's courses (see [`content`]) |
//! | `GET /api/content/{content_id}` | cloud access token, caller's course | the file; Range, ETag, 304, 403, 404, 416 |
//!
//! Every error and rejection is the seed's `AppError` JSON (see [`error`]): unknown routes (404),
//! wrong methods (405), malformed bodies (400 `VALIDATION_ERROR` naming the field), wrong content
//! types (415), bodies over [`BODY_LIMIT`] (413), missing or bad tokens (401).
//!
//! Logins live in memory only (see [`login`]): a restart signs everyone out.

pub mod api;
pub mod content;
pub mod error;
pub mod login;
pub mod page;
pub mod student;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use error::AppError;

use crate::attendance::Attendance;
use crate::metrics::Metrics;
use crate::reader::TapRequest;

/// Largest request body accepted (413 above).
pub const BODY_LIMIT: usize = 64 * 1024;
/// How long in-flight requests may take to finish once shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the readiness probe waits for the database.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What every handler shares; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    attendance: Attendance,
    metrics: Arc<Metrics>,
    sim_taps: Option<mpsc::Sender<TapRequest>>,
    logins: Arc<login::Logins>,
    /// Student logins: a separate store, so neither audience's token opens the other's routes.
    students: Arc<login::Logins>,
    content: Option<content::ContentRoutes>,
}

impl AppState {
    /// The state over the node's attendance service and counters; `sim_taps` (simulate mode
    /// only) enables `POST /api/taps`.
    pub fn new(attendance: Attendance, metrics: Arc<Metrics>, sim_taps: Option<mpsc::Sender<TapRequest>>) -> Self {
        let logins = login::Logins::new(login::LOGIN_TTL);
        let students = login::Logins::sharing(login::LOGIN_TTL, logins.verifications());
        AppState {
            attendance,
            metrics,
            sim_taps,
            logins: Arc::new(logins),
            students: Arc::new(students),
            content: None,
        }
    }

    /// Serves the content cache (`/api/content`, see [`content`]).
    pub fn with_content(mut self, routes: content::ContentRoutes) -> Self {
        self.content = Some(routes);
        self
    }

    /// Changes how long logins (faculty and students) last (default [`login::LOGIN_TTL`]);
    /// forgets existing logins.
    pub fn with_login_ttl(mut self, ttl: Duration) -> Self {
        let slots = self.logins.verifications();
        self.logins = Arc::new(login::Logins::sharing(ttl, slots.clone()));
        self.students = Arc::new(login::Logins::sharing(ttl, slots));
        self
    }
}

/// Runs SQLite work (or anything blocking) on the blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, AppError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| AppError::internal(format!("blocking task failed: {e}")))?
}

/// The whole router.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/login", get(login::login_form).post(login::login_submit))
        .route("/logout", post(login::logout))
        .route("/", get(page::index))
        .route("/page/open", post(page::open))
        .route("/page/close", post(page::close))
        .route("/page/mark", post(page::mark))
        .route("/page/correct", post(page::correct))
        .route("/student", get(student::index))
        .route("/student/login", get(student::login_form).post(student::login_submit))
        .route("/student/logout", post(student::logout))
        .route("/student/content/:content_id", get(student::download))
        .route("/static/:name", get(view::static_file))
        .route("/api/login", post(login::api_login))
        .route("/api/logout", post(login::api_logout))
        .route("/api/status", get(api::status))
        .route("/api/sessions", post(api::open_session))
        .route("/api/sessions/:id", get(api::get_session))
        .route("/api/sessions/:id/close", post(api::close_session))
        .route("/api/sessions/:id/marks/:student_id", put(api::mark))
        .route("/api/sessions/:id/corrections", post(api::correct))
        .route("/api/content", get(content::list))
        .route("/api/content/:content_id", get(content::download));
    if state.sim_taps.is_some() {
        router = router.route("/api/taps", post(api::tap));
    }
    router
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn health() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn ready(State(state): State<AppState>) -> Response {
    let store = state.attendance.store().clone();
    let probe = store.run(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?));
    let failure = match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(Ok(1)) => return axum::Json(json!({ "status": "ready", "checks": { "database": "ok" } })).into_response(),
        Ok(Ok(other)) => format!("unexpected answer {other}"),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "readiness probe: database failed");
            "error".to_owned()
        }
        Err(_) => {
            tracing::warn!("readiness probe: database did not answer in time");
            "timeout".to_owned()
        }
    };
    AppError::unavailable("Not ready")
        .with_details(json!({ "status": "unavailable", "checks": { "database": failure } }))
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let now_ms = state.attendance.now().wall_ms();
    let gauges = state.attendance.store().run(move |c| crate::metrics::gauges(c, now_ms)).await?;
    let mut res = state.metrics.render(&gauges).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(res)
}

async fn not_found(method: Method, uri: Uri) -> AppError {
    AppError::not_found("Resource not found").with_details(json!({ "method": method.as_str(), "path": uri.path() }))
}

async fn method_not_allowed() -> AppError {
    AppError::method_not_allowed()
}

/// Serves `app(state)` on `listener` until `shutdown` is cancelled; then stops accepting,
/// lets in-flight requests finish for up to [`DRAIN_TIMEOUT`] and returns. Connections still busy
/// after that are abandoned to the runtime's shutdown.
pub async fn run(listener: TcpListener, state: AppState, shutdown: CancellationToken) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "LAN server listening");
    }
    // Peer addresses go into content access events (`ip_address`).
    let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let serve = axum::serve(listener, service).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let mut serve = std::pin::pin!(std::future::IntoFuture::into_future(serve));
    let result = tokio::select! {
        res = &mut serve => res,
        () = shutdown.cancelled() => match tokio::time::timeout(DRAIN_TIMEOUT, &mut serve).await {
            Ok(res) => res,
            Err(_) => {
                tracing::warn!(timeout = ?DRAIN_TIMEOUT, "in-flight requests did not finish; stopping anyway");
                Ok(())
            }
        },
    };
    tracing::info!("LAN server stopped");
    result
}
