//! The state the services' routes share: a pool per service database, Kafka and Redis. It holds no
//! service's types, so every service's `routes.rs` can take it without importing another
//! service or a role.
//!
//! Handlers are thin: they check nothing the route table does not (access is a route layer, see
//! [`super::routes`]), turn the request into the service command's input and the caller into its
//! [`crate::actor::Actor`], and let `?` map the service's [`Error`] onto the seed's `AppError`.

use deadpool_postgres::Pool;
use rdkafka::producer::FutureProducer;

use crate::config::CloudConfig;
use crate::db;
use crate::error::{Error, Result};

/// What the services' handlers need: a pool per service database and Kafka (DLQ replay).
#[derive(Clone)]
pub struct ServicesState {
    /// `timetable_service_db`.
    pub timetable: Pool,
    /// `course_service_db`.
    pub course: Pool,
    /// `attendance_service_db` (reports only read it).
    pub attendance: Pool,
    /// `notification_service_db` (inboxes, templates; admin sends go through its outbox).
    pub notification: Pool,
    /// `announcement_service_db`.
    pub announcement: Pool,
    /// `communication_service_db`.
    pub communication: Pool,
    /// `content_service_db` (whether people may open an item a message attaches; the content
    /// routes migrate it).
    pub content: Pool,
    /// `user_service_db`, read through the user service's directory (whole audiences).
    pub users: Pool,
    /// `edge_registry_db` (nodes, cards, DLQ replay records).
    pub registry: Pool,
    /// The Kafka bootstrap servers, for reading `dlq.events`.
    pub brokers: String,
    /// Producer for replays: at-least-once is right, the consumers are idempotent on `event_id`.
    pub producer: FutureProducer,
    /// Redis (live pushes and presence), and the API's key prefix there.
    pub redis: (redis::aio::ConnectionManager, String),
}

impl ServicesState {
    /// Creates and migrates the databases if needed (the API may start before the workers) and
    /// connects.
    pub async fn connect(config: &CloudConfig) -> Result<Self> {
        let pool = |database: &str| -> Result<Pool> {
            db::pool(&config.database_url_for(database), config.database.max_connections)
        };
        for database in [
            "timetable_service_db",
            "course_service_db",
            "attendance_service_db",
            "notification_service_db",
            "announcement_service_db",
            "communication_service_db",
            "edge_registry_db",
        ] {
            let m =
                db::migrations_for(database).ok_or_else(|| Error::Config(format!("no migrations for {database}")))?;
            db::create_and_migrate(&config.database_target(database), m).await?;
        }
        // A replay needs its target topic; the ingest usually created them already. In the
        // background: the API serves (and reports Kafka unready) while Kafka is down.
        let (brokers, env) = (config.kafka.brokers.clone(), config.environment);
        tokio::spawn(async move {
            if let Err(e) = crate::kafka::ensure_topics(&brokers, env).await {
                tracing::warn!(error = %e, "cannot create the Kafka topics; DLQ replays fail until Kafka is back");
            }
        });
        Ok(ServicesState {
            timetable: pool("timetable_service_db")?,
            course: pool("course_service_db")?,
            attendance: pool("attendance_service_db")?,
            notification: pool("notification_service_db")?,
            announcement: pool("announcement_service_db")?,
            communication: pool("communication_service_db")?,
            content: pool("content_service_db")?,
            users: pool("user_service_db")?,
            registry: pool("edge_registry_db")?,
            brokers: config.kafka.brokers.clone(),
            producer: crate::kafka::at_least_once_producer(&config.kafka.brokers)?,
            redis: (
                redis::aio::ConnectionManager::new(redis::Client::open(config.api.redis_url.as_str())?).await?,
                config.api.redis_prefix.clone(),
            ),
        })
    }
}
