//! # nimbus-edge
//!
//! The classroom appliance: it turns card taps into attendance that survives crashes, power cuts
//! and days without a network, and serves the faculty page on the LAN.
//!
//! ## Layout
//! - [`reader`]: the `CardReader` trait; the simulated reader (socket, script) and, with feature
//!   `rpi`, MFRC522/Wiegand readers on the Pi's SPI/GPIO.
//! - [`store`]: the SQLite database (WAL, `synchronous=FULL`) and its migrations.
//! - [`clock`]: wall, monotonic and boot clocks, and whether the wall clock can be trusted.
//! - [`timetable`]: the offline cache of this room's timetable and the course rosters.
//! - [`attendance`]: taps, sessions, marks, closing and corrections.
//! - [`outbox`]: events waiting for the cloud, in sequence order; disk budget for telemetry.
//! - [`announcements`]: the room's announcements from the cloud, hidden at expiry on the node's clock.
//! - [`sync`]: ships the outbox over MQTT and applies the cloud's snapshots.
//! - [`http`]: the LAN server: faculty page, JSON API, health and metrics.
//! - [`metrics`]: counters and gauges for `/metrics`.
//! - [`auth`]: faculty PIN hashing for the local page.
//! - [`token`]: offline verification of the cloud's user tokens (EdDSA JWTs) with the keys
//!   snapshot; authorises content downloads.
//! - [`content`]: the course content cache: manifest, resumable verified downloads, disk budget,
//!   scrub, and the HTTP details of serving files (routes in [`http::content`]).
//! - [`discovery`]: mDNS/DNS-SD advertisement of the LAN server.
//! - [`config`]: the TOML + environment configuration.
//! - [`node`]: wires everything together and runs until shutdown.
//! - [`notify`]: systemd readiness and watchdog notifications.
//! - [`error`]: the crate's error type.
//! - `testing` (feature `testing`): a WebDriver client for the pages' browser tests.

pub mod announcements;
pub mod attendance;
pub mod auth;
pub mod clock;
pub mod config;
pub mod content;
pub mod discovery;
pub mod error;
pub mod http;
pub mod metrics;
pub mod node;
pub mod notify;
pub mod outbox;
pub mod reader;
pub mod store;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timetable;
pub mod token;

pub use error::{Error, Result};
