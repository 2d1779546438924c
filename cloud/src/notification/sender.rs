//! The sender: lanes that claim due queue rows, hand each to its channel and record the outcome
//! ([`queue`]). Lane 0 takes single sends only, so a single send waits for at most one message in
//! flight on that lane even while a bulk of thousands is going out on the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use nimbus_core::retry::RetryPolicy;
use tokio_util::sync::CancellationToken;

use super::channels::{Channels, Outgoing};
use super::queue::{self, Settled};

/// How the sender runs.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// Lanes (messages in flight at once). Also the most a crash can duplicate: see the
    /// module docs of [`super`].
    pub concurrency: usize,
    /// How long a claimed row is held before another sender may take it over. Longer than any
    /// one send may take (the SMTP timeout).
    pub lease: Duration,
    /// How often an idle lane looks for due rows.
    pub poll: Duration,
    /// Retries of a provider's temporary refusal.
    pub retry: RetryPolicy,
}

impl Default for SenderSettings {
    fn default() -> Self {
        SenderSettings {
            concurrency: 8,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(100),
            retry: RetryPolicy::SEED,
        }
    }
}

/// What the sender did, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct SenderMetrics {
    /// Rows sent (or delivered, in-app).
    pub sent: AtomicU64,
    /// Rows put back for a later attempt.
    pub retried: AtomicU64,
    /// Rows given up (including expired ones).
    pub failed: AtomicU64,
    /// Rows another sender settled first.
    pub lost: AtomicU64,
}

impl SenderMetrics {
    fn count(&self, settled: Settled) {
        let counter = match settled {
            Settled::Sent => &self.sent,
            Settled::Retrying => &self.retried,
            Settled::Failed => &self.failed,
            Settled::Lost => &self.lost,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs the lanes until `shutdown`; a lane finishes the message in hand first.
pub async fn run(
    pool: Pool,
    channels: Channels,
    settings: SenderSettings,
    metrics: Arc<SenderMetrics>,
    shutdown: CancellationToken,
) {
    let mut lanes = Vec::new();
    for lane in 0..settings.concurrency.max(1) {
        let (pool, channels, settings, metrics, shutdown) =
            (pool.clone(), channels.clone(), settings.clone(), metrics.clone(), shutdown.clone());
        lanes.push(tokio::spawn(async move {
            lane_loop(lane, &pool, &channels, &settings, &metrics, &shutdown).await;
        }));
    }
    for lane in lanes {
        let _ = lane.await;
    }
}

async fn lane_loop(
    lane: usize,
    pool: &Pool,
    channels: &Channels,
    settings: &SenderSettings,
    metrics: &SenderMetrics,
    shutdown: &CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let wait = match send_due(pool, channels, settings, metrics, lane != 0).await {
            Ok(true) => continue,
            Ok(false) => settings.poll,
            Err(e) => {
                tracing::warn!(lane, error = %crate::consumer::error_summary(&e), "sender cannot reach its database");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Claims one due row and sends it; `false` when none was due.
pub async fn send_due(
    pool: &Pool,
    channels: &Channels,
    settings: &SenderSettings,
    metrics: &SenderMetrics,
    bulk: bool,
) -> crate::error::Result<bool> {
    let claimed = queue::claim(pool, 1, settings.lease, bulk).await?;
    let Some(row) = claimed.into_iter().next() else { return Ok(false) };
    let settled = if row.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
        row.expire(pool).await?
    } else {
        let message = Outgoing {
            queue_id: row.id,
            user_id: row.user_id.clone(),
            address: row.address.clone(),
            subject: row.subject.clone(),
            body: row.body.clone(),
        };
        let outcome = channels.send(row.channel, &message).await;
        if let Err(e) = &outcome {
            tracing::debug!(queue_id = %row.id, attempt = row.attempts, error = %e, "send failed");
        }
        row.settle(pool, outcome, &settings.retry).await?
    };
    metrics.count(settled);
    Ok(true)
}
