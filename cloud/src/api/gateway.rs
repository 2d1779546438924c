//! The gateway: builds the whole API ([`app`]) from the route tables of every module and wraps
//! it in the middleware every request passes, outermost first:
//!
//! 1. CORS (answers preflights itself);
//! 2. correlation id: `X-Correlation-ID` in (or a new UUID), out, and a [`RequestContext`];
//! 3. the request's trace span, only when tracing is on (`crate::trace`: the caller's `traceparent`
//!    continued, or a new trace), which the events the request writes carry on;
//! 4. request log and metrics (method, matched route, status, latency, correlation id — never
//!    the `Authorization` header or bodies);
//! 5. panic guard (500 `INTERNAL`) and the AppError shape for axum's own empty 404/405 answers;
//! 6. timeout (503 `SERVICE_UNAVAILABLE`);
//! 7. authentication ([`super::auth::authenticate`]);
//! 8. rate limits ([`crate::http::ratelimit`]);
//! 9. a 1 MiB body limit (axum's `DefaultBodyLimit`, so a route such as content upload can set
//!    its own), then each route's access layer and handler.
//!
//! [`run`] serves it on a listener until the shutdown token is cancelled, with the user
//! service's outbox relay and the permission refresher beside it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use super::state::ApiState;
use crate::config::{ApiConfig, CloudConfig};
use crate::error::{Error, Result};
use crate::http::probe::Probes;
use crate::http::{AppError, Caller, RequestContext, RouteSpec};

/// The largest request body by default (a route may raise it with its own `DefaultBodyLimit`).
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// The correlation id header.
pub static CORRELATION_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

/// The whole API: the user routes, the services' and content routes, health, metrics and the
/// OpenAPI document, with the gateway's middleware; plus the spec of every route.
pub async fn app(config: &CloudConfig, state: &ApiState) -> Result<(Router, Vec<RouteSpec>)> {
    let users = crate::user::routes::UserApi {
        users: state.users.clone(),
        limiter: state.limiter.clone(),
        metrics: state.metrics.clone(),
    };
    let routes = crate::user::routes::routes()
        .with_state::<()>(users)
        .merge(super::health::routes().with_state::<()>(state.clone()))
        .merge(super::explorer::routes().with_state::<()>(state.clone()))
        .merge(super::services::routes(config).await?)
        .merge(crate::notification::routes::live_routes(config)?)
        .merge(
            crate::communication::live::live_routes(
                config,
                std::sync::Arc::new(state.clone()),
                state.probes.registry.clone(),
                state.shutdown.clone(),
            )
            .await?,
        )
        .merge(crate::content::routes(config).await?);
    let (router, specs) = routes.into_parts();
    let document = serde_json::to_vec(&super::openapi::document(&specs)).unwrap_or_default();
    let router = router
        .fallback(not_found)
        .layer(Extension(super::health::Document(document.into())))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(middleware::from_fn(json_text))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(middleware::from_fn_with_state(state.clone(), super::auth::authenticate))
        .layer(middleware::from_fn_with_state(Duration::from_secs(state.config.request_timeout_secs), timeout))
        .layer(middleware::from_fn(app_error_shape))
        .layer(CatchPanicLayer::custom(|_| AppError::internal("a handler panicked").into_response()))
        .layer(middleware::from_fn_with_state(state.clone(), log_request));
    // Tracing is started (or not) before the app is built: off, the layer is not there at all,
    // so requests pay nothing for it.
    let router = if crate::trace::enabled() { router.layer(middleware::from_fn(trace_request)) } else { router };
    let router = router
        .layer(middleware::from_fn_with_state(state.config.trust_forwarded_for, correlate))
        .layer(cors(&state.config));
    Ok((router, specs))
}

/// Serves the API on `listener` until `shutdown`, then finishes requests in flight (at most
/// 10 s). Runs the user and content services' outbox relays and the permission refresher
/// alongside.
pub async fn run(config: CloudConfig, listener: tokio::net::TcpListener, shutdown: CancellationToken) -> Result<()> {
    run_with(config, listener, Probes::default(), shutdown).await
}

/// [`run`] with the process's probes: `all` passes the ones every other role registered into,
/// so the API's `/health/ready` and `/metrics` cover the whole process.
pub async fn run_with(
    config: CloudConfig,
    listener: tokio::net::TcpListener,
    probes: Probes,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut state = ApiState::connect_with(&config, probes).await?;
    state.shutdown = shutdown.child_token();
    let (router, specs) = app(&config, &state).await?;
    tracing::info!(addr = ?listener.local_addr().ok(), routes = specs.len(), "admin API listening");
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(crate::outbox::relay(
        state.users.pool.clone(),
        state.producer.clone(),
        Duration::from_millis(200),
        shutdown.clone(),
    ));
    tasks.spawn(state.permissions.clone().keep_fresh(
        state.users.clone(),
        Duration::from_secs(state.config.permissions_refresh_secs),
        shutdown.clone(),
    ));
    let content_relay = crate::content::start_relay(&config, shutdown.clone())?;
    let stop = shutdown.clone();
    let served = match (&config.api.tls_cert, &config.api.tls_key) {
        (Some(cert), Some(key)) => {
            let cert = super::tls::ReloadingCert::new(cert, key)?;
            let reload = Duration::from_secs(config.api.tls_reload_secs);
            tracing::info!("admin API serves HTTPS");
            tokio::spawn(super::tls::serve(listener, router, cert, reload, stop))
        }
        _ => {
            let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move { stop.cancelled().await });
            tokio::spawn(async move { server.await })
        }
    };
    shutdown.cancelled().await;
    match tokio::time::timeout(Duration::from_secs(10), served).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(Error::Io(e)),
        Ok(Err(e)) => return Err(Error::Config(format!("server task failed: {e}"))),
        Err(_) => tracing::warn!("requests still in flight after 10 s; stopping anyway"),
    }
    while tasks.join_next().await.is_some() {}
    let _ = content_relay.await;
    Ok(())
}

