//! The node's side of the protocol as a state machine with no I/O: the caller owns the MQTT
//! client, the clock and the SQLite outbox, feeds in what happened (`on_ack`, `on_resend`,
//! `on_disconnect`) and does what [`Sender::poll`] and the returned [`Effect`]s say. That keeps
//! every retry and restart path testable with a fake peer (`tests/integration/exactly_once.rs`).
//!
//! # Rules
//! - **One batch in flight** (window of 1). The next batch is built only once the cloud has
//!   acknowledged the last one, so acks are cumulative, per-node order holds without reordering
//!   buffers, and a gap at the cloud can only mean the node lost track (which `Resend` repairs).
//!   Throughput is one batch (up to 500 events) per round trip, far more than a classroom makes.
//! - **Retransmit with capped exponential backoff**: the in-flight frame is resent unchanged after
//!   `ack_timeout_ms` (2 s), then 4 s, 8 s, … capped at `max_backoff_ms` (60 s), optionally
//!   jittered ([`Sender::with_jitter`]). After a reconnect it is resent at once and the backoff
//!   starts over.
//! - **Nothing is forgotten on restart**: the caller persists `acked_upto` together with deleting
//!   the acknowledged outbox rows (one transaction) and builds a new [`Sender`] from it; everything
//!   after it is sent again and the cloud drops what it already has.
//! - **Never delete what was not sent**: an ack is only applied up to the highest seq this sender
//!   has published.

use nimbus_core::ids::NodeId;

use crate::frame::{BatchBuilder, EdgeEvent, FrameLimits, Message, PushError, encode_compact};

/// Where unsent events come from: the node's outbox.
pub trait Outbox {
    /// Why a read failed (e.g. `rusqlite::Error`); [`Sender::poll`] passes it through unchanged.
    type Error;

    /// Up to `max` events with `seq >= from_seq`, in seq order. Must not skip seqs: the protocol
    /// needs a contiguous stream, so an evicted row has to stay as a tombstone, not leave a hole.
    fn pending_from(&self, from_seq: u64, max: usize) -> Result<Vec<EdgeEvent>, Self::Error>;
}

/// Timing and size settings of a [`Sender`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderConfig {
    /// Batch limits; must not exceed what the cloud decodes with.
    pub limits: FrameLimits,
    /// How long to wait for the first ack before resending: 2 s covers a Kafka produce round
    /// trip over a classroom uplink without resending batches that are merely slow.
    pub ack_timeout_ms: u64,
    /// Ceiling of the doubling backoff: 60 s keeps a node that reconnects after an outage from
    /// waiting long, while a broken cloud sees one resend per node per minute.
    pub max_backoff_ms: u64,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self { limits: FrameLimits::default(), ack_timeout_ms: 2_000, max_backoff_ms: 60_000 }
    }
}

impl SenderConfig {
    /// Wait before the next retransmission after `attempt` retransmissions (0 = after the first
    /// send): `ack_timeout_ms * 2^attempt`, capped at `max_backoff_ms`; never overflows.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        let factor = 1u64.checked_shl(attempt).unwrap_or(u64::MAX);
        self.ack_timeout_ms.saturating_mul(factor).min(self.max_backoff_ms)
    }
}

/// What the caller should do next.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Publish this frame on the node's `up` topic (QoS 1).
    Publish(Vec<u8>),
    /// Nothing to send now; poll again at [`Sender::next_wakeup`], on new outbox rows, or on any
    /// message from the cloud.
    Idle,
    /// The sender cannot go on without losing an event; it refuses to do that silently. Alert an
    /// operator; polling again returns the same until the outbox is repaired.
    Stalled(Stall),
}

/// Why the sender is stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// The outbox returned `found` where `expected` should be: a hole (an evicted row without a
    /// tombstone, or `acked_upto` persisted ahead of the deleted rows) or a seq going backwards.
    UnexpectedSeq {
        /// The seq the stream needs next.
        expected: u64,
        /// The first seq the outbox returned.
        found: u64,
    },
    /// This event alone exceeds the frame limits, so it can never be sent.
    EventTooLarge {
        /// Its seq.
        seq: u64,
    },
}

