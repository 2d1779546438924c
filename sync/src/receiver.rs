//! The cloud's side of the protocol for one node, with no I/O: the caller keeps each node's
//! high-water mark `hwm` (the highest seq confirmed by Kafka, persisted; 0 before the first),
//! decodes uplink frames with [`decode_uplink`], asks [`classify`] what to do with a batch, and
//! acks with [`ack_after_confirm`] only once Kafka confirmed every accepted event.
//!
//! Exactly once end to end rests on three facts: the node resends until acked (at least once),
//! the receiver stores only seqs above `hwm` and moves `hwm` only after Kafka confirmed them, in
//! order (no duplicates, no gaps), and each event's id is derived from `(node, seq)`
//! ([`crate::identity`]), so consumers can drop the duplicate a crash between Kafka's confirmation
//! and persisting `hwm` can still produce.
//!
//! Classify and store one node's batches serially (or move `hwm` with a compare-and-set): with the
//! shared uplink subscription two ingest instances may receive copies of the same node's frame at
//! once, and both classifying against the same old `hwm` would store the events twice.

use nimbus_core::ids::NodeId;

use crate::frame::{Batch, EdgeEvent, FrameError, FrameLimits, Message, decode, encode};

/// What to do with a batch, given the node's `hwm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Every event is already stored (a resend, or a duplicate from the broker): store nothing,
    /// but ack `hwm` again, since the node evidently missed the earlier ack.
    Duplicate {
        /// The ack to send: the current `hwm`.
        ack: u64,
    },
    /// The batch starts after a missing seq: store nothing and ask for `resend_from = hwm + 1`.
    Gap {
        /// First missing seq.
        resend_from: u64,
    },
    /// Store these events to Kafka in order, then ack `upto_seq` via [`ack_after_confirm`].
    /// Overlapping batches arrive with their already-stored prefix dropped. If Kafka refuses any
    /// of them, move `hwm` at most to the end of the confirmed prefix and ack only that: the node
    /// resends the rest, and event ids let consumers drop whatever did get through twice.
    Accept {
        /// The events with `seq > hwm`; never empty.
        events: &'a [EdgeEvent],
        /// The last seq of the batch: the new `hwm` once Kafka confirmed all of `events`.
        upto_seq: u64,
    },
}

impl Decision<'_> {
    /// The frame to send back right away: the re-ack of a duplicate or the resend request of a
    /// gap. `None` for `Accept`, whose ack must wait for Kafka.
    pub fn immediate_reply(&self) -> Option<Vec<u8>> {
        match *self {
            Decision::Duplicate { ack } => Some(ack_after_confirm(ack)),
            Decision::Gap { resend_from } => Some(resend_request(resend_from)),
            Decision::Accept { .. } => None,
        }
    }
}

/// Classifies a decoded (hence contiguous) batch against the node's `hwm`. An empty batch counts
/// as a duplicate, so it works as a probe that returns the current `hwm`.
pub fn classify(hwm: u64, batch: &Batch) -> Decision<'_> {
    let Some(last) = batch.last_seq() else {
        return Decision::Duplicate { ack: hwm };
    };
    if last <= hwm {
        return Decision::Duplicate { ack: hwm };
    }
    // hwm < last <= u64::MAX, so hwm + 1 cannot overflow.
    let next = hwm + 1;
    if batch.first_seq > next {
        return Decision::Gap { resend_from: next };
    }
    // first_seq <= next <= last = first_seq + len - 1, so the offset is within the events.
    let skip = usize::try_from(next - batch.first_seq).unwrap_or(usize::MAX).min(batch.events.len());
    Decision::Accept { events: &batch.events[skip..], upto_seq: last }
}

/// The ack frame for a node once Kafka confirmed every event up to `new_hwm` (and `new_hwm` is
/// persisted). Never send it earlier: the node deletes those events when it arrives.
pub fn ack_after_confirm(new_hwm: u64) -> Vec<u8> {
    encode(&Message::Ack { upto_seq: new_hwm })
}

/// The frame asking a node to send again from `from_seq` (= `hwm + 1`). Also useful after a
/// corrupt frame, to skip the node's ack timeout.
pub fn resend_request(from_seq: u64) -> Vec<u8> {
    encode(&Message::Resend { from_seq })
}

/// Why an uplink frame was not a batch to classify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UplinkError {
    /// Not a valid frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A valid frame, but not a `Batch` (wrong topic, or a confused client).
    #[error("uplink frame is not a batch")]
    NotABatch,
    /// The batch names another node than the topic it arrived on, which the broker's ACL ties to
    /// the client: refused, or a node could write into another's stream.
    #[error("batch from {claimed} arrived on another node's topic")]
    WrongNode {
        /// The node id in the batch.
        claimed: NodeId,
    },
}

