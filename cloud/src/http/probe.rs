//! Probes every role serves: `/health` (the process answers), `/health/ready` (each dependency the
//! role registered answers, 503 naming what failed) and `/metrics` (the process's [`Registry`]).
//!
//! A role adds its checks ([`Probes::check`]) and records into [`Probes::registry`]; `ingest`,
//! `worker` and `downlink` serve them with [`serve`] on `probe.bind` (`NIMBUS_PROBE_BIND`); the
//! API serves the same [`Probes`] on its own listener, and `all` hands one [`Probes`] to every
//! role so a single endpoint covers the process.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::metrics::Registry;
use crate::error::{Error, Result};

/// How long one readiness check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// A check's answer: `Ok` or why not.
pub type CheckResult = std::result::Result<(), String>;
type CheckFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = CheckResult> + Send>> + Send + Sync>;

/// The checks and metrics of one process. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Probes {
    /// The process's metrics.
    pub registry: Arc<Registry>,
    checks: Arc<RwLock<Vec<(String, CheckFn)>>>,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes").field("checks", &self.names()).finish_non_exhaustive()
    }
}

impl Probes {
    /// Adds a readiness check named `name` (`postgres:edge_registry_db`, `kafka`, `mqtt`, …).
    pub fn check<F, Fut>(&self, name: impl Into<String>, probe: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        let f: CheckFn = Arc::new(move || Box::pin(probe()));
        self.checks.write().unwrap_or_else(|e| e.into_inner()).push((name.into(), f));
    }

    /// The names of the registered checks.
    pub fn names(&self) -> Vec<String> {
        self.checks.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(n, _)| n.clone()).collect()
    }

    /// Runs every check at once, each bounded by [`CHECK_TIMEOUT`]; `(all ok, report by name)`.
    pub async fn readiness(&self) -> (bool, Map<String, Value>) {
        let checks: Vec<(String, CheckFn)> = self.checks.read().unwrap_or_else(|e| e.into_inner()).clone();
        let runs = checks.iter().map(|(name, f)| {
            let fut = f();
            async move {
                let result = tokio::time::timeout(CHECK_TIMEOUT, fut)
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {CHECK_TIMEOUT:?}")));
                (name.clone(), result)
            }
        });
        let results = futures_util::future::join_all(runs).await;
        let ok = results.iter().all(|(_, r)| r.is_ok());
        let report = results
            .into_iter()
            .map(|(name, r)| {
                let v = match r {
                    Ok(()) => json!({ "status": "ok" }),
                    Err(e) => json!({ "status": "failed", "error": e }),
                };
                (name, v)
            })
            .collect();
        (ok, report)
    }

    /// The `/health`, `/health/ready` and `/metrics` routes over these probes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/health", get(|| async { axum::Json(json!({ "status": "ok" })) }))
            .route("/health/ready", get(ready))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }
}

async fn ready(State(probes): State<Probes>) -> Response {
    let (ok, checks) = probes.readiness().await;
    if ok {
        axum::Json(json!({ "status": "ready", "checks": checks })).into_response()
    } else {
        super::AppError::unavailable("A dependency is not available")
            .with_details(json!({ "checks": checks }))
            .into_response()
    }
}

async fn metrics(State(probes): State<Probes>) -> Response {
    prometheus_text(probes.registry.render())
}

/// A Prometheus text response.
pub fn prometheus_text(text: String) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Probes a PostgreSQL pool with `SELECT 1`.
pub async fn postgres(pool: deadpool_postgres::Pool) -> CheckResult {
    let client = pool.get().await.map_err(|e| with_cause(&e))?;
    client.query_one("SELECT 1", &[]).await.map(|_| ()).map_err(|e| with_cause(&e))
}

/// The error and its first cause (PostgreSQL's errors say what they are only in their cause).
fn with_cause(e: &(dyn std::error::Error + 'static)) -> String {
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Binds `bind` (`host:port`) for the probes, failing loudly when it cannot.
pub async fn bind(bind: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| Error::Config(format!("probe.bind (NIMBUS_PROBE_BIND): cannot listen on {bind}: {e}")))
}

/// Serves the probes on `listener` until `shutdown`.
pub async fn serve(listener: tokio::net::TcpListener, probes: Probes, shutdown: CancellationToken) -> Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), checks = ?probes.names(), "serving /health, /health/ready and /metrics");
    axum::serve(listener, probes.router())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(Error::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_fails_when_any_check_fails_and_names_it() {
        let probes = Probes::default();
        probes.check("a", || async { Ok(()) });
        assert!(probes.readiness().await.0);
        probes.check("b", || async { Err("down".to_owned()) });
        let (ok, report) = probes.readiness().await;
        assert!(!ok);
        assert_eq!(report["a"]["status"], "ok");
        assert_eq!(report["b"]["error"], "down");
    }
}
