//! The cloud roles' configuration, loaded once at start into one typed [`CloudConfig`]:
//! built-in defaults for a single-machine campus (everything on loopback), then an optional TOML
//! file, then environment variables, then validation. Every validation error names the setting
//! (TOML key and environment variable), so an operator knows what to fix without reading code.
//!
//! - **TOML keys** are the fields below (`[api] bind = "…"` is `api.bind`); settings without a
//!   variable (`kafka.delivery_timeout_ms`, `content.allowed_mime_types`, …) are set only there.
//! - **Environment variables** are the rows of [`ENV`], one table that names each variable, its
//!   TOML key, the roles that read it, what it means, its default and how it is applied.
//!   [`CloudConfig::from_sources`] applies exactly those rows; docs/cloud.md's configuration
//!   table is generated from it (a unit test fails when they differ) and the compose test checks
//!   `docker-compose.yml` against it. No other code reads the environment, apart from the
//!   `--config` file's `NIMBUS_CLOUD_CONFIG` (clap) and the log filter's `RUST_LOG`.
//! - **Secrets** are [`Secret`]s (the MQTT password, the bootstrap administrator's password) and
//!   URLs that may embed a password are redacted: no `{:?}` of the configuration shows either.
//!
//! This is a low module: it imports no role (only the error type and the database URL helper).
//! Each role builds its own settings from it, as the downlink's `DownlinkSettings::from_config`
//! does.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use nimbus_core::topics::Environment;
use serde::Deserialize;

use crate::error::{Error, Result};

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

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

// ---------------------------------------------------------------------------------------------
// The environment
// ---------------------------------------------------------------------------------------------

/// A role of the binary, by its subcommand. `nimbus-cloud all` runs ingest, worker, downlink and
/// api in one process and so reads what any of them reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `nimbus-cloud migrate`.
    Migrate,
    /// `nimbus-cloud nodes register|list`.
    Nodes,
    /// `nimbus-cloud ingest`.
    Ingest,
    /// `nimbus-cloud worker --service …`.
    Worker,
    /// `nimbus-cloud downlink`.
    Downlink,
    /// `nimbus-cloud api`.
    Api,
    /// `nimbus-cloud broker-accounts`.
    BrokerAccounts,
}

impl Role {
    /// Every role that loads the configuration.
    pub const ALL: [Role; 7] =
        [Role::Migrate, Role::Nodes, Role::Ingest, Role::Worker, Role::Downlink, Role::Api, Role::BrokerAccounts];

    /// Its subcommand.
    pub fn subcommand(self) -> &'static str {
        match self {
            Role::Migrate => "migrate",
            Role::Nodes => "nodes",
            Role::Ingest => "ingest",
            Role::Worker => "worker",
            Role::Downlink => "downlink",
            Role::Api => "api",
            Role::BrokerAccounts => "broker-accounts",
        }
    }
}

/// How a variable's value changes the configuration. A value that is empty or only blanks is
/// never applied (the setting keeps its TOML or default value).
#[derive(Clone, Copy)]
pub enum Apply {
    /// The value as it is.
    Text(fn(&mut CloudConfig) -> &mut String),
    /// The value, for a setting that is otherwise absent.
    Optional(fn(&mut CloudConfig) -> &mut Option<String>),
    /// The value as a [`Secret`].
    Secret(fn(&mut CloudConfig) -> &mut Option<Secret>),
    /// A whole number (`… is not a number` otherwise).
    Number(fn(&mut CloudConfig) -> &mut u64),
    /// A comma-separated list; blank items are dropped.
    List(fn(&mut CloudConfig) -> &mut Vec<String>),
    /// The URL of one service database, by its seed name, into `database.urls`.
    ServiceDatabase(&'static str),
    /// Anything else; the error completes "`<setting> (<VAR>): <value> …`".
    With(fn(&mut CloudConfig, String) -> std::result::Result<(), &'static str>),
}

impl Apply {
    fn apply(self, config: &mut CloudConfig, value: String) -> std::result::Result<(), &'static str> {
        match self {
            Apply::Text(field) => *field(config) = value,
            Apply::Optional(field) => *field(config) = Some(value),
            Apply::Secret(field) => *field(config) = Some(Secret(value)),
            Apply::Number(field) => *field(config) = value.trim().parse().map_err(|_| "is not a number")?,
            Apply::List(field) => {
                *field(config) = value.split(',').map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect()
            }
            Apply::ServiceDatabase(database) => {
                config.database.urls.insert(database.to_owned(), value);
            }
            Apply::With(f) => f(config, value)?,
        }
        Ok(())
    }
}

impl fmt::Debug for Apply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Apply::Text(_) => f.write_str("Text"),
            Apply::Optional(_) => f.write_str("Optional"),
            Apply::Secret(_) => f.write_str("Secret"),
            Apply::Number(_) => f.write_str("Number"),
            Apply::List(_) => f.write_str("List"),
            Apply::ServiceDatabase(db) => write!(f, "ServiceDatabase({db})"),
            Apply::With(_) => f.write_str("With"),
        }
    }
}

/// One environment variable the configuration reads: a row of [`ENV`].
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    /// The variable.
    pub name: &'static str,
    /// The TOML key it overrides; empty when it has none.
    pub key: &'static str,
    /// The roles that read it.
    pub roles: &'static [Role],
    /// What it sets, in one line (Markdown, for docs/cloud.md).
    pub about: &'static str,
    /// Its default, as documented (Markdown; a value in backticks is the literal default).
    pub default: &'static str,
    /// How it is applied.
    pub apply: Apply,
}

const EVERY: &[Role] = &Role::ALL;
const SERVICE_DB_ROLES: &[Role] = &[Role::Migrate, Role::Worker, Role::Downlink, Role::Api];
const SERVICE_DB_DEFAULT: &str = "on `DATABASE_URL`, by the seed's name";

