//! The node's configuration: built-in defaults for a single classroom, then a TOML file, then
//! environment variables, then validation. Loaded once at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nimbus_core::ids::NodeId;
use serde::Deserialize;

use crate::attendance::Rules;
use crate::error::{Error, Result};

/// Everything the daemon reads at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's identity (MQTT client id and topic segment).
    pub node_id: String,
    /// The room the node is in; selects the timetable entries.
    pub room_id: String,
    /// Where the database and cached content live.
    pub data_dir: PathBuf,
    /// The LAN server.
    pub http: HttpConfig,
    /// The card reader.
    pub reader: ReaderConfig,
    /// Session rules.
    pub attendance: AttendanceConfig,
    /// The cloud endpoint (used by sync).
    pub cloud: CloudConfig,
    /// Log filter (`info`, `nimbus_edge=debug`, …); `RUST_LOG` wins when set.
    pub log: String,
    /// The course content cache served on the LAN.
    pub content: ContentConfig,
    /// mDNS/DNS-SD advertisement of the LAN server.
    pub discovery: DiscoveryConfig,
}

/// The content cache: what the node downloads from the cloud and serves to students.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContentConfig {
    /// Download the manifest's items and serve them (`/api/content`).
    pub enabled: bool,
    /// Where cached files live; default `<data_dir>/content`.
    pub dir: Option<PathBuf>,
    /// Most bytes the cache (complete and partial files) may hold.
    pub max_bytes: u64,
    /// Free space the data filesystem must keep after a download (the database and the outbox
    /// need room too); downloads wait rather than eat into it.
    pub min_free_bytes: u64,
    /// Downloads running at once.
    pub concurrency: usize,
    /// First retry delay after a failed download, milliseconds; doubles per failure up to an hour.
    pub retry_base_ms: u64,
    /// Re-hash every cached file at start, not only those modified since they were verified.
    pub scrub_full: bool,
}

/// mDNS/DNS-SD: students' devices find the node as `<node_id>._nimbus._tcp.local.`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Advertise the LAN server.
    pub enabled: bool,
    /// Also advertise as a plain web server (`_http._tcp.local.`), for generic browsers.
    pub advertise_http: bool,
}

/// The LAN server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on; `0.0.0.0:8480` to serve the classroom LAN.
    pub bind: SocketAddr,
}

/// Which reader the node drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReaderKind {
    /// Taps from a local socket (and optionally a script): development and tests.
    Simulated,
    /// NXP MFRC522 on the Pi's SPI bus (feature `rpi`).
    Mfrc522,
    /// Wiegand 26-bit reader on two GPIO pins (feature `rpi`).
    Wiegand26,
    /// Wiegand 34-bit reader on two GPIO pins (feature `rpi`).
    Wiegand34,
}

/// The card reader.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReaderConfig {
    /// Which reader.
    pub kind: ReaderKind,
    /// The simulated reader's socket (one card UID per line; replies with the feedback).
    pub simulated_bind: SocketAddr,
    /// A script of `<delay_ms> <uid>` lines the simulated reader plays at start.
    pub script: Option<PathBuf>,
    /// Wiring of a hardware reader (`[reader.rpi]`: SPI bus, pins, debounce), read by builds with
    /// feature `rpi`; kept as raw TOML here so one config file serves every build.
    pub rpi: Option<toml::Table>,
}

/// Session rules, in minutes and hours as operators think of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttendanceConfig {
    /// Minutes after the slot's start after which a student is late.
    pub late_after_minutes: u64,
    /// Minutes before the slot's start the faculty may open it.
    pub early_open_minutes: u64,
    /// Minutes before a session opens within which students' taps are attached to it.
    pub grace_minutes: u64,
    /// Hours after closing during which corrections are accepted.
    pub correction_window_hours: u64,
}

