//! # nimbus-cloud
//!
//! The cloud tier of NimbusU Edge: one binary with a subcommand per role. It runs the MQTT
//! ingest (classroom nodes' outbox batches into the seed's Kafka topics), the attendance,
//! timetable and course services' workers, the downlink (per-node retained snapshots: timetable,
//! roster, token keys, content manifest), and the admin API (the seed's gateway with the user and
//! content services behind it), and carries the operators' tools (event contract, migrations,
//! node registry).
//!
//! ## Layout
//! - [`config`]: the typed configuration every role loads once (defaults, TOML, environment,
//!   validation; secrets redacted in `Debug`).
//! - [`db`]: PostgreSQL pools and the per-database migrations.
//! - [`registry`]: the edge registry: nodes, credentials, high-water marks (and the per-node row
//!   lock the ingest stores a batch under), last seen, refused frames.
//! - [`kafka`]: topic creation from the seed's registry and the idempotent producer.
//! - [`ingest`]: the ingest role (`nimbus-cloud ingest`):
//!   - [`ingest::mapping`]: edge event → seed envelope or dead letter;
//!   - [`ingest::sink`]: producing a batch and awaiting every delivery report;
//!   - [`ingest::pipeline`]: one frame from decode to ack;
//!   - [`ingest::mqtt`]: the persistent session, shared subscription, per-node workers;
//!   - [`ingest::metrics`]: the ingest's counters.
//! - [`worker`]: per-service consumer groups (`nimbus-cloud worker --service attendance`): one
//!   transaction per event, idempotent on `event_id`, offsets committed after it, the seed's
//!   retries then `dlq.events`; [`worker::attendance`] writes records, corrections, summaries
//!   and sends low-attendance alerts.
//! - [`user`]: the user service (`user_service_db`): accounts, roles and permissions, sessions,
//!   EdDSA token keys with rotation ([`user::key_set`] for the downlink), the Redis revocation list.
//! - [`api`]: the admin REST API (`nimbus-cloud api`): [`api::routes`] (the route table with each
//!   route's access), [`api::gateway`] (`app`/`run` and the middleware), [`api::auth`]
//!   (authentication), [`api::ratelimit`], [`api::health`], [`api::metrics`], [`api::users`], and
//!   [`api::services`] (admin routes over the other services).
//! - [`content`]: the content service: metadata in `content_service_db`, bytes in MongoDB GridFS,
//!   streaming uploads, ranged downloads, the nodes' download route and their manifests.
//! - [`error`]: the crate's error type.
//! - [`cli`]: command-line entry points that are not long-running roles.
//!   - [`cli::events`]: `nimbus-cloud events validate|topics|groups`, checking messages against
//!     the seed contract in `nimbus-core` and printing the topic and consumer-group registries.
//!   - [`cli::nodes`]: `nimbus-cloud nodes register|list`, the registry for operators.

pub mod actor;
pub mod api;
pub mod cli;
pub mod config;
pub mod content;
pub mod course;
pub mod db;
pub mod downlink;
pub mod error;
pub mod ingest;
pub mod kafka;
pub mod listing;
pub mod outbox;
pub mod registry;
pub mod timetable;
pub mod user;
pub mod worker;

pub use error::{Error, Result};
