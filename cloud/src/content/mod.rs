//! # The content service
//!
//! Course material. The service owns:
//! - in `content_service_db`: `content_metadata`, `content_versions`, `content_course_mapping`,
//!   `content_permissions`, `content_tags`, `content_tag_mapping`, `content_folders`,
//!   `content_folder_items`, `content_access_logs`, and its `event_outbox`;
//! - in MongoDB, the GridFS bucket holding the bytes of every version (`content.database`,
//!   `<content.bucket>.files` / `.chunks`);
//! - the topic `content.events`: every change (and every download, `CONTENT_ACCESSED`) is
//!   announced through the service's transactional outbox ([`crate::outbox`]), relayed by
//!   [`spawn_relay`], which the `api` process starts.
//!
//! It consumes no topic: the seed's `content-service-group` (on `user.events`) has no handler
//! here, so no worker runs for it. It reads other services only through their functions:
//! enrolments ([`crate::course::roster`]), a room's schedule ([`crate::timetable::room_schedule`])
//! and node credentials ([`crate::registry::node_auth`]).
//!
//! ## Layout
//! - [`routes`](mod@routes): the route table, its OpenAPI document and the thin handlers (who sees what).
//! - [`upload`]: multipart upload intake: size limits, the `metadata` part, the file streamed to
//!   the store.
//! - [`download`]: who may download which version, the ranged response (`Range`, `If-Range`,
//!   `ETag`, `Content-Disposition`: [`nimbus_core::http_file`]) and the access log.
//! - [`state`]: [`ContentState`] and the visibility and edit checks the handlers share.
//! - [`items`]: the commands and queries on `content_service_db` (create, version, publish,
//!   courses, permissions, delete, search, access log), each with its event.
//! - [`folders`]: folders of items, with their routes.
//! - [`store`]: the GridFS store: streaming, size-limited, hashing uploads; ranged reads.
//! - [`sniff`]: what an upload really is, from its first bytes (magic numbers).
//! - this file: [`manifest`] (what a node's room needs, for the downlink), [`routes()`](fn@routes)
//!   and [`openapi`] for the api role, [`spawn_relay`] / [`start_relay`].

pub mod download;
pub mod folders;
pub mod items;
pub mod routes;
pub mod sniff;
pub mod state;
pub mod store;
pub mod upload;

use std::time::Duration;

use deadpool_postgres::Pool;
use nimbus_core::snapshot::ManifestItem;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

pub use self::routes::router;
pub use state::ContentState;
pub use store::{Store, Stored, UploadPolicy};

/// The seed's service name.
pub const SERVICE: &str = "content-service";
/// The service's own database.
pub const DATABASE: &str = "content_service_db";

/// The download route of a node for `content_id` at `version`, under `base_url`.
pub fn node_url(base_url: &str, content_id: &str, version: i32) -> String {
    format!("{}/api/v1/edge/content/{content_id}/versions/{version}", base_url.trim_end_matches('/'))
}

/// The published, not deleted content of `course_ids` at its current version, for the downlink's
/// manifest of a node whose room has those courses: size and sha256 to verify the download
/// against, and `url` the node's download route under `base_url`. Each item lists which of
/// `course_ids` it is mapped to (the students of those may download it from the node).
pub async fn manifest(
    client: &impl deadpool_postgres::GenericClient,
    course_ids: &[String],
    base_url: &str,
) -> crate::error::Result<Vec<ManifestItem>> {
    let rows = items::published_for_courses(client, course_ids).await?;
    Ok(rows
        .into_iter()
        .map(|(item, courses)| ManifestItem {
            url: node_url(base_url, &item.id.to_string(), item.current_version),
            content_id: item.id.to_string(),
            version: u32::try_from(item.current_version).unwrap_or(1),
            title: item.title,
            file_name: item.file_name,
            mime_type: item.mime_type,
            size_bytes: u64::try_from(item.file_size).unwrap_or(0),
            sha256: item.sha256,
            course_ids: courses,
        })
        .collect())
}

/// The content routes (admin API and the nodes' download route), with their state built from
/// `config`: pools of content, course, timetable and registry databases, and the GridFS store.
pub async fn routes(config: &crate::config::CloudConfig) -> crate::error::Result<crate::http::ApiRoutes> {
    let pool = |db: &str| crate::db::pool(&config.database_url_for(db), config.database.max_connections.min(8));
    let state = ContentState {
        pool: pool(DATABASE)?,
        courses: pool(crate::course::DATABASE)?,
        timetable: pool(crate::timetable::DATABASE)?,
        registry: crate::db::pool(&config.registry_url(), 4)?,
        store: Store::connect(&config.content).await?,
        policy: UploadPolicy::from(&config.content),
    };
    Ok(router(state))
}

/// The content routes' part of the OpenAPI document. The upload forms say how their parts are
/// sent: `metadata` as JSON, `file` as one of the default `content.allowed_mime_types`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::encoding::EncodingBuilder;
    let mut doc = <self::routes::ContentApi as utoipa::OpenApi>::openapi();
    doc.merge(<folders::FolderApi as utoipa::OpenApi>::openapi());
    for path in ["/api/v1/content", "/api/v1/content/{id}/versions"] {
        let form = doc
            .paths
            .paths
            .get_mut(path)
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.request_body.as_mut())
            .and_then(|body| body.content.get_mut("multipart/form-data"));
        if let Some(form) = form {
            form.encoding
                .insert("metadata".into(), EncodingBuilder::new().content_type(Some("application/json")).build());
            // Plain text first: a client (or a test) that picks the first type can send any text.
            let mut types: Vec<&str> = crate::config::DEFAULT_CONTENT_MIME_TYPES.to_vec();
            types.sort_by_key(|t| *t != "text/plain");
            let types = types.join(", ");
            form.encoding.insert("file".into(), EncodingBuilder::new().content_type(Some(types)).build());
        }
    }
    // No other part is read (`upload::receive` refuses one).
    if let Some(components) = doc.components.as_mut() {
        for form in ["UploadForm", "VersionForm"] {
            if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(o))) =
                components.schemas.get_mut(form)
            {
                o.additional_properties =
                    Some(Box::new(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)));
            }
        }
    }
    doc
}

/// Starts relaying `content_service_db`'s outbox to `content.events` until `shutdown`. The `api`
/// process runs it beside the gateway, since the content commands run there:
/// `content::spawn_relay(content_pool, kafka::producer(brokers)?, shutdown.clone())`.
pub fn spawn_relay(pool: Pool, producer: FutureProducer, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(crate::outbox::relay(pool, producer, Duration::from_millis(500), shutdown))
}

/// [`spawn_relay`] with the pool and producer built from `config`.
pub fn start_relay(
    config: &crate::config::CloudConfig,
    shutdown: CancellationToken,
) -> crate::error::Result<tokio::task::JoinHandle<()>> {
    let pool = crate::db::pool(&config.database_url_for(DATABASE), 2)?;
    let producer = crate::kafka::producer(&config.kafka.brokers)?;
    Ok(spawn_relay(pool, producer, shutdown))
}
