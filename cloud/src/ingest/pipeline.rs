//! What the ingest does with one frame from one node, without MQTT: decode, check the node, lock
//! its registry row, classify the batch against its mark, map and produce the new events, wait
//! for Kafka, move the mark, and say what to reply. The MQTT loop ([`super::mqtt`]) feeds it one
//! frame per node at a time and publishes the reply.
//!
//! The order of the steps is the whole guarantee:
//!
//! 1. **Lock, then classify** against the mark read under the lock, so two instances never both
//!    store the same seqs.
//! 2. **Produce, then wait for every delivery report** ([`super::sink`]).
//! 3. **Advance the mark only to the end of the confirmed prefix** (all of it normally), and
//!    commit; a failure anywhere before leaves the mark and the lock as they were.
//! 4. **Ack only what the committed mark says**: the node deletes acked rows, so an ack before
//!    step 3 could lose events if the cloud crashed in between.
//!
//! A crash between 2 and 3 means the node resends and the events reach Kafka again with the same
//! event ids, which consumers drop. Nothing is lost; nothing is doubled for a deduplicating
//! consumer.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use nimbus_core::ids::NodeId;
use nimbus_sync::frame::{self, FrameLimits, Message, Status};
use nimbus_sync::receiver::{self, Decision, ReceiverStats, UplinkError};

use super::mapping::{self, BatchContext, Mapped};
use super::metrics::Metrics;
use super::sink::KafkaSink;
use crate::http::metrics::{KAFKA_DLQ, KAFKA_PRODUCED, KAFKA_PRODUCER_ERRORS, NODE_BACKLOG};
use crate::registry::Registry;

/// Why a frame was refused, as counted in `ingest_rejections.reason`.
/// The card of an edge `USER_ACTION` event with action `UNKNOWN_CARD` (a tap of a card the node
/// could not place), and when it was seen.
fn unknown_card(ev: &nimbus_sync::frame::EdgeEvent) -> Option<(String, chrono::DateTime<Utc>)> {
    if ev.event_type != "USER_ACTION" {
        return None;
    }
    let payload: serde_json::Value = serde_json::from_str(&ev.payload_json).ok()?;
    if payload.get("action")?.as_str()? != UNKNOWN_CARD_ACTION {
        return None;
    }
    let uid = payload.get("label")?.as_str()?.to_owned();
    let valid = (8..=20).contains(&uid.len()) && uid.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    let seen = chrono::DateTime::from_timestamp_millis(ev.wall_ms)?;
    valid.then_some((uid, seen))
}

/// The `action` of the analytics event a node sends for an unknown card.
pub const UNKNOWN_CARD_ACTION: &str = "UNKNOWN_CARD";

fn rejection_reason(e: &UplinkError) -> &'static str {
    match e {
        UplinkError::Frame(f) => f.reason(),
        UplinkError::NotABatch => "not_a_batch",
        UplinkError::WrongNode { .. } => "wrong_node",
    }
}

/// What became of one uplink frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Kafka confirmed every new event and the mark moved to `upto`: ack it.
    Stored {
        /// The committed mark.
        upto: u64,
        /// Events produced to their domain topics.
        produced: usize,
        /// Poison events produced to `dlq.events` instead.
        dead_lettered: usize,
        /// Tombstones skipped.
        skipped: usize,
    },
    /// Kafka confirmed only the first events; the mark moved to the end of that prefix, which is
    /// acked, and the node resends the rest.
    PartlyStored {
        /// The committed mark.
        upto: u64,
        /// Why the rest was not confirmed.
        failure: String,
    },
    /// Everything was stored before: ack the mark again (the node missed the earlier ack).
    Duplicate {
        /// The mark.
        upto: u64,
    },
    /// The batch starts after a missing seq: ask for it.
    Gap {
        /// First missing seq (mark + 1).
        resend_from: u64,
    },
    /// The frame was refused and counted; resending it unchanged will not help.
    Rejected {
        /// The counted reason (`checksum`, `unknown_version`, `wrong_node`, `unknown_node`, …).
        reason: &'static str,
        /// Details for the log.
        detail: String,
    },
    /// Kafka or the registry failed before anything new was confirmed: no ack, mark unchanged;
    /// the node resends after its timeout.
    Failed {
        /// What failed.
        error: String,
    },
}