/// What the caller must do after a message from the cloud.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Nothing.
    None,
    /// Delete outbox rows with `seq <= upto_seq` and persist `acked_upto = upto_seq`, in one
    /// transaction.
    Delete {
        /// New `acked_upto`.
        upto_seq: u64,
    },
}

/// The batch awaiting an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Its first seq.
    pub first_seq: u64,
    /// Its last seq.
    pub last_seq: u64,
    /// When it was last (re)sent, caller's milliseconds.
    pub sent_at_ms: u64,
    /// Retransmissions since the first send or the last reconnect.
    pub attempt: u32,
    /// When it is resent if no ack arrives.
    pub deadline_ms: u64,
}

/// Counters for the node's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// New batches published.
    pub batches_sent: u64,
    /// In-flight batches published again (timeout or reconnect).
    pub retransmits: u64,
    /// Acks that advanced `acked_upto`.
    pub acks: u64,
    /// Acks at or below `acked_upto` (duplicated or reordered on the way).
    pub stale_acks: u64,
    /// Acks or resend requests claiming seqs this sender never published; applied only up to what
    /// was published. Nonzero in steady state means the cloud's state disagrees with the node's.
    pub acks_beyond_sent: u64,
    /// Resend requests that moved the send position.
    pub rewinds: u64,
    /// `Reject` messages received.
    pub rejects: u64,
}

/// Turns a jittered delay into the one used; called with the nominal backoff.
type Jitter = Box<dyn FnMut(u64) -> u64 + Send>;

/// The node's sync state machine. See the module docs for the rules.
pub struct Sender {
    node_id: NodeId,
    config: SenderConfig,
    acked_upto: u64,
    /// First seq of the next new batch (the in-flight batch's `last_seq + 1` while one is out).
    next_seq: u64,
    /// Highest seq published by this instance (starts at `acked_upto`); bounds what acks may claim.
    max_sent: u64,
    in_flight: Option<(InFlight, Vec<u8>)>,
    /// Resend the in-flight batch on the next poll (after a disconnect).
    resend_now: bool,
    jitter: Option<Jitter>,
    stats: SenderStats,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("node_id", &self.node_id)
            .field("acked_upto", &self.acked_upto)
            .field("next_seq", &self.next_seq)
            .field("in_flight", &self.in_flight())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender resuming after `acked_upto` (0 on a fresh node), as persisted by the caller.
    pub fn new(node_id: NodeId, acked_upto: u64, config: SenderConfig) -> Self {
        Self {
            node_id,
            config,
            acked_upto,
            next_seq: acked_upto.saturating_add(1),
            max_sent: acked_upto,
            in_flight: None,
            resend_now: false,
            jitter: None,
            stats: SenderStats::default(),
        }
    }

    /// Spreads retransmissions of many nodes after a shared outage: `f(nominal_ms)` returns the
    /// delay to use (e.g. ±20 % from the caller's RNG). Injected so tests stay deterministic.
    pub fn with_jitter(mut self, f: impl FnMut(u64) -> u64 + Send + 'static) -> Self {
        self.jitter = Some(Box::new(f));
        self
    }

    /// Every seq up to this one is safely in Kafka.
    pub fn acked_upto(&self) -> u64 {
        self.acked_upto
    }

    /// The batch awaiting an ack, if any.
    pub fn in_flight(&self) -> Option<InFlight> {
        self.in_flight.as_ref().map(|(f, _)| *f)
    }

    /// When the in-flight batch is due for a retransmission; `None` when nothing is in flight.
    pub fn next_wakeup(&self) -> Option<u64> {
        match &self.in_flight {
            Some(_) if self.resend_now => Some(0),
            Some((f, _)) => Some(f.deadline_ms),
            None => None,
        }
    }