fn cors(config: &ApiConfig) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, CORRELATION_HEADER.clone()])
        .expose_headers([CORRELATION_HEADER.clone(), header::RETRY_AFTER])
        .max_age(Duration::from_secs(600));
    if config.cors_origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        let origins: Vec<HeaderValue> = config.cors_origins.iter().filter_map(|o| o.parse().ok()).collect();
        layer.allow_origin(AllowOrigin::list(origins))
    }
}

/// A client-sent correlation id is kept when it is short, printable and safe to log.
fn valid_correlation_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

async fn correlate(State(trust_forwarded): State<bool>, mut request: Request, next: Next) -> Response {
    let correlation_id = request
        .headers()
        .get(&CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_correlation_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let forwarded = trust_forwarded
        .then(|| request.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()))
        .flatten()
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| v.parse::<std::net::IpAddr>().is_ok());
    let client_ip = forwarded.or_else(|| {
        request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string())
    });
    request.extensions_mut().insert(RequestContext { correlation_id: correlation_id.clone(), client_ip });
    let mut response = next.run(request).await;
    if let Ok(v) = HeaderValue::from_str(&correlation_id) {
        response.headers_mut().insert(CORRELATION_HEADER.clone(), v);
    }
    response
}

/// Runs the request in its trace span (only installed while tracing is on).
async fn trace_request(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let parent = request.headers().get(crate::trace::TRACEPARENT).and_then(|v| v.to_str().ok());
    let span = crate::trace::request_span(request.method().as_str(), &route, parent);
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

async fn log_request(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let correlation_id =
        request.extensions().get::<RequestContext>().map(|c| c.correlation_id.clone()).unwrap_or_default();
    let response = next.run(request).await;
    let latency = started.elapsed();
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16();
    state.metrics.record(method.as_str(), &route, status, latency);
    tracing::info!(%method, %route, status, latency_ms = latency.as_secs_f64() * 1000.0, %correlation_id, "request");
    response
}

/// Gives axum's own bodiless error answers (405 from the method router, 413 from a body limit,
/// …) the AppError shape, keeping their headers (`Allow`).
async fn app_error_shape(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => AppError::method_not_allowed(),
        StatusCode::NOT_FOUND => AppError::not_found("No such resource"),
        StatusCode::PAYLOAD_TOO_LARGE => AppError::payload_too_large(Some(BODY_LIMIT_BYTES as u64)),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            AppError::new(status, "UNSUPPORTED_MEDIA_TYPE", "Unsupported Content-Type")
        }
        s if s.is_server_error() => AppError::internal(format!("unshaped {s} answer")),
        s => AppError::new(s, "BAD_REQUEST", s.canonical_reason().unwrap_or("Bad request")),
    };
    let (parts, _) = response.into_parts();
    let mut shaped = error.into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            shaped.headers_mut().insert(name, v.clone());
        }
    }
    shaped
}

/// Two rules for every request's text, kept at the door so no handler has to.
///
/// PostgreSQL cannot store U+0000 in text, so a NUL in a path, a query or a JSON body would fail
/// deep inside a command as a 500: it is refused as a 400 instead. And a JSON number without a
/// fractional part is an integer (JSON Schema says so; `60.0` is a valid capacity), while serde
/// refuses `60.0` for an `i32`: such numbers are rewritten as integers before any handler reads
/// the body.
async fn json_text(request: Request, next: Next) -> Response {
    let refused = || {
        AppError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Text must not contain NUL (U+0000) characters")
            .into_response()
    };
    let target = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("");
    if target.contains("%00") {
        return refused();
    }
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if !json {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT_BYTES).await else {
        return AppError::payload_too_large(Some(BODY_LIMIT_BYTES as u64)).into_response();
    };
    if json_has_nul(&bytes) {
        return refused();
    }
    let bytes = integral_numbers_as_integers(bytes);
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// `bytes` with every number that has no fractional part (`60.0`, `6e1`) written as an integer;
/// the same bytes when there is none or the body is not JSON (the handler's extractor reports
/// that).
fn integral_numbers_as_integers(bytes: bytes::Bytes) -> bytes::Bytes {
    fn fix(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // Exactly representable integers only (|f| < 2^53).
                if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                    *v = serde_json::Value::from(f as i64);
                    return true;
                }
                false
            }
            serde_json::Value::Array(items) => items.iter_mut().fold(false, |changed, i| fix(i) | changed),
            serde_json::Value::Object(map) => map.values_mut().fold(false, |changed, i| fix(i) | changed),
            _ => false,
        }
    }
    if !bytes.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        return bytes;
    }
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return bytes };
    if !fix(&mut value) {
        return bytes;
    }
    serde_json::to_vec(&value).map(Into::into).unwrap_or(bytes)
}

