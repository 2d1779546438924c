//! The admin routes over the campus services (timetable, course, edge nodes, attendance
//! reports, the DLQ, unknown cards). Placeholder: the routes land with the admin API issue.

use super::ApiRoutes;
use crate::config::CloudConfig;
use crate::error::Result;

/// The services' routes, with their state (pools, Kafka producer) built from `config`.
pub async fn routes(_config: &CloudConfig) -> Result<ApiRoutes> {
    Ok(ApiRoutes::new())
}

/// The services' part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    utoipa::openapi::OpenApiBuilder::new().build()
}
