//! Placeholder until the content service lands: no manifest yet.
/// The manifest of `_ids` (none yet).
pub async fn manifest(
    _c: &impl deadpool_postgres::GenericClient,
    _ids: &[String],
    _b: &str,
) -> crate::error::Result<Vec<nimbus_core::snapshot::ManifestItem>> {
    Err(crate::error::Error::Config("the content service is not part of this build yet".into()))
}

/// The content routes (admin API and the nodes' download route). None yet.
pub async fn routes(_config: &crate::config::CloudConfig) -> crate::error::Result<crate::api::ApiRoutes> {
    Ok(crate::api::ApiRoutes::new())
}

/// The content routes' part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    utoipa::openapi::OpenApiBuilder::new().build()
}
