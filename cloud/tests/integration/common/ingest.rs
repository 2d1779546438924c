//! Helpers for the ingest's tests: a private Mosquitto with node accounts, a fresh registry, the
//! ingest running in-process, fake nodes speaking the sync protocol over real MQTT, and a reader
//! of what reached Kafka since a mark (topics are shared between tests, so reads filter by the
//! test's unique node ids).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nimbus_cloud::config::CloudConfig;
use nimbus_cloud::ingest::{Ingest, Metrics};
use nimbus_cloud::registry::Registry;
use nimbus_core::ids::NodeId;
use nimbus_sync::frame::{self, Batch, EdgeEvent, FrameLimits, Message};
use nimbus_sync::testing::{CLOUD_USER, Mosquitto};
use nimbus_sync::topics::NodeTopic;
use nimbus_sync::transport::MqttConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers as _;
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{TestDb, kafka_brokers};

/// The password every test node gets.
pub const NODE_PASSWORD: &str = "node-secret";

/// A node id no other test uses.
pub fn unique_node(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Polls `check` every 100 ms until it is true; panics with `what` after `within`.
pub async fn wait_until<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An ingest configuration for this test's broker, database and group (Kafka at `brokers`,
/// the tests' own), with a short delivery timeout so failures show within seconds.
pub fn ingest_config(broker: &Mosquitto, db: &TestDb, brokers: &str) -> CloudConfig {
    let server = super::database_server();
    let vars = [
        ("DATABASE_URL", server),
        ("NIMBUS_REGISTRY_DB", db.name.clone()),
        ("KAFKA_BROKERS", brokers.to_owned()),
        ("MQTT_URL", broker.url.clone()),
        ("MQTT_USERNAME", CLOUD_USER.0.to_owned()),
        ("MQTT_PASSWORD", CLOUD_USER.1.to_owned()),
        ("INGEST_GROUP", unique_node("g")),
        ("INGEST_INSTANCE", unique_node("test")),
    ];
    let mut config =
        CloudConfig::from_sources(None, |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
            .expect("test configuration is valid");
    config.kafka.delivery_timeout_ms = 4_000;
    config.ingest.metrics_interval_secs = 0;
    config
}

/// An ingest running in this process.
pub struct RunningIngest {
    /// Its counters.
    pub metrics: Arc<Metrics>,
    stop: CancellationToken,
    task: JoinHandle<nimbus_cloud::Result<()>>,
}

impl RunningIngest {
    /// Starts the ingest and waits until the broker granted both subscriptions.
    pub async fn start(config: &CloudConfig) -> RunningIngest {
        let ingest = Ingest::new(config).await.expect("ingest starts (PostgreSQL reachable)");
        let metrics = ingest.metrics();
        let stop = CancellationToken::new();
        let task = tokio::spawn(ingest.run(stop.clone()));
        let m = metrics.clone();
        wait_until(Duration::from_secs(15), "the ingest to subscribe", || {
            let m = m.clone();
            async move { m.snapshot().subscribed >= 2 }
        })
        .await;
        RunningIngest { metrics, stop, task }
    }

    /// Stops it and waits until it has finished (bounded).
    pub async fn stop(self) {
        self.stop.cancel();
        let result = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the ingest stops within 20 s")
            .expect("the ingest task does not panic");
        result.expect("the ingest ends without error");
    }
}

/// A fresh registry (migrated) with `nodes` registered, and a broker that knows them (plus
/// `extra_broker_users`, which are in the broker only).
pub async fn setup(nodes: &[&str], extra_broker_users: &[&str]) -> (TestDb, Mosquitto, Registry) {
    // `RUST_LOG=nimbus_cloud=debug` shows what the ingest does; captured per test by libtest.
    super::capture_logs();
    let db = TestDb::create().await;
    let m = nimbus_cloud::db::migrations_for("edge_registry_db").unwrap();
    nimbus_cloud::db::migrate(&db.pool, m).await.unwrap();
    let registry = Registry::new(db.pool.clone());
    for n in nodes {
        registry.register(&NodeId::new(*n).unwrap(), "r-101", None, false).await.unwrap();
    }
    let users: Vec<(&str, &str)> = nodes.iter().chain(extra_broker_users).map(|n| (*n, NODE_PASSWORD)).collect();
    let broker = Mosquitto::start(&users);
    nimbus_cloud::kafka::ensure_topics(&kafka_brokers(), nimbus_core::topics::Environment::Development)
        .await
        .expect("Kafka must be reachable (NIMBUS_TEST_KAFKA_BROKERS); run scripts/services.sh up");
    (db, broker, registry)
}

/// A classroom node as the broker sees it: logged in with its own account, publishing frames on
/// its uplink and reading its ack topic.
pub struct FakeNode {
    /// The node id (= MQTT username).
    pub id: NodeId,
    client: AsyncClient,
    replies: mpsc::UnboundedReceiver<Message>,
    task: JoinHandle<()>,
}

impl FakeNode {
    /// Connects as `node` and subscribes to its ack topic.
    pub async fn connect(broker: &Mosquitto, node: &str) -> FakeNode {
        let id = NodeId::new(node).unwrap();
        let mut options = MqttConfig::new(&broker.url, node).with_credentials(node, NODE_PASSWORD).options().unwrap();
        options.set_clean_session(true);
        // A misbehaving node may send more than the protocol allows; tests need to, too.
        options.set_max_packet_size(FrameLimits::DEFAULT_MAX_FRAME_BYTES + 1024, 4 * 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let ack_topic = NodeTopic::Ack(id.clone()).name();
        let (tx, replies) = mpsc::unbounded_channel();
        let (ready_tx, mut ready) = mpsc::unbounded_channel();
        let sub = client.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = sub.try_subscribe(ack_topic.as_str(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == ack_topic => {
                        let msg =
                            frame::decode(&p.payload, FrameLimits::default()).expect("the cloud sends valid frames");
                        let _ = tx.send(msg);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready.recv())
            .await
            .unwrap_or_else(|_| panic!("node {node} could not connect and subscribe to its ack topic"));
        FakeNode { id, client, replies, task }
    }

    /// Publishes a frame on this node's uplink topic.
    pub async fn publish(&self, frame: Vec<u8>) {
        self.publish_on(&NodeTopic::Up(self.id.clone()).name(), frame).await;
    }

    /// Publishes a frame on any topic (QoS 1).
    pub async fn publish_on(&self, topic: &str, frame: Vec<u8>) {
        self.client.publish(topic, QoS::AtLeastOnce, false, frame).await.expect("publish request queued");
    }

    /// The next message on the ack topic within `within`.
    pub async fn reply(&mut self, within: Duration) -> Option<Message> {
        tokio::time::timeout(within, self.replies.recv()).await.ok().flatten()
    }

    /// Discards replies that arrive within `within` (re-acks of resent copies).
    pub async fn drain(&mut self, within: Duration) {
        while self.reply(within).await.is_some() {}
    }

    /// Publishes `frame` and resends it every 2 s, as the real node does, until the cloud
    /// replies; panics after `within`.
    pub async fn send_until_reply(&mut self, frame: Vec<u8>, within: Duration) -> Message {
        let deadline = Instant::now() + within;
        loop {
            self.publish(frame.clone()).await;
            if let Some(m) = self.reply(Duration::from_secs(2)).await {
                return m;
            }
            assert!(Instant::now() < deadline, "{} got no reply within {within:?}", self.id);
        }
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A valid `ATTENDANCE_MARKED` payload for `course`.
pub fn attendance_payload(course: &str) -> Value {
    json!({
        "attendance_id": format!("att-{course}"), "entry_id": "tt-1", "course_id": course,
        "course_name": "Data Structures", "class_date": "2025-03-03", "marked_by": "fac-1",
        "marked_at": "2025-03-03T09:55:00Z", "total_students": 2, "present_count": 1, "absent_count": 1,
        "student_records": [{"student_id": "s1", "status": "present"}, {"student_id": "s2", "status": "absent"}]
    })
}

/// An outbox row as the node ships it.
pub fn edge_event(seq: u64, event_type: &str, topic: &str, payload: String) -> EdgeEvent {
    EdgeEvent {
        seq,
        event_type: event_type.into(),
        topic: topic.into(),
        priority: 0,
        payload_json: payload,
        wall_ms: 1_741_000_000_000 + seq as i64,
        clock_synced: true,
        boot_id: "boot-1".into(),
    }
}

/// A batch frame of `ATTENDANCE_MARKED` events `first..=last`, all for `course`.
pub fn attendance_batch(node: &NodeId, first: u64, last: u64, course: &str) -> Vec<u8> {
    let events = (first..=last)
        .map(|seq| edge_event(seq, "ATTENDANCE_MARKED", "attendance.events", attendance_payload(course).to_string()))
        .collect();
    batch_frame(node, first, events)
}

/// A batch frame of the given events.
pub fn batch_frame(node: &NodeId, first: u64, events: Vec<EdgeEvent>) -> Vec<u8> {
    frame::encode(&Message::Batch(Batch { node_id: node.clone(), first_seq: first, events }))
}

/// A message read back from Kafka.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its partition.
    pub partition: i32,
    /// Its key.
    pub key: Option<String>,
    /// Its payload as JSON (`null` if it is not JSON).
    pub json: Value,
    /// Its payload as text.
    pub text: String,
    /// Its `traceparent` header, if it has one.
    pub traceparent: Option<String>,
}

/// The end offsets of a topic's partitions at one moment, to read what came after.
pub struct KafkaMark {
    topic: &'static str,
    start: Vec<(i32, i64)>,
}

fn consumer() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", format!("nimbus-test-{}", uuid::Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("Kafka consumer")
}

fn end_offsets(c: &BaseConsumer, topic: &str) -> Vec<(i32, i64)> {
    let metadata =
        c.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("Kafka metadata (NIMBUS_TEST_KAFKA_BROKERS)");
    let t = metadata.topics().iter().find(|t| t.name() == topic).expect("topic exists");
    t.partitions()
        .iter()
        .map(|p| {
            let (_, high) = c.fetch_watermarks(topic, p.id(), Duration::from_secs(10)).expect("watermarks");
            (p.id(), high)
        })
        .collect()
}

impl KafkaMark {
    /// Remembers where every partition of `topic` ends now.
    pub async fn now(topic: &'static str) -> KafkaMark {
        // On a fresh broker the topic may not exist yet: asking for its offsets would leave the
        // mark without the partitions it gets when created. Create the seed's topics first (once).
        static TOPICS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        TOPICS
            .get_or_init(|| async {
                nimbus_cloud::kafka::ensure_topics(
                    &super::kafka_brokers(),
                    nimbus_core::topics::Environment::Development,
                )
                .await
                .expect("Kafka must be reachable (NIMBUS_TEST_KAFKA_BROKERS); run scripts/services.sh up");
            })
            .await;
        let start = tokio::task::spawn_blocking(move || end_offsets(&consumer(), topic)).await.unwrap();
        KafkaMark { topic, start }
    }

    /// Every message produced to the topic since the mark (by anyone; filter by node id).
    pub async fn read(&self) -> Vec<Record> {
        let topic = self.topic;
        let start = self.start.clone();
        tokio::task::spawn_blocking(move || {
            let c = consumer();
            let end = end_offsets(&c, topic);
            let mut tpl = TopicPartitionList::new();
            let mut remaining = 0;
            for ((p, from), (_, to)) in start.iter().zip(&end) {
                if to > from {
                    tpl.add_partition_offset(topic, *p, Offset::Offset(*from)).unwrap();
                    remaining += 1;
                }
            }
            let mut out = Vec::new();
            if remaining == 0 {
                return out;
            }
            c.assign(&tpl).unwrap();
            let mut next: Vec<(i32, i64)> = start.clone();
            let deadline = Instant::now() + Duration::from_secs(20);
            while next.iter().zip(&end).any(|((_, at), (_, to))| at < to) {
                assert!(Instant::now() < deadline, "could not read {topic} up to {end:?}: at {next:?}");
                let Some(m) = c.poll(Duration::from_millis(500)) else { continue };
                let m = m.expect("Kafka read");
                if let Some(slot) = next.iter_mut().find(|(p, _)| *p == m.partition()) {
                    slot.1 = slot.1.max(m.offset() + 1);
                }
                // Topics are shared with other tests, some of which write junk on purpose: only
                // this test's own messages (found by node id) are held to the contract.
                let text = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                let json = serde_json::from_str(&text).unwrap_or(Value::Null);
                let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
                let traceparent = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == "traceparent"))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                out.push(Record { partition: m.partition(), key, json, text, traceparent });
            }
            out
        })
        .await
        .unwrap()
    }

    /// The domain events of `node` since the mark, in seq order.
    pub async fn events_of(&self, node: &NodeId) -> Vec<Record> {
        let mut v: Vec<Record> =
            self.read().await.into_iter().filter(|r| r.json["metadata"]["node_id"] == node.as_str()).collect();
        v.sort_by_key(|r| r.json["metadata"]["seq"].as_str().and_then(|s| s.parse::<u64>().ok()));
        v
    }

    /// The dead letters of `node`'s events since the mark.
    pub async fn dead_letters_of(&self, node: &NodeId) -> Vec<Record> {
        self.read()
            .await
            .into_iter()
            .filter(|r| r.json["original_event"]["metadata"]["node_id"] == node.as_str())
            .collect()
    }
}

/// How many refused frames the registry counted for `node` and `reason`.
pub async fn rejections(db: &TestDb, node: &str, reason: &str) -> i64 {
    let c = db.pool.get().await.unwrap();
    c.query_opt("SELECT count FROM ingest_rejections WHERE node_id = $1 AND reason = $2", &[&node, &reason])
        .await
        .unwrap()
        .map_or(0, |r| r.get(0))
}

/// The node's mark in the registry.
pub async fn mark_of(registry: &Registry, node: &NodeId) -> u64 {
    registry.node(node).await.unwrap().expect("node registered").high_water_mark
}
