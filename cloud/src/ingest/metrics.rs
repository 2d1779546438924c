//! The ingest's counters. Shared by the MQTT loop and every node's worker, read by the periodic
//! log line, by `/metrics` (copied into the process's [`Registry`] at each scrape, see
//! [`Metrics::observe`]) and by tests, to know what the ingest did with frames that produce no
//! visible reply. What has labels (events by topic and type, per-node gauges) is recorded
//! straight into the registry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nimbus_sync::receiver::{Decision, ReceiverStats};

use crate::http::metrics::{Kind, Metric, NODE_ACK_AGE, Registry};

/// Live counters (monotonic since start).
#[derive(Debug, Default)]
pub struct Metrics {
    receiver: Mutex<ReceiverStats>,
    unknown_node: AtomicU64,
    frames_superseded: AtomicU64,
    frames_shed: AtomicU64,
    foreign_topic: AtomicU64,
    events_produced: AtomicU64,
    dead_lettered: AtomicU64,
    tombstones_skipped: AtomicU64,
    acks_published: AtomicU64,
    delivery_failures: AtomicU64,
    store_failures: AtomicU64,
    status_updates: AtomicU64,
    status_rejected: AtomicU64,
    connects: AtomicU64,
    disconnects: AtomicU64,
    subscribed: AtomicU64,
    /// Whether the MQTT session is up now (readiness).
    connected: AtomicBool,
    /// When each node was last acked (the `nimbus_node_ack_age_seconds` gauge).
    last_ack: Mutex<HashMap<String, Instant>>,
    /// The process's registry, for what has labels.
    registry: Arc<Registry>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Frames decoded, refused by reason (corrupt, unknown version, wrong node, …), and batch
    /// decisions (accepted, duplicates, gaps).
    pub receiver: ReceiverStats,
    /// Well-formed batches from nodes the registry does not know.
    pub unknown_node: u64,
    /// Uplink frames replaced by a newer frame of the same node before they were processed (the
    /// node has one batch in flight, so the newer frame is the one it waits on).
    pub frames_superseded: u64,
    /// Frames dropped because `ingest.max_nodes` nodes are already tracked.
    pub frames_shed: u64,
    /// Messages on topics outside the node layout.
    pub foreign_topic: u64,
    /// Events confirmed by Kafka on their domain topic.
    pub events_produced: u64,
    /// Poison events confirmed on `dlq.events`.
    pub dead_lettered: u64,
    /// Outbox tombstones skipped.
    pub tombstones_skipped: u64,
    /// Replies (acks, resend requests, rejects) handed to the MQTT client.
    pub acks_published: u64,
    /// Batches Kafka did not confirm in full (the unconfirmed rest is not acked).
    pub delivery_failures: u64,
    /// Batches that failed on the registry (lock, mark) and were not acked.
    pub store_failures: u64,
    /// Status messages written to the registry.
    pub status_updates: u64,
    /// Status messages refused (corrupt, wrong node).
    pub status_rejected: u64,
    /// Connections to the broker accepted.
    pub connects: u64,
    /// Connection losses.
    pub disconnects: u64,
    /// Subscriptions the broker granted (two per fresh session).
    pub subscribed: u64,
}

macro_rules! counters {
    ($($field:ident => $inc:ident),+ $(,)?) => {
        impl Metrics {
            $(
                #[doc = concat!("Counts one more `", stringify!($field), "`.")]
                pub fn $inc(&self, n: u64) {
                    self.$field.fetch_add(n, Ordering::Relaxed);
                }
            )+

            /// The counters now.
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot {
                    receiver: *self.receiver.lock().unwrap_or_else(|e| e.into_inner()),
                    $( $field: self.$field.load(Ordering::Relaxed), )+
                }
            }
        }
    };
}

counters! {
    unknown_node => add_unknown_node,
    frames_superseded => add_frames_superseded,
    frames_shed => add_frames_shed,
    foreign_topic => add_foreign_topic,
    events_produced => add_events_produced,
    dead_lettered => add_dead_lettered,
    tombstones_skipped => add_tombstones_skipped,
    acks_published => add_acks_published,
    delivery_failures => add_delivery_failures,
    store_failures => add_store_failures,
    status_updates => add_status_updates,
    status_rejected => add_status_rejected,
    connects => add_connects,
    disconnects => add_disconnects,
    subscribed => add_subscribed,
}

