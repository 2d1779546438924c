//! Liveness (`/health`), readiness (`/health/ready`: really asks PostgreSQL, Redis and Kafka, the
//! checks of [`crate::http::probe::Probes`]), Prometheus metrics (`/metrics`) and the OpenAPI
//! document (`/openapi.json`). All public.

use axum::extract::State;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::state::ApiState;
use crate::http::{Access, ApiRoutes, AppError};

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
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "Alive: `{\"status\": \"ok\"}`", content_type = "application/json")))]
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: every dependency of the process answers (the API's PostgreSQL, Redis and Kafka,
/// and, under `all`, every other role's); 503 naming what failed.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses((status = 200, description = "Every dependency answers: `status` and each check", content_type = "application/json"), (status = 503, description = "A dependency failed; details name the checks")))]
async fn ready(State(state): State<ApiState>) -> Result<Json<Value>, AppError> {
    let (ok, report) = state.probes.readiness().await;
    if ok {
        Ok(Json(json!({ "status": "ready", "checks": report })))
    } else {
        Err(AppError::unavailable("A dependency is not available").with_details(json!({ "checks": report })))
    }
}

/// Prometheus metrics: the seed's `http_*` (and, under `all`, every role's `kafka_*` and node
/// gauges).
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
async fn metrics(State(state): State<ApiState>) -> Response {
    crate::http::probe::prometheus_text(state.metrics.render(state.limiter.limited_count()))
}

/// This document (built once by [`super::openapi::document`] from the route table).
#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
async fn openapi_json(Extension(doc): Extension<Document>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc.0).into_response()
}

/// The serialized OpenAPI document, shared with the handler as a request extension.
#[derive(Clone)]
pub struct Document(pub bytes::Bytes);