    /// Counters.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    /// Decides what to publish at `now_ms` (any monotonic millisecond clock): the in-flight batch
    /// again when its ack is overdue or after a reconnect, else the next batch from `outbox`, else
    /// nothing. Only reads the outbox when nothing is in flight.
    pub fn poll<O: Outbox + ?Sized>(&mut self, now_ms: u64, outbox: &O) -> Result<Action, O::Error> {
        if let Some((f, frame)) = self.in_flight.take() {
            let attempt = if self.resend_now {
                0
            } else if now_ms >= f.deadline_ms {
                f.attempt.saturating_add(1)
            } else {
                self.in_flight = Some((f, frame));
                return Ok(Action::Idle);
            };
            let deadline_ms = now_ms.saturating_add(self.delay_ms(attempt));
            self.resend_now = false;
            self.stats.retransmits += 1;
            self.in_flight = Some((InFlight { sent_at_ms: now_ms, attempt, deadline_ms, ..f }, frame.clone()));
            return Ok(Action::Publish(frame));
        }
        self.resend_now = false;

        let events = outbox.pending_from(self.next_seq, self.config.limits.max_events)?;
        let Some(first) = events.first() else {
            return Ok(Action::Idle);
        };
        if first.seq != self.next_seq {
            return Ok(Action::Stalled(Stall::UnexpectedSeq { expected: self.next_seq, found: first.seq }));
        }
        let mut builder = BatchBuilder::new(self.node_id.clone(), self.config.limits);
        for event in &events {
            match builder.push(event) {
                Ok(()) => {}
                Err(PushError::EventTooLarge { seq }) => return Ok(Action::Stalled(Stall::EventTooLarge { seq })),
                // Full, or a hole further on: send the contiguous prefix; a hole at the front of
                // the next read is reported then.
                Err(PushError::Full | PushError::NotContiguous { .. }) => break,
            }
        }
        let Some(batch) = builder.finish() else {
            return Ok(Action::Idle);
        };
        let (first_seq, last_seq) = (batch.first_seq, batch.last_seq().unwrap_or(batch.first_seq));
        let frame = encode_compact(&Message::Batch(batch));
        let deadline_ms = now_ms.saturating_add(self.delay_ms(0));
        self.in_flight =
            Some((InFlight { first_seq, last_seq, sent_at_ms: now_ms, attempt: 0, deadline_ms }, frame.clone()));
        self.next_seq = last_seq.saturating_add(1);
        self.max_sent = self.max_sent.max(last_seq);
        self.stats.batches_sent += 1;
        Ok(Action::Publish(frame))
    }

    /// The cloud has every seq up to `upto_seq` in Kafka. Stale and duplicate acks are ignored;
    /// an ack beyond what this sender published is counted and applied only up to that.
    pub fn on_ack(&mut self, upto_seq: u64) -> Effect {
        let effect = self.acknowledge(upto_seq);
        match effect {
            Effect::Delete { .. } => self.stats.acks += 1,
            Effect::None => self.stats.stale_acks += 1,
        }
        effect
    }

    /// The cloud is missing `from_seq` (and has everything before it, which this acknowledges):
    /// the next poll sends from there. Requests for seqs already acknowledged resend from
    /// `acked_upto + 1`, since those rows are gone and the cloud has them anyway.
    pub fn on_resend(&mut self, from_seq: u64) -> Effect {
        let effect = self.acknowledge(from_seq.saturating_sub(1));
        let target = from_seq.max(self.acked_upto.saturating_add(1)).min(self.max_sent.saturating_add(1));
        if self.in_flight.is_some() || target != self.next_seq {
            self.in_flight = None;
            self.resend_now = false;
            self.next_seq = target;
            self.stats.rewinds += 1;
        }
        effect
    }

    /// The cloud refused a frame; the in-flight batch stays and is retried on its backoff.
    pub fn on_reject(&mut self) {
        self.stats.rejects += 1;
    }

    /// The connection dropped: whatever was in flight may be lost, so it is resent as soon as the
    /// caller polls after reconnecting, without waiting for its timeout.
    pub fn on_disconnect(&mut self) {
        if self.in_flight.is_some() {
            self.resend_now = true;
        }
    }

