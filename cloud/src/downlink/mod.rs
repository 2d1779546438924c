//! # Downlink: what each classroom node should hold
//!
//! `nimbus-cloud downlink` keeps every registered node's cache in step with the services: its
//! room's timetable, the rosters and cards of the courses taught there, the public keys that
//! verify user tokens offline, the content manifest of those courses and the room's
//! announcements. Each is a versioned,
//! **retained** MQTT message on `nimbus/v1/nodes/{node}/down/{kind}`, so a node that was offline
//! for a week gets the latest of each the moment it reconnects, and the node applies a snapshot
//! only if its version is newer than the one it holds.
//!
//! ## When it publishes
//!
//! A reconciliation computes every node's snapshots from the service databases and publishes
//! those whose content changed (compared by digest, see [`versions`]): only the affected nodes
//! get a new version. It runs
//! - shortly after any event on `timetable.events`, `course.events`, `enrollment.events`,
//!   `content.events`, `announcement.events` or `user.events` (a Kafka consumer of our own group
//!   [`CONSUMER_GROUP`], not one of the seed's: the downlink is part of the edge tier, and it
//!   only uses the events as a trigger, so it commits offsets automatically), debounced so a
//!   burst of changes (a timetable of 300 entries published) costs one reconciliation, and
//! - every [`DownlinkSettings::interval`] regardless, which also covers changes that are not
//!   events (a node registered, a card mapped) and heals a missed trigger.
//!
//! A publish the broker did not confirm is retried with the same version in the next round. A
//! service database that is unreachable or not deployed only skips its kinds of snapshot.
//!
//! ## Layout
//! - [`compose`]: a node's snapshots from the service databases.
//! - [`versions`]: digests and versions (`node_snapshots` in the edge registry).
//! - [`publish`]: the retained, confirmed MQTT publish.

pub mod compose;
pub mod publish;
pub mod versions;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nimbus_core::ids::NodeId;
use nimbus_core::topics::Topic;
use nimbus_sync::transport::MqttConfig;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::CloudConfig;
use crate::error::Result;
use crate::http::metrics::{Kind, Metric};
use crate::http::probe::{self, Probes};
use compose::Sources;

/// The downlink's own Kafka consumer group (a trigger only; see the module docs).
pub const CONSUMER_GROUP: &str = "edge-downlink-group";

/// The topics whose events can change a node's snapshots (auth events: a logout or a password
/// change revokes sessions, which the keys snapshot lists).
pub const TRIGGER_TOPICS: [Topic; 7] = [
    Topic::TimetableEvents,
    Topic::AnnouncementEvents,
    Topic::CourseEvents,
    Topic::EnrollmentEvents,
    Topic::ContentEvents,
    Topic::UserEvents,
    Topic::AuthEvents,
];

/// Everything the downlink role needs.
#[derive(Debug, Clone)]
pub struct DownlinkSettings {
    /// The broker account that may write every node's downlink.
    pub mqtt: MqttConfig,
    /// Kafka bootstrap servers for the change trigger; `None` runs on the interval alone.
    pub brokers: Option<String>,
    /// Base URL of the service databases (`postgres://…@host:port`); each database by name.
    pub databases: compose::DatabaseUrls,
    /// Public base URL of the cloud API, for the manifest's download URLs.
    pub content_base_url: String,
    /// Full reconciliation period.
    pub interval: Duration,
    /// Wait after a trigger event before reconciling, to batch a burst.
    pub debounce: Duration,
    /// How long the broker may take to confirm a publish.
    pub publish_timeout: Duration,
}