/// Every environment variable the configuration reads, in the order of docs/cloud.md's table.
/// The one place to add a variable: [`CloudConfig::from_sources`] applies these rows and nothing
/// else, and the docs and compose tests read this table.
pub const ENV: &[EnvVar] = &[
    EnvVar {
        name: "NIMBUS_ENV",
        key: "environment",
        roles: EVERY,
        about: "`development` (replication 1) or `production` (replication 3, min ISR 2; requires broker credentials)",
        default: "`development`",
        apply: Apply::With(|c, v| {
            c.environment = match v.trim() {
                "development" => Environment::Development,
                "production" => Environment::Production,
                _ => return Err("is not development or production"),
            };
            Ok(())
        }),
    },
    EnvVar {
        name: "DATABASE_URL",
        key: "database.url",
        roles: EVERY,
        about: "PostgreSQL server (the database name is chosen per role; a password in it is redacted in logs)",
        default: "`postgres://postgres@127.0.0.1:5432`",
        apply: Apply::Text(|c| &mut c.database.url),
    },
    EnvVar {
        name: "NIMBUS_REGISTRY_DB",
        key: "database.registry_database",
        roles: &[Role::Migrate, Role::Nodes, Role::Ingest, Role::Downlink, Role::Api, Role::BrokerAccounts],
        about: "name of the edge registry database on `DATABASE_URL`",
        default: "`edge_registry_db`",
        apply: Apply::Text(|c| &mut c.database.registry_database),
    },
    EnvVar {
        name: "USER_DATABASE_URL",
        key: "database.urls.user_service_db",
        roles: SERVICE_DB_ROLES,
        about: "`user_service_db` elsewhere or under another name (full URL)",
        default: SERVICE_DB_DEFAULT,
        apply: Apply::ServiceDatabase("user_service_db"),
    },
    EnvVar {
        name: "CONTENT_DATABASE_URL",
        key: "database.urls.content_service_db",
        roles: SERVICE_DB_ROLES,
        about: "`content_service_db` elsewhere or under another name (full URL)",
        default: SERVICE_DB_DEFAULT,
        apply: Apply::ServiceDatabase("content_service_db"),
    },
    EnvVar {
        name: "NOTIFICATION_DATABASE_URL",
        key: "database.urls.notification_service_db",
        roles: SERVICE_DB_ROLES,
        about: "`notification_service_db` elsewhere or under another name (full URL)",
        default: SERVICE_DB_DEFAULT,
        apply: Apply::ServiceDatabase("notification_service_db"),
    },
    EnvVar {
        name: "COURSE_DATABASE_URL",
        key: "database.urls.course_service_db",
        roles: SERVICE_DB_ROLES,
        about: "`course_service_db` elsewhere or under another name (full URL)",
        default: SERVICE_DB_DEFAULT,
        apply: Apply::ServiceDatabase("course_service_db"),
    },
    EnvVar {
        name: "TIMETABLE_DATABASE_URL",
        key: "database.urls.timetable_service_db",
        roles: SERVICE_DB_ROLES,
        about: "`timetable_service_db` elsewhere or under another name (full URL)",
        default: SERVICE_DB_DEFAULT,
        apply: Apply::ServiceDatabase("timetable_service_db"),
    },
    EnvVar {
        name: "ATTENDANCE_DATABASE_URL",
        key: "database.urls.attendance_service_db",
        roles: SERVICE_DB_ROLES,
        about: "`attendance_service_db` elsewhere or under another name (full URL)",
        default: SERVICE_DB_DEFAULT,
        apply: Apply::ServiceDatabase("attendance_service_db"),
    },
    EnvVar {
        name: "ANNOUNCEMENT_DATABASE_URL",
        key: "database.urls.announcement_service_db",
        roles: SERVICE_DB_ROLES,
        about: "`announcement_service_db` elsewhere or under another name (full URL)",
        default: SERVICE_DB_DEFAULT,
        apply: Apply::ServiceDatabase("announcement_service_db"),
    },
    EnvVar {
        name: "COMMUNICATION_DATABASE_URL",
        key: "database.urls.communication_service_db",
        roles: SERVICE_DB_ROLES,
        about: "`communication_service_db` elsewhere or under another name (full URL)",
        default: SERVICE_DB_DEFAULT,
        apply: Apply::ServiceDatabase("communication_service_db"),
    },
    EnvVar {
        name: "ANALYTICS_DATABASE_URL",
        key: "database.urls.analytics_service_db",
        roles: SERVICE_DB_ROLES,
        about: "`analytics_service_db` elsewhere or under another name (full URL)",
        default: SERVICE_DB_DEFAULT,
        apply: Apply::ServiceDatabase("analytics_service_db"),
    },
    EnvVar {
        name: "KAFKA_BROKERS",
        key: "kafka.brokers",
        roles: &[Role::Ingest, Role::Worker, Role::Downlink, Role::Api],
        about: "Kafka bootstrap servers, `host:port[,host:port…]`",
        default: "`127.0.0.1:9092`",
        apply: Apply::Text(|c| &mut c.kafka.brokers),
    },
    EnvVar {
        name: "MQTT_URL",
        key: "mqtt.url",
        roles: &[Role::Ingest, Role::Downlink],
        about: "the campus MQTT broker",
        default: "`mqtt://127.0.0.1:1883`",
        apply: Apply::Text(|c| &mut c.mqtt.url),
    },
    EnvVar {
        name: "MQTT_USERNAME",
        key: "mqtt.username",
        roles: &[Role::Ingest, Role::Downlink, Role::BrokerAccounts],
        about: "the cloud's broker account",
        default: "`nimbus-cloud`",
        apply: Apply::Optional(|c| &mut c.mqtt.username),
    },
    EnvVar {
        name: "MQTT_PASSWORD",
        key: "mqtt.password",
        roles: &[Role::Ingest, Role::Downlink],
        about: "its password (a secret, never logged; required in production)",
        default: "none",
        apply: Apply::Secret(|c| &mut c.mqtt.password),
    },
    EnvVar {
        name: "INGEST_GROUP",
        key: "ingest.group",
        roles: &[Role::Ingest],
        about: "the ingest's shared-subscription group",
        default: "`nimbus-ingest`",
        apply: Apply::Text(|c| &mut c.ingest.group),
    },
    EnvVar {
        name: "INGEST_INSTANCE",
        key: "ingest.instance",
        roles: &[Role::Ingest, Role::Downlink],
        about: "this instance's stable name: MQTT client ids `nimbus-ingest-<instance>`, `nimbus-downlink-<instance>`",
        default: "the host name",
        apply: Apply::Text(|c| &mut c.ingest.instance),
    },
    EnvVar {
        name: "HOSTNAME",
        key: "",
        roles: &[Role::Ingest, Role::Downlink],
        about: "the host name, reduced to a-z, 0-9 and `-`: the default of `ingest.instance`",
        default: "set by the system (else `/etc/hostname`, else `local`)",
        apply: Apply::With(|c, v| {
            // Only a default: a TOML `ingest.instance` or INGEST_INSTANCE (applied whenever it is
            // set, before or after this row) wins.
            if c.ingest.instance.is_empty() {
                c.ingest.instance = instance_from_host(&v);
            }
            Ok(())
        }),
    },
    EnvVar {
        name: "NIMBUS_SERVICE_DB",
        key: "worker.database",
        roles: &[Role::Worker],
        about: "staging and tests: an existing database on `DATABASE_URL` a worker uses instead of its service's (not migrated)",
        default: "the service's own",
        apply: Apply::Optional(|c| &mut c.worker.database),
    },
    EnvVar {
        name: "NIMBUS_WORKER_GROUP",
        key: "worker.group",
        roles: &[Role::Worker],
        about: "staging and tests: a Kafka consumer group id replacing the seed's",
        default: "the seed's group",
        apply: Apply::Optional(|c| &mut c.worker.group),
    },
    EnvVar {
        name: "NIMBUS_WORKER_INSTANCE",
        key: "worker.instance",
        roles: &[Role::Worker],
        about: "the worker's static group member name (`group.instance.id`), stable across restarts and unique among the group's live members (a StatefulSet pod's name): a restarted worker takes its partitions back at once",
        default: "a name unique to the process (host, service, pid, random)",
        apply: Apply::Optional(|c| &mut c.worker.instance),
    },
    EnvVar {
        name: "NIMBUS_WORKER_BATCH",
        key: "worker.batch_size",
        roles: &[Role::Worker],
        about: "most events a worker applies in one database transaction (a poll's worth, up to this)",
        default: "`500`",
        apply: Apply::Number(|c| &mut c.worker.batch_size),
    },
    EnvVar {
        name: "ATTENDANCE_ALERT_INTERVAL_SECS",
        key: "worker.alert_interval_secs",
        roles: &[Role::Worker],
        about: "how often the attendance worker looks for students below the thresholds, seconds",
        default: "`600`",
        apply: Apply::Number(|c| &mut c.worker.alert_interval_secs),
    },
    EnvVar {
        name: "ATTENDANCE_ALERT_MIN_CLASSES",
        key: "worker.alert_min_classes",
        roles: &[Role::Worker],
        about: "classes a student must have had in a course before a low-attendance alert",
        default: "`3`",
        apply: Apply::Number(|c| &mut c.worker.alert_min_classes),
    },
    EnvVar {
        name: "NIMBUS_PUBLIC_URL",
        key: "downlink.public_url",
        roles: &[Role::Downlink],
        about: "the API's address as nodes reach it (content manifest URLs)",
        default: "`http://127.0.0.1:8080`",
        apply: Apply::Text(|c| &mut c.downlink.public_url),
    },
    EnvVar {
        name: "DOWNLINK_INTERVAL_SECS",
        key: "downlink.interval_secs",
        roles: &[Role::Downlink],
        about: "the downlink's full reconciliation period, seconds",
        default: "`30`",
        apply: Apply::Number(|c| &mut c.downlink.interval_secs),
    },
    EnvVar {
        name: "NIMBUS_PROBE_BIND",
        key: "probe.bind",
        roles: &[Role::Ingest, Role::Worker, Role::Downlink],
        about: "where `ingest`, `worker` and `downlink` serve `/health`, `/health/ready` and `/metrics` (`api` and `all` serve them on the API's address)",
        default: "`0.0.0.0:9464`",
        apply: Apply::Text(|c| &mut c.probe.bind),
    },
    EnvVar {
        name: "NIMBUS_API_BIND",
        key: "api.bind",
        roles: &[Role::Api],
        about: "the admin API's listen address",
        default: "`0.0.0.0:8080`",
        apply: Apply::Text(|c| &mut c.api.bind),
    },
    EnvVar {
        name: "NIMBUS_TLS_CERT",
        key: "api.tls_cert",
        roles: &[Role::Api],
        about: "PEM certificate chain: the api serves HTTPS itself (re-read when the file changes); unset: plain HTTP",
        default: "none",
        apply: Apply::Optional(|c| &mut c.api.tls_cert),
    },
    EnvVar {
        name: "NIMBUS_TLS_KEY",
        key: "api.tls_key",
        roles: &[Role::Api],
        about: "its PEM private key (PKCS#8, PKCS#1 or SEC1)",
        default: "none",
        apply: Apply::Optional(|c| &mut c.api.tls_key),
    },
    EnvVar {
        name: "REDIS_URL",
        key: "api.redis_url",
        roles: &[Role::Api],
        about: "Redis for revocations and rate limits",
        default: "`redis://127.0.0.1:6379`",
        apply: Apply::Text(|c| &mut c.api.redis_url),
    },
    EnvVar {
        name: "NIMBUS_REDIS_PREFIX",
        key: "api.redis_prefix",
        roles: &[Role::Api],
        about: "prefix of every Redis key (deployments and tests can share one Redis)",
        default: "`nimbus:`",
        apply: Apply::Text(|c| &mut c.api.redis_prefix),
    },
    EnvVar {
        name: "NIMBUS_CORS_ORIGINS",
        key: "api.cors_origins",
        roles: &[Role::Api],
        about: "comma-separated origins browsers may call the API from (`*` for any)",
        default: "none",
        apply: Apply::List(|c| &mut c.api.cors_origins),
    },
    EnvVar {
        name: "NIMBUS_ADMIN_EMAIL",
        key: "api.admin_email",
        roles: &[Role::Api],
        about: "the bootstrap administrator, created on start when no user has that email (never reset)",
        default: "none",
        apply: Apply::Optional(|c| &mut c.api.admin_email),
    },
    EnvVar {
        name: "NIMBUS_ADMIN_PASSWORD",
        key: "api.admin_password",
        roles: &[Role::Api],
        about: "its initial password, at least 8 characters (a secret, never logged)",
        default: "none",
        apply: Apply::Secret(|c| &mut c.api.admin_password),
    },
    EnvVar {
        name: "NIMBUS_RATE_LIMIT_IP",
        key: "api.rate_limit_ip",
        roles: &[Role::Api],
        about: "requests per window (`api.rate_window_secs`, 60 s) from one client address",
        default: "`600`",
        apply: Apply::Number(|c| &mut c.api.rate_limit_ip),
    },
    EnvVar {
        name: "NIMBUS_RATE_LIMIT_USER",
        key: "api.rate_limit_user",
        roles: &[Role::Api],
        about: "requests per window by one user",
        default: "`600`",
        apply: Apply::Number(|c| &mut c.api.rate_limit_user),
    },
    EnvVar {
        name: "NIMBUS_RATE_LIMIT_LOGIN",
        key: "api.rate_limit_login",
        roles: &[Role::Api],
        about: "login and password-reset attempts per window from one client address",
        default: "`10`",
        apply: Apply::Number(|c| &mut c.api.rate_limit_login),
    },
    EnvVar {
        name: "NIMBUS_MAX_FAILED_LOGINS",
        key: "api.max_failed_logins",
        roles: &[Role::Api],
        about: "failed logins in a row that lock an account for `api.lockout_secs` (900 s)",
        default: "`5`",
        apply: Apply::With(|c, v| {
            let n: u64 = v.trim().parse().map_err(|_| "is not a number")?;
            c.api.max_failed_logins = u32::try_from(n).unwrap_or(u32::MAX);
            Ok(())
        }),
    },
    EnvVar {
        name: "MONGODB_URI",
        key: "content.mongodb_uri",
        roles: &[Role::Api],
        about: "MongoDB holding content files (GridFS); `mongodb://` only (a password in it is redacted in logs)",
        default: "`mongodb://127.0.0.1:27017/?directConnection=true`",
        apply: Apply::Text(|c| &mut c.content.mongodb_uri),
    },
    EnvVar {
        name: "NIMBUS_CONTENT_MONGO_DB",
        key: "content.mongodb_database",
        roles: &[Role::Api],
        about: "the MongoDB database holding the bucket",
        default: "`content_files`",
        apply: Apply::Text(|c| &mut c.content.mongodb_database),
    },
    EnvVar {
        name: "NIMBUS_CONTENT_BUCKET",
        key: "content.bucket",
        roles: &[Role::Api],
        about: "the GridFS bucket (`<bucket>.files`, `<bucket>.chunks`)",
        default: "`fs`",
        apply: Apply::Text(|c| &mut c.content.bucket),
    },
    EnvVar {
        name: "NIMBUS_CONTENT_MAX_BYTES",
        key: "content.max_bytes",
        roles: &[Role::Api],
        about: "largest content file accepted, bytes",
        default: "`536870912` (512 MiB)",
        apply: Apply::Number(|c| &mut c.content.max_bytes),
    },
    EnvVar {
        name: "SMTP_HOST",
        key: "notification.smtp_host",
        roles: &[Role::Worker],
        about: "the SMTP server the notification worker sends e-mail through; unset: no e-mail channel",
        default: "none",
        apply: Apply::Optional(|c| &mut c.notification.smtp_host),
    },
    EnvVar {
        name: "SMTP_PORT",
        key: "notification.smtp_port",
        roles: &[Role::Worker],
        about: "its port",
        default: "`25`",
        apply: Apply::Number(|c| &mut c.notification.smtp_port),
    },
    EnvVar {
        name: "SMTP_FROM",
        key: "notification.smtp_from",
        roles: &[Role::Worker],
        about: "the sender of every e-mail (`Name <address>`); its domain ends every `Message-ID`",
        default: "`NimbusU <noreply@nimbus.invalid>`",
        apply: Apply::Text(|c| &mut c.notification.smtp_from),
    },
    EnvVar {
        name: "SMTP_USERNAME",
        key: "notification.smtp_username",
        roles: &[Role::Worker],
        about: "SMTP account, when the server requires one",
        default: "none",
        apply: Apply::Optional(|c| &mut c.notification.smtp_username),
    },
    EnvVar {
        name: "SMTP_PASSWORD",
        key: "notification.smtp_password",
        roles: &[Role::Worker],
        about: "its password (a secret, never logged)",
        default: "none",
        apply: Apply::Secret(|c| &mut c.notification.smtp_password),
    },
    EnvVar {
        name: "SMS_API_URL",
        key: "notification.sms_api_url",
        roles: &[Role::Worker],
        about: "the Twilio-style SMS API (`https://api.twilio.com`); unset: no SMS channel",
        default: "none",
        apply: Apply::Optional(|c| &mut c.notification.sms_api_url),
    },
    EnvVar {
        name: "SMS_ACCOUNT_SID",
        key: "notification.sms_account_sid",
        roles: &[Role::Worker],
        about: "its account SID",
        default: "none",
        apply: Apply::Optional(|c| &mut c.notification.sms_account_sid),
    },
    EnvVar {
        name: "SMS_AUTH_TOKEN",
        key: "notification.sms_auth_token",
        roles: &[Role::Worker],
        about: "its auth token (a secret, never logged)",
        default: "none",
        apply: Apply::Secret(|c| &mut c.notification.sms_auth_token),
    },
    EnvVar {
        name: "SMS_FROM",
        key: "notification.sms_from",
        roles: &[Role::Worker],
        about: "the sending number",
        default: "none",
        apply: Apply::Optional(|c| &mut c.notification.sms_from),
    },
    EnvVar {
        name: "PUSH_API_URL",
        key: "notification.push_api_url",
        roles: &[Role::Worker],
        about: "FCM's HTTP v1 API (`https://fcm.googleapis.com`); unset: no push channel",
        default: "none",
        apply: Apply::Optional(|c| &mut c.notification.push_api_url),
    },
    EnvVar {
        name: "PUSH_PROJECT",
        key: "notification.push_project",
        roles: &[Role::Worker],
        about: "the Firebase project id",
        default: "none",
        apply: Apply::Optional(|c| &mut c.notification.push_project),
    },
    EnvVar {
        name: "PUSH_ACCESS_TOKEN",
        key: "notification.push_access_token",
        roles: &[Role::Worker],
        about: "an OAuth2 access token for FCM (a secret, never logged; refreshed by the deployment)",
        default: "none",
        apply: Apply::Secret(|c| &mut c.notification.push_access_token),
    },
    EnvVar {
        name: "NIMBUS_RESET_URL",
        key: "notification.reset_url",
        roles: &[Role::Worker],
        about: "the page that takes a password reset token; the mailed link is `<this>?token=…`",
        default: "`http://127.0.0.1:8080/reset-password`",
        apply: Apply::Text(|c| &mut c.notification.reset_url),
    },
    EnvVar {
        name: "NOTIFICATION_CONCURRENCY",
        key: "notification.concurrency",
        roles: &[Role::Worker],
        about: "messages the notification worker has in flight at once (also the most a crash can send twice)",
        default: "`8`",
        apply: Apply::Number(|c| &mut c.notification.concurrency),
    },
    EnvVar {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        key: "tracing.otlp_endpoint",
        roles: &[Role::Api, Role::Worker],
        about: "OTLP/HTTP collector base URL: spans of API requests and of the workers' handling, one trace per change, posted as JSON to `<it>/v1/traces`",
        default: "unset: tracing off",
        apply: Apply::Optional(|c| &mut c.tracing.otlp_endpoint),
    },
    EnvVar {
        name: "NIMBUS_LOG_FORMAT",
        key: "tracing.log_format",
        roles: EVERY,
        about: "`text` or `json` (one object per line; carries `span.trace_id` while tracing is on)",
        default: "`text`",
        apply: Apply::Text(|c| &mut c.tracing.log_format),
    },
];

