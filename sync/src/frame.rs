//! The wire format of every MQTT payload in the protocol.
//!
//! A frame is `[version: u8 = 1][postcard body][crc32 of version + body, 4 bytes little-endian]`,
//! or, compact, `[version: u8 = 2][raw deflate of the postcard body][crc32 of version + deflated]`.
//!
//! - Version 2 ([`encode_compact`]) is what a node sends its batches in: an `ATTENDANCE_MARKED`
//!   carries the seed's JSON text, whose keys and statuses repeat for every student and every
//!   event of a batch, so deflate takes it to a fraction of its size (`cargo bench -p nimbus-edge
//!   --bench sync` prints the bytes). The body, once inflated, is the same [`Message`]: the
//!   cloud forwards exactly the JSON the node recorded. Every other frame (acks, statuses,
//!   snapshots) stays version 1, which every node in the field reads, and [`decode`] reads both,
//!   so nodes upgrade after the cloud. Inflating is bounded by [`FrameLimits::max_frame_bytes`],
//!   the same bound an uncompressed frame has, so a small frame cannot become a large body.
//!
//! - The version byte comes first and is checked before anything else, so a future format (which
//!   may even change the trailer) is reported as [`FrameError::UnknownVersion`], not as corruption.
//! - The CRC covers the version byte too: MQTT runs over TCP, but brokers, bridges and flash-backed
//!   queues are not checksummed end to end, and a retained snapshot must be whole or refused.
//! - The body is [`Message`] in postcard. Postcard writes enum variants by index and struct fields
//!   in order, so **the order of variants and fields below is the wire format**: append, never
//!   reorder; anything else needs a new [`VERSION`].
//!
//! [`decode`] takes untrusted bytes (any client the broker lets in, a corrupted retained
//! message) and never panics. Its memory use is bounded by the frame size: frames over
//! [`FrameLimits::max_frame_bytes`] are refused before parsing, a batch's event count is checked
//! against [`FrameLimits::max_events`] before its events are parsed, and postcard never allocates
//! for a length prefix more than the remaining input can hold (serde pre-allocates a `Vec` only
//! from a size hint, which postcard withholds when the claimed length exceeds the remaining
//! bytes, and strings are borrowed from the input before they are copied).

use nimbus_core::ids::NodeId;
use serde::{Deserialize, Serialize};

use crate::topics::SnapshotKind;

/// The plain frame format: every node reads and writes it.
pub const VERSION: u8 = 1;

/// The compact frame format: the body deflated (see the module docs). Decoded by clouds from this
/// version on; written only by [`encode_compact`].
pub const COMPACT_VERSION: u8 = 2;

/// Deflate level of [`encode_compact`]: 6, zlib's default; higher levels gain a few per cent on
/// these bodies for several times the CPU of a Pi.
const DEFLATE_LEVEL: u8 = 6;

/// Version byte plus CRC: the smallest frame that can be checked.
const OVERHEAD: usize = 1 + 4;

/// Postcard's index of [`Message::Batch`]; [`decode`] peeks at it to bound the event count before
/// parsing events.
const BATCH_TAG: u32 = 0;

/// Bounds on what [`decode`] accepts and what [`BatchBuilder`] produces. Both ends must agree:
/// a node building with larger limits than the cloud decodes with would be refused forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest whole frame, in bytes (version, body and CRC).
    pub max_frame_bytes: usize,
    /// Most events in one batch.
    pub max_events: usize,
}

impl FrameLimits {
    /// 256 KiB: far below the broker's packet limit, and a batch of this size is a few seconds of
    /// a Pi's slow uplink, so a resend costs little.
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 256 * 1024;
    /// 500 events: a whole lecture hall's taps in one batch, and one Kafka produce round.
    pub const DEFAULT_MAX_EVENTS: usize = 500;
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self { max_frame_bytes: Self::DEFAULT_MAX_FRAME_BYTES, max_events: Self::DEFAULT_MAX_EVENTS }
    }
}

