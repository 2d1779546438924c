//! A consumer's health: the group's lag per partition (the seed's `kafka_consumer_lag`), whether
//! it is stalled, and the watchdog that makes a member holding no partitions rejoin.
//!
//! A group can stall without any error: a broker that lost track of a rebalance leaves a live
//! member with no partitions (measured against tansu, see docs/cloud.md "Consumers that come
//! back"), and the client waits politely forever. So every [`Membership::lag_interval`] the
//! [`Monitor`] asks the broker for each subscribed partition's end offset and the group's
//! committed offset. A partition whose lag is positive and whose committed offset has not moved
//! for [`Membership::stall_after`] is stalled: readiness fails and says so; when this member
//! holds no partitions at that moment, it asks the loop to replace its client, which leaves and
//! rejoins the group (at most once per `stall_after`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nimbus_core::topics::Topic;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::http::metrics::{KAFKA_LAG, Registry};

/// How long one round of broker requests may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// How a consumer joins its group and keeps its partitions (see "Coming back" in the module
/// docs of [`crate::consumer`]).
#[derive(Debug, Clone)]
pub struct Membership {
    /// Static membership (`group.instance.id`): a restarted process with the same id takes its
    /// partitions back without waiting for a rebalance. Must differ between live members.
    pub instance_id: Option<String>,
    /// `session.timeout.ms`: how soon the broker gives a dead member's partitions away.
    pub session_timeout: Duration,
    /// How often the lag is measured (the `kafka_consumer_lag` gauge and the stall watchdog).
    pub lag_interval: Duration,
    /// How long a partition may have lag without its committed offset moving before the
    /// consumer counts as stalled (readiness fails; a member holding no partitions rejoins).
    pub stall_after: Duration,
}

impl Default for Membership {
    fn default() -> Self {
        Membership {
            instance_id: None,
            session_timeout: Duration::from_secs(6),
            lag_interval: Duration::from_secs(5),
            stall_after: Duration::from_secs(30),
        }
    }
}

/// What the monitor last saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// The loop has subscribed.
    pub started: bool,
    /// Partitions this member holds.
    pub assigned: usize,
    /// The group's total lag over the subscribed partitions.
    pub lag: i64,
    /// Why the consumer counts as stalled, if it does.
    pub stalled: Option<String>,
    /// Rejoins the watchdog asked for.
    pub rejoins: u64,
}

/// Shared between the loop, its monitor and the readiness check.
#[derive(Default)]
pub struct ConsumerHealth {
    state: Mutex<HealthSnapshot>,
    rejoin: Notify,
    client: Mutex<Option<Arc<StreamConsumer>>>,
}

impl std::fmt::Debug for ConsumerHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerHealth").field("state", &self.snapshot()).finish_non_exhaustive()
    }
}

impl ConsumerHealth {
    /// What the monitor last saw.
    pub fn snapshot(&self) -> HealthSnapshot {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Readiness: consuming, and not stalled.
    pub fn check(&self) -> Result<(), String> {
        let s = self.snapshot();
        match (s.started, s.stalled) {
            (false, _) => Err("the consumer has not subscribed yet".to_owned()),
            (true, Some(why)) => Err(why),
            (true, None) => Ok(()),
        }
    }

    pub(crate) fn started(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).started = true;
    }

    /// Resolves when the monitor asks for a rejoin.
    pub(crate) async fn rejoin_requested(&self) {
        self.rejoin.notified().await;
    }

    /// The loop replaced its client: the monitor measures through the new one.
    pub(crate) fn rejoined(&self, client: Arc<StreamConsumer>) {
        *self.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(client);
    }

    fn current(&self, first: &Arc<StreamConsumer>) -> Arc<StreamConsumer> {
        self.client.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_else(|| first.clone())
    }
}

/// One partition's numbers.
struct PartitionLag {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    lag: i64,
}