// ---------------------------------------------------------------------------------------------
// The settings
// ---------------------------------------------------------------------------------------------

/// Everything the cloud roles read at start.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloudConfig {
    /// Decides Kafka replication and how strict validation is (production requires broker
    /// credentials).
    pub environment: Environment,
    /// PostgreSQL.
    pub database: DatabaseConfig,
    /// Kafka.
    pub kafka: KafkaConfig,
    /// The campus MQTT broker.
    pub mqtt: MqttSettings,
    /// The ingest role.
    pub ingest: IngestConfig,
    /// The workers.
    pub worker: WorkerConfig,
    /// The downlink role.
    pub downlink: DownlinkConfig,
    /// Where the roles without the API serve their probes and metrics.
    pub probe: ProbeConfig,
    /// The admin API (gateway and user service).
    pub api: ApiConfig,
    /// The content service (GridFS store, upload limits).
    pub content: ContentConfig,
    /// The notification service's channels and sender.
    pub notification: NotificationConfig,
    /// Distributed tracing (off unless an OTLP endpoint is set).
    pub tracing: TracingConfig,
}

/// Distributed tracing (`crate::trace`) and the log format: tracing is off by default, so a
/// deployment without a collector pays nothing for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// The OTLP/HTTP collector's base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`, the OpenTelemetry
    /// name, so collectors' docs apply); spans are posted as JSON to `<it>/v1/traces`.
    pub otlp_endpoint: Option<String>,
    /// `text` (for people) or `json` (one object per line, for log collectors; with the trace
    /// id of the request or message in `span.trace_id` while tracing is on)
    /// (`NIMBUS_LOG_FORMAT`).
    pub log_format: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig { otlp_endpoint: None, log_format: "text".into() }
    }
}

/// Settings of the admin API (`nimbus-cloud api`).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address (`NIMBUS_API_BIND`).
    pub bind: String,
    /// Redis for revocation and rate limits (`REDIS_URL`).
    pub redis_url: String,
    /// Prefix of every Redis key, so deployments (and tests) can share one Redis
    /// (`NIMBUS_REDIS_PREFIX`).
    pub redis_prefix: String,
    /// Origins browsers may call the API from; `*` allows any (`NIMBUS_CORS_ORIGINS`).
    pub cors_origins: Vec<String>,
    /// The bootstrap administrator created on start when absent (`NIMBUS_ADMIN_EMAIL`).
    pub admin_email: Option<String>,
    /// Its initial password (`NIMBUS_ADMIN_PASSWORD`); never logged.
    pub admin_password: Option<Secret>,
    /// Length of a rate-limit window in seconds.
    pub rate_window_secs: u64,
    /// Requests per window from one client address (`NIMBUS_RATE_LIMIT_IP`).
    pub rate_limit_ip: u64,
    /// Requests per window by one user (`NIMBUS_RATE_LIMIT_USER`).
    pub rate_limit_user: u64,
    /// Login attempts per window from one client address (`NIMBUS_RATE_LIMIT_LOGIN`).
    pub rate_limit_login: u64,
    /// Failed logins in a row that lock an account (`NIMBUS_MAX_FAILED_LOGINS`).
    pub max_failed_logins: u32,
    /// How long a locked account stays locked, in seconds.
    pub lockout_secs: u64,
    /// Longest time a request may take before it is answered 503.
    pub request_timeout_secs: u64,
    /// How often the role → permissions table is re-read, in seconds.
    pub permissions_refresh_secs: u64,
    /// Whether the client address comes from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// PEM certificate chain for HTTPS (`NIMBUS_TLS_CERT`); with `tls_key`, the api serves TLS.
    pub tls_cert: Option<String>,
    /// Its private key (`NIMBUS_TLS_KEY`).
    pub tls_key: Option<String>,
    /// How often the certificate files are checked for a renewal, in seconds.
    pub tls_reload_secs: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            bind: "0.0.0.0:8080".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_prefix: "nimbus:".into(),
            cors_origins: Vec::new(),
            admin_email: None,
            admin_password: None,
            rate_window_secs: 60,
            rate_limit_ip: 600,
            rate_limit_user: 600,
            rate_limit_login: 10,
            max_failed_logins: 5,
            lockout_secs: 15 * 60,
            request_timeout_secs: 30,
            permissions_refresh_secs: 30,
            trust_forwarded_for: false,
            tls_cert: None,
            tls_key: None,
            tls_reload_secs: 30,
        }
    }
}

