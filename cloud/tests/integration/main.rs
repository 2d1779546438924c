//! nimbus-cloud's integration tests, one binary (one link of the crate, rdkafka and mongodb). The
//! modules run in parallel threads of one process against shared services (PostgreSQL, Redis,
//! Kafka, the MongoDB wire server), so every test owns what it touches: a fresh database per test
//! ([`common::TestDb`]), its own Redis prefix, MongoDB database, consumer groups and node ids
//! (`unique_node`, random suffixes), a private Mosquitto, and port 0 or free-port listeners.
//! Kafka topics are shared: tests read only their own messages (by node id or key).
//!
//! - [`common`]: services from the environment, fresh databases, the admin API, the content
//!   service, the ingest, end-to-end process helpers, the compose files' readers.
//! - The admin API: [`api_auth`], [`api_authz`], [`api_contract`] (schemathesis over every
//!   operation of the OpenAPI document), [`api_explorer`] (the explorer in a real
//!   browser), [`api_input`], [`api_openapi`], [`api_server`],
//!   [`api_services`], [`api_tls`] (HTTPS served by the api, certificates made in the test).
//! - Services: [`content_folders`], [`content_input`], [`content_store`], [`timetable_service`],
//!   [`worker_attendance`], [`communication_service`], [`communication_live`] (two api
//!   instances' WebSockets over real TCP and Redis), [`notification_worker`] and [`notification_providers`] (a real SMTP
//!   server per test, `common::smtp`; local endpoints in the providers' shapes).
//! - The ingest: [`foundation`], [`ingest_acl`], [`ingest_cli`], [`ingest_dlq`], [`ingest_flow`],
//!   [`ingest_instances`], [`ingest_kafka_down`], [`ingest_oversize`], [`ingest_unknown_cards`].
//! - Every part a separate process: [`e2e_attendance`], [`e2e_classroom`], [`e2e_content`],
//!   [`e2e_downlink`], [`e2e_faults`], [`e2e_notification`], [`e2e_student`] (these need
//!   `nimbus-edge` built next to this binary, as `cargo test --workspace` does).
//! - The operator's side: [`events_cli`], [`compose_stack`] (the compose file against the code),
//!   [`broker_accounts`] (node accounts from the registry into a real Mosquitto), [`k8s_manifests`]
//!   (deploy/k8s rendered, schema-validated and checked against the code), [`node_tls`] (a node
//!   and a TLS Mosquitto, the broker CA pinned).
//!
//! Run one module with `cargo test -p nimbus-cloud --test integration e2e_content::`.

mod common;

mod announcement_service;
mod api_auth;
mod api_authz;
mod api_contract;
mod api_explorer;
mod api_input;
mod api_openapi;
mod api_server;
mod api_services;
mod api_tls;
mod broker_accounts;
mod communication_live;
mod communication_service;
mod compose_stack;
mod content_folders;
mod content_input;
mod content_store;
mod e2e_announcement;
mod e2e_attendance;
mod e2e_classroom;
mod e2e_communication;
mod e2e_content;
mod e2e_downlink;
mod e2e_faults;
mod e2e_notification;
mod e2e_student;
mod events_cli;
mod foundation;
mod ingest_acl;
mod ingest_cli;
mod ingest_dlq;
mod ingest_flow;
mod ingest_instances;
mod ingest_kafka_down;
mod ingest_oversize;
mod ingest_unknown_cards;
mod k8s_manifests;
mod node_tls;
mod notification_providers;
mod notification_worker;
mod timetable_service;
mod tracing_otlp;
mod worker_attendance;