/// Whether JSON text holds a `\u0000` escape (the only way a NUL gets into a JSON string); an
/// escaped backslash followed by `u0000` is text, not a NUL.
fn json_has_nul(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(b"0000".as_slice()) {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Uploads stream a file of up to `content.max_bytes` through the handler, which may take longer
/// than any fixed limit on a classroom uplink; they are authenticated (`content:write`) and
/// size-capped instead.
fn streams_upload(method: &Method, route: Option<&str>) -> bool {
    method == Method::POST && matches!(route, Some("/api/v1/content" | "/api/v1/content/:id/versions"))
}

async fn timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str());
    if streams_upload(request.method(), route) {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::unavailable("The request took too long").into_response(),
    }
}

/// Probes and metrics are not limited (orchestrators poll them).
fn unlimited(route: Option<&str>) -> bool {
    matches!(route, Some("/health" | "/health/ready" | "/metrics"))
}

async fn rate_limit(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str());
    if !unlimited(route) {
        let ip = request.extensions().get::<RequestContext>().and_then(|c| c.client_ip.clone());
        if let Err(e) = state.limiter.hit("ip", ip.as_deref().unwrap_or("unknown"), state.limiter.per_ip).await {
            return e.into_response();
        }
        if let Some(caller) = request.extensions().get::<Caller>()
            && let Err(e) = state.limiter.hit("user", &caller.user_id, state.limiter.per_user).await
        {
            return e.into_response();
        }
    }
    next.run(request).await
}

async fn not_found() -> AppError {
    AppError::not_found("No such resource")
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::HeaderMap;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn answer(router: &Router, method: Method, uri: &str) -> (StatusCode, HeaderMap, serde_json::Value) {
        let req = axum::http::Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
        let res = router.clone().oneshot(req).await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn panics_timeouts_and_bare_405s_answer_app_errors() {
        async fn boom() -> &'static str {
            if uuid::Uuid::new_v4().is_nil() { "never" } else { panic!("boom") }
        }
        let router = Router::new()
            .route("/panic", get(boom))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .layer(middleware::from_fn_with_state(Duration::from_millis(50), timeout))
            .layer(middleware::from_fn(app_error_shape))
            .layer(CatchPanicLayer::custom(|_| AppError::internal("a handler panicked").into_response()));
        let (status, _, body) = answer(&router, Method::GET, "/panic").await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("INTERNAL")));
        let (status, _, body) = answer(&router, Method::GET, "/slow").await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("SERVICE_UNAVAILABLE")));
        let (status, headers, body) = answer(&router, Method::POST, "/slow").await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("METHOD_NOT_ALLOWED")));
        assert!(headers.contains_key(header::ALLOW));
    }

    #[test]
    fn integral_numbers_become_integers_and_nothing_else_changes() {
        let fixed = |s: &'static str| String::from_utf8(integral_numbers_as_integers(s.into()).to_vec()).unwrap();
        // Key order depends on serde_json's `preserve_order` (bson turns it on): compare values.
        let mixed: serde_json::Value =
            serde_json::from_str(&fixed(r#"{"capacity":60.0,"xs":[1e1,2.5],"name":"a.b"}"#)).unwrap();
        assert_eq!(mixed, serde_json::json!({ "capacity": 60, "xs": [10, 2.5], "name": "a.b" }));
        assert!(mixed["capacity"].is_i64() && mixed["xs"][0].is_i64() && mixed["xs"][1].is_f64());
        assert_eq!(fixed(r#"{"name":"e.g."}"#), r#"{"name":"e.g."}"#);
        assert_eq!(fixed("not json 1.0"), "not json 1.0");
        assert_eq!(fixed(r#"{"big":1e300}"#), r#"{"big":1e300}"#);
    }

    #[test]
    fn only_an_escaped_nul_counts_as_a_nul() {
        assert!(json_has_nul(br#"{"a":"x\u0000y"}"#));
        assert!(!json_has_nul(br#"{"a":"x\\u0000y"}"#));
        assert!(json_has_nul(br#"{"a":"\\\u0000"}"#));
        assert!(!json_has_nul(br#"{"a":"u0000 \u0041"}"#));
    }

    #[test]
    fn only_safe_correlation_ids_are_kept() {
        assert!(valid_correlation_id("req-42_a.b:c"));
        assert!(!valid_correlation_id(""));
        assert!(!valid_correlation_id("a b"));
        assert!(!valid_correlation_id("x\ny"));
        assert!(!valid_correlation_id(&"a".repeat(129)));
    }
}