/// Settings of the downlink role.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DownlinkConfig {
    /// The cloud API's address as nodes reach it, for the content manifest's download URLs
    /// (`NIMBUS_PUBLIC_URL`).
    pub public_url: String,
    /// Full reconciliation period in seconds (changes that are events are picked up sooner)
    /// (`DOWNLINK_INTERVAL_SECS`).
    pub interval_secs: u64,
    /// Wait after a change event before reconciling, in milliseconds.
    pub debounce_ms: u64,
}

impl Default for DownlinkConfig {
    fn default() -> Self {
        DownlinkConfig { public_url: "http://127.0.0.1:8080".into(), interval_secs: 30, debounce_ms: 500 }
    }
}

/// Where `ingest`, `worker` and `downlink` serve `/health`, `/health/ready` and `/metrics`
/// (`crate::http::probe`); `api` and `all` serve them on `api.bind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeConfig {
    /// Listen address, `host:port` (`NIMBUS_PROBE_BIND`).
    pub bind: String,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig { bind: "0.0.0.0:9464".into() }
    }
}

/// Settings of the workers (`nimbus-cloud worker`): the low-attendance job's rhythm, and overrides
/// for staging and tests (`database`, `group`), unset in production, where each worker uses its
/// service's database and the seed's consumer group.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// An existing database on `database.url` to use instead of the service's own, which is then
    /// neither created nor migrated (`NIMBUS_SERVICE_DB`), as `database.registry_database` does
    /// for the registry.
    pub database: Option<String>,
    /// A consumer group id replacing the seed's (`NIMBUS_WORKER_GROUP`). A deployment under
    /// another id would apply every event a second time.
    pub group: Option<String>,
    /// How often the low-attendance job runs, in seconds (`ATTENDANCE_ALERT_INTERVAL_SECS`).
    pub alert_interval_secs: u64,
    /// Counted classes before a percentage means anything (`ATTENDANCE_ALERT_MIN_CLASSES`).
    pub alert_min_classes: u64,
    /// Most events applied in one database transaction (`NIMBUS_WORKER_BATCH`).
    pub batch_size: u64,
    /// The worker's static group member name (`NIMBUS_WORKER_INSTANCE`). Unset, the worker
    /// makes one unique to its process: two live members under one name fence each other, so a
    /// default such as the host name would break two workers on one machine.
    pub instance: Option<String>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            database: None,
            group: None,
            alert_interval_secs: 600,
            alert_min_classes: 3,
            batch_size: 500,
            instance: None,
        }
    }
}

/// PostgreSQL settings.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The server, as a `postgres://` URL; any database name in it is replaced by the database
    /// each role needs, so one setting serves every role.
    pub url: String,
    /// Name of the edge registry database; overridable so tests and staging can share a server.
    pub registry_database: String,
    /// Connections per pool; must cover `ingest.max_in_flight`, since every batch in flight holds
    /// one connection (its node's row lock) until Kafka answers.
    pub max_connections: usize,
    /// Full URLs of individual service databases that live elsewhere (or under another name),
    /// by their seed name: `[database.urls] timetable_service_db = "postgres://…"`. From the
    /// environment as `<SERVICE>_DATABASE_URL` (`TIMETABLE_DATABASE_URL`, `USER_DATABASE_URL`, …).
    pub urls: BTreeMap<String, String>,
}

/// Kafka settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// How long a produced event may wait for the broker's confirmation before the batch counts
    /// as failed (not acked; the node resends). Also bounds how long a node's row stays locked.
    pub delivery_timeout_ms: u64,
}

/// MQTT broker settings.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    /// `mqtt://host:port` (or `mqtts://` in a build with TLS).
    pub url: String,
    /// The cloud's broker account; the ACL lets it read every node's uplink.
    pub username: Option<String>,
    /// Its password.
    pub password: Option<Secret>,
    /// Keep-alive in seconds; a dead connection is noticed within about 1.5 times this.
    pub keep_alive_secs: u64,
    /// Largest MQTT packet the ingest reads. Deliberately far above the protocol's frame limit:
    /// rumqttc treats a larger packet as a broken connection, and the broker redelivers the
    /// unacked message to the persistent session on every reconnect, so one oversized frame
    /// would stall every node. Up to this size an oversized frame is read, refused as
    /// `too_large` and counted instead. The broker's `max_packet_size` must not exceed it.
    pub max_incoming_bytes: usize,
}

/// Settings of the ingest role.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// The shared-subscription group: instances in one group split the nodes' uplink between
    /// them, so adding an instance adds capacity without double processing.
    pub group: String,
    /// This instance's stable name; the MQTT client id is `nimbus-ingest-<instance>`. It must be
    /// the same across restarts (the broker keeps the persistent session, with the messages
    /// queued while the instance was down, under it) and different between instances (the
    /// broker disconnects an older client when a newer one takes its id). Empty (the default)
    /// until loaded: then the host name (`HOSTNAME`).
    pub instance: String,
    /// Batches processed at once across all nodes (each node is always one at a time). Bounds
    /// database connections and events waiting in the Kafka producer.
    pub max_in_flight: usize,
    /// Most nodes tracked at once (one small task each). Frames of further nodes are dropped
    /// (the node resends), so a misbehaving broker account cannot exhaust memory.
    pub max_nodes: usize,
    /// Longest wait for a node's row lock, held by another instance working on the same node.
    pub lock_timeout_ms: u64,
    /// Interval of the metrics log line; 0 turns it off.
    pub metrics_interval_secs: u64,
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            environment: Environment::Development,
            database: DatabaseConfig::default(),
            kafka: KafkaConfig::default(),
            mqtt: MqttSettings::default(),
            ingest: IngestConfig::default(),
            worker: WorkerConfig::default(),
            downlink: DownlinkConfig::default(),
            probe: ProbeConfig::default(),
            api: ApiConfig::default(),
            content: ContentConfig::default(),
            notification: NotificationConfig::default(),
            tracing: TracingConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "postgres://postgres@127.0.0.1:5432".into(),
            registry_database: "edge_registry_db".into(),
            max_connections: 16,
            urls: Default::default(),
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig { brokers: "127.0.0.1:9092".into(), delivery_timeout_ms: 30_000 }
    }
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            url: "mqtt://127.0.0.1:1883".into(),
            username: Some("nimbus-cloud".into()),
            password: None,
            keep_alive_secs: 15,
            max_incoming_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            group: "nimbus-ingest".into(),
            instance: String::new(),
            max_in_flight: 8,
            max_nodes: 10_000,
            lock_timeout_ms: 60_000,
            metrics_interval_secs: 60,
        }
    }
}

/// The instance name used when none is set: stable across restarts of one machine, distinct
/// between machines.
const FALLBACK_INSTANCE: &str = "local";

/// A host name reduced to `[a-z0-9-]` (at most 64 characters): stable across restarts of one
/// machine, distinct between machines.
fn instance_from_host(host: &str) -> String {
    let name: String = host
        .trim()
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() { FALLBACK_INSTANCE.into() } else { name.chars().take(64).collect() }
}