const INGEST_EVENTS: Metric = Metric {
    name: "nimbus_ingest_total",
    help: "What the ingest did, by what (frames, events, acks, failures)",
    kind: Kind::Counter,
};

impl Metrics {
    /// Counters that record labelled metrics into `registry` (the process's).
    pub fn with_registry(registry: Arc<Registry>) -> Self {
        Metrics { registry, ..Metrics::default() }
    }

    /// The registry labelled metrics go to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records whether the MQTT session is up.
    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    /// Whether the MQTT session is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Records that `node` was just acked.
    pub fn acked(&self, node: &str) {
        self.last_ack.lock().unwrap_or_else(|e| e.into_inner()).insert(node.to_owned(), Instant::now());
    }

    /// Adds the collector that copies these counters and the nodes' ack ages into the registry
    /// at every scrape.
    pub fn observe(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        self.registry.on_scrape(move |r| {
            let Some(m) = me.upgrade() else { return };
            let s = m.snapshot();
            let rx = &s.receiver;
            for (what, n) in [
                ("frames_ok", rx.frames_ok),
                ("frames_rejected", rx.rejected.total() + s.unknown_node),
                ("batches_accepted", rx.accepted),
                ("batches_duplicate", rx.duplicates),
                ("batches_gap", rx.gaps),
                ("events_produced", s.events_produced),
                ("events_dead_lettered", s.dead_lettered),
                ("acks_published", s.acks_published),
                ("delivery_failures", s.delivery_failures),
                ("store_failures", s.store_failures),
                ("frames_superseded", s.frames_superseded),
                ("frames_shed", s.frames_shed),
                ("status_updates", s.status_updates),
                ("disconnects", s.disconnects),
            ] {
                r.set(&INGEST_EVENTS, &[("what", what)], n as f64);
            }
            let now = Instant::now();
            let ages: Vec<(String, f64)> = m
                .last_ack
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(node, at)| (node.clone(), now.duration_since(*at).as_secs_f64()))
                .collect();
            for (node, age) in &ages {
                r.set(&NODE_ACK_AGE, &[("node", node)], *age);
            }
        });
    }

    /// Adds one frame's decode outcome (counted by `decode_uplink` into a local
    /// [`ReceiverStats`], so decoding never holds the lock).
    pub fn merge_decode(&self, local: &ReceiverStats) {
        let mut s = self.receiver.lock().unwrap_or_else(|e| e.into_inner());
        s.frames_ok += local.frames_ok;
        let (r, l) = (&mut s.rejected, &local.rejected);
        r.empty += l.empty;
        r.truncated += l.truncated;
        r.unknown_version += l.unknown_version;
        r.too_large += l.too_large;
        r.checksum += l.checksum;
        r.too_many_events += l.too_many_events;
        r.malformed += l.malformed;
        r.non_contiguous += l.non_contiguous;
        r.not_a_batch += l.not_a_batch;
        r.wrong_node += l.wrong_node;
    }

    /// Counts a batch decision.
    pub fn record(&self, decision: &Decision<'_>) {
        self.receiver.lock().unwrap_or_else(|e| e.into_inner()).record(decision);
    }
}

impl MetricsSnapshot {
    /// Refused uplink frames as `reason=count` pairs (non-zero only), for the log line.
    pub fn rejected_by_reason(&self) -> String {
        let r = &self.receiver.rejected;
        [
            ("empty", r.empty),
            ("truncated", r.truncated),
            ("unknown_version", r.unknown_version),
            ("too_large", r.too_large),
            ("checksum", r.checksum),
            ("too_many_events", r.too_many_events),
            ("malformed", r.malformed),
            ("non_contiguous", r.non_contiguous),
            ("not_a_batch", r.not_a_batch),
            ("wrong_node", r.wrong_node),
            ("unknown_node", self.unknown_node),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// Writes the counters as one log line.
    pub fn log(&self) {
        let r = &self.receiver;
        tracing::info!(
            frames_ok = r.frames_ok,
            rejected = %self.rejected_by_reason(),
            accepted = r.accepted,
            duplicates = r.duplicates,
            gaps = r.gaps,
            events_produced = self.events_produced,
            dead_lettered = self.dead_lettered,
            tombstones_skipped = self.tombstones_skipped,
            acks = self.acks_published,
            delivery_failures = self.delivery_failures,
            store_failures = self.store_failures,
            superseded = self.frames_superseded,
            shed = self.frames_shed,
            status_updates = self.status_updates,
            disconnects = self.disconnects,
            "ingest metrics"
        );
    }
}