/// One outbox row as it travels to the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeEvent {
    /// Position in the node's stream; with the node id it determines the event id
    /// ([`crate::identity::event_id`]).
    pub seq: u64,
    /// The seed event type (`ATTENDANCE_MARKED`, …).
    pub event_type: String,
    /// The seed Kafka topic the cloud produces it to.
    pub topic: String,
    /// The outbox's eviction class (0 = never evicted).
    pub priority: u8,
    /// The seed payload as JSON text: postcard has no JSON value type, and the cloud forwards the
    /// payload rather than reinterpreting it.
    pub payload_json: String,
    /// The node's wall clock when the event was written, in Unix milliseconds.
    pub wall_ms: i64,
    /// Whether that wall clock was synchronised (the cloud may distrust unsynced times).
    pub clock_synced: bool,
    /// The boot the event was written in, to tell clock resets apart.
    pub boot_id: String,
}

/// Consecutive events of one node, node -> cloud.
///
/// Invariant checked by [`decode`]: `first_seq >= 1` and `events[i].seq == first_seq + i`, so a
/// batch is a seq range and acks can be cumulative. Seq 0 is reserved: "nothing acknowledged".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The sender; the cloud also checks it against the topic it arrived on.
    pub node_id: NodeId,
    /// Seq of the first event (the batch's position even when `events` is empty).
    pub first_seq: u64,
    /// The events, in seq order.
    pub events: Vec<EdgeEvent>,
}

impl Batch {
    /// Seq of the last event by position (`first_seq + len - 1`), `None` for an empty batch.
    /// Computed from the range rather than read from the events, so callers slicing by it can
    /// never index out of bounds even on a hand-built, non-contiguous batch.
    pub fn last_seq(&self) -> Option<u64> {
        let len = u64::try_from(self.events.len()).ok()?;
        len.checked_sub(1).and_then(|n| self.first_seq.checked_add(n))
    }

    /// Whether the seqs form the range the protocol requires (see the type's docs).
    pub fn is_contiguous(&self) -> bool {
        self.first_seq >= 1 && (0u64..).zip(&self.events).all(|(i, e)| self.first_seq.checked_add(i) == Some(e.seq))
    }
}

/// A node's presence, published retained on its status topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Birth message, published after every connect.
    Online {
        /// The node.
        node_id: NodeId,
        /// Its current boot, so the cloud sees restarts.
        boot_id: String,
        /// Its software version, for rollouts.
        version: String,
        /// Its wall clock at connect, Unix milliseconds.
        at_ms: i64,
    },
    /// Last will: the broker publishes it when the node vanishes without disconnecting.
    Offline {
        /// The node.
        node_id: NodeId,
    },
    /// Published after the birth message and then periodically while connected, so operators
    /// see how much a node still has to send (appended last: older variants keep their wire
    /// encoding).
    Heartbeat {
        /// The node.
        node_id: NodeId,
        /// Its current boot.
        boot_id: String,
        /// Events waiting in its outbox (not yet acknowledged by the cloud).
        backlog: u64,
        /// Its wall clock, Unix milliseconds.
        at_ms: i64,
    },
}

/// A retained downlink snapshot, cloud -> node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// What it is (also the topic it is retained on).
    pub kind: SnapshotKind,
    /// Monotonic version, so a node keeps the newest it has seen and ignores replays.
    pub version: u64,
    /// The snapshot's own encoding (e.g. JSON); the frame's CRC guarantees it is whole.
    pub body: Vec<u8>,
}

/// Everything that travels in a frame. Which topic carries which variant:
///
/// | variant | topic | direction |
/// | --- | --- | --- |
/// | `Batch` | `…/up` | node -> cloud |
/// | `Ack`, `Resend`, `Reject` | `…/ack` | cloud -> node |
/// | `Status` | `…/status` (retained, and the last will) | node -> cloud |
/// | `Snapshot` | `…/down/{kind}` (retained) | cloud -> node |
///
/// One enum rather than one type per topic so that a frame is self-describing and one decoder
/// serves every topic; receivers refuse variants that do not belong on the topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Events to store (variant index 0; [`decode`] relies on it).
    Batch(Batch),
    /// Every event with `seq <= upto_seq` is confirmed by Kafka; the node may delete them.
    Ack {
        /// The cloud's high-water mark for the node.
        upto_seq: u64,
    },
    /// The cloud has every event below `from_seq` and is missing `from_seq`: send from there.
    /// Implies `Ack { upto_seq: from_seq - 1 }`.
    Resend {
        /// First seq the cloud wants.
        from_seq: u64,
    },
    /// The cloud refused an uplink frame for a reason resending will not fix by itself (wrong node
    /// id for the topic, unknown node). Diagnostic only: the node keeps retrying on its backoff.
    Reject {
        /// Human-readable reason for logs.
        reason: String,
    },
    /// Birth message or last will.
    Status(Status),
    /// A retained snapshot.
    Snapshot(Snapshot),
}