/// Whether `name` is a database name the cloud accepts (and may quote in `CREATE DATABASE`).
fn is_database_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl CloudConfig {
    /// Defaults, then the TOML file at `path` (if any), then the process environment, validated.
    /// Without a `HOSTNAME` variable the host name comes from `/etc/hostname`.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let text = match path {
            Some(p) => Some(
                std::fs::read_to_string(p).map_err(|e| Error::Config(format!("config file {}: {e}", p.display())))?,
            ),
            None => None,
        };
        Self::from_sources(text.as_deref(), |name| {
            std::env::var(name)
                .ok()
                .or_else(|| if name == "HOSTNAME" { std::fs::read_to_string("/etc/hostname").ok() } else { None })
        })
    }

    /// Defaults, then `toml` (if any), then the variables of [`ENV`] that `env` returns,
    /// validated. `env` is asked for those variables only, and is the only source of the
    /// environment: tests need not touch the process's.
    pub fn from_sources(toml: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut config: CloudConfig = match toml {
            Some(text) => toml::from_str(text).map_err(|e| Error::Config(format!("config file: {e}")))?,
            None => CloudConfig::default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Applies every row of [`ENV`] whose variable `env` has (and is not blank).
    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<()> {
        for var in ENV {
            let Some(value) = env(var.name).filter(|v| !v.trim().is_empty()) else { continue };
            var.apply.apply(self, value.clone()).map_err(|problem| {
                let setting =
                    if var.key.is_empty() { var.name.to_owned() } else { format!("{} ({})", var.key, var.name) };
                Error::Config(format!("{setting}: {value:?} {problem}"))
            })?;
        }
        if self.ingest.instance.is_empty() {
            self.ingest.instance = FALLBACK_INSTANCE.into();
        }
        Ok(())
    }

    /// Production brokers refuse anonymous clients: the roles that use the broker (ingest,
    /// downlink) call this at start. Not part of [`CloudConfig::validate`], which every role runs:
    /// the api or a worker has no broker password and needs none.
    pub fn require_broker_password(&self) -> Result<()> {
        if self.environment == Environment::Production && self.mqtt.password.is_none() {
            return Err(Error::Config("mqtt.password (MQTT_PASSWORD): is required in production".into()));
        }
        Ok(())
    }

    /// Checks every setting; the error names the first one that is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |setting: &str, problem: String| Err(Error::Config(format!("{setting}: {problem}")));
        if !matches!(self.tracing.log_format.as_str(), "text" | "json") {
            return bad("tracing.log_format (NIMBUS_LOG_FORMAT)", "must be text or json".into());
        }

        if !(self.database.url.starts_with("postgres://") || self.database.url.starts_with("postgresql://")) {
            return bad("database.url (DATABASE_URL)", "must be a postgres:// URL".into());
        }
        let url = crate::db::database_url(&self.database.url, &self.database.registry_database);
        if let Err(e) = url.parse::<tokio_postgres::Config>() {
            return bad("database.url (DATABASE_URL)", format!("not a valid PostgreSQL URL: {e}"));
        }
        let db = &self.database.registry_database;
        if !is_database_name(db) {
            return bad(
                "database.registry_database (NIMBUS_REGISTRY_DB)",
                format!("{db:?} must be 1 to 63 characters of a-z, 0-9 and _"),
            );
        }
        if self.database.max_connections < 2 {
            return bad("database.max_connections", "must be at least 2".into());
        }

        if self.kafka.brokers.split(',').any(|b| b.trim().is_empty() || !b.contains(':')) {
            return bad(
                "kafka.brokers (KAFKA_BROKERS)",
                format!("{:?} must be host:port[,host:port…]", self.kafka.brokers),
            );
        }
        if !(1_000..=600_000).contains(&self.kafka.delivery_timeout_ms) {
            return bad("kafka.delivery_timeout_ms", "must be between 1000 and 600000".into());
        }

        if let Err(e) = nimbus_sync::transport::parse_url(&self.mqtt.url) {
            return bad("mqtt.url (MQTT_URL)", e.to_string());
        }
        match (&self.mqtt.username, &self.mqtt.password) {
            (Some(u), _) if u.is_empty() => return bad("mqtt.username (MQTT_USERNAME)", "must not be empty".into()),
            (None, Some(_)) => return bad("mqtt.username (MQTT_USERNAME)", "is required with a password".into()),
            _ => {}
        }
        if self.mqtt.keep_alive_secs < 5 {
            return bad("mqtt.keep_alive_secs", "must be at least 5".into());
        }
        let min_packet = nimbus_sync::frame::FrameLimits::DEFAULT_MAX_FRAME_BYTES + 1024;
        if !(min_packet..=256 * 1024 * 1024).contains(&self.mqtt.max_incoming_bytes) {
            return bad("mqtt.max_incoming_bytes", format!("must be between {min_packet} and 268435456"));
        }

        let group = &self.ingest.group;
        if group.is_empty()
            || group.len() > 64
            || !group.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad(
                "ingest.group (INGEST_GROUP)",
                format!("{group:?} must be 1 to 64 characters of a-z, A-Z, 0-9, - and _"),
            );
        }
        let instance = &self.ingest.instance;
        if instance.is_empty()
            || instance.len() > 64
            || !instance.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return bad(
                "ingest.instance (INGEST_INSTANCE)",
                format!("{instance:?} must be 1 to 64 characters of a-z, A-Z, 0-9, -, _ and ."),
            );
        }
        if self.ingest.max_in_flight == 0 || self.ingest.max_in_flight >= self.database.max_connections {
            return bad(
                "ingest.max_in_flight",
                format!("must be at least 1 and below database.max_connections ({})", self.database.max_connections),
            );
        }
        if self.ingest.max_nodes == 0 {
            return bad("ingest.max_nodes", "must be at least 1".into());
        }
        if self.ingest.lock_timeout_ms < 1_000 {
            return bad("ingest.lock_timeout_ms", "must be at least 1000".into());
        }

        if let Some(db) = &self.worker.database
            && !is_database_name(db)
        {
            return bad(
                "worker.database (NIMBUS_SERVICE_DB)",
                format!("{db:?} must be 1 to 63 characters of a-z, 0-9 and _"),
            );
        }
        if let Some(group) = &self.worker.group
            && (group.trim().is_empty() || group.len() > 255)
        {
            return bad("worker.group (NIMBUS_WORKER_GROUP)", "must be 1 to 255 characters".into());
        }

        if self.api.tls_cert.is_some() != self.api.tls_key.is_some() {
            return bad("api.tls_cert (NIMBUS_TLS_CERT)", "and api.tls_key (NIMBUS_TLS_KEY) go together".into());
        }
        if self.api.tls_reload_secs == 0 {
            return bad("api.tls_reload_secs", "must be at least 1".into());
        }
        if self.probe.bind.parse::<std::net::SocketAddr>().is_err() {
            return bad("probe.bind (NIMBUS_PROBE_BIND)", format!("{:?} must be host:port", self.probe.bind));
        }
        if let Some(instance) = &self.worker.instance
            && (instance.is_empty()
                || instance.len() > 200
                || !instance.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            return bad(
                "worker.instance (NIMBUS_WORKER_INSTANCE)",
                format!("{instance:?} must be 1 to 200 characters of a-z, A-Z, 0-9, -, _ and ."),
            );
        }
        if !(1..=10_000).contains(&self.worker.batch_size) {
            return bad("worker.batch_size (NIMBUS_WORKER_BATCH)", "must be 1 to 10000".into());
        }
        if self.api.bind.parse::<std::net::SocketAddr>().is_err() {
            return bad("api.bind (NIMBUS_API_BIND)", format!("{:?} must be host:port", self.api.bind));
        }
        if !(self.api.redis_url.starts_with("redis://") || self.api.redis_url.starts_with("rediss://")) {
            return bad("api.redis_url (REDIS_URL)", "must be a redis:// URL".into());
        }
        if self.api.rate_window_secs == 0 {
            return bad("api.rate_window_secs", "must be at least 1".into());
        }
        if self.api.rate_limit_ip == 0 || self.api.rate_limit_user == 0 || self.api.rate_limit_login == 0 {
            return bad("api.rate_limit_* (NIMBUS_RATE_LIMIT_*)", "must be at least 1".into());
        }
        if self.api.max_failed_logins == 0 {
            return bad("api.max_failed_logins (NIMBUS_MAX_FAILED_LOGINS)", "must be at least 1".into());
        }
        if self.api.request_timeout_secs == 0 || self.api.permissions_refresh_secs == 0 {
            return bad("api.request_timeout_secs / api.permissions_refresh_secs", "must be at least 1".into());
        }
        match (&self.api.admin_email, &self.api.admin_password) {
            (Some(_), None) | (None, Some(_)) => {
                return bad(
                    "api.admin_email / api.admin_password (NIMBUS_ADMIN_EMAIL / NIMBUS_ADMIN_PASSWORD)",
                    "must be set together".into(),
                );
            }
            (Some(_), Some(p)) if p.expose().chars().count() < 8 => {
                return bad("api.admin_password (NIMBUS_ADMIN_PASSWORD)", "must be at least 8 characters".into());
            }
            _ => {}
        }
        self.content.validate()?;
        self.notification.validate()?;
        Ok(())
    }

    /// The URL of the edge registry database.
    pub fn registry_url(&self) -> String {
        crate::db::database_url(&self.database.url, &self.database.registry_database)
    }

    /// The actual name of a database the cloud owns, by its name in [`crate::db::ALL`]: the
    /// registry's follows `database.registry_database`, the others are fixed.
    pub fn database_name<'a>(&'a self, database: &'a str) -> &'a str {
        if database == "edge_registry_db" { &self.database.registry_database } else { database }
    }

    /// The URL of a database the cloud owns, by its name in [`crate::db::ALL`]: its own URL
    /// from `database.urls` if it has one, else the server's with the database's name.
    pub fn database_url_for(&self, database: &str) -> String {
        match self.database.urls.get(database) {
            Some(url) => url.clone(),
            None => crate::db::database_url(&self.database.url, self.database_name(database)),
        }
    }

    /// Where a database the cloud owns (by its name in [`crate::db::ALL`]) lives, for
    /// [`crate::db::create_and_migrate`].
    pub fn database_target(&self, database: &str) -> crate::db::Target {
        crate::db::Target {
            server_url: self.database.url.clone(),
            name: self.database_name(database).to_owned(),
            url: self.database_url_for(database),
        }
    }

    /// The cloud's broker account (`mqtt.*`) under the MQTT client id `client_id`.
    pub fn mqtt_client(&self, client_id: String) -> nimbus_sync::transport::MqttConfig {
        let mut m = nimbus_sync::transport::MqttConfig::new(&self.mqtt.url, client_id);
        m.keep_alive = Duration::from_secs(self.mqtt.keep_alive_secs);
        if let Some(u) = &self.mqtt.username {
            m.username = Some(u.clone());
            m.password = Some(self.mqtt.password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default());
        }
        m
    }

    /// The ingest instance's MQTT client id.
    pub fn ingest_client_id(&self) -> String {
        format!("nimbus-ingest-{}", self.ingest.instance)
    }

    /// The ingest's MQTT connection settings.
    pub fn ingest_mqtt(&self) -> nimbus_sync::transport::MqttConfig {
        self.mqtt_client(self.ingest_client_id())
    }

    /// How long Kafka may take to confirm an event.
    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_millis(self.kafka.delivery_timeout_ms)
    }
}

const REDACTED: &str = "<redacted>";

