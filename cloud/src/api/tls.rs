//! HTTPS for the admin API without a proxy in front: rustls (ring, as the rest of the tree) over
//! the same router. The certificate and key are PEM files from the configuration
//! (`api.tls_cert`, `api.tls_key`), re-read when either file changes, so a renewed certificate
//! (certbot, cert-manager's Secret update) is served to new connections without a restart; a
//! renewal that cannot be read is logged and the last good certificate stays in use.
//!
//! Connections are served with hyper's HTTP/1.1 directly (what `axum::serve` does for plain TCP),
//! each with its client address as axum's `ConnectInfo`, so rate limits work as without TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Longest TLS handshake a client may take; a silent client does not hold a task longer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn tls_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("api TLS: {what} {}: {e}", path.display()))
}

/// Reads a certificate chain and its private key (PEM) into what rustls serves.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).map_err(|e| tls_error("cannot open the certificate", cert, e))?,
    ))
    .collect::<std::result::Result<Vec<_>, _>>()
    .map_err(|e| tls_error("cannot read the certificate", cert, e))?;
    if certs.is_empty() {
        return Err(tls_error("no certificate in", cert, "expected PEM `CERTIFICATE` blocks"));
    }
    let key_der = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).map_err(|e| tls_error("cannot open the key", key, e))?,
    ))
    .map_err(|e| tls_error("cannot read the key", key, e))?
    .ok_or_else(|| tls_error("no private key in", key, "expected a PEM private key"))?;
    let signing = ring::sign::any_supported_type(&key_der).map_err(|e| tls_error("unusable key", key, e))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| tls_error("the key does not belong to the certificate", cert, e))?;
    Ok(certified)
}

/// The certificate being served, swapped when its files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    seen: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ReloadingCert {
    /// Loads the pair now; an error here stops the api from starting.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Arc<Self>> {
        let (cert, key) = (cert.into(), key.into());
        let seen = (modified(&cert), modified(&key));
        let current = load(&cert, &key)?;
        Ok(Arc::new(ReloadingCert { cert, key, current: RwLock::new(Arc::new(current)), seen: Mutex::new(seen) }))
    }

    /// Re-reads the pair if either file's modification time changed; `Ok(true)` when a new
    /// certificate is now served. On `Err` the previous certificate stays.
    pub fn reload_if_changed(&self) -> Result<bool> {
        let now = (modified(&self.cert), modified(&self.key));
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == now {
                return Ok(false);
            }
            *seen = now;
        }
        let fresh = load(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(true)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// A TLS acceptor serving `cert` (TLS 1.2 and 1.3, HTTP/1.1).
pub fn acceptor(cert: Arc<ReloadingCert>) -> Result<TlsAcceptor> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e: rustls::Error| Error::Config(format!("api TLS: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` over TLS on `listener` until `shutdown`, then lets the requests in flight
/// finish (the caller bounds how long); checks the certificate files every `reload`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    cert: Arc<ReloadingCert>,
    reload: Duration,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = acceptor(cert.clone()).map_err(std::io::Error::other)?;
    let mut tick = tokio::time::interval(reload.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                match cert.reload_if_changed() {
                    Ok(true) => tracing::info!("api TLS certificate reloaded"),
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "api TLS certificate not reloaded; serving the previous one"),
                }
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let (acceptor, stop) = (acceptor.clone(), shutdown.clone());
        let service = router.clone().layer(axum::Extension(ConnectInfo::<SocketAddr>(peer)));
        connections.spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service));
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => if let Err(e) = result { tracing::debug!(%peer, error = %e, "connection ended") },
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}
