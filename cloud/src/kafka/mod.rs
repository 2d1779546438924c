//! Kafka: the seed's topics created idempotently at start, and the idempotent producer
//! (`acks=all`) every role publishes with. Nothing here depends on which broker implements the
//! protocol (Apache Kafka in production, tansu in development and CI).

use std::time::Duration;

use nimbus_core::topics::{Environment, TOPICS};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, Producer as _};

use crate::error::{Error, Result};

/// Creates every topic of the seed that does not exist yet, with the seed's partitions and
/// retention and the environment's replication. Returns the names it created.
pub async fn ensure_topics(brokers: &str, env: Environment) -> Result<Vec<&'static str>> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().map_err(|e| Error::kafka("admin client", e))?;
    let retention: Vec<String> = TOPICS.iter().map(|s| s.retention.as_millis().to_string()).collect();
    let min_isr = env.min_insync_replicas().to_string();
    let new: Vec<NewTopic<'_>> = TOPICS
        .iter()
        .zip(&retention)
        .map(|(spec, retention)| {
            NewTopic::new(spec.topic.name(), spec.partitions, TopicReplication::Fixed(env.replication_factor().into()))
                .set("retention.ms", retention)
                .set("min.insync.replicas", &min_isr)
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(&new, &opts).await.map_err(|e| Error::kafka("create topics", e))?;
    let mut created = Vec::new();
    for (spec, result) in TOPICS.iter().zip(results) {
        match result {
            Ok(_) => created.push(spec.topic.name()),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(Error::kafka(format!("create topic {name}"), code)),
        }
    }
    if !created.is_empty() {
        tracing::info!(?created, "created Kafka topics");
    }
    Ok(created)
}

/// The idempotent producer: `acks=all`, retries without duplicates, ordered per partition.
pub fn producer(brokers: &str) -> Result<FutureProducer> {
    producer_with_timeout(brokers, Duration::from_secs(30))
}

/// The idempotent producer of [`producer`] with its own delivery timeout: the longest a message
/// waits for the broker's confirmation before its delivery report says it failed. The ingest
/// holds a node's batch (and its row lock) that long, so it sets this from its configuration.
pub fn producer_with_timeout(brokers: &str, delivery_timeout: Duration) -> Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("message.timeout.ms", delivery_timeout.as_millis().to_string())
        .set("request.timeout.ms", delivery_timeout.min(Duration::from_secs(30)).as_millis().to_string())
        .set("linger.ms", "5")
        .create()
        .map_err(|e| Error::kafka("producer", e))
}

/// A producer without idempotence (`acks=all`, retries on): for messages that are at-least-once
/// by design and carry deterministic ids (dead letters, alerts). Unlike the idempotent producer
/// it has no sequence state a restarted broker can lose, so it cannot get stuck after a restart.
pub fn at_least_once_producer(brokers: &str) -> Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "false")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .map_err(|e| Error::kafka("producer", e))
}

/// Readiness: the broker answers a metadata request through `producer`'s connection (and names
/// at least one broker). The request blocks, so it runs on the blocking pool.
pub async fn reachable(producer: FutureProducer) -> std::result::Result<(), String> {
    let brokers = tokio::task::spawn_blocking(move || {
        producer.client().fetch_metadata(None, Duration::from_secs(2)).map(|m| m.brokers().len())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if brokers == 0 { Err("the broker named no brokers".to_owned()) } else { Ok(()) }
}