/// The URL with any password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..].find(['/', '?']).map_or(url.len(), |i| scheme_end + i);
    let authority = &url[scheme_end..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:{REDACTED}{}", &url[..scheme_end], &url[scheme_end + at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl fmt::Debug for CloudConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudConfig")
            .field("environment", &self.environment)
            .field("database", &self.database)
            .field("kafka", &self.kafka)
            .field("mqtt", &self.mqtt)
            .field("ingest", &self.ingest)
            .field("worker", &self.worker)
            .field("downlink", &self.downlink)
            .field("probe", &self.probe)
            .field("api", &self.api)
            .field("content", &self.content)
            .field("notification", &self.notification)
            .field("tracing", &self.tracing.otlp_endpoint.as_deref().map(redact_url))
            .field("log_format", &self.tracing.log_format)
            .finish()
    }
}

impl fmt::Debug for NotificationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = |u: &Option<String>| u.as_deref().map(redact_url);
        f.debug_struct("NotificationConfig")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_from", &self.smtp_from)
            .field("smtp_username", &self.smtp_username)
            .field("smtp_password", &self.smtp_password)
            .field("sms_api_url", &url(&self.sms_api_url))
            .field("sms_account_sid", &self.sms_account_sid)
            .field("sms_auth_token", &self.sms_auth_token)
            .field("sms_from", &self.sms_from)
            .field("push_api_url", &url(&self.push_api_url))
            .field("push_project", &self.push_project)
            .field("push_access_token", &self.push_access_token)
            .field("reset_url", &redact_url(&self.reset_url))
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: BTreeMap<&str, String> = self.urls.iter().map(|(k, v)| (k.as_str(), redact_url(v))).collect();
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("registry_database", &self.registry_database)
            .field("max_connections", &self.max_connections)
            .field("urls", &urls)
            .finish()
    }
}

impl fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttSettings")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password)
            .field("keep_alive_secs", &self.keep_alive_secs)
            .field("max_incoming_bytes", &self.max_incoming_bytes)
            .finish()
    }
}