/// The cloud endpoint and the sync protocol's limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloudConfig {
    /// Ship the outbox to the cloud (off for a stand-alone demo).
    pub enabled: bool,
    /// MQTT broker URL (`mqtt://` or, with feature `tls` of nimbus-sync, `mqtts://`).
    pub mqtt_url: String,
    /// This node's broker password (its username is the node id). Prefer `NIMBUS_MQTT_PASSWORD`.
    pub mqtt_password: Option<Secret>,
    /// PEM file of the campus broker's CA (`mqtts://`): the only CA the node trusts for the
    /// broker (pinned), so a look-alike broker with a certificate from any public CA is refused.
    pub mqtt_ca_file: Option<PathBuf>,
    /// How long to wait for the cloud's ack before resending a batch, milliseconds.
    pub ack_timeout_ms: u64,
    /// Most events in one batch.
    pub max_batch_events: usize,
    /// Outbox payload megabytes above which telemetry (never attendance) is dropped oldest-first.
    pub outbox_budget_mb: u64,
    /// Warn (log and metric) when the data filesystem has less free space than this, megabytes.
    pub disk_warn_free_mb: u64,
}

/// A secret setting: never printed, not even by `{:?}`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: "node-1".into(),
            room_id: "room-1".into(),
            data_dir: PathBuf::from("/var/lib/nimbus-edge"),
            http: HttpConfig::default(),
            reader: ReaderConfig::default(),
            attendance: AttendanceConfig::default(),
            cloud: CloudConfig::default(),
            log: "info".into(),
            content: ContentConfig::default(),
            discovery: DiscoveryConfig::default(),
        }
    }
}

impl Default for ContentConfig {
    fn default() -> Self {
        // A Pi with a 32 GB SD card: 8 GiB of content, and always 1 GiB left for the rest.
        ContentConfig {
            enabled: true,
            dir: None,
            max_bytes: 8 * 1024 * 1024 * 1024,
            min_free_bytes: 1024 * 1024 * 1024,
            concurrency: 2,
            retry_base_ms: 5_000,
            scrub_full: false,
        }
    }
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig { enabled: true, advertise_http: true }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { bind: SocketAddr::from(([127, 0, 0, 1], 8480)) }
    }
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            kind: ReaderKind::Simulated,
            simulated_bind: SocketAddr::from(([127, 0, 0, 1], 8481)),
            script: None,
            rpi: None,
        }
    }
}

impl Default for AttendanceConfig {
    fn default() -> Self {
        AttendanceConfig {
            late_after_minutes: 10,
            early_open_minutes: 10,
            grace_minutes: 15,
            correction_window_hours: 72,
        }
    }
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            enabled: true,
            mqtt_url: "mqtt://127.0.0.1:1883".into(),
            mqtt_password: None,
            mqtt_ca_file: None,
            ack_timeout_ms: 2_000,
            max_batch_events: 500,
            outbox_budget_mb: 64,
            disk_warn_free_mb: 200,
        }
    }
}

/// Environment variables that override the file, and the setting each one sets.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("NIMBUS_NODE_ID", "node_id"),
    ("NIMBUS_ROOM_ID", "room_id"),
    ("NIMBUS_DATA_DIR", "data_dir"),
    ("NIMBUS_HTTP_BIND", "http.bind"),
    ("NIMBUS_READER_KIND", "reader.kind"),
    ("NIMBUS_SIMULATED_BIND", "reader.simulated_bind"),
    ("MQTT_URL", "cloud.mqtt_url"),
    ("NIMBUS_MQTT_PASSWORD", "cloud.mqtt_password"),
    ("NIMBUS_MQTT_CA_FILE", "cloud.mqtt_ca_file"),
    ("NIMBUS_CONTENT_ENABLED", "content.enabled"),
    ("NIMBUS_CONTENT_DIR", "content.dir"),
    ("NIMBUS_CONTENT_MAX_BYTES", "content.max_bytes"),
    ("NIMBUS_CONTENT_MIN_FREE_BYTES", "content.min_free_bytes"),
    ("NIMBUS_DISCOVERY_ENABLED", "discovery.enabled"),
];

