//! # nimbus-core
//!
//! The contract every NimbusU Edge component shares: identifiers, what a card reader reports, and
//! the seed's Kafka event schemas, topics and consumer groups (`docs/contract/`). Field names,
//! event types, topic names and partition counts here are the seed's, spelled exactly.
//!
//! ## Layout
//!
//! Always available (`no_std` + `alloc`, so firmware and the wire format can use them):
//! - [`ids`]: card UIDs, node ids, outbox sequence numbers.
//! - [`reader`]: a debounced card read and the feedback the user gets.
//! - [`topics`]: the 13 topics with partitions, retention, replication and key rules.
//! - [`groups`]: the 9 consumer groups and their subscriptions.
//! - [`retry`]: the consumers' retry policy before the dead-letter queue.
//!
//! With the default `std` feature:
//! - [`event`]: the event envelope, one typed enum per topic with every event type's payload,
//!   validation with field-precise errors, and the dead-letter envelope.
//! - [`http_file`]: serving a stored file over HTTP, the one rule for the cloud and the node:
//!   `Range` and `If-Range`, `ETag` and `If-None-Match`, the `Last-Modified` date, and a
//!   `Content-Disposition` whose file name is sanitised.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod groups;
pub mod ids;
pub mod reader;
pub mod retry;
pub mod topics;

#[cfg(feature = "std")]
pub mod event;
#[cfg(feature = "axum")]
pub mod http;
#[cfg(feature = "std")]
pub mod http_file;
#[cfg(feature = "std")]
pub mod snapshot;
#[cfg(feature = "std")]
pub mod token;