    /// Dispatches a decoded downlink message (`Ack`, `Resend`, `Reject`); other variants do not
    /// belong on the ack topic and are ignored.
    pub fn on_message(&mut self, msg: &Message) -> Effect {
        match msg {
            Message::Ack { upto_seq } => self.on_ack(*upto_seq),
            Message::Resend { from_seq } => self.on_resend(*from_seq),
            Message::Reject { .. } => {
                self.on_reject();
                Effect::None
            }
            Message::Batch(_) | Message::Status(_) | Message::Snapshot(_) => Effect::None,
        }
    }

    /// Moves `acked_upto` forward to `upto_seq`, clamped to what was published.
    fn acknowledge(&mut self, upto_seq: u64) -> Effect {
        if upto_seq <= self.acked_upto {
            return Effect::None;
        }
        let upto_seq = if upto_seq > self.max_sent {
            self.stats.acks_beyond_sent += 1;
            self.max_sent
        } else {
            upto_seq
        };
        if upto_seq <= self.acked_upto {
            return Effect::None;
        }
        self.acked_upto = upto_seq;
        if self.in_flight.as_ref().is_some_and(|(f, _)| f.last_seq <= upto_seq) {
            self.in_flight = None;
            self.resend_now = false;
        }
        self.next_seq = self.next_seq.max(upto_seq.saturating_add(1));
        Effect::Delete { upto_seq }
    }