/// Removes every environment override (and `NIMBUS_EDGE_CONFIG`) from a command that starts
/// `nimbus-edge`, so the config file it is given is what it runs with: supervisors and tests
/// whose own environment carries `MQTT_URL` or `NIMBUS_*` would otherwise leak them in.
pub fn without_env_overrides(command: &mut std::process::Command) -> &mut std::process::Command {
    for (var, _) in ENV_OVERRIDES {
        command.env_remove(var);
    }
    command.env_remove("NIMBUS_EDGE_CONFIG")
}

impl Config {
    /// Defaults, then `file` (if given), then the environment, then validation.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
                Self::from_toml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
            }
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document; unknown keys are errors (a typo must not be silently ignored).
    pub fn from_toml(text: &str) -> std::result::Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
        let bad = |name: &str, v: &str, e: &dyn std::fmt::Display| Error::Config(format!("{name}={v:?}: {e}"));
        for (name, _) in ENV_OVERRIDES {
            let Some(v) = var(name) else { continue };
            match *name {
                "NIMBUS_NODE_ID" => self.node_id = v,
                "NIMBUS_ROOM_ID" => self.room_id = v,
                "NIMBUS_DATA_DIR" => self.data_dir = v.into(),
                "NIMBUS_HTTP_BIND" => self.http.bind = v.parse().map_err(|e| bad(name, &v, &e))?,
                "NIMBUS_SIMULATED_BIND" => self.reader.simulated_bind = v.parse().map_err(|e| bad(name, &v, &e))?,
                "NIMBUS_READER_KIND" => {
                    self.reader.kind =
                        serde_json::from_value(serde_json::Value::String(v.clone())).map_err(|e| bad(name, &v, &e))?;
                }
                "MQTT_URL" => self.cloud.mqtt_url = v,
                "NIMBUS_MQTT_PASSWORD" => self.cloud.mqtt_password = Some(Secret(v)),
                "NIMBUS_MQTT_CA_FILE" => self.cloud.mqtt_ca_file = Some(v.into()),
                "NIMBUS_CONTENT_ENABLED" => self.content.enabled = v.parse().map_err(|e| bad(name, &v, &e))?,
                "NIMBUS_CONTENT_DIR" => self.content.dir = Some(v.into()),
                "NIMBUS_CONTENT_MAX_BYTES" => self.content.max_bytes = v.parse().map_err(|e| bad(name, &v, &e))?,
                "NIMBUS_CONTENT_MIN_FREE_BYTES" => {
                    self.content.min_free_bytes = v.parse().map_err(|e| bad(name, &v, &e))?
                }
                "NIMBUS_DISCOVERY_ENABLED" => self.discovery.enabled = v.parse().map_err(|e| bad(name, &v, &e))?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks what types cannot.
    pub fn validate(&self) -> Result<()> {
        NodeId::new(self.node_id.clone()).map_err(|e| Error::Config(format!("node_id: {e}")))?;
        if self.room_id.trim().is_empty() {
            return Err(Error::Config("room_id: must not be empty".into()));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::Config("data_dir: must not be empty".into()));
        }
        let a = &self.attendance;
        if a.late_after_minutes > 24 * 60 || a.early_open_minutes > 24 * 60 || a.grace_minutes > 24 * 60 {
            return Err(Error::Config("attendance: minute settings must be under a day".into()));
        }
        if self.reader.kind != ReaderKind::Simulated && !cfg!(feature = "rpi") {
            return Err(Error::Config(format!(
                "reader.kind = {:?} needs a build with feature `rpi`",
                self.reader.kind
            )));
        }
        if self.cloud.enabled {
            let (tls, _, _) = nimbus_sync::transport::parse_url(&self.cloud.mqtt_url)
                .map_err(|e| Error::Config(format!("cloud.mqtt_url: {e}")))?;
            if let Some(ca) = &self.cloud.mqtt_ca_file {
                if !tls {
                    return Err(Error::Config("cloud.mqtt_ca_file: only for an mqtts:// cloud.mqtt_url".into()));
                }
                let pem = std::fs::read_to_string(ca)
                    .map_err(|e| Error::Config(format!("cloud.mqtt_ca_file: cannot read {}: {e}", ca.display())))?;
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(Error::Config(format!(
                        "cloud.mqtt_ca_file: {} holds no PEM certificate",
                        ca.display()
                    )));
                }
            }
            let max = nimbus_sync::frame::FrameLimits::default().max_events;
            if self.cloud.max_batch_events == 0 || self.cloud.max_batch_events > max {
                return Err(Error::Config(format!("cloud.max_batch_events: must be 1 to {max}")));
            }
            if self.cloud.ack_timeout_ms < 100 {
                return Err(Error::Config("cloud.ack_timeout_ms: must be at least 100".into()));
            }
        }
        if self.content.enabled && !(1..=16).contains(&self.content.concurrency) {
            return Err(Error::Config("content.concurrency: must be 1 to 16".into()));
        }
        #[cfg(feature = "rpi")]
        self.rpi_reader()?;
        Ok(())
    }

    /// The hardware reader's wiring, with `reader.kind` deciding which reader it is.
    #[cfg(feature = "rpi")]
    pub fn rpi_reader(&self) -> Result<crate::reader::rpi::RpiReaderConfig> {
        use crate::reader::rpi::{RpiReaderConfig, RpiReaderKind};
        let mut rpi: RpiReaderConfig = match &self.reader.rpi {
            Some(table) => table.clone().try_into().map_err(|e| Error::Config(format!("reader.rpi: {e}")))?,
            None => RpiReaderConfig::default(),
        };
        rpi.kind = match self.reader.kind {
            ReaderKind::Wiegand26 => RpiReaderKind::Wiegand26,
            ReaderKind::Wiegand34 => RpiReaderKind::Wiegand34,
            ReaderKind::Mfrc522 | ReaderKind::Simulated => RpiReaderKind::Mfrc522,
        };
        Ok(rpi)
    }

    /// The validated node id.
    pub fn node_id(&self) -> NodeId {
        NodeId::new(self.node_id.clone()).unwrap_or_else(|_| NodeId::new("node-1").expect("valid literal"))
    }

    /// The session rules.
    pub fn rules(&self) -> Rules {
        let min = |m: u64| Duration::from_secs(m * 60);
        Rules {
            room_id: self.room_id.clone(),
            late_after: min(self.attendance.late_after_minutes),
            early_open: min(self.attendance.early_open_minutes),
            grace: min(self.attendance.grace_minutes),
            correction_window: Duration::from_secs(self.attendance.correction_window_hours * 3600),
        }
    }

    /// How the sync task reaches the cloud.
    pub fn sync_settings(&self) -> crate::sync::SyncSettings {
        let node = self.node_id();
        let mut mqtt = nimbus_sync::transport::MqttConfig::new(self.cloud.mqtt_url.clone(), node.as_str());
        if let Some(p) = &self.cloud.mqtt_password {
            mqtt = mqtt.with_credentials(node.as_str(), p.expose());
        }
        if let Some(ca) = &self.cloud.mqtt_ca_file {
            // Checked at start; should it vanish since, an empty pin fails the handshake (and says
            // so on the status page) rather than falling back to trusting any CA.
            mqtt = mqtt.with_ca(std::fs::read(ca).unwrap_or_default());
        }
        let limits = nimbus_sync::frame::FrameLimits { max_events: self.cloud.max_batch_events, ..Default::default() };
        crate::sync::SyncSettings {
            node_id: node,
            mqtt,
            sender: nimbus_sync::sender::SenderConfig {
                limits,
                ack_timeout_ms: self.cloud.ack_timeout_ms,
                ..Default::default()
            },
        }
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("node.db")
    }

    /// How the content cache runs.
    pub fn content_settings(&self) -> crate::content::CacheSettings {
        let node = self.node_id();
        crate::content::CacheSettings {
            dir: self.content.dir.clone().unwrap_or_else(|| self.data_dir.join("content")),
            max_bytes: self.content.max_bytes,
            min_free_bytes: self.content.min_free_bytes,
            concurrency: self.content.concurrency.max(1),
            retry_base: Duration::from_millis(self.content.retry_base_ms),
            scrub_full: self.content.scrub_full,
            node_id: node.as_str().to_owned(),
            password: self.cloud.mqtt_password.clone(),
            room_id: self.room_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_file_keeps_defaults_for_the_rest() {
        let c = Config::from_toml("node_id = \"room-7\"\n[attendance]\nlate_after_minutes = 5\n").unwrap();
        assert_eq!(c.node_id, "room-7");
        assert_eq!(c.attendance.late_after_minutes, 5);
        assert_eq!(c.attendance.grace_minutes, 15);
        assert_eq!(c.http.bind.port(), 8480);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_that_name_them() {
        let e = Config::from_toml("node_idd = \"x\"").unwrap_err();
        assert!(e.contains("node_idd"), "{e}");
        let e = Config::from_toml("[http]\nbind = \"nowhere\"").unwrap_err();
        assert!(e.contains("bind"), "{e}");
        let e = Config::from_toml("[reader]\nkind = \"laser\"").unwrap_err();
        assert!(e.contains("laser"), "{e}");
    }

    #[test]
    fn environment_overrides_the_file_and_is_validated() {
        let mut c = Config::default();
        let env = |k: &str| match k {
            "NIMBUS_NODE_ID" => Some("lab-2".to_owned()),
            "NIMBUS_HTTP_BIND" => Some("0.0.0.0:9000".to_owned()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.node_id, "lab-2");
        assert_eq!(c.http.bind.port(), 9000);
        let mut c = Config::default();
        let err = c.apply_env(|k| (k == "NIMBUS_HTTP_BIND").then(|| "x".to_owned())).unwrap_err();
        assert!(err.to_string().contains("NIMBUS_HTTP_BIND"));
    }

    #[test]
    fn content_and_discovery_have_pi_defaults_and_env_overrides() {
        let c = Config::from_toml("[content]\nmax_bytes = 1000\n[discovery]\nenabled = false\n").unwrap();
        assert_eq!(c.content.max_bytes, 1000);
        assert_eq!(c.content.min_free_bytes, 1024 * 1024 * 1024);
        assert!(!c.discovery.enabled);
        assert!(Config::default().discovery.enabled);
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "NIMBUS_CONTENT_MAX_BYTES" => Some("42".into()),
            "NIMBUS_DISCOVERY_ENABLED" => Some("false".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.content.max_bytes, 42);
        assert!(!c.discovery.enabled);
        assert_eq!(c.content_settings().dir, c.data_dir.join("content"));
        let e = c.apply_env(|k| (k == "NIMBUS_CONTENT_ENABLED").then(|| "maybe".to_owned())).unwrap_err();
        assert!(e.to_string().contains("NIMBUS_CONTENT_ENABLED"));
    }

    #[test]
    fn the_mqtt_password_never_shows_in_debug_output() {
        let c = Config::from_toml("[cloud]\nmqtt_password = \"hunter2\"").unwrap();
        assert_eq!(c.cloud.mqtt_password.as_ref().map(Secret::expose), Some("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn validation_rejects_unsafe_node_ids_and_hardware_readers_without_the_feature() {
        let c = Config { node_id: "a/b".into(), ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("node_id"));
        let c =
            Config { reader: ReaderConfig { kind: ReaderKind::Mfrc522, ..Default::default() }, ..Config::default() };
        assert_eq!(c.validate().is_ok(), cfg!(feature = "rpi"));
    }
}