impl Outcome {
    /// The frame to publish on the node's ack topic, if any.
    ///
    /// Corrupt frames get no reply: a node whose frames are corrupted on the way would otherwise
    /// be told to resend at once, in a tight loop; it resends on its own backoff instead. Refusals
    /// that resending cannot fix (unknown node, wrong node id, not a batch) get a diagnostic
    /// `Reject`, which the node only counts.
    pub fn reply(&self) -> Option<Vec<u8>> {
        match self {
            Outcome::Stored { upto, .. } | Outcome::PartlyStored { upto, .. } | Outcome::Duplicate { upto } => {
                Some(receiver::ack_after_confirm(*upto))
            }
            Outcome::Gap { resend_from } => Some(receiver::resend_request(*resend_from)),
            Outcome::Rejected { reason: reason @ ("unknown_node" | "wrong_node" | "not_a_batch"), .. } => {
                Some(frame::encode(&Message::Reject { reason: (*reason).to_owned() }))
            }
            Outcome::Rejected { .. } | Outcome::Failed { .. } => None,
        }
    }
}

/// How far a batch got into Kafka, in seq terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Prefix {
    /// The last seq of the confirmed prefix; `None` if not even the first event is confirmed.
    upto: Option<u64>,
    /// Domain events in the prefix.
    produced: usize,
    /// Dead letters in the prefix.
    dead_lettered: usize,
    /// Tombstones in the prefix.
    skipped: usize,
}

/// The events before the first message Kafka did not confirm, given that the first `confirmed`
/// messages (in order) were. Tombstones need no confirmation and count as soon as everything
/// before them is confirmed.
fn confirmed_prefix(mapped: &[Mapped], confirmed: usize) -> Prefix {
    let mut p = Prefix::default();
    let mut index = 0;
    for m in mapped {
        match m {
            Mapped::Skip { seq } => {
                p.skipped += 1;
                p.upto = Some(*seq);
            }
            Mapped::Produce(o) => {
                if index >= confirmed {
                    break;
                }
                index += 1;
                if o.dead_letter.is_some() {
                    p.dead_lettered += 1;
                } else {
                    p.produced += 1;
                }
                p.upto = Some(o.seq);
            }
        }
    }
    p
}