    fn delay_ms(&mut self, attempt: u32) -> u64 {
        let nominal = self.config.backoff_ms(attempt);
        match &mut self.jitter {
            Some(jitter) => jitter(nominal),
            None => nominal,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::frame::{Batch, decode};

    /// An outbox of seqs `from..=to` in memory.
    struct Rows(Vec<EdgeEvent>);

    impl Rows {
        fn range(from: u64, to: u64) -> Self {
            Rows((from..=to).map(ev).collect())
        }
    }

    impl Outbox for Rows {
        type Error = Infallible;
        fn pending_from(&self, from_seq: u64, max: usize) -> Result<Vec<EdgeEvent>, Infallible> {
            Ok(self.0.iter().filter(|e| e.seq >= from_seq).take(max).cloned().collect())
        }
    }

    fn ev(seq: u64) -> EdgeEvent {
        EdgeEvent {
            seq,
            event_type: "ATTENDANCE_MARKED".into(),
            topic: "attendance.events".into(),
            priority: 0,
            payload_json: format!("{{\"n\":{seq}}}"),
            wall_ms: 0,
            clock_synced: true,
            boot_id: "b".into(),
        }
    }

    fn config(max_events: usize) -> SenderConfig {
        SenderConfig { limits: FrameLimits { max_events, ..FrameLimits::default() }, ..SenderConfig::default() }
    }

    fn sender(acked: u64, max_events: usize) -> Sender {
        Sender::new(NodeId::new("room-101").unwrap(), acked, config(max_events))
    }

    fn published(action: Action) -> Batch {
        match action {
            Action::Publish(frame) => match decode(&frame, FrameLimits::default()).unwrap() {
                Message::Batch(b) => b,
                other => panic!("not a batch: {other:?}"),
            },
            other => panic!("expected a publish, got {other:?}"),
        }
    }

    fn range(b: &Batch) -> (u64, u64) {
        (b.first_seq, b.last_seq().unwrap())
    }

    #[test]
    fn sends_one_batch_at_a_time_and_the_next_only_after_its_ack() {
        let rows = Rows::range(1, 25);
        let mut s = sender(0, 10);
        assert_eq!(range(&published(s.poll(0, &rows).unwrap())), (1, 10));
        assert_eq!(s.poll(1, &rows).unwrap(), Action::Idle);
        assert_eq!(s.on_ack(10), Effect::Delete { upto_seq: 10 });
        assert_eq!(range(&published(s.poll(2, &rows).unwrap())), (11, 20));
        assert_eq!(s.on_ack(20), Effect::Delete { upto_seq: 20 });
        assert_eq!(range(&published(s.poll(3, &rows).unwrap())), (21, 25));
        assert_eq!(s.on_ack(25), Effect::Delete { upto_seq: 25 });
        assert_eq!(s.poll(4, &rows).unwrap(), Action::Idle);
        assert_eq!(s.stats().batches_sent, 3);
    }

    #[test]
    fn resumes_after_the_persisted_acked_upto() {
        let rows = Rows::range(8, 12);
        let mut s = sender(7, 10);
        assert_eq!(range(&published(s.poll(0, &rows).unwrap())), (8, 12));
    }

    #[test]
    fn resends_the_same_frame_after_the_timeout_with_doubling_waits() {
        let rows = Rows::range(1, 3);
        let mut s = sender(0, 10);
        let Action::Publish(first) = s.poll(0, &rows).unwrap() else { panic!() };
        assert_eq!(s.poll(1_999, &rows).unwrap(), Action::Idle);
        assert_eq!(s.poll(2_000, &rows).unwrap(), Action::Publish(first.clone()));
        assert_eq!(s.in_flight().unwrap().deadline_ms, 2_000 + 4_000);
        assert_eq!(s.poll(5_999, &rows).unwrap(), Action::Idle);
        assert_eq!(s.poll(6_000, &rows).unwrap(), Action::Publish(first));
        assert_eq!(s.in_flight().unwrap().attempt, 2);
        assert_eq!(s.next_wakeup(), Some(6_000 + 8_000));
        assert_eq!(s.stats().retransmits, 2);
    }

    #[test]
    fn jitter_function_shapes_the_delay() {
        let rows = Rows::range(1, 1);
        let mut s = sender(0, 10).with_jitter(|ms| ms + 7);
        let _ = s.poll(0, &rows).unwrap();
        assert_eq!(s.next_wakeup(), Some(2_007));
    }

    #[test]
    fn stale_and_duplicate_acks_are_ignored_and_counted() {
        let rows = Rows::range(1, 20);
        let mut s = sender(0, 10);
        let _ = s.poll(0, &rows).unwrap();
        assert_eq!(s.on_ack(10), Effect::Delete { upto_seq: 10 });
        assert_eq!(s.on_ack(10), Effect::None);
        assert_eq!(s.on_ack(3), Effect::None);
        assert_eq!(s.on_ack(0), Effect::None);
        assert_eq!(s.stats().stale_acks, 3);
        assert_eq!(s.acked_upto(), 10);
    }

    #[test]
    fn an_ack_beyond_what_was_sent_never_deletes_unsent_rows() {
        let rows = Rows::range(1, 20);
        let mut s = sender(0, 10);
        assert_eq!(s.on_ack(5), Effect::None, "nothing sent yet");
        let _ = s.poll(0, &rows).unwrap();
        assert_eq!(s.on_ack(15), Effect::Delete { upto_seq: 10 });
        assert_eq!(s.stats().acks_beyond_sent, 2);
        assert_eq!(range(&published(s.poll(1, &rows).unwrap())), (11, 20));
    }

    #[test]
    fn a_partial_ack_keeps_the_batch_in_flight() {
        let rows = Rows::range(1, 20);
        let mut s = sender(0, 10);
        let _ = s.poll(0, &rows).unwrap();
        assert_eq!(s.on_ack(4), Effect::Delete { upto_seq: 4 });
        assert_eq!(s.in_flight().map(|f| (f.first_seq, f.last_seq)), Some((1, 10)));
        assert_eq!(s.poll(1, &rows).unwrap(), Action::Idle);
    }

    #[test]
    fn resend_rewinds_and_acknowledges_what_precedes_it() {
        let rows = Rows::range(1, 30);
        let mut s = sender(0, 10);
        let _ = s.poll(0, &rows).unwrap();
        assert_eq!(s.on_resend(6), Effect::Delete { upto_seq: 5 });
        assert_eq!(s.in_flight(), None);
        assert_eq!(range(&published(s.poll(1, &rows).unwrap())), (6, 15));
        assert_eq!(s.stats().rewinds, 1);
    }

    #[test]
    fn resend_of_already_acknowledged_seqs_restarts_after_acked_upto() {
        let rows = Rows::range(1, 30);
        let mut s = sender(0, 10);
        let _ = s.poll(0, &rows).unwrap();
        let _ = s.on_ack(10);
        let _ = s.poll(1, &rows).unwrap();
        assert_eq!(s.on_resend(3), Effect::None);
        assert_eq!(range(&published(s.poll(2, &rows).unwrap())), (11, 20));
    }

    #[test]
    fn resend_beyond_what_was_sent_is_clamped() {
        let rows = Rows::range(1, 30);
        let mut s = sender(0, 10);
        let _ = s.poll(0, &rows).unwrap();
        assert_eq!(s.on_resend(50), Effect::Delete { upto_seq: 10 });
        assert_eq!(s.stats().acks_beyond_sent, 1);
        assert_eq!(range(&published(s.poll(1, &rows).unwrap())), (11, 20));
    }

    #[test]
    fn disconnect_resends_the_in_flight_batch_at_once_and_restarts_the_backoff() {
        let rows = Rows::range(1, 3);
        let mut s = sender(0, 10);
        let Action::Publish(frame) = s.poll(0, &rows).unwrap() else { panic!() };
        let _ = s.poll(2_000, &rows).unwrap();
        let _ = s.poll(6_000, &rows).unwrap();
        s.on_disconnect();
        assert_eq!(s.next_wakeup(), Some(0));
        assert_eq!(s.poll(6_001, &rows).unwrap(), Action::Publish(frame));
        let f = s.in_flight().unwrap();
        assert_eq!((f.attempt, f.deadline_ms), (0, 8_001));
    }

    #[test]
    fn disconnect_with_nothing_in_flight_changes_nothing() {
        let rows = Rows::range(1, 0);
        let mut s = sender(0, 10);
        s.on_disconnect();
        assert_eq!(s.poll(0, &rows).unwrap(), Action::Idle);
        assert_eq!(s.next_wakeup(), None);
    }

    #[test]
    fn a_hole_in_the_outbox_stalls_instead_of_skipping() {
        let mut rows = Rows::range(1, 10);
        rows.0.retain(|e| e.seq != 6);
        let mut s = sender(0, 50);
        assert_eq!(range(&published(s.poll(0, &rows).unwrap())), (1, 5));
        let _ = s.on_ack(5);
        let stall = Action::Stalled(Stall::UnexpectedSeq { expected: 6, found: 7 });
        assert_eq!(s.poll(1, &rows).unwrap(), stall);
        assert_eq!(s.poll(2, &rows).unwrap(), stall);
    }

    #[test]
    fn an_event_too_large_for_any_frame_stalls() {
        let mut rows = Rows::range(1, 1);
        rows.0[0].payload_json = "x".repeat(FrameLimits::DEFAULT_MAX_FRAME_BYTES);
        let mut s = sender(0, 10);
        assert_eq!(s.poll(0, &rows).unwrap(), Action::Stalled(Stall::EventTooLarge { seq: 1 }));
    }

    #[test]
    fn on_message_dispatches_downlink_messages() {
        let rows = Rows::range(1, 3);
        let mut s = sender(0, 10);
        let _ = s.poll(0, &rows).unwrap();
        assert_eq!(s.on_message(&Message::Reject { reason: "no".into() }), Effect::None);
        assert_eq!(s.on_message(&Message::Ack { upto_seq: 3 }), Effect::Delete { upto_seq: 3 });
        assert_eq!(s.stats().rejects, 1);
    }

    #[test]
    fn backoff_doubles_from_the_ack_timeout_and_caps() {
        let c = SenderConfig::default();
        let waits: Vec<u64> = (0..8).map(|a| c.backoff_ms(a)).collect();
        assert_eq!(waits, [2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
        assert_eq!(c.backoff_ms(u32::MAX), 60_000);
    }
}