/// Why [`decode`] refused a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Zero bytes (e.g. an MQTT message clearing a retained topic).
    #[error("empty frame")]
    Empty,
    /// Shorter than a version byte and a CRC.
    #[error("frame of {0} bytes is too short to hold a version and a checksum")]
    Truncated(usize),
    /// A format this build does not speak.
    #[error("unknown frame version {0}")]
    UnknownVersion(u8),
    /// Over [`FrameLimits::max_frame_bytes`]; refused before any parsing.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Frame length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The CRC does not match: the frame was corrupted or cut short.
    #[error("frame checksum mismatch")]
    Checksum,
    /// A batch claims more than [`FrameLimits::max_events`] events; refused before parsing them.
    #[error("batch claims {count} events, the limit is {max}")]
    TooManyEvents {
        /// Claimed count.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// The checksum is right but the body is not a valid message: a bug in the sender, not line
    /// noise.
    #[error("malformed frame body: {0}")]
    Malformed(String),
    /// A batch whose seqs are not `first_seq, first_seq + 1, …` with `first_seq >= 1`.
    #[error("batch seqs are not contiguous from first_seq >= 1")]
    NonContiguous,
}

impl FrameError {
    /// A short stable label, for metrics and counters.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::Empty => "empty",
            FrameError::Truncated(_) => "truncated",
            FrameError::UnknownVersion(_) => "unknown_version",
            FrameError::TooLarge { .. } => "too_large",
            FrameError::Checksum => "checksum",
            FrameError::TooManyEvents { .. } => "too_many_events",
            FrameError::Malformed(_) => "malformed",
            FrameError::NonContiguous => "non_contiguous",
        }
    }
}

/// Encodes a message as a frame. Encoding does not apply [`FrameLimits`]: size batches with
/// [`BatchBuilder`].
pub fn encode(msg: &Message) -> Vec<u8> {
    // Serialising these types cannot fail: no maps, no unknown-length sequences, no custom errors.
    let mut out = postcard::to_extend(msg, vec![VERSION]).expect("postcard serialises every Message");
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Encodes a message as a compact frame (version 2, the body deflated), or as a plain one when
/// deflate does not make it smaller. Like [`encode`], it does not apply [`FrameLimits`]; a batch
/// sized with [`BatchBuilder`] stays within them, since the result is never larger than the
/// plain frame.
pub fn encode_compact(msg: &Message) -> Vec<u8> {
    let plain = encode(msg);
    let body = &plain[1..plain.len() - 4];
    let mut out = vec![COMPACT_VERSION];
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(body, DEFLATE_LEVEL));
    if out.len() + 4 >= plain.len() {
        return plain;
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes and validates a frame from untrusted bytes. Checks, in order: empty, size limit,
/// version, length, CRC, (version 2: inflate, bounded by the size limit), batch event count,
/// body, trailing bytes, batch contiguity.
pub fn decode(frame: &[u8], limits: FrameLimits) -> Result<Message, FrameError> {
    let Some(&version) = frame.first() else {
        return Err(FrameError::Empty);
    };
    if frame.len() > limits.max_frame_bytes {
        return Err(FrameError::TooLarge { len: frame.len(), max: limits.max_frame_bytes });
    }
    if version != VERSION && version != COMPACT_VERSION {
        return Err(FrameError::UnknownVersion(version));
    }
    if frame.len() < OVERHEAD {
        return Err(FrameError::Truncated(frame.len()));
    }
    let (covered, trailer) = frame.split_at(frame.len() - 4);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(trailer);
    if crc32fast::hash(covered) != u32::from_le_bytes(crc) {
        return Err(FrameError::Checksum);
    }
    let inflated;
    let body = if version == COMPACT_VERSION {
        // The plain frame this stands for may be at most the size limit: its body, 5 bytes less.
        let max_body = limits.max_frame_bytes.saturating_sub(OVERHEAD);
        inflated = miniz_oxide::inflate::decompress_to_vec_with_limit(&covered[1..], max_body).map_err(|e| {
            FrameError::Malformed(format!("compact body does not inflate within {max_body} bytes: {e:?}"))
        })?;
        &inflated[..]
    } else {
        &covered[1..]
    };
    check_event_count(body, limits.max_events)?;
    let (msg, rest) = postcard::take_from_bytes::<Message>(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!("{} trailing bytes after the message", rest.len())));
    }
    if let Message::Batch(batch) = &msg {
        // Re-checked after parsing in case the peek above was skipped on a body it could not read.
        if batch.events.len() > limits.max_events {
            return Err(FrameError::TooManyEvents { count: batch.events.len() as u64, max: limits.max_events });
        }
        if !batch.is_contiguous() {
            return Err(FrameError::NonContiguous);
        }
    }
    Ok(msg)
}

