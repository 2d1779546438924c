//! The API role's shared state: the user service (tokens, revocation), the permission table,
//! rate limits, counters and Kafka. Its own file, so the gateway, the authentication middleware
//! and the health routes all build on it without importing each other.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::FutureProducer;

use crate::config::{ApiConfig, CloudConfig};
use crate::error::{Error, Result};
use crate::http::metrics::ApiMetrics;
use crate::http::probe::{self, Probes};
use crate::http::ratelimit::RateLimiter;
use crate::user::permissions::PermissionCache;
use crate::user::{KeyRing, Revocations, UserService, UserSettings};

/// Everything the gateway and the user routes share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// The API settings.
    pub config: Arc<ApiConfig>,
    /// The user service.
    pub users: Arc<UserService>,
    /// Role → permissions.
    pub permissions: Arc<PermissionCache>,
    /// Rate limits.
    pub limiter: RateLimiter,
    /// Request and login counters, recorded into [`Self::probes`]' registry.
    pub metrics: Arc<ApiMetrics>,
    /// Readiness checks and the metrics registry `/health/ready` and `/metrics` answer from
    /// (shared with every other role when `all` runs them in one process).
    pub probes: Probes,
    /// Kafka (the outbox relay; readiness probes its metadata).
    pub producer: FutureProducer,
    /// Cancelled when the API stops: long-lived connections (live sockets) close then, telling
    /// their clients to reconnect elsewhere, instead of outliving the server.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl ApiState {
    /// Connects to `user_service_db` (migrating it), Redis and Kafka, loads the signing keys
    /// (creating the first) and the permission table, and creates the bootstrap administrator
    /// when configured. Fails when a service is unreachable.
    pub async fn connect(config: &CloudConfig) -> Result<ApiState> {
        ApiState::connect_with(config, Probes::default()).await
    }

    /// [`ApiState::connect`], adding the API's readiness checks (PostgreSQL, Redis, Kafka) to
    /// `probes` and recording its metrics into their registry.
    pub async fn connect_with(config: &CloudConfig, probes: Probes) -> Result<ApiState> {
        let migrations = crate::db::migrations_for("user_service_db")
            .ok_or_else(|| Error::Config("no migrations for user_service_db".into()))?;
        let pool = crate::db::pool(&config.database_url_for("user_service_db"), config.database.max_connections)?;
        crate::db::migrate(&pool, migrations).await?;
        let client = redis::Client::open(config.api.redis_url.as_str())?;
        let conn = redis::aio::ConnectionManager::new(client).await?;
        let keys = KeyRing::load(pool.clone()).await?;
        let users = Arc::new(UserService {
            pool,
            keys,
            revocations: Revocations::new(conn.clone(), config.api.redis_prefix.clone()),
            settings: UserSettings {
                max_failed_logins: config.api.max_failed_logins,
                lockout: Duration::from_secs(config.api.lockout_secs),
            },
        });
        let permissions = Arc::new(PermissionCache::default());
        permissions.refresh(&users).await?;
        if let (Some(email), Some(password)) = (&config.api.admin_email, &config.api.admin_password)
            && users.ensure_admin(email, password.expose()).await?
        {
            tracing::info!(%email, "created the bootstrap administrator");
        }
        let producer = crate::kafka::producer(&config.kafka.brokers)?;
        let pool = users.pool.clone();
        probes.check("postgres", move || probe::postgres(pool.clone()));
        let revocations = users.clone();
        probes.check("redis", move || {
            let users = revocations.clone();
            async move { users.revocations.ping().await.map_err(|e| e.to_string()) }
        });
        let p = producer.clone();
        probes.check("kafka", move || crate::kafka::reachable(p.clone()));
        Ok(ApiState {
            config: Arc::new(config.api.clone()),
            users,
            permissions,
            limiter: RateLimiter::new(conn, &config.api.redis_prefix, &config.api),
            metrics: Arc::new(ApiMetrics::new(probes.registry.clone())),
            probes,
            producer,
            shutdown: tokio_util::sync::CancellationToken::new(),
        })
    }
}