/// Decodes a frame from `topic_node`'s `up` topic into a batch, counting the outcome in `stats`.
pub fn decode_uplink(
    frame: &[u8],
    topic_node: &NodeId,
    limits: FrameLimits,
    stats: &mut ReceiverStats,
) -> Result<Batch, UplinkError> {
    let result = match decode(frame, limits) {
        Ok(Message::Batch(batch)) if &batch.node_id == topic_node => Ok(batch),
        Ok(Message::Batch(batch)) => Err(UplinkError::WrongNode { claimed: batch.node_id }),
        Ok(_) => Err(UplinkError::NotABatch),
        Err(e) => Err(UplinkError::Frame(e)),
    };
    match &result {
        Ok(_) => stats.frames_ok += 1,
        Err(e) => stats.rejected.count(e),
    }
    result
}

/// Refused uplink frames by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectedFrames {
    /// [`FrameError::Empty`].
    pub empty: u64,
    /// [`FrameError::Truncated`].
    pub truncated: u64,
    /// [`FrameError::UnknownVersion`]: a node running a newer format than this cloud.
    pub unknown_version: u64,
    /// [`FrameError::TooLarge`].
    pub too_large: u64,
    /// [`FrameError::Checksum`]: corruption on the way.
    pub checksum: u64,
    /// [`FrameError::TooManyEvents`].
    pub too_many_events: u64,
    /// [`FrameError::Malformed`]: a sender bug.
    pub malformed: u64,
    /// [`FrameError::NonContiguous`]: a sender bug.
    pub non_contiguous: u64,
    /// [`UplinkError::NotABatch`].
    pub not_a_batch: u64,
    /// [`UplinkError::WrongNode`]: a misconfigured or hostile client.
    pub wrong_node: u64,
}

impl RejectedFrames {
    /// All refused frames.
    pub fn total(&self) -> u64 {
        self.empty
            + self.truncated
            + self.unknown_version
            + self.too_large
            + self.checksum
            + self.too_many_events
            + self.malformed
            + self.non_contiguous
            + self.not_a_batch
            + self.wrong_node
    }

    fn count(&mut self, e: &UplinkError) {
        let counter = match e {
            UplinkError::Frame(FrameError::Empty) => &mut self.empty,
            UplinkError::Frame(FrameError::Truncated(_)) => &mut self.truncated,
            UplinkError::Frame(FrameError::UnknownVersion(_)) => &mut self.unknown_version,
            UplinkError::Frame(FrameError::TooLarge { .. }) => &mut self.too_large,
            UplinkError::Frame(FrameError::Checksum) => &mut self.checksum,
            UplinkError::Frame(FrameError::TooManyEvents { .. }) => &mut self.too_many_events,
            UplinkError::Frame(FrameError::Malformed(_)) => &mut self.malformed,
            UplinkError::Frame(FrameError::NonContiguous) => &mut self.non_contiguous,
            UplinkError::NotABatch => &mut self.not_a_batch,
            UplinkError::WrongNode { .. } => &mut self.wrong_node,
        };
        *counter += 1;
    }
}

/// Counters of one receiver (per node or per ingest instance), for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Frames decoded into a batch for the right node.
    pub frames_ok: u64,
    /// Frames refused, by reason.
    pub rejected: RejectedFrames,
    /// Batches entirely at or below `hwm`.
    pub duplicates: u64,
    /// Batches starting beyond `hwm + 1`.
    pub gaps: u64,
    /// Batches with new events.
    pub accepted: u64,
    /// New events handed to Kafka.
    pub events_accepted: u64,
}

