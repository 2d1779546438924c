//! The cloud's foundation against real services: topics on the Kafka-protocol broker, migrations
//! and the registry on PostgreSQL.

use std::time::Duration;

use nimbus_cloud::kafka;
use nimbus_cloud::registry::Registry;
use nimbus_core::ids::NodeId;
use nimbus_core::topics::{Environment, TOPICS};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::common;

#[tokio::test]
async fn the_seeds_thirteen_topics_exist_with_their_partitions_after_ensure_topics_twice() {
    let brokers = common::kafka_brokers();
    kafka::ensure_topics(&brokers, Environment::Development)
        .await
        .expect("Kafka must be reachable (NIMBUS_TEST_KAFKA_BROKERS)");
    let again = kafka::ensure_topics(&brokers, Environment::Development).await.unwrap();
    assert!(again.is_empty(), "second run creates nothing: {again:?}");
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let metadata = tokio::task::spawn_blocking(move || consumer.fetch_metadata(None, Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    for spec in TOPICS {
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == spec.topic.name())
            .unwrap_or_else(|| panic!("{} missing", spec.topic.name()));
        assert_eq!(topic.partitions().len() as i32, spec.partitions, "{}", spec.topic.name());
    }
}

#[tokio::test]
async fn migrations_apply_once_and_the_high_water_mark_never_moves_backwards() {
    let db = common::TestDb::create().await;
    let m = nimbus_cloud::db::migrations_for("edge_registry_db").unwrap();
    assert_eq!(nimbus_cloud::db::migrate(&db.pool, m).await.unwrap(), m.steps.len());
    assert_eq!(nimbus_cloud::db::migrate(&db.pool, m).await.unwrap(), 0);

    let registry = Registry::new(db.pool.clone());
    let node = NodeId::new("room-101").unwrap();
    assert!(registry.node(&node).await.unwrap().is_none());
    registry.register(&node, "101", Some("$argon2id$..."), false).await.unwrap();
    assert_eq!(registry.node(&node).await.unwrap().unwrap().high_water_mark, 0);
    assert_eq!(registry.advance(&node, 40).await.unwrap(), 40);
    assert_eq!(registry.advance(&node, 12).await.unwrap(), 40, "a late confirmation does not rewind");
    assert_eq!(registry.advance(&node, 41).await.unwrap(), 41);
    registry.status(&node, true, Some("boot-1"), Some("0.1.0"), None).await.unwrap();
    assert!(registry.node(&node).await.unwrap().unwrap().online);
    registry.reject("room-101", "corrupt").await.unwrap();
    registry.reject("room-101", "corrupt").await.unwrap();
    let c = db.pool.get().await.unwrap();
    let n: i64 = c.query_one("SELECT count FROM ingest_rejections WHERE reason = 'corrupt'", &[]).await.unwrap().get(0);
    assert_eq!(n, 2);
    drop(c);
    db.drop_now().await;
}