impl fmt::Debug for DownlinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownlinkConfig")
            .field("public_url", &redact_url(&self.public_url))
            .field("interval_secs", &self.interval_secs)
            .field("debounce_ms", &self.debounce_ms)
            .finish()
    }
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("bind", &self.bind)
            .field("redis_url", &redact_url(&self.redis_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("cors_origins", &self.cors_origins)
            .field("admin_email", &self.admin_email)
            .field("admin_password", &self.admin_password)
            .field("rate_window_secs", &self.rate_window_secs)
            .field("rate_limit_ip", &self.rate_limit_ip)
            .field("rate_limit_user", &self.rate_limit_user)
            .field("rate_limit_login", &self.rate_limit_login)
            .field("max_failed_logins", &self.max_failed_logins)
            .field("lockout_secs", &self.lockout_secs)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("permissions_refresh_secs", &self.permissions_refresh_secs)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_reload_secs", &self.tls_reload_secs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    fn error(toml: Option<&str>, vars: &[(&str, &str)]) -> String {
        CloudConfig::from_sources(toml, env(vars)).unwrap_err().to_string()
    }

    #[test]
    fn defaults_suit_a_single_machine_campus() {
        let c = CloudConfig::from_sources(None, env(&[])).unwrap();
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.registry_url(), "postgres://postgres@127.0.0.1:5432/edge_registry_db");
        assert_eq!(c.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(c.mqtt.url, "mqtt://127.0.0.1:1883");
        assert_eq!(c.ingest.group, "nimbus-ingest");
        assert_eq!(c.ingest_client_id(), "nimbus-ingest-local");
        assert_eq!(c.delivery_timeout(), Duration::from_secs(30));
        assert_eq!((c.worker.database, c.worker.group), (None, None));
    }

    #[test]
    fn the_instance_defaults_to_the_host_name_the_loader_was_given() {
        let instance = |toml: Option<&str>, vars: &[(&str, &str)]| {
            CloudConfig::from_sources(toml, env(vars)).unwrap().ingest.instance
        };
        assert_eq!(instance(None, &[("HOSTNAME", "Cloud_Box.campus\n")]), "cloud-box-campus");
        assert_eq!(instance(None, &[("HOSTNAME", "--")]), "local");
        assert_eq!(instance(None, &[("HOSTNAME", "box"), ("INGEST_INSTANCE", "ingest-1")]), "ingest-1");
        assert_eq!(instance(Some("[ingest]\ninstance = \"from-file\""), &[("HOSTNAME", "box")]), "from-file");
    }

    #[test]
    fn a_service_database_can_live_elsewhere() {
        let toml = "[database.urls]\ncourse_service_db = \"postgres://c@elsewhere:5432/courses\"\n";
        let c =
            CloudConfig::from_sources(Some(toml), env(&[("TIMETABLE_DATABASE_URL", "postgres://t@tt:5432/tt_test")]))
                .unwrap();
        assert_eq!(c.database_url_for("timetable_service_db"), "postgres://t@tt:5432/tt_test");
        assert_eq!(c.database_url_for("course_service_db"), "postgres://c@elsewhere:5432/courses");
        assert_eq!(c.database_url_for("user_service_db"), "postgres://postgres@127.0.0.1:5432/user_service_db");
    }

    #[test]
    fn every_seed_service_database_has_its_variable() {
        let rows: BTreeSet<&str> = ENV
            .iter()
            .filter_map(|v| match v.apply {
                Apply::ServiceDatabase(db) => {
                    let service = db.strip_suffix("_service_db").expect("a seed service database");
                    assert_eq!(v.name, format!("{}_DATABASE_URL", service.to_uppercase()));
                    assert_eq!(v.key, format!("database.urls.{db}"));
                    Some(db)
                }
                _ => None,
            })
            .collect();
        for m in crate::db::ALL.iter().filter(|m| m.database != "edge_registry_db") {
            assert!(rows.contains(m.database), "{} has no <SERVICE>_DATABASE_URL row in ENV", m.database);
        }
        assert_eq!(rows.len(), 9, "the seed has nine service databases");
    }

    #[test]
    fn worker_overrides_are_settings_too() {
        let c = CloudConfig::from_sources(
            None,
            env(&[("NIMBUS_SERVICE_DB", "nimbus_test_1"), ("NIMBUS_WORKER_GROUP", "t-attendance")]),
        )
        .unwrap();
        assert_eq!(c.worker.database.as_deref(), Some("nimbus_test_1"));
        assert_eq!(c.worker.group.as_deref(), Some("t-attendance"));
        let c = CloudConfig::from_sources(Some("[worker]\ndatabase = \"staging_attendance\""), env(&[])).unwrap();
        assert_eq!(c.worker.database.as_deref(), Some("staging_attendance"));
        assert!(error(None, &[("NIMBUS_SERVICE_DB", "Bad-Name")]).contains("worker.database (NIMBUS_SERVICE_DB)"));
        assert!(error(Some("[worker]\ngroup = \" \""), &[]).contains("worker.group (NIMBUS_WORKER_GROUP)"));
    }

    #[test]
    fn the_worker_member_name_is_never_the_host_name_by_default() {
        let c = CloudConfig::from_sources(None, env(&[("HOSTNAME", "box"), ("INGEST_INSTANCE", "ingest-1")])).unwrap();
        assert_eq!(c.worker.instance, None, "two workers on one host must not share a member name");
        let c = CloudConfig::from_sources(None, env(&[("NIMBUS_WORKER_INSTANCE", "attendance-0")])).unwrap();
        assert_eq!(c.worker.instance.as_deref(), Some("attendance-0"));
        assert!(error(None, &[("NIMBUS_WORKER_INSTANCE", "a b")]).contains("worker.instance (NIMBUS_WORKER_INSTANCE)"));
    }

    #[test]
    fn toml_then_environment_override_defaults() {
        let toml = r#"
            environment = "production"
            [database]
            url = "postgres://cloud:pw@db.campus:5432/whatever"
            [kafka]
            brokers = "k1:9092,k2:9092"
            delivery_timeout_ms = 5000
            [mqtt]
            url = "mqtt://broker.campus:1883"
            password = "from-file"
            [ingest]
            instance = "ingest-a"
            max_in_flight = 4
        "#;
        let c = CloudConfig::from_sources(
            Some(toml),
            env(&[("MQTT_PASSWORD", "from-env"), ("INGEST_GROUP", "blue"), ("KAFKA_BROKERS", "k9:9092")]),
        )
        .unwrap();
        assert_eq!(c.environment, Environment::Production);
        assert_eq!(c.registry_url(), "postgres://cloud:pw@db.campus:5432/edge_registry_db");
        assert_eq!(c.kafka.brokers, "k9:9092");
        assert_eq!(c.kafka.delivery_timeout_ms, 5000);
        assert_eq!(c.mqtt.password, Some(Secret::new("from-env")));
        assert_eq!(c.ingest.group, "blue");
        assert_eq!(c.ingest_client_id(), "nimbus-ingest-ingest-a");
        let m = c.ingest_mqtt();
        assert_eq!((m.username.as_deref(), m.password.as_deref()), (Some("nimbus-cloud"), Some("from-env")));
        assert_eq!(c.mqtt_client("nimbus-downlink-ingest-a".into()).password.as_deref(), Some("from-env"));
    }

    #[test]
    fn blank_variables_are_ignored_and_lists_are_split() {
        let c = CloudConfig::from_sources(
            None,
            env(&[("KAFKA_BROKERS", "  "), ("NIMBUS_CORS_ORIGINS", "https://a.campus, ,https://b.campus")]),
        )
        .unwrap();
        assert_eq!(c.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(c.api.cors_origins, ["https://a.campus", "https://b.campus"]);
    }

    #[test]
    fn validation_errors_name_the_setting() {
        assert!(error(None, &[("NIMBUS_ENV", "staging")]).contains("environment (NIMBUS_ENV): \"staging\" is not"));
        assert!(
            error(None, &[("NIMBUS_LOG_FORMAT", "xml")])
                .contains("tracing.log_format (NIMBUS_LOG_FORMAT): must be text or json")
        );
        assert!(error(None, &[("DATABASE_URL", "mysql://x")]).contains("database.url (DATABASE_URL)"));
        assert!(error(None, &[("KAFKA_BROKERS", "localhost")]).contains("kafka.brokers (KAFKA_BROKERS)"));
        assert!(error(None, &[("MQTT_URL", "http://broker")]).contains("mqtt.url (MQTT_URL)"));
        assert!(error(None, &[("INGEST_GROUP", "a/b")]).contains("ingest.group (INGEST_GROUP)"));
        assert!(error(None, &[("INGEST_INSTANCE", "a b")]).contains("ingest.instance (INGEST_INSTANCE)"));
        let production = CloudConfig::from_sources(None, env(&[("NIMBUS_ENV", "production")])).unwrap();
        let err = production.require_broker_password().unwrap_err().to_string();
        assert!(err.contains("mqtt.password (MQTT_PASSWORD)"), "{err}");
        assert!(error(None, &[("NIMBUS_ADMIN_EMAIL", "a@b.c"), ("NIMBUS_ADMIN_PASSWORD", "short")]).contains("8"));
        assert!(error(Some("[ingest]\nmax_in_flight = 0"), &[]).contains("ingest.max_in_flight"));
        assert!(error(Some("[kafka]\ndelivery_timeout_ms = 10"), &[]).contains("kafka.delivery_timeout_ms"));
        assert!(error(Some("[kafka]\nbrokerz = \"x:1\""), &[]).contains("brokerz"));
        assert!(error(Some("[mqtt]\nmax_incoming_bytes = 1000"), &[]).contains("mqtt.max_incoming_bytes"));
    }

    #[test]
    fn a_number_variable_that_is_not_a_number_is_refused_by_name() {
        let numbers = ENV.iter().filter(|v| matches!(v.apply, Apply::Number(_)) || v.name.ends_with("_LOGINS"));
        for var in numbers {
            let e = error(None, &[(var.name, "lots")]);
            assert!(e.ends_with(&format!("{} ({}): \"lots\" is not a number", var.key, var.name)), "{e}");
        }
    }

    /// Every secret a configuration can hold, from the environment: the passwords, and URLs
    /// that may embed one.
    const SECRETS: &[(&str, &str)] = &[
        ("MQTT_PASSWORD", "mqtt-secret-1"),
        ("NIMBUS_ADMIN_PASSWORD", "admin-secret-2"),
        ("DATABASE_URL", "postgres://cloud:db-secret-3@db:5432/x"),
        ("REDIS_URL", "redis://default:redis-secret-4@redis:6379/0"),
        ("MONGODB_URI", "mongodb://content:mongo-secret-5@mongodb:27017/?directConnection=true"),
        ("NIMBUS_PUBLIC_URL", "https://cloud:public-secret-6@cloud.campus"),
        ("MQTT_URL", "mqtt://cloud:url-secret-7@broker:1883"),
        ("USER_DATABASE_URL", "postgres://u:service-secret-user@db:5432/users"),
        ("CONTENT_DATABASE_URL", "postgres://u:service-secret-content@db:5432/c"),
        ("NOTIFICATION_DATABASE_URL", "postgres://u:service-secret-notification@db:5432/n"),
        ("COURSE_DATABASE_URL", "postgres://u:service-secret-course@db:5432/c"),
        ("TIMETABLE_DATABASE_URL", "postgres://u:service-secret-timetable@db:5432/t"),
        ("ATTENDANCE_DATABASE_URL", "postgres://u:service-secret-attendance@db:5432/a"),
        ("ANNOUNCEMENT_DATABASE_URL", "postgres://u:service-secret-announcement@db:5432/a"),
        ("COMMUNICATION_DATABASE_URL", "postgres://u:service-secret-communication@db:5432/c"),
        ("ANALYTICS_DATABASE_URL", "postgres://u:service-secret-analytics@db:5432/a"),
        ("SMTP_PASSWORD", "smtp-secret-8"),
        ("SMS_API_URL", "https://sms:sms-url-secret-9@sms.example"),
        ("SMS_AUTH_TOKEN", "sms-secret-10"),
        ("PUSH_API_URL", "https://push:push-url-secret-11@push.example"),
        ("PUSH_ACCESS_TOKEN", "push-secret-12"),
        ("NIMBUS_RESET_URL", "https://reset:reset-secret-13@campus.example/reset"),
    ];

    fn secret_of(value: &str) -> &str {
        match value.split_once("://") {
            Some((_, rest)) => {
                rest.split_once('@').and_then(|(user, _)| user.split_once(':')).map_or(value, |(_, p)| p)
            }
            None => value,
        }
    }

    #[test]
    fn debug_output_of_a_configuration_full_of_secrets_contains_none_of_them() {
        // A row that could carry a secret and is missing here fails, so a new one is not missed.
        for var in ENV
            .iter()
            .filter(|v| matches!(v.apply, Apply::Secret(_)) || v.name.ends_with("_URL") || v.name.ends_with("_URI"))
        {
            assert!(SECRETS.iter().any(|(n, _)| *n == var.name), "{} may hold a secret; add it to SECRETS", var.name);
        }
        let mut vars = SECRETS.to_vec();
        vars.push(("NIMBUS_ADMIN_EMAIL", "root@campus.edu"));
        vars.extend([
            ("SMTP_USERNAME", "mailer"),
            ("SMS_ACCOUNT_SID", "AC1"),
            ("SMS_FROM", "+100"),
            ("PUSH_PROJECT", "p"),
        ]);
        let config = CloudConfig::from_sources(None, env(&vars)).unwrap();
        let text = format!("{config:?}");
        for (name, value) in SECRETS {
            assert!(!text.contains(secret_of(value)), "{name}'s secret is in {text}");
        }
        assert!(text.contains("postgres://cloud:<redacted>@db:5432/x"), "{text}");
        assert!(text.contains("root@campus.edu"), "{text}");
        assert_eq!(config.mqtt.password.as_ref().map(Secret::expose), Some("mqtt-secret-1"));
        assert_eq!(format!("{:?}", Secret::new("x")), "Secret([redacted])");
        assert_eq!(redact_url("postgres://u@h/x"), "postgres://u@h/x");
        assert_eq!(redact_url("mqtt://u:p@h:1883"), "mqtt://u:<redacted>@h:1883");
    }

    #[test]
    fn the_loader_reads_the_rows_of_the_table_and_nothing_else() {
        let asked = std::cell::RefCell::new(Vec::new());
        CloudConfig::from_sources(None, |name| {
            asked.borrow_mut().push(name.to_owned());
            None
        })
        .unwrap();
        let rows: Vec<String> = ENV.iter().map(|v| v.name.to_owned()).collect();
        assert_eq!(asked.into_inner(), rows);
        let unique: BTreeSet<&str> = ENV.iter().map(|v| v.name).collect();
        assert_eq!(unique.len(), ENV.len(), "a variable is listed twice");
    }

    /// `(environment value, TOML value)` that set the same thing, for rows with a TOML key.
    fn sample(var: &EnvVar) -> Option<(&'static str, &'static str)> {
        if var.key.is_empty() {
            return None;
        }
        Some(match var.apply {
            Apply::Number(_) => ("7", "7"),
            Apply::List(_) => ("a, b", "[\"a\", \"b\"]"),
            Apply::With(_) if var.name == "NIMBUS_ENV" => ("production", "\"production\""),
            Apply::With(_) => ("7", "7"),
            _ => ("sample", "\"sample\""),
        })
    }

    #[test]
    fn each_variable_sets_its_toml_key() {
        for var in ENV {
            let Some((env_value, toml_value)) = sample(var) else { continue };
            let (section, field) = var.key.rsplit_once('.').unwrap_or(("", var.key));
            let toml = if section.is_empty() {
                format!("{field} = {toml_value}\n")
            } else {
                format!("[{section}]\n{field} = {toml_value}\n")
            };
            let mut from_toml: CloudConfig =
                toml::from_str(&toml).unwrap_or_else(|e| panic!("{}: {} is not a TOML key: {e}", var.name, var.key));
            from_toml.apply_env(env(&[])).unwrap();
            let mut from_env = CloudConfig::default();
            from_env.apply_env(env(&[(var.name, env_value)])).unwrap();
            assert_eq!(format!("{from_toml:?}"), format!("{from_env:?}"), "{} does not set {}", var.name, var.key);
            let mut untouched = CloudConfig::default();
            untouched.apply_env(env(&[])).unwrap();
            assert_ne!(format!("{from_env:?}"), format!("{untouched:?}"), "{} sets nothing", var.name);
        }
    }

    #[test]
    fn the_documented_defaults_are_the_defaults() {
        let defaults = format!("{:?}", CloudConfig::from_sources(None, env(&[])).unwrap());
        for var in ENV {
            let Some(literal) = var.default.strip_prefix('`').and_then(|d| d.split_once('`')).map(|(l, _)| l) else {
                continue;
            };
            let c = CloudConfig::from_sources(None, env(&[(var.name, literal)])).unwrap();
            assert_eq!(format!("{c:?}"), defaults, "{}'s documented default {literal:?} is not its default", var.name);
        }
    }

    const DOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cloud.md");
    const TABLE_START: &str = "<!-- generated from ENV in cloud/src/config.rs; a unit test fails when it differs -->";
    const TABLE_END: &str = "<!-- end of the generated table -->";

    /// docs/cloud.md's configuration table, generated from [`ENV`].
    fn markdown_table() -> String {
        let mut out = String::from("| variable | TOML key | read by | setting | default |\n|---|---|---|---|---|\n");
        for var in ENV {
            let key = if var.key.is_empty() { String::new() } else { format!("`{}`", var.key) };
            let roles = if var.roles == Role::ALL {
                "every role".to_owned()
            } else {
                var.roles.iter().map(|r| r.subcommand()).collect::<Vec<_>>().join(", ")
            };
            out.push_str(&format!("| `{}` | {key} | {roles} | {} | {} |\n", var.name, var.about, var.default));
        }
        out
    }

    #[test]
    fn the_docs_configuration_table_is_the_table() {
        let docs = std::fs::read_to_string(DOCS).unwrap();
        let expected = markdown_table();
        let documented = docs
            .split_once(TABLE_START)
            .and_then(|(_, rest)| rest.split_once(TABLE_END))
            .map(|(table, _)| table.trim())
            .unwrap_or_else(|| {
                panic!("docs/cloud.md has no {TABLE_START} … {TABLE_END} block; it should hold:\n{expected}")
            });
        assert!(
            documented == expected.trim(),
            "docs/cloud.md's configuration table differs from config::ENV; replace it with:\n{expected}"
        );
    }

    #[test]
    fn the_docs_name_no_variable_the_configuration_does_not_read() {
        let docs = std::fs::read_to_string(DOCS).unwrap();
        let known: BTreeSet<&str> = ENV.iter().map(|v| v.name).chain(["NIMBUS_CLOUD_CONFIG"]).collect();
        for token in docs.split('`').skip(1).step_by(2) {
            let looks_like_a_variable =
                token.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                    && (token.starts_with("NIMBUS_") || token.ends_with("_DATABASE_URL"));
            assert!(
                !looks_like_a_variable || known.contains(token),
                "docs/cloud.md names {token}, which no row of ENV reads"
            );
        }
    }
}

/// Settings of the content service: where file bytes live (MongoDB GridFS) and what uploads may
/// be. Its `Debug` redacts a password in the MongoDB URI.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContentConfig {
    /// The MongoDB deployment (`MONGODB_URI`); `mongodb://` only (this build has no DNS-SRV
    /// resolver for `mongodb+srv://`).
    pub mongodb_uri: String,
    /// The MongoDB database holding the bucket (the seed's `content_files`).
    pub mongodb_database: String,
    /// The GridFS bucket name (collections `<bucket>.files` and `<bucket>.chunks`).
    pub bucket: String,
    /// Largest file accepted, in bytes; enforced while the upload streams (413 beyond it).
    pub max_bytes: u64,
    /// MIME types an upload may declare; the sniffed bytes must agree with the declared type.
    pub allowed_mime_types: Vec<String>,
}

