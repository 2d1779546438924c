//! The campus broker's node accounts, derived from the registry: registering a node (or
//! re-issuing its credentials) through the API is all it takes for the node to connect.
//!
//! Mosquitto 2 reads accounts from a password file and re-reads it on SIGHUP without dropping
//! connections; its hashes are `$7$<iterations>$<salt>$<hash>` (PBKDF2-HMAC-SHA512, base64). The
//! API stores that hash of every new node password beside the argon2 one
//! (`nodes.broker_credential_hash`); [`run`] (the `broker-accounts` role) writes the nodes' lines
//! into a file whenever they change, and the broker's entrypoint (`scripts/compose/mosquitto-run.sh`)
//! joins it with the cloud's own account and reloads Mosquitto. Why this over the alternatives
//! (dynamic-security plugin, an HTTP auth plugin) is in docs/operations.md.
//!
//! The file only ever holds hashes. A line is written only for a well-formed node id and hash (a
//! newline or `:` in a hash would smuggle in another account), and never for the cloud's own user
//! name, which would otherwise hand a node the cloud's ACL.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use deadpool_postgres::Pool;
use nimbus_core::ids::NodeId;
use sha2::Sha512;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// PBKDF2 rounds of the broker hash. Node passwords are 192 random bits issued by the cloud, so
/// the rounds add nothing against guessing; they only cost the broker time at every connect.
/// Mosquitto's own default is 101.
pub const ITERATIONS: u32 = 1000;
const SALT_BYTES: usize = 12;
const HASH_BYTES: usize = 64;

/// `password` hashed the way Mosquitto 2's password file stores it (`$7$`).
pub fn mosquitto_hash(password: &str) -> Result<String> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::getrandom(&mut salt).map_err(|e| Error::Config(format!("no randomness for a salt: {e}")))?;
    Ok(mosquitto_hash_with(password, &salt, ITERATIONS))
}

fn mosquitto_hash_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut hash = [0u8; HASH_BYTES];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut hash);
    let b64 = base64::engine::general_purpose::STANDARD;
    format!("$7${iterations}${}${}", b64.encode(salt), b64.encode(hash))
}

/// Whether `hash` is one Mosquitto 2 verifies (`$6$` or `$7$`) and safe on one line of its file.
pub fn is_broker_hash(hash: &str) -> bool {
    (hash.starts_with("$7$") || hash.starts_with("$6$"))
        && hash.len() < 512
        && hash.bytes().all(|b| b.is_ascii_alphanumeric() || b"$+/=.".contains(&b))
}

/// The password file's text for `accounts` (node id, hash): one `id:hash` line each, sorted,
/// skipping (and logging) the unsafe ones and `cloud_user`.
pub fn password_file(accounts: &[(String, String)], cloud_user: &str) -> String {
    let mut lines: Vec<String> = accounts
        .iter()
        .filter(|(id, hash)| {
            let ok = id != cloud_user && NodeId::new(id).is_ok() && is_broker_hash(hash);
            if !ok {
                tracing::error!(node = %id.escape_debug(), "node left out of the broker's password file: \
                    its id is the cloud's account or malformed, or its hash is not a $6$/$7$ hash on one line");
            }
            ok
        })
        .map(|(id, hash)| format!("{id}:{hash}\n"))
        .collect();
    lines.sort();
    lines.concat()
}

/// Every node with a broker hash: the column the API fills, or a `$6$`/`$7$` hash an operator
/// registered with `nodes register --credential-hash`.
pub async fn accounts(registry: &Pool) -> Result<Vec<(String, String)>> {
    let c = registry.get().await?;
    let rows = c
        .query(
            "SELECT node_id, COALESCE(broker_credential_hash,
                    CASE WHEN credential_hash LIKE '$7$%' OR credential_hash LIKE '$6$%' THEN credential_hash END)
             FROM nodes ORDER BY node_id",
            &[],
        )
        .await?;
    Ok(rows.iter().filter_map(|r| Some((r.get::<_, String>(0), r.get::<_, Option<String>>(1)?))).collect())
}

/// Replaces `path` with `text` (mode 0600, through a rename, so the broker never reads half a
/// file) unless it already holds exactly that; returns whether it changed.
pub fn write_if_changed(path: &Path, text: &str) -> Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    let tmp = path.with_extension("tmp");
    // A leftover from a crash may have other permissions, which `create` would keep.
    let _ = std::fs::remove_file(&tmp);
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

/// What the `broker-accounts` role needs.
#[derive(Debug, Clone)]
pub struct BrokerAccountsSettings {
    /// The file the nodes' lines go to (the broker's entrypoint reads it).
    pub nodes_file: PathBuf,
    /// The cloud's own broker user name, never written for a node.
    pub cloud_user: String,
    /// How often the registry is read.
    pub interval: Duration,
}

/// Counters and the last success, for the role's probes and `/metrics`.
#[derive(Debug, Default)]
pub struct BrokerAccountsMetrics {
    /// Registry reads that succeeded.
    pub syncs: AtomicU64,
    /// Registry reads or writes that failed.
    pub failures: AtomicU64,
    /// Times the file changed.
    pub writes: AtomicU64,
    /// Accounts in the file.
    pub accounts: AtomicU64,
    /// Unix seconds of the last success (0: never).
    pub last_success: AtomicI64,
}

