//! # nimbus-cloud
//!
//! The cloud tier of NimbusU Edge: one binary with a subcommand per role. It runs the MQTT
//! ingest (classroom nodes' outbox batches into the seed's Kafka topics), the services' Kafka
//! workers, the downlink (per-node retained snapshots: timetable, roster, token keys, content
//! manifest), and the admin API (the seed's gateway with the services' routes behind it), and
//! carries the operators' tools (event contract, migrations, node registry).
//!
//! The code is cut one way: **services** own their data and behaviour, **roles** only compose
//! them, and both stand on a few **low floors** that import neither. `docs/architecture.md` draws
//! it; `docs/adding-a-service.md` is the checklist a new service follows.
//!
//! ## Layout
//!
//! Services (each a folder whose `mod.rs` names its database, tables, topics and consumer group;
//! commands/store files, `handler.rs` for its Kafka consumer, `routes.rs` for its HTTP routes,
//! jobs in their own files):
//! - [`user`]: accounts, roles and permissions, sessions and EdDSA token keys, the Redis
//!   revocation list, faculty classroom PINs (`user_service_db`).
//! - [`course`]: departments to enrollments and the profiles kept from `user.events`
//!   (`course_service_db`); [`course::handler`] is `course-service-group`.
//! - [`timetable`]: rooms, slots, timetables, entries with conflict detection, change requests
//!   (`timetable_service_db`); [`timetable::handler`] is `timetable-service-group`.
//! - [`attendance`]: records, corrections and summaries from the nodes' marks
//!   ([`attendance::handler`], `attendance-service-group`, idempotency in
//!   [`attendance::handler`] and [`consumer`]), the low-attendance job ([`attendance::alerts`]),
//!   reports ([`attendance::routes`]) (`attendance_service_db`).
//! - [`content`]: metadata in `content_service_db`, bytes in MongoDB GridFS, changes on
//!   `content.events` (no consumer group); routes ([`content::routes`](mod@content::routes)),
//!   uploads ([`content::upload`]), ranged downloads and the nodes' download route
//!   ([`content::download`]), folders, manifests.
//! - [`registry`]: the edge registry (`edge_registry_db`): nodes, credentials, high-water marks,
//!   last seen, refused frames; node registration ([`registry::routes`]); cards and the
//!   unknown-card quarantine ([`registry::cards`]).
//! - [`notification`]: e-mail, SMS, push and the in-app inbox (`notification_service_db`):
//!   [`notification::handler`] is `notification-service-group`; a durable queue shared by every
//!   worker instance ([`notification::queue`], [`notification::sender`]), bulk fan-out
//!   ([`notification::bulk`]), templates, preferences, the inbox routes.
//! - [`announcement`]: campus announcements (`announcement_service_db`): drafts, scheduled
//!   publication and expiry ([`announcement::jobs`]), targeting ([`announcement::targets`]),
//!   read marks, the urgent fan-out to the notification service, the classroom snapshot.
//! - [`communication`]: conversations between people (`communication_service_db`): direct and
//!   group conversations, ordered messages with read positions ([`communication::messages`]).
//! - [`dlq`]: listing, inspecting and replaying `dlq.events` ([`dlq::routes`]).
//!
//! Roles (`nimbus-cloud <role>`; they compose services and add nothing of their own):
//! - [`api`]: the admin REST API: [`api::gateway`] (`app`/`run`, middleware),
//!   [`api::auth`] (bearer tokens into a [`http::Caller`]), [`api::health`] (probes, metrics,
//!   `/openapi.json`), [`api::services`] (the services' route tables merged), [`api::state`].
//! - [`worker`]: `worker --service <name>`: picks the service's handler and jobs and runs
//!   [`consumer`].
//! - [`ingest`]: MQTT → Kafka: [`ingest::mapping`] (edge event → seed envelope),
//!   [`ingest::sink`] (producing a batch, awaiting every delivery report), [`ingest::pipeline`]
//!   (one frame from decode to **the ack sent after Kafka confirmed**), [`ingest::mqtt`] (session,
//!   shared subscription, per-node workers), [`ingest::metrics`].
//! - [`downlink`]: per-node snapshots ([`downlink::compose`] asks each service),
//!   [`downlink::versions`], [`downlink::publish`].
//! - [`cli`]: `events validate|topics|groups` ([`cli::events`]), `migrate` and
//!   `nodes register|list` ([`cli::nodes`]).
//!
//! Low floors (import no service and no role):
//! - [`http`]: the seed's `AppError` and the one mapping of [`Error`] onto it, [`http::Caller`],
//!   [`http::RequestContext`], the route table ([`http::routes`]), extractors
//!   ([`http::extract`]), the services' shared state ([`http::ServicesState`]), rate limits and
//!   request metrics.
//! - [`consumer`]: the [`consumer::Handler`] trait beside the consumer loop
//!   ([`consumer::engine`]: deduplicate, apply in one transaction, commit the offset after;
//!   retries; [`consumer::dead_letter`]).
//! - [`outbox`]: events written with the change, relayed to Kafka in order.
//! - [`trace`]: W3C trace context from a request through the outbox and Kafka headers into the
//!   workers, spans exported over OTLP/HTTP JSON when configured.
//! - [`db`]: pools and per-database migrations; [`kafka`]: topics and producers;
//!   [`shutdown`]: interruptible waits; [`config`]: the typed configuration;
//!   [`listing`]: paging, sorting, filters; [`actor`]: who acts, for events; [`error`];
//!   [`probe`]: `nimbus-cloud probe <url>`, the containers' health check (the images have no curl).

pub mod actor;
pub mod announcement;
pub mod api;
pub mod attendance;
pub mod cli;
pub mod communication;
pub mod config;
pub mod consumer;
pub mod content;
pub mod course;
pub mod db;
pub mod dlq;
pub mod downlink;
pub mod error;
pub mod http;
pub mod ingest;
pub mod kafka;
#[cfg(test)]
mod layout;
pub mod listing;
pub mod notification;
pub mod outbox;
pub mod probe;
pub mod registry;
pub mod shutdown;
pub mod timetable;
pub mod trace;
pub mod user;
pub mod worker;

pub use error::{Error, Result};