impl ReceiverStats {
    /// Counts a [`classify`] outcome.
    pub fn record(&mut self, decision: &Decision<'_>) {
        match decision {
            Decision::Duplicate { .. } => self.duplicates += 1,
            Decision::Gap { .. } => self.gaps += 1,
            Decision::Accept { events, .. } => {
                self.accepted += 1;
                self.events_accepted += events.len() as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeId {
        NodeId::new("room-101").unwrap()
    }

    fn batch(first: u64, last: u64) -> Batch {
        let events = (first..=last)
            .map(|seq| EdgeEvent {
                seq,
                event_type: "ATTENDANCE_MARKED".into(),
                topic: "attendance.events".into(),
                priority: 0,
                payload_json: "{}".into(),
                wall_ms: 0,
                clock_synced: false,
                boot_id: "b".into(),
            })
            .collect();
        Batch { node_id: node(), first_seq: first, events }
    }

    fn accepted(d: Decision<'_>) -> (u64, u64, u64) {
        match d {
            Decision::Accept { events, upto_seq } => (events[0].seq, events.last().unwrap().seq, upto_seq),
            other => panic!("expected accept, got {other:?}"),
        }
    }

    #[test]
    fn the_next_batch_is_accepted_whole() {
        assert_eq!(accepted(classify(0, &batch(1, 10))), (1, 10, 10));
        assert_eq!(accepted(classify(10, &batch(11, 12))), (11, 12, 12));
    }

    #[test]
    fn an_overlapping_batch_is_accepted_without_its_stored_prefix() {
        assert_eq!(accepted(classify(5, &batch(1, 10))), (6, 10, 10));
        assert_eq!(accepted(classify(9, &batch(1, 10))), (10, 10, 10));
    }

    #[test]
    fn a_batch_at_or_below_hwm_is_a_duplicate_that_re_acks() {
        assert_eq!(classify(10, &batch(1, 10)), Decision::Duplicate { ack: 10 });
        assert_eq!(classify(50, &batch(3, 7)), Decision::Duplicate { ack: 50 });
        let reply = classify(10, &batch(1, 10)).immediate_reply().unwrap();
        assert_eq!(decode(&reply, FrameLimits::default()), Ok(Message::Ack { upto_seq: 10 }));
    }

    #[test]
    fn an_empty_batch_is_a_probe_answered_with_hwm() {
        let empty = Batch { node_id: node(), first_seq: 99, events: vec![] };
        assert_eq!(classify(4, &empty), Decision::Duplicate { ack: 4 });
    }

    #[test]
    fn a_batch_after_a_missing_seq_is_a_gap_that_asks_for_hwm_plus_one() {
        assert_eq!(classify(0, &batch(2, 5)), Decision::Gap { resend_from: 1 });
        assert_eq!(classify(10, &batch(12, 20)), Decision::Gap { resend_from: 11 });
        let reply = classify(10, &batch(12, 20)).immediate_reply().unwrap();
        assert_eq!(decode(&reply, FrameLimits::default()), Ok(Message::Resend { from_seq: 11 }));
    }

    #[test]
    fn accept_has_no_immediate_reply_and_the_ack_comes_after_confirmation() {
        let b = batch(1, 3);
        assert_eq!(classify(0, &b).immediate_reply(), None);
        assert_eq!(decode(&ack_after_confirm(3), FrameLimits::default()), Ok(Message::Ack { upto_seq: 3 }));
    }

    #[test]
    fn classify_never_panics_at_the_ends_of_the_seq_space() {
        let mut top = batch(1, 1);
        top.first_seq = u64::MAX;
        top.events[0].seq = u64::MAX;
        assert_eq!(classify(u64::MAX - 1, &top), Decision::Accept { events: &top.events, upto_seq: u64::MAX });
        assert_eq!(classify(u64::MAX, &top), Decision::Duplicate { ack: u64::MAX });
        assert_eq!(classify(0, &top), Decision::Gap { resend_from: 1 });
    }

    #[test]
    fn decode_uplink_counts_each_outcome() {
        let mut stats = ReceiverStats::default();
        let limits = FrameLimits::default();
        let good = encode(&Message::Batch(batch(1, 2)));
        assert!(decode_uplink(&good, &node(), limits, &mut stats).is_ok());
        let other = NodeId::new("room-102").unwrap();
        assert!(matches!(decode_uplink(&good, &other, limits, &mut stats), Err(UplinkError::WrongNode { .. })));
        let ack = encode(&Message::Ack { upto_seq: 1 });
        assert_eq!(decode_uplink(&ack, &node(), limits, &mut stats), Err(UplinkError::NotABatch));
        let mut corrupt = good.clone();
        corrupt[3] ^= 0x40;
        assert_eq!(decode_uplink(&corrupt, &node(), limits, &mut stats), Err(FrameError::Checksum.into()));
        let mut future = good;
        future[0] = 3;
        assert_eq!(decode_uplink(&future, &node(), limits, &mut stats), Err(FrameError::UnknownVersion(3).into()));
        assert_eq!(decode_uplink(&[], &node(), limits, &mut stats), Err(FrameError::Empty.into()));
        assert_eq!(stats.frames_ok, 1);
        let r = stats.rejected;
        assert_eq!((r.wrong_node, r.not_a_batch, r.checksum, r.unknown_version, r.empty), (1, 1, 1, 1, 1));
        assert_eq!(r.total(), 5);
    }

    #[test]
    fn stats_record_decisions() {
        let mut stats = ReceiverStats::default();
        let b = batch(1, 4);
        stats.record(&classify(0, &b));
        stats.record(&classify(2, &b));
        stats.record(&classify(4, &b));
        stats.record(&classify(9, &batch(20, 21)));
        assert_eq!((stats.accepted, stats.events_accepted, stats.duplicates, stats.gaps), (2, 6, 1, 1));
    }
}