impl DownlinkSettings {
    /// The downlink's settings from the configuration: the cloud's broker account under its own
    /// client id (`nimbus-downlink-<ingest.instance>`), the service databases, the public URL.
    pub fn from_config(config: &CloudConfig) -> Self {
        DownlinkSettings {
            mqtt: config.mqtt_client(format!("nimbus-downlink-{}", config.ingest.instance)),
            brokers: Some(config.kafka.brokers.clone()),
            databases: compose::DatabaseUrls {
                registry: config.registry_url(),
                timetable: config.database_url_for("timetable_service_db"),
                course: config.database_url_for("course_service_db"),
                user: config.database_url_for("user_service_db"),
                content: config.database_url_for("content_service_db"),
                announcement: config.database_url_for(crate::announcement::DATABASE),
            },
            content_base_url: config.downlink.public_url.clone(),
            interval: Duration::from_secs(config.downlink.interval_secs.max(1)),
            debounce: Duration::from_millis(config.downlink.debounce_ms),
            publish_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters of the downlink, for logs and tests.
#[derive(Debug, Default)]
pub struct DownlinkMetrics {
    /// Reconciliation rounds run.
    pub rounds: AtomicU64,
    /// Snapshots published (and confirmed).
    pub published: AtomicU64,
    /// Snapshots found unchanged.
    pub unchanged: AtomicU64,
    /// Failures (a database, the broker).
    pub failures: AtomicU64,
}

/// Runs the downlink until `shutdown`.
pub async fn run(settings: DownlinkSettings, metrics: Arc<DownlinkMetrics>, shutdown: CancellationToken) -> Result<()> {
    run_with(settings, metrics, &Probes::default(), shutdown).await
}

const DOWNLINK_SNAPSHOTS: Metric = Metric {
    name: "nimbus_downlink_total",
    help: "Downlink reconciliation rounds and snapshots, by what",
    kind: Kind::Counter,
};

/// [`run`], adding the downlink's readiness checks (the registry database, the MQTT connection,
/// Kafka when it has a trigger) and its counters to `probes`.
pub async fn run_with(
    settings: DownlinkSettings,
    metrics: Arc<DownlinkMetrics>,
    probes: &Probes,
    shutdown: CancellationToken,
) -> Result<()> {
    let sources = Sources::connect(&settings.databases, &settings.content_base_url)?;
    sources.migrate_registry().await?;
    let mut publisher = publish::Publisher::start(&settings.mqtt, settings.publish_timeout, shutdown.child_token())?;
    observe(&settings, &metrics, &publisher, probes)?;
    let trigger = Arc::new(Notify::new());
    let listener =
        settings.brokers.as_ref().map(|b| tokio::spawn(listen(b.clone(), trigger.clone(), shutdown.child_token())));
    tracing::info!(interval = ?settings.interval, "downlink starting");
    loop {
        reconcile(&sources, &mut publisher, &metrics).await;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(settings.interval) => {}
            _ = trigger.notified() => {
                if !crate::shutdown::pause(settings.debounce, &shutdown).await {
                    break;
                }
            }
        }
    }
    if let Some(l) = listener {
        let _ = l.await;
    }
    tracing::info!("downlink stopped");
    Ok(())
}

fn observe(
    settings: &DownlinkSettings,
    metrics: &Arc<DownlinkMetrics>,
    publisher: &publish::Publisher,
    probes: &Probes,
) -> Result<()> {
    let registry = crate::db::pool(&settings.databases.registry, 1)?;
    probes.check("postgres:registry", move || probe::postgres(registry.clone()));
    let up = publisher.connected();
    probes.check("mqtt:downlink", move || {
        let ok = up.load(Ordering::Relaxed);
        async move { if ok { Ok(()) } else { Err("the downlink is not connected to the MQTT broker".to_owned()) } }
    });
    if let Some(brokers) = &settings.brokers {
        let producer = crate::kafka::at_least_once_producer(brokers)?;
        probes.check("kafka:downlink", move || crate::kafka::reachable(producer.clone()));
    }
    let m = Arc::downgrade(metrics);
    probes.registry.on_scrape(move |r| {
        let Some(m) = m.upgrade() else { return };
        for (what, c) in
            [("rounds", &m.rounds), ("published", &m.published), ("unchanged", &m.unchanged), ("failures", &m.failures)]
        {
            r.set(&DOWNLINK_SNAPSHOTS, &[("what", what)], c.load(Ordering::Relaxed) as f64);
        }
    });
    Ok(())
}

/// One round over every registered node; failures are logged, counted and retried next round.
pub async fn reconcile(sources: &Sources, publisher: &mut publish::Publisher, metrics: &DownlinkMetrics) {
    metrics.rounds.fetch_add(1, Ordering::Relaxed);
    let nodes = match sources.nodes().await {
        Ok(n) => n,
        Err(e) => {
            metrics.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "downlink: cannot list nodes");
            return;
        }
    };
    let keys = sources.keys().await;
    for (node, room) in nodes {
        let Ok(node_id) = NodeId::new(node.clone()) else {
            tracing::warn!(%node, "downlink: registry holds an invalid node id");
            continue;
        };
        for snapshot in sources.for_room(&room, keys.as_ref()).await {
            let Ok(snapshot) = snapshot.inspect_err(|e| {
                metrics.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%node, error = %e, "downlink: cannot compute a snapshot");
            }) else {
                continue;
            };
            match publish_one(sources, publisher, &node_id, snapshot).await {
                Ok(true) => metrics.published.fetch_add(1, Ordering::Relaxed),
                Ok(false) => metrics.unchanged.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(%node, error = %e, "downlink: publish failed; retried next round");
                    metrics.failures.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    }
}

async fn publish_one(
    sources: &Sources,
    publisher: &mut publish::Publisher,
    node: &NodeId,
    snapshot: compose::Composed,
) -> Result<bool> {
    let registry = sources.registry().await?;
    let kind = snapshot.kind.as_str();
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let digest = versions::digest(&snapshot.body(0)?);
    match versions::decide(&registry, node.as_str(), kind, &digest, now_ms).await? {
        versions::Decision::Unchanged => Ok(false),
        versions::Decision::Publish(version) => {
            publisher.publish(node, snapshot.kind, version, snapshot.body(version)?).await?;
            versions::confirm(&registry, node.as_str(), kind, version).await?;
            tracing::info!(node = %node, kind, version, "downlink published a snapshot");
            Ok(true)
        }
    }
}

/// Wakes the reconciliation on every trigger event.
async fn listen(brokers: String, trigger: Arc<Notify>, shutdown: CancellationToken) {
    let consumer: StreamConsumer = match ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", CONSUMER_GROUP)
        .set("enable.auto.commit", "true")
        .set("auto.offset.reset", "latest")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "downlink: no Kafka trigger; reconciling on the interval only");
            return;
        }
    };
    let topics: Vec<&str> = TRIGGER_TOPICS.iter().map(|t| t.name()).collect();
    if let Err(e) = consumer.subscribe(&topics) {
        tracing::warn!(error = %e, "downlink: cannot subscribe; reconciling on the interval only");
        return;
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            m = consumer.recv() => match m {
                Ok(_) => trigger.notify_one(),
                Err(e) => {
                    tracing::debug!(error = %e, "downlink trigger consumer error");
                    if !crate::shutdown::pause(Duration::from_secs(1), &shutdown).await {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_the_configuration_under_the_downlinks_own_client_id() {
        let env = |name: &str| match name {
            "TIMETABLE_DATABASE_URL" => Some("postgres://t@tt:5432/tt_test".to_owned()),
            "NIMBUS_PUBLIC_URL" => Some("https://cloud.campus".to_owned()),
            "INGEST_INSTANCE" => Some("ingest-a".to_owned()),
            "MQTT_PASSWORD" => Some("broker-secret".to_owned()),
            _ => None,
        };
        let config = CloudConfig::from_sources(None, env).unwrap();
        let d = DownlinkSettings::from_config(&config);
        assert_eq!(d.databases.timetable, "postgres://t@tt:5432/tt_test");
        assert_eq!(d.databases.course, "postgres://postgres@127.0.0.1:5432/course_service_db");
        assert_eq!(d.content_base_url, "https://cloud.campus");
        assert_eq!(d.mqtt.client_id, "nimbus-downlink-ingest-a");
        assert_eq!(d.mqtt.password.as_deref(), Some("broker-secret"));
        assert_eq!(d.interval, Duration::from_secs(30));
    }
}