impl BrokerAccountsMetrics {
    /// Ready: the file was written from the registry within `3 × interval`.
    pub fn ready(&self, interval: Duration) -> bool {
        let last = self.last_success.load(Ordering::Relaxed);
        last > 0
            && chrono::Utc::now().timestamp() - last <= i64::try_from(3 * interval.as_secs().max(1)).unwrap_or(i64::MAX)
    }

    /// Prometheus text.
    pub fn render(&self) -> String {
        format!(
            "# TYPE nimbus_broker_accounts_syncs_total counter\nnimbus_broker_accounts_syncs_total {}\n\
             # TYPE nimbus_broker_accounts_failures_total counter\nnimbus_broker_accounts_failures_total {}\n\
             # TYPE nimbus_broker_accounts_writes_total counter\nnimbus_broker_accounts_writes_total {}\n\
             # TYPE nimbus_broker_accounts gauge\nnimbus_broker_accounts {}\n",
            self.syncs.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
            self.accounts.load(Ordering::Relaxed),
        )
    }
}

/// Reads the registry once and rewrites the file if the accounts changed; returns whether it did.
pub async fn sync_once(
    registry: &Pool,
    settings: &BrokerAccountsSettings,
    metrics: &BrokerAccountsMetrics,
) -> Result<bool> {
    let accounts = accounts(registry).await?;
    let text = password_file(&accounts, &settings.cloud_user);
    let path = settings.nodes_file.clone();
    let changed = tokio::task::spawn_blocking({
        let text = text.clone();
        move || write_if_changed(&path, &text)
    })
    .await
    .map_err(|e| Error::Config(format!("writing the broker accounts: {e}")))??;
    metrics.syncs.fetch_add(1, Ordering::Relaxed);
    metrics.accounts.store(text.lines().count() as u64, Ordering::Relaxed);
    metrics.last_success.store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
    if changed {
        metrics.writes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(accounts = text.lines().count(), file = %settings.nodes_file.display(), "broker accounts written");
    }
    Ok(changed)
}

/// Keeps the file in step with the registry until `shutdown`; a failed round is logged, counted
/// and retried at the next tick (the file keeps the last good accounts meanwhile).
pub async fn run(
    registry: Pool,
    settings: BrokerAccountsSettings,
    metrics: Arc<BrokerAccountsMetrics>,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut tick = tokio::time::interval(settings.interval.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        if let Err(e) = sync_once(&registry, &settings, &metrics).await {
            metrics.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "broker accounts not refreshed; keeping the last file");
        }
    }
}

/// The role's probes: `/health` (the process answers), `/health/ready` (the file is fresh, see
/// [`BrokerAccountsMetrics::ready`]; 503 otherwise) and `/metrics`.
pub fn probe_routes(metrics: Arc<BrokerAccountsMetrics>, interval: Duration) -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    let ready = metrics.clone();
    let text = metrics;
    axum::Router::new()
        .route("/health", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route(
            "/health/ready",
            get(move || {
                let ready = ready.ready(interval);
                async move {
                    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                    let word = if ready { "ready" } else { "not_ready" };
                    (status, axum::Json(serde_json::json!({"status": word, "checks": {"registry_to_file": ready}})))
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = text.render();
                async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_has_mosquittos_layout_and_a_fresh_salt_each_time() {
        let a = mosquitto_hash("secret").unwrap();
        let b = mosquitto_hash("secret").unwrap();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('$').collect();
        assert_eq!(parts[..3], ["", "7", "1000"]);
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(b64.decode(parts[3]).unwrap().len(), SALT_BYTES);
        assert_eq!(b64.decode(parts[4]).unwrap().len(), HASH_BYTES);
        assert!(is_broker_hash(&a));
    }

    #[test]
    fn the_hash_is_pbkdf2_sha512_of_the_password_and_salt() {
        // Same input, same output; another password or salt, another hash.
        let h = mosquitto_hash_with("pw", b"0123456789ab", 101);
        assert_eq!(h, mosquitto_hash_with("pw", b"0123456789ab", 101));
        assert_ne!(h, mosquitto_hash_with("pw2", b"0123456789ab", 101));
        assert_ne!(h, mosquitto_hash_with("pw", b"0123456789ac", 101));
        assert!(h.starts_with("$7$101$MDEyMzQ1Njc4OWFi$"));
    }

    #[test]
    fn the_file_refuses_injected_lines_malformed_ids_and_the_cloud_account() {
        let good = mosquitto_hash("x").unwrap();
        let accounts = vec![
            ("lab-b204".to_owned(), good.clone()),
            ("evil".to_owned(), format!("{good}\nnimbus-cloud:{good}")),
            ("nimbus-cloud".to_owned(), good.clone()),
            ("Bad Id".to_owned(), good.clone()),
            ("argon".to_owned(), "$argon2id$v=19$m=19456,t=2,p=1$abc$def".to_owned()),
            ("aa-first".to_owned(), good.clone()),
        ];
        let text = password_file(&accounts, "nimbus-cloud");
        assert_eq!(text, format!("aa-first:{good}\nlab-b204:{good}\n"));
    }

    #[test]
    fn the_file_is_rewritten_only_when_its_text_changes_and_only_the_owner_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes.passwd");
        assert!(write_if_changed(&path, "a:$7$1$x$y\n").unwrap());
        assert!(!write_if_changed(&path, "a:$7$1$x$y\n").unwrap());
        assert!(write_if_changed(&path, "").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
