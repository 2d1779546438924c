//! # The content service
//!
//! Course material: metadata, versions, course mapping, permissions, tags, folders and the access
//! log in `content_service_db`; the bytes of every version in MongoDB GridFS. Every change is
//! announced on `content.events` through the service's transactional outbox
//! ([`crate::outbox`]), relayed by [`spawn_relay`] (which the `api` process starts).
//!
//! ## Layout
//! - [`sniff`]: what an upload really is, from its first bytes (magic numbers).
//! - [`store`]: the GridFS store: streaming, size-limited, hashing uploads; ranged reads.
//! - [`items`]: the commands and queries on `content_service_db` (create, version, publish,
//!   courses, permissions, delete, search, access log), each with its event.
//! - [`http`]: the admin API's content routes and the classroom nodes' download route, with
//!   `Range`, `ETag` and a sanitised `Content-Disposition`.
//! - [`manifest`]: what a node's room needs, for the downlink.

pub mod folders;
pub mod http;
pub mod items;
pub mod sniff;
pub mod state;
pub mod store;

use std::time::Duration;

use deadpool_postgres::Pool;
use nimbus_core::snapshot::ManifestItem;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

pub use http::router;
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

/// The content routes' part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = <http::ContentApi as utoipa::OpenApi>::openapi();
    doc.merge(<folders::FolderApi as utoipa::OpenApi>::openapi());
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