/// Reads a batch's header (variant index, node id, first seq, event count) without allocating and
/// refuses an event count over the limit before any event is parsed. Anything it cannot read is
/// left to the full parse to report.
fn check_event_count(body: &[u8], max_events: usize) -> Result<(), FrameError> {
    let Ok((tag, rest)) = postcard::take_from_bytes::<u32>(body) else {
        return Ok(());
    };
    if tag != BATCH_TAG {
        return Ok(());
    }
    // `Vec` lengths are varint `usize`, which reads identically as a varint `u64`.
    let Ok(((_node_id, _first_seq, count), _)) = postcard::take_from_bytes::<(&str, u64, u64)>(rest) else {
        return Ok(());
    };
    if count > max_events as u64 {
        return Err(FrameError::TooManyEvents { count, max: max_events });
    }
    Ok(())
}

/// Why [`BatchBuilder::push`] did not take an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// One more event would exceed the byte or event limit: send what is built.
    #[error("batch is full")]
    Full,
    /// The event is not the next seq (or is seq 0): batches are seq ranges.
    #[error("expected seq {expected}, got {got}")]
    NotContiguous {
        /// The seq that would fit.
        expected: u64,
        /// The event's seq.
        got: u64,
    },
    /// The event alone does not fit in a frame: it can never be sent under these limits.
    #[error("event {seq} alone exceeds the frame limits")]
    EventTooLarge {
        /// The event's seq.
        seq: u64,
    },
}

/// Builds a batch that is guaranteed to encode within [`FrameLimits`], so the sender never
/// produces a frame the cloud refuses for size. Sizes are computed exactly, not estimated.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    node_id: NodeId,
    limits: FrameLimits,
    first_seq: u64,
    events: Vec<EdgeEvent>,
    events_bytes: usize,
}

impl BatchBuilder {
    /// An empty batch for `node_id`.
    pub fn new(node_id: NodeId, limits: FrameLimits) -> Self {
        Self { node_id, limits, first_seq: 0, events: Vec::new(), events_bytes: 0 }
    }

    /// Appends the next event if it fits; otherwise leaves the batch unchanged.
    pub fn push(&mut self, event: &EdgeEvent) -> Result<(), PushError> {
        let expected = if self.events.is_empty() {
            event.seq.max(1)
        } else {
            // The range already ends at u64::MAX: nothing can follow.
            let Some(next) = self.first_seq.checked_add(self.events.len() as u64) else {
                return Err(PushError::Full);
            };
            next
        };
        if event.seq != expected {
            return Err(PushError::NotContiguous { expected, got: event.seq });
        }
        let first_seq = if self.events.is_empty() { event.seq } else { self.first_seq };
        let event_bytes = serialized_len(event);
        let count = self.events.len() + 1;
        let bytes = self.frame_len(first_seq, count, self.events_bytes.saturating_add(event_bytes));
        if count > self.limits.max_events || bytes > self.limits.max_frame_bytes {
            return Err(if self.events.is_empty() {
                PushError::EventTooLarge { seq: event.seq }
            } else {
                PushError::Full
            });
        }
        self.first_seq = first_seq;
        self.events.push(event.clone());
        self.events_bytes += event_bytes;
        Ok(())
    }

