//! nimbus-edge's integration tests, one binary (one link of the crate and its dependencies). The
//! modules run in parallel threads of one process, so every test owns what it touches: in-memory
//! or temporary stores, port 0 listeners, a private Mosquitto per test, child `nimbus-edge`
//! processes with their own data directories.
//!
//! - [`common`]: the content tests' fake cloud, test files, snapshots, signed user tokens, and a
//!   launcher for the real `nimbus-edge` binary.
//! - Attendance and the LAN server: [`full_day`], [`http_api`], [`http_page`], [`http_server`],
//!   [`browser_pages`] and [`browser_student`] (Chromium), [`reader_simulated`], [`crash_recovery`] (the real binary).
//! - Content: [`content_cache`], [`http_content`], [`content_crash`] (the real binary).
//! - Sync: [`sync_mosquitto`], [`sync_faults`] (the real binary, a real Mosquitto).
//! - Around the node: [`discovery_mdns`], [`deploy_files`].
//!
//! Run one module with `cargo test -p nimbus-edge --test integration http_api::`.

mod common;

mod browser_pages;
mod browser_student;
mod content_cache;
mod content_crash;
mod crash_recovery;
mod deploy_files;
mod discovery_mdns;
mod full_day;
mod http_api;
mod http_content;
mod http_page;
mod http_server;
mod reader_simulated;
mod sync_faults;
mod sync_mosquitto;
