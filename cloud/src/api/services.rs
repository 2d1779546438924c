//! The services' routes, composed for the API role: each service's route table over the shared
//! [`ServicesState`], and their part of the OpenAPI document.

use utoipa::OpenApi as _;

use crate::config::CloudConfig;
use crate::error::Result;
use crate::http::{ApiRoutes, ServicesState};

/// The services' routes, with their state built from `config`.
pub async fn routes(config: &CloudConfig) -> Result<ApiRoutes> {
    Ok(routes_with(ServicesState::connect(config).await?))
}

/// The services' routes over an existing state.
pub fn routes_with(state: ServicesState) -> ApiRoutes {
    ApiRoutes::new()
        .merge(crate::timetable::routes::routes())
        .merge(crate::course::routes::routes())
        .merge(crate::registry::routes::routes())
        .merge(crate::attendance::routes::routes())
        .merge(crate::dlq::routes::routes())
        .merge(crate::notification::routes::routes())
        .merge(crate::announcement::routes::routes())
        .merge(crate::communication::routes::routes())
        .merge(crate::registry::cards::routes())
        .with_state(state)
}

/// The services' part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = crate::timetable::routes::Doc::openapi();
    doc.merge(crate::course::routes::Doc::openapi());
    doc.merge(crate::registry::routes::Doc::openapi());
    doc.merge(crate::attendance::routes::Doc::openapi());
    doc.merge(crate::dlq::routes::Doc::openapi());
    doc.merge(crate::notification::routes::Doc::openapi());
    doc.merge(crate::announcement::routes::Doc::openapi());
    doc.merge(crate::communication::routes::Doc::openapi());
    doc.merge(crate::communication::live::Doc::openapi());
    doc.merge(crate::registry::cards::Doc::openapi());
    doc
}