/// The per-frame logic, shared by every node's worker.
pub struct Pipeline {
    registry: Registry,
    sink: KafkaSink,
    limits: FrameLimits,
    lock_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Pipeline {
    /// A pipeline storing through `registry` and `sink`, counting into `metrics`.
    pub fn new(
        registry: Registry,
        sink: KafkaSink,
        limits: FrameLimits,
        lock_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Pipeline { registry, sink, limits, lock_timeout, metrics }
    }

    /// Readiness: the broker answers the producer's metadata request.
    pub async fn kafka_reachable(&self) -> Result<(), String> {
        crate::kafka::reachable(self.sink.current()).await
    }

    /// Handles one frame that arrived on `node`'s uplink topic. Never panics on any input; every
    /// error becomes an [`Outcome`]. With tracing on, the handling is a span whose context the
    /// batch's Kafka records carry.
    pub async fn handle_uplink(&self, node: &NodeId, bytes: &[u8]) -> Outcome {
        use tracing::Instrument;
        let span = crate::trace::ingest_span(node.as_str(), bytes.len());
        let outcome = self.handle_uplink_traced(node, bytes).instrument(span.clone()).await;
        if !span.is_disabled() {
            let (events, name) = match &outcome {
                Outcome::Stored { produced, .. } => (*produced, "stored"),
                Outcome::PartlyStored { .. } => (0, "partly_stored"),
                Outcome::Duplicate { .. } => (0, "duplicate"),
                Outcome::Gap { .. } => (0, "gap"),
                Outcome::Rejected { reason, .. } => (0, *reason),
                Outcome::Failed { .. } => (0, "failed"),
            };
            span.record("nimbus.events", events);
            span.record("nimbus.outcome", name);
        }
        outcome
    }

    async fn handle_uplink_traced(&self, node: &NodeId, bytes: &[u8]) -> Outcome {
        let mut stats = ReceiverStats::default();
        let decoded = receiver::decode_uplink(bytes, node, self.limits, &mut stats);
        self.metrics.merge_decode(&stats);
        let batch = match decoded {
            Ok(batch) => batch,
            Err(e) => return self.reject(node, rejection_reason(&e), e.to_string(), bytes.len()).await,
        };
        let lock = match self.registry.lock(node, self.lock_timeout).await {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                self.metrics.add_unknown_node(1);
                return self.reject(node, "unknown_node", "node is not in the registry".into(), bytes.len()).await;
            }
            Err(e) => return self.store_failed(format!("registry lock: {e}")),
        };
        let decision = receiver::classify(lock.high_water_mark(), &batch);
        self.metrics.record(&decision);
        let (events, upto_seq) = match decision {
            Decision::Duplicate { ack } => {
                let _ = lock.release().await;
                return Outcome::Duplicate { upto: ack };
            }
            Decision::Gap { resend_from } => {
                let _ = lock.release().await;
                return Outcome::Gap { resend_from };
            }
            Decision::Accept { events, upto_seq } => (events, upto_seq),
        };

        let ctx = BatchContext::new(&batch);
        let now = Utc::now();
        let mapped: Vec<Mapped> = events.iter().map(|ev| mapping::map_event(&ctx, ev, now)).collect();
        let outgoing: Vec<&mapping::Outgoing> = mapped
            .iter()
            .filter_map(|m| match m {
                Mapped::Produce(o) => Some(o),
                Mapped::Skip { .. } => None,
            })
            .collect();
        for o in &outgoing {
            if let Some(reason) = &o.dead_letter {
                tracing::warn!(node = %node, seq = o.seq, %reason, "poison event from the node goes to dlq.events");
            }
        }
        let delivery = self.sink.deliver(&outgoing).await;

        let Prefix { upto: confirmed_upto, produced, dead_lettered, skipped } =
            confirmed_prefix(&mapped, delivery.confirmed);
        self.count_confirmed(&mapped, events, &outgoing, delivery.confirmed);
        self.metrics.add_events_produced(produced as u64);
        self.metrics.add_dead_lettered(dead_lettered as u64);
        self.metrics.add_tombstones_skipped(skipped as u64);
        if let Some(failure) = &delivery.failure {
            self.metrics.add_delivery_failures(1);
            tracing::warn!(node = %node, first_seq = batch.first_seq, upto_seq, confirmed = delivery.confirmed,
                           error = %failure, "Kafka did not confirm the batch; not acking the rest");
        }
        let Some(confirmed_upto) = confirmed_upto else {
            // Nothing confirmed: dropping the lock rolls back; the mark is untouched.
            drop(lock);
            return Outcome::Failed { error: delivery.failure.unwrap_or_else(|| "nothing confirmed".into()) };
        };
        for (uid, seen_at) in events.iter().filter(|e| e.seq <= confirmed_upto).filter_map(unknown_card) {
            if let Err(e) = lock.record_unknown_card(&uid, seen_at).await {
                return self.store_failed(format!("record unknown card: {e}"));
            }
        }
        match lock.advance(confirmed_upto).await {
            Ok(upto) => match delivery.failure {
                None => Outcome::Stored { upto, produced, dead_lettered, skipped },
                Some(failure) => Outcome::PartlyStored { upto, failure },
            },
            Err(e) => self.store_failed(format!("advance mark to {confirmed_upto}: {e}")),
        }
    }

    /// The seed's `kafka_messages_produced_total{topic,event_type}` and
    /// `kafka_dlq_messages_total` for the confirmed messages, `kafka_producer_errors_total` for
    /// the first unconfirmed one.
    fn count_confirmed(
        &self,
        mapped: &[Mapped],
        events: &[nimbus_sync::frame::EdgeEvent],
        outgoing: &[&mapping::Outgoing],
        confirmed: usize,
    ) {
        let registry = self.metrics.registry();
        let produced = mapped.iter().zip(events).filter_map(|(m, ev)| match m {
            Mapped::Produce(o) => Some((o, ev)),
            Mapped::Skip { .. } => None,
        });
        for (o, ev) in produced.take(confirmed) {
            if o.dead_letter.is_some() {
                registry.add(&KAFKA_DLQ, &[("original_topic", &ev.topic), ("failure_reason", "unparseable")], 1);
            } else {
                registry.add(&KAFKA_PRODUCED, &[("topic", o.topic.name()), ("event_type", &ev.event_type)], 1);
            }
        }
        if let Some(failed) = outgoing.get(confirmed) {
            registry.add(&KAFKA_PRODUCER_ERRORS, &[("topic", failed.topic.name())], 1);
        }
    }