/// Settings of the notification worker: its SMTP server, the reset page, its concurrency.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationConfig {
    /// SMTP host; `None` leaves the worker without an e-mail channel (e-mail rows then fail
    /// with "not configured" instead of waiting forever).
    pub smtp_host: Option<String>,
    /// SMTP port.
    pub smtp_port: u64,
    /// The sender.
    pub smtp_from: String,
    /// SMTP account.
    pub smtp_username: Option<String>,
    /// Its password.
    pub smtp_password: Option<Secret>,
    /// The SMS API; `None`: no SMS channel.
    pub sms_api_url: Option<String>,
    /// Its account SID.
    pub sms_account_sid: Option<String>,
    /// Its auth token.
    pub sms_auth_token: Option<Secret>,
    /// The sending number.
    pub sms_from: Option<String>,
    /// FCM's API; `None`: no push channel.
    pub push_api_url: Option<String>,
    /// The Firebase project.
    pub push_project: Option<String>,
    /// The access token.
    pub push_access_token: Option<Secret>,
    /// The page a reset link opens.
    pub reset_url: String,
    /// Messages in flight at once.
    pub concurrency: u64,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        NotificationConfig {
            smtp_host: None,
            smtp_port: 25,
            smtp_from: "NimbusU <noreply@nimbus.invalid>".into(),
            smtp_username: None,
            smtp_password: None,
            sms_api_url: None,
            sms_account_sid: None,
            sms_auth_token: None,
            sms_from: None,
            push_api_url: None,
            push_project: None,
            push_access_token: None,
            reset_url: "http://127.0.0.1:8080/reset-password".into(),
            concurrency: 8,
        }
    }
}

impl NotificationConfig {
    /// Checks the settings; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |setting: &str, problem: &str| Err(Error::Config(format!("{setting}: {problem}")));
        if !(1..=65535).contains(&self.smtp_port) {
            return bad("notification.smtp_port (SMTP_PORT)", "must be 1 to 65535");
        }
        if self.smtp_from.parse::<lettre::message::Mailbox>().is_err() {
            return bad("notification.smtp_from (SMTP_FROM)", "is not an e-mail address");
        }
        if self.smtp_username.is_some() != self.smtp_password.is_some() {
            return bad("notification.smtp_username (SMTP_USERNAME)", "and SMTP_PASSWORD go together");
        }
        let http = |u: &str| u.starts_with("http://") || u.starts_with("https://");
        let sms = [
            self.sms_api_url.is_some(),
            self.sms_account_sid.is_some(),
            self.sms_auth_token.is_some(),
            self.sms_from.is_some(),
        ];
        if sms.iter().any(|s| *s) && !sms.iter().all(|s| *s) {
            return bad(
                "notification.sms_api_url (SMS_API_URL)",
                "SMS_ACCOUNT_SID, SMS_AUTH_TOKEN and SMS_FROM go together",
            );
        }
        if self.sms_api_url.as_deref().is_some_and(|u| !http(u)) {
            return bad("notification.sms_api_url (SMS_API_URL)", "must be an http(s) URL");
        }
        let push = [self.push_api_url.is_some(), self.push_project.is_some(), self.push_access_token.is_some()];
        if push.iter().any(|s| *s) && !push.iter().all(|s| *s) {
            return bad("notification.push_api_url (PUSH_API_URL)", "PUSH_PROJECT and PUSH_ACCESS_TOKEN go together");
        }
        if self.push_api_url.as_deref().is_some_and(|u| !http(u)) {
            return bad("notification.push_api_url (PUSH_API_URL)", "must be an http(s) URL");
        }
        if !http(&self.reset_url) {
            return bad("notification.reset_url (NIMBUS_RESET_URL)", "must be an http(s) URL");
        }
        if !(1..=256).contains(&self.concurrency) {
            return bad("notification.concurrency (NOTIFICATION_CONCURRENCY)", "must be 1 to 256");
        }
        Ok(())
    }
}

/// The MIME types accepted by default: course material, not executables.
pub const DEFAULT_CONTENT_MIME_TYPES: &[&str] = &[
    "application/pdf",
    "application/zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/epub+zip",
    "image/png",
    "image/jpeg",
    "image/gif",
    "video/mp4",
    "audio/mp4",
    "audio/mpeg",
    "text/plain",
    "text/markdown",
    "text/csv",
];

impl Default for ContentConfig {
    fn default() -> Self {
        ContentConfig {
            mongodb_uri: "mongodb://127.0.0.1:27017/?directConnection=true".into(),
            mongodb_database: "content_files".into(),
            bucket: "fs".into(),
            max_bytes: 512 * 1024 * 1024,
            allowed_mime_types: DEFAULT_CONTENT_MIME_TYPES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl ContentConfig {
    /// Checks the content settings; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |setting: &str, problem: String| Err(Error::Config(format!("{setting}: {problem}")));
        if !self.mongodb_uri.starts_with("mongodb://") {
            return bad("content.mongodb_uri (MONGODB_URI)", "must be a mongodb:// URI".into());
        }
        let name_ok = |n: &str, extra: u8| {
            !n.is_empty() && n.len() <= 63 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == extra)
        };
        if !name_ok(&self.mongodb_database, b'_') {
            return bad(
                "content.mongodb_database (NIMBUS_CONTENT_MONGO_DB)",
                format!("{:?} must be 1 to 63 characters of a-z, A-Z, 0-9 and _", self.mongodb_database),
            );
        }
        if !name_ok(&self.bucket, b'-') {
            return bad(
                "content.bucket (NIMBUS_CONTENT_BUCKET)",
                format!("{:?} must be 1 to 63 characters of a-z, A-Z, 0-9, - and _", self.bucket),
            );
        }
        if self.max_bytes == 0 {
            return bad("content.max_bytes (NIMBUS_CONTENT_MAX_BYTES)", "must be at least 1".into());
        }
        if self.allowed_mime_types.is_empty()
            || self
                .allowed_mime_types
                .iter()
                .any(|m| m.split_once('/').is_none_or(|(a, b)| a.is_empty() || b.is_empty()))
        {
            return bad("content.allowed_mime_types", "must be a non-empty list of type/subtype".into());
        }
        Ok(())
    }
}

impl fmt::Debug for ContentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentConfig")
            .field("mongodb_uri", &redact_url(&self.mongodb_uri))
            .field("mongodb_database", &self.mongodb_database)
            .field("bucket", &self.bucket)
            .field("max_bytes", &self.max_bytes)
            .field("allowed_mime_types", &self.allowed_mime_types)
            .finish()
    }
}

#[cfg(test)]
mod content_config_tests {
    use super::*;

    #[test]
    fn content_settings_default_to_the_local_store_and_come_from_the_environment() {
        let c = CloudConfig::from_sources(None, |_| None).unwrap();
        assert_eq!(c.content.mongodb_uri, "mongodb://127.0.0.1:27017/?directConnection=true");
        assert_eq!(c.content.max_bytes, 512 * 1024 * 1024);
        let env = |name: &str| match name {
            "MONGODB_URI" => Some("mongodb://u:secret@m:27017/".to_owned()),
            "NIMBUS_CONTENT_MAX_BYTES" => Some("1024".to_owned()),
            _ => None,
        };
        let c = CloudConfig::from_sources(None, env).unwrap();
        assert_eq!(c.content.max_bytes, 1024);
        assert!(!format!("{c:?}").contains("secret"));
        let bad = CloudConfig::from_sources(None, |n| (n == "NIMBUS_CONTENT_MAX_BYTES").then(|| "lots".to_owned()));
        assert!(bad.unwrap_err().to_string().contains("NIMBUS_CONTENT_MAX_BYTES"));
        let bad = CloudConfig::from_sources(None, |n| (n == "MONGODB_URI").then(|| "mongodb+srv://x".to_owned()));
        assert!(bad.unwrap_err().to_string().contains("MONGODB_URI"));
    }
}