    /// Number of events taken.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event was taken.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Exact length of the frame [`encode`] will produce for the finished batch.
    pub fn encoded_len(&self) -> usize {
        self.frame_len(self.first_seq, self.events.len(), self.events_bytes)
    }

    /// The batch, or `None` if no event was taken (an empty batch has no position to send).
    pub fn finish(self) -> Option<Batch> {
        if self.events.is_empty() {
            return None;
        }
        Some(Batch { node_id: self.node_id, first_seq: self.first_seq, events: self.events })
    }

    fn frame_len(&self, first_seq: u64, count: usize, events_bytes: usize) -> usize {
        let node = self.node_id.as_str().len();
        OVERHEAD
            + varint_len(u64::from(BATCH_TAG))
            + varint_len(node as u64)
            + node
            + varint_len(first_seq)
            + varint_len(count as u64)
            + events_bytes
    }
}

/// Postcard size of one event, the unit the builder adds up.
fn serialized_len(event: &EdgeEvent) -> usize {
    postcard::serialize_with_flavor(event, postcard::ser_flavors::Size::default())
        .expect("postcard sizes every EdgeEvent")
}

/// Bytes in a postcard varint: 7 bits per byte.
fn varint_len(v: u64) -> usize {
    let bits = 64 - v.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeId {
        NodeId::new("room-101").unwrap()
    }

    fn event(seq: u64, payload_len: usize) -> EdgeEvent {
        EdgeEvent {
            seq,
            event_type: "ATTENDANCE_MARKED".into(),
            topic: "attendance.events".into(),
            priority: 0,
            payload_json: "x".repeat(payload_len),
            wall_ms: 1_700_000_000_000,
            clock_synced: true,
            boot_id: "boot-1".into(),
        }
    }

    fn attendance_batch(events: u64) -> Batch {
        let records: Vec<String> =
            (0..30).map(|i| format!(r#"{{"student_id":"2026{i:03}","status":"present","remarks":null}}"#)).collect();
        let payload = format!(r#"{{"course_id":"CS101","student_records":[{}]}}"#, records.join(","));
        let events = (1..=events).map(|seq| EdgeEvent { payload_json: payload.clone(), ..event(seq, 0) }).collect();
        Batch { node_id: node(), first_seq: 1, events }
    }

    #[test]
    fn a_compact_batch_decodes_to_the_same_batch_in_a_fraction_of_the_bytes() {
        let batch = attendance_batch(20);
        let plain = encode(&Message::Batch(batch.clone()));
        let compact = encode_compact(&Message::Batch(batch.clone()));
        assert_eq!(compact[0], COMPACT_VERSION);
        assert!(compact.len() * 4 < plain.len(), "{} vs {} bytes", compact.len(), plain.len());
        assert_eq!(decode(&compact, FrameLimits::default()), Ok(Message::Batch(batch)));
    }

    #[test]
    fn a_frame_of_the_previous_version_still_decodes() {
        // Version 1 byte for byte: `Ack { upto_seq: 7 }` (variant 1) and its CRC-32.
        let v1 = [1u8, 1, 7, 0xC7, 0x17, 0xFC, 0x79];
        assert_eq!(decode(&v1, FrameLimits::default()), Ok(Message::Ack { upto_seq: 7 }));
        assert_eq!(encode(&Message::Ack { upto_seq: 7 }), v1, "the plain encoding is still version 1");
        let batch = attendance_batch(3);
        assert_eq!(decode(&encode(&Message::Batch(batch.clone())), FrameLimits::default()), Ok(Message::Batch(batch)));
    }

    #[test]
    fn what_deflate_cannot_shrink_goes_out_plain() {
        let ack = Message::Ack { upto_seq: 7 };
        assert_eq!(encode_compact(&ack), encode(&ack));
    }

    #[test]
    fn a_compact_frame_that_inflates_past_the_limit_or_is_corrupt_is_refused() {
        let batch = attendance_batch(20);
        let compact = encode_compact(&Message::Batch(batch));
        let small = FrameLimits { max_frame_bytes: compact.len() + 100, max_events: 500 };
        assert!(matches!(decode(&compact, small), Err(FrameError::Malformed(_))), "a small frame, a large body");
        let mut bad = compact.clone();
        bad[10] ^= 0xFF;
        assert_eq!(decode(&bad, FrameLimits::default()), Err(FrameError::Checksum));
        // Garbage under a valid CRC: not deflate.
        let mut garbage = vec![COMPACT_VERSION, 0xFF, 0xFF, 0xFF];
        let crc = crc32fast::hash(&garbage);
        garbage.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(decode(&garbage, FrameLimits::default()), Err(FrameError::Malformed(_))));
        let mut v3 = compact;
        v3[0] = 3;
        assert_eq!(decode(&v3, FrameLimits::default()), Err(FrameError::UnknownVersion(3)));
    }

    #[test]
    fn varint_len_matches_postcard() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            assert_eq!(varint_len(v), postcard::to_allocvec(&v).unwrap().len(), "{v}");
        }
    }

    #[test]
    fn batch_is_variant_zero_on_the_wire() {
        let frame = encode(&Message::Batch(Batch { node_id: node(), first_seq: 1, events: vec![] }));
        assert_eq!(frame[1], BATCH_TAG as u8);
    }

    #[test]
    fn builder_predicts_the_exact_frame_length() {
        let mut b = BatchBuilder::new(node(), FrameLimits::default());
        for seq in 126..=260 {
            b.push(&event(seq, (seq as usize * 7) % 300)).unwrap();
            let predicted = b.encoded_len();
            let frame = encode(&Message::Batch(b.clone().finish().unwrap()));
            assert_eq!(predicted, frame.len(), "after seq {seq}");
        }
    }

    #[test]
    fn builder_stops_at_the_event_limit() {
        let limits = FrameLimits { max_events: 3, ..FrameLimits::default() };
        let mut b = BatchBuilder::new(node(), limits);
        for seq in 1..=3 {
            b.push(&event(seq, 10)).unwrap();
        }
        assert_eq!(b.push(&event(4, 10)), Err(PushError::Full));
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn builder_stops_at_the_byte_limit_and_the_result_decodes_under_it() {
        let limits = FrameLimits { max_frame_bytes: 1_000, max_events: 500 };
        let mut b = BatchBuilder::new(node(), limits);
        let mut seq = 1;
        while b.push(&event(seq, 100)).is_ok() {
            seq += 1;
        }
        assert!(b.len() >= 2);
        let frame = encode(&Message::Batch(b.finish().unwrap()));
        assert!(frame.len() <= 1_000);
        assert!(decode(&frame, limits).is_ok());
    }

    #[test]
    fn builder_reports_an_event_that_can_never_fit() {
        let limits = FrameLimits { max_frame_bytes: 100, max_events: 500 };
        let mut b = BatchBuilder::new(node(), limits);
        assert_eq!(b.push(&event(7, 200)), Err(PushError::EventTooLarge { seq: 7 }));
        assert!(b.is_empty());
        assert!(b.finish().is_none());
    }

    #[test]
    fn builder_refuses_gaps_reordering_and_seq_zero() {
        let mut b = BatchBuilder::new(node(), FrameLimits::default());
        assert_eq!(b.push(&event(0, 1)), Err(PushError::NotContiguous { expected: 1, got: 0 }));
        b.push(&event(5, 1)).unwrap();
        assert_eq!(b.push(&event(7, 1)), Err(PushError::NotContiguous { expected: 6, got: 7 }));
        assert_eq!(b.push(&event(5, 1)), Err(PushError::NotContiguous { expected: 6, got: 5 }));
        b.push(&event(6, 1)).unwrap();
        let batch = b.finish().unwrap();
        assert_eq!((batch.first_seq, batch.last_seq()), (5, Some(6)));
    }

    #[test]
    fn last_seq_is_positional_and_none_when_empty() {
        let mut batch = Batch { node_id: node(), first_seq: 10, events: vec![] };
        assert_eq!(batch.last_seq(), None);
        batch.events = vec![event(10, 0), event(11, 0), event(99, 0)];
        assert_eq!(batch.last_seq(), Some(12));
        assert!(!batch.is_contiguous());
    }
}
