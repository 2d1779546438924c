//! The ingest role: bridges classroom nodes' outbox batches from MQTT into the seed's Kafka
//! topics, acking each batch only once Kafka confirmed every event and the node's high-water
//! mark is committed in the registry. Nothing lost (the node keeps what is not acked and
//! resends), nothing doubled (the mark drops what is already stored; event ids are deterministic
//! for the rare crash window).
//!
//! Split like a sink of a log shipper:
//! - [`mapping`]: an edge event → the seed envelope (or a dead letter), keyed per the seed.
//! - [`sink`]: producing a batch to Kafka and waiting for every delivery report.
//! - [`pipeline`]: one frame, start to finish: decode, lock the node, classify, produce, advance
//!   the mark, choose the reply.
//! - [`mqtt`]: the session, the shared subscription, per-node workers and backpressure.
//! - [`metrics`]: counters, logged periodically and on `/metrics`.
//!
//! `nimbus-cloud ingest` creates the Kafka topics and migrates the registry before calling
//! [`run`]; [`run`] itself assumes both exist.

pub mod mapping;
pub mod metrics;
pub mod mqtt;
pub mod pipeline;
pub mod sink;

use std::sync::Arc;
use std::time::Duration;

use nimbus_sync::frame::FrameLimits;
use tokio_util::sync::CancellationToken;

use crate::config::CloudConfig;
use crate::error::Result;
use crate::http::probe::{self, Probes};
use crate::registry::Registry;
pub use metrics::{Metrics, MetricsSnapshot};

/// A configured ingest, before it runs; lets a caller (a test, a future `/metrics` endpoint)
/// hold on to its counters.
pub struct Ingest {
    settings: mqtt::LoopSettings,
    pipeline: Arc<pipeline::Pipeline>,
    metrics: Arc<Metrics>,
    metrics_interval: Duration,
}

impl Ingest {
    /// Builds the ingest from `config`. Connects to nothing yet, except to check that the
    /// registry database answers, so a wrong URL fails at start rather than on the first frame.
    pub async fn new(config: &CloudConfig) -> Result<Self> {
        Ingest::new_with(config, &Probes::default()).await
    }

    /// [`Ingest::new`], recording into `probes`' registry and adding the ingest's readiness
    /// checks: the registry database, Kafka and the MQTT session (connected and subscribed).
    pub async fn new_with(config: &CloudConfig, probes: &Probes) -> Result<Self> {
        let pool = crate::db::pool(&config.registry_url(), config.database.max_connections)?;
        drop(pool.get().await.map_err(|e| {
            crate::Error::Config(format!(
                "database.url (DATABASE_URL): cannot reach {}: {e}",
                crate::config::redact_url(&config.registry_url())
            ))
        })?);
        let metrics = Arc::new(Metrics::with_registry(probes.registry.clone()));
        metrics.observe();
        let registry_pool = pool.clone();
        probes.check("postgres:registry", move || probe::postgres(registry_pool.clone()));
        let sink = sink::KafkaSink::new(&config.kafka.brokers, config.delivery_timeout())?;
        let pipeline = Arc::new(pipeline::Pipeline::new(
            Registry::new(pool),
            sink,
            FrameLimits::default(),
            Duration::from_millis(config.ingest.lock_timeout_ms),
            metrics.clone(),
        ));
        let p = pipeline.clone();
        probes.check("kafka", move || {
            let p = p.clone();
            async move { p.kafka_reachable().await }
        });
        let m = metrics.clone();
        probes.check("mqtt", move || {
            let up = m.is_connected();
            async move { if up { Ok(()) } else { Err("not connected to the MQTT broker (or not subscribed)".to_owned()) } }
        });
        let settings = mqtt::LoopSettings {
            mqtt: config.ingest_mqtt(),
            max_incoming_bytes: config.mqtt.max_incoming_bytes,
            group: config.ingest.group.clone(),
            max_in_flight: config.ingest.max_in_flight,
            max_nodes: config.ingest.max_nodes,
            drain_timeout: config.delivery_timeout() + Duration::from_secs(5),
        };
        Ok(Ingest {
            settings,
            pipeline,
            metrics,
            metrics_interval: Duration::from_secs(config.ingest.metrics_interval_secs),
        })
    }

    /// The ingest's counters (live).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown` is cancelled (then finishes the batches being stored) or the broker
    /// refuses the subscriptions.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let logger = (!self.metrics_interval.is_zero()).then(|| {
            let (metrics, interval, stop) = (self.metrics.clone(), self.metrics_interval, shutdown.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => metrics.snapshot().log(),
                    }
                }
            })
        });
        let result = mqtt::run(self.settings, self.pipeline, self.metrics.clone(), shutdown).await;
        if let Some(logger) = logger {
            logger.abort();
        }
        self.metrics.snapshot().log();
        result
    }
}

/// Runs the ingest described by `config` until `shutdown` is cancelled.
pub async fn run(config: CloudConfig, shutdown: CancellationToken) -> Result<()> {
    Ingest::new(&config).await?.run(shutdown).await
}

/// [`run`], with its checks and metrics in `probes` (served by the caller).
pub async fn run_with(config: CloudConfig, probes: &Probes, shutdown: CancellationToken) -> Result<()> {
    Ingest::new_with(&config, probes).await?.run(shutdown).await
}
