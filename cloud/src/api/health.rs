//! Liveness (`/health`), readiness (`/health/ready`: really asks PostgreSQL, Redis and Kafka),
//! Prometheus metrics (`/metrics`) and the OpenAPI document (`/openapi.json`). All public.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rdkafka::producer::Producer;
use serde_json::{Value, json};

use super::state::ApiState;
use crate::http::{Access, ApiRoutes, AppError};

/// How long each readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The probe routes.
pub fn routes() -> ApiRoutes<ApiState> {
    ApiRoutes::new()
        .route(Method::GET, "/health", Access::Public, get(health))
        .route(Method::GET, "/health/ready", Access::Public, get(ready))
        .route(Method::GET, "/metrics", Access::Public, get(metrics))
        .route(Method::GET, "/openapi.json", Access::Public, get(openapi_json))
}

/// This module's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(health, ready, metrics, openapi_json))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "Alive")))]
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: PostgreSQL, Redis and Kafka answer; 503 naming what failed.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Every dependency answers"), (status = 503, description = "A dependency failed")))]
async fn ready(State(state): State<ApiState>) -> Result<Json<Value>, AppError> {
    let postgres = async {
        let client = state.users.pool.get().await.map_err(|e| e.to_string())?;
        client.query_one("SELECT 1", &[]).await.map(|_| ()).map_err(|e| e.to_string())
    };
    let redis = async { state.users.revocations.ping().await.map_err(|e| e.to_string()) };
    let producer = state.producer.clone();
    let kafka = async move {
        tokio::task::spawn_blocking(move || {
            producer.client().fetch_metadata(None, PROBE_TIMEOUT).map(|m| m.brokers().len()).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
        .and_then(|brokers| if brokers == 0 { Err("no brokers".to_owned()) } else { Ok(()) })
    };
    let limit = |r: Result<Result<(), String>, _>| r.unwrap_or_else(|_| Err("timed out".to_owned()));
    let (p, r, k) = tokio::join!(
        tokio::time::timeout(PROBE_TIMEOUT, postgres),
        tokio::time::timeout(PROBE_TIMEOUT, redis),
        tokio::time::timeout(PROBE_TIMEOUT + Duration::from_secs(1), kafka),
    );
    let checks = [("postgres", limit(p)), ("redis", limit(r)), ("kafka", limit(k))];
    let report: serde_json::Map<String, Value> = checks
        .iter()
        .map(|(name, result)| {
            let v = match result {
                Ok(()) => json!({ "status": "ok" }),
                Err(e) => json!({ "status": "failed", "error": e }),
            };
            ((*name).to_owned(), v)
        })
        .collect();
    if checks.iter().all(|(_, r)| r.is_ok()) {
        Ok(Json(json!({ "status": "ready", "checks": report })))
    } else {
        Err(AppError::unavailable("A dependency is not available").with_details(json!({ "checks": report })))
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text")))]
async fn metrics(State(state): State<ApiState>) -> Response {
    let text = state.metrics.render(state.limiter.limited_count());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "OpenAPI 3 document")))]
async fn openapi_json() -> Json<Value> {
    Json(document().clone())
}

/// The OpenAPI document of every route: the user service's, this module's, the services' and
/// content's.
pub fn document() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = crate::user::routes::openapi();
        doc.merge(self::openapi());
        doc.merge(super::services::openapi());
        doc.merge(crate::content::openapi());
        doc.info.title = "NimbusU Edge admin API".into();
        doc.info.version = env!("CARGO_PKG_VERSION").into();
        serde_json::to_value(&doc).unwrap_or_default()
    })
}
