//! # The dead-letter queue (`dlq.events`, replays recorded in `edge_registry_db`)
//!
//! Events no consumer could apply end on `dlq.events` in the seed's `DeadLetterEvent` shape
//! (written by the shared consumer loop, [`crate::consumer::dead_letter`], and by the ingest for
//! frames it cannot map). This service lets admins list, inspect and replay them ([`routes`]):
//! a replay republishes the original event to its topic (consumers are idempotent on
//! `event_id`) and records who replayed what in `dlq_replays`.

pub mod routes;