/// The end offsets and the group's committed offsets of every partition of `topics`, and how
/// many partitions this member holds. Blocking, but a handful of requests whatever the number of
/// partitions: the end (and, where nothing is committed, the start) offsets of all partitions
/// are asked in one `ListOffsets` each, not one round trip per partition (45 of them took the
/// notification worker's stop 15 s against tansu).
fn measure(consumer: &StreamConsumer, topics: &[Topic]) -> KafkaResult<(Vec<PartitionLag>, usize)> {
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic.name()), REQUEST_TIMEOUT)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(tpl, REQUEST_TIMEOUT)?;
    let offsets = |at: Offset, of: &[(String, i32)]| -> KafkaResult<HashMap<(String, i32), i64>> {
        if of.is_empty() {
            return Ok(HashMap::new());
        }
        let mut ask = TopicPartitionList::new();
        for (topic, partition) in of {
            ask.add_partition_offset(topic, *partition, at)?;
        }
        let answer = consumer.offsets_for_times(ask, REQUEST_TIMEOUT)?;
        Ok(answer
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(n) => Some(((e.topic().to_owned(), e.partition()), n)),
                _ => None,
            })
            .collect())
    };
    let all: Vec<(String, i32)> = committed.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
    let uncommitted: Vec<(String, i32)> = committed
        .elements()
        .iter()
        .filter(|e| !matches!(e.offset(), Offset::Offset(_)))
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect();
    let ends = offsets(Offset::End, &all)?;
    let starts = offsets(Offset::Beginning, &uncommitted)?;
    let mut out = Vec::new();
    for el in committed.elements() {
        let key = (el.topic().to_owned(), el.partition());
        let committed = match el.offset() {
            Offset::Offset(n) => Some(n),
            _ => None,
        };
        let (low, high) = match (ends.get(&key), committed.map_or_else(|| starts.get(&key).copied(), Some)) {
            (Some(high), Some(low)) => (low, *high),
            // The broker did not answer for this partition in the batch: ask it alone.
            _ => consumer.fetch_watermarks(el.topic(), el.partition(), REQUEST_TIMEOUT)?,
        };
        out.push(PartitionLag {
            topic: key.0,
            partition: key.1,
            committed,
            lag: (high - committed.unwrap_or(low)).max(0),
        });
    }
    Ok((out, consumer.assignment()?.count()))
}

/// The watchdog of one consumer loop.
pub(crate) struct Monitor {
    pub group_id: String,
    pub topics: Vec<Topic>,
    pub membership: Membership,
    pub health: Arc<ConsumerHealth>,
    pub registry: Arc<Registry>,
}

impl Monitor {
    /// Measures every `lag_interval` until `stop`.
    pub async fn run(self, first: Arc<StreamConsumer>, stop: CancellationToken) {
        // (topic, partition) → (committed offset last seen, since when it has not moved).
        let mut still: HashMap<(String, i32), (Option<i64>, Instant)> = HashMap::new();
        let mut last_rejoin = Instant::now();
        loop {
            if !crate::shutdown::pause(self.membership.lag_interval, &stop).await {
                break;
            }
            let client = self.health.current(&first);
            let topics = self.topics.clone();
            let measured = tokio::task::spawn_blocking(move || measure(&client, &topics)).await;
            let (partitions, assigned) = match measured {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => {
                    tracing::debug!(group_id = %self.group_id, error = %e, "cannot measure the consumer lag");
                    continue;
                }
                Err(_) => continue,
            };
            let now = Instant::now();
            let partition_names: Vec<String> = partitions.iter().map(|p| p.partition.to_string()).collect();
            let mut series = Vec::with_capacity(partitions.len());
            for (p, name) in partitions.iter().zip(&partition_names) {
                series.push((
                    vec![("topic", p.topic.as_str()), ("consumer_group", self.group_id.as_str()), ("partition", name)],
                    p.lag as f64,
                ));
            }
            self.registry.replace(&KAFKA_LAG, ("consumer_group", &self.group_id), &series);

            let mut stalled = 0usize;
            let mut stalled_lag = 0i64;
            for p in &partitions {
                let key = (p.topic.clone(), p.partition);
                let entry = still.entry(key).or_insert((p.committed, now));
                if p.lag == 0 || entry.0 != p.committed {
                    *entry = (p.committed, now);
                } else if now.duration_since(entry.1) >= self.membership.stall_after {
                    stalled += 1;
                    stalled_lag += p.lag;
                }
            }
            let lag = partitions.iter().map(|p| p.lag).sum();
            let why = (stalled > 0).then(|| {
                format!(
                    "{stalled} partition(s) with {stalled_lag} message(s) of lag have not moved for {:?}; \
                     this member holds {assigned} partition(s)",
                    self.membership.stall_after
                )
            });
            let rejoin = stalled > 0 && assigned == 0 && now.duration_since(last_rejoin) >= self.membership.stall_after;
            {
                let mut s = self.health.state.lock().unwrap_or_else(|e| e.into_inner());
                if why.is_some() && s.stalled.is_none() {
                    tracing::warn!(group_id = %self.group_id, reason = why.as_deref().unwrap_or_default(), "consumer stalled");
                }
                s.assigned = assigned;
                s.lag = lag;
                s.stalled = why;
                if rejoin {
                    s.rejoins += 1;
                }
            }
            if rejoin {
                last_rejoin = now;
                self.health.rejoin.notify_one();
            }
        }
    }
}
