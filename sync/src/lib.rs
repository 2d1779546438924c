//! # nimbus-sync
//!
//! The edge<->cloud protocol, independent of MQTT client and database: classroom nodes ship their
//! SQLite outbox (rows numbered by a strictly increasing per-node `seq`) to the cloud, which
//! bridges them into Kafka. It must lose nothing and double nothing:
//!
//! - **Per-node order**: a node has one batch of consecutive seqs in flight at a time
//!   ([`sender`]); the cloud stores only the seqs right after its high-water mark ([`receiver`]).
//! - **Acks mean "safely in Kafka"**: the cloud acks a seq only after Kafka confirmed it, and the
//!   node deletes outbox rows only when acked; until then it resends with capped backoff.
//! - **Deterministic event ids**: `event_id = UUIDv5(node, seq)` ([`identity`]), so a resend that
//!   does reach Kafka twice (a cloud crash between produce and ack) is recognisably the same event.
//! - **Checked frames**: every payload is versioned and CRC-checked, and decoding untrusted bytes
//!   is bounded in size and never panics ([`frame`]).
//!
//! ## Layout
//! - [`topics`]: `nimbus/v1/nodes/{node_id}/…` topic names and their parsing.
//! - [`frame`]: the wire format (`[version][postcard body][crc32]`), the [`frame::Message`]s it
//!   carries, limits, and a size-bounded [`frame::BatchBuilder`].
//! - [`identity`]: deterministic event ids.
//! - [`sender`]: the node's state machine (batching, acks, resend, backoff, restart).
//! - [`receiver`]: the cloud's per-node decision (accept, duplicate, gap) and its counters.
//! - `transport` (feature `mqtt`, default): rumqttc settings both ends share (persistent
//!   sessions, credentials, packet limits, optional TLS with feature `tls`) and reconnect backoff.
#![warn(missing_docs)]

pub mod frame;
pub mod identity;
pub mod receiver;
pub mod sender;
#[cfg(feature = "testing")]
pub mod testing;
pub mod topics;
#[cfg(feature = "mqtt")]
pub mod transport;
