//! # nimbus-cloud
//!
//! The cloud tier of NimbusU Edge. It will run as one binary with a subcommand per role (MQTT
//! ingest, per-service Kafka workers, the admin API, the downlink publisher); today it carries the
//! operators' tools for the event contract.
//!
//! ## Layout
//! - [`db`]: PostgreSQL pools and the per-database migrations.
//! - [`registry`]: the edge registry: nodes, credentials, high-water marks, last seen.
//! - [`kafka`]: topic creation from the seed's registry and the idempotent producer.
//! - [`error`]: the crate's error type.
//! - [`cli`]: command-line entry points that are not long-running roles.
//!   - [`cli::events`]: `nimbus-cloud events validate|topics|groups`, checking messages against
//!     the seed contract in `nimbus-core` and printing the topic and consumer-group registries.

pub mod cli;
pub mod db;
pub mod error;
pub mod kafka;
pub mod registry;

pub use error::{Error, Result};