    /// Handles one message from `node`'s status topic: birth (online, boot, version) or last will.
    pub async fn handle_status(&self, node: &NodeId, bytes: &[u8]) {
        if bytes.is_empty() {
            // Clearing a retained status: nothing to record.
            return;
        }
        let (online, boot_id, version, backlog) = match frame::decode(bytes, self.limits) {
            Ok(Message::Status(Status::Online { node_id, boot_id, version, .. })) if &node_id == node => {
                (true, Some(boot_id), Some(version), None)
            }
            Ok(Message::Status(Status::Heartbeat { node_id, boot_id, backlog, .. })) if &node_id == node => {
                (true, Some(boot_id), None, Some(i64::try_from(backlog).unwrap_or(i64::MAX)))
            }
            Ok(Message::Status(Status::Offline { node_id })) if &node_id == node => (false, None, None, None),
            other => {
                let reason = match &other {
                    Ok(Message::Status(_)) => "status_wrong_node",
                    Ok(_) => "status_not_a_status",
                    Err(_) => "status_corrupt",
                };
                self.metrics.add_status_rejected(1);
                tracing::warn!(node = %node, reason, len = bytes.len(), "refused a status message");
                if let Err(e) = self.registry.reject(node.as_str(), reason).await {
                    tracing::warn!(node = %node, error = %e, "cannot count the rejection");
                }
                return;
            }
        };
        if let Some(backlog) = backlog {
            self.metrics.registry().set(&NODE_BACKLOG, &[("node", node.as_str())], backlog as f64);
        }
        match self.registry.status(node, online, boot_id.as_deref(), version.as_deref(), backlog).await {
            Ok(()) => {
                self.metrics.add_status_updates(1);
                tracing::debug!(node = %node, online, ?boot_id, ?version, "node status");
            }
            Err(e) => tracing::warn!(node = %node, error = %e, "cannot record the node's status"),
        }
    }

    async fn reject(&self, node: &NodeId, reason: &'static str, detail: String, len: usize) -> Outcome {
        tracing::warn!(node = %node, reason, len, detail = %detail, "refused an uplink frame");
        if let Err(e) = self.registry.reject(node.as_str(), reason).await {
            tracing::warn!(node = %node, error = %e, "cannot count the rejection");
        }
        Outcome::Rejected { reason, detail }
    }

    fn store_failed(&self, error: String) -> Outcome {
        self.metrics.add_store_failures(1);
        tracing::warn!(error = %error, "registry failed; not acking");
        Outcome::Failed { error }
    }
}

#[cfg(test)]
mod tests {
    use nimbus_core::topics::Topic;

    use super::*;
    use crate::ingest::mapping::Outgoing;

    fn produce(seq: u64, dead: bool) -> Mapped {
        Mapped::Produce(Outgoing {
            seq,
            topic: Topic::AttendanceEvents,
            key: "k".into(),
            payload: "{}".into(),
            dead_letter: dead.then(|| "bad".to_owned()),
        })
    }

    #[test]
    fn the_confirmed_prefix_stops_at_the_first_unconfirmed_message() {
        let batch = [produce(5, false), Mapped::Skip { seq: 6 }, produce(7, true), produce(8, false)];
        let p = |confirmed| confirmed_prefix(&batch, confirmed);
        assert_eq!(p(3), Prefix { upto: Some(8), produced: 2, dead_lettered: 1, skipped: 1 });
        assert_eq!(p(2), Prefix { upto: Some(7), produced: 1, dead_lettered: 1, skipped: 1 });
        assert_eq!(p(1), Prefix { upto: Some(6), produced: 1, dead_lettered: 0, skipped: 1 }, "tombstone rides along");
        assert_eq!(p(0), Prefix::default(), "nothing confirmed: no mark to move");
        let only_tombstones = [Mapped::Skip { seq: 1 }, Mapped::Skip { seq: 2 }];
        assert_eq!(confirmed_prefix(&only_tombstones, 0).upto, Some(2));
    }

    #[test]
    fn replies_ack_only_committed_marks_and_never_answer_corruption() {
        let decode = |o: Outcome| o.reply().map(|f| frame::decode(&f, FrameLimits::default()).unwrap());
        let stored = Outcome::Stored { upto: 9, produced: 1, dead_lettered: 0, skipped: 0 };
        assert_eq!(decode(stored), Some(Message::Ack { upto_seq: 9 }));
        assert_eq!(decode(Outcome::PartlyStored { upto: 7, failure: "x".into() }), Some(Message::Ack { upto_seq: 7 }));
        assert_eq!(decode(Outcome::Duplicate { upto: 9 }), Some(Message::Ack { upto_seq: 9 }));
        assert_eq!(decode(Outcome::Gap { resend_from: 10 }), Some(Message::Resend { from_seq: 10 }));
        assert_eq!(decode(Outcome::Failed { error: "kafka".into() }), None);
        assert_eq!(decode(Outcome::Rejected { reason: "checksum", detail: String::new() }), None);
        assert_eq!(
            decode(Outcome::Rejected { reason: "unknown_node", detail: String::new() }),
            Some(Message::Reject { reason: "unknown_node".into() })
        );
    }
}
