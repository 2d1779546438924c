//! Rate limits in Redis, shared by every API instance: a sliding window estimated from two fixed
//! windows (this window's count plus the previous window's, weighted by how much of it still
//! lies within the last `window_secs`), counted with `INCR` and expired with `EXPIRE … NX` in
//! one `MULTI`, so counting is atomic without scripts. Plain fixed windows let a burst through
//! at twice the limit across a window boundary (and made a limit's test flaky there). Buckets:
//! per client address and per user on every route, and a stricter one per address on login.
//! When Redis is unreachable requests pass (the limiter protects capacity, not security; the
//! revocation check, which is security, fails closed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;

use super::AppError;

/// The limits and the Redis connection.
#[derive(Clone)]
pub struct RateLimiter {
    conn: ConnectionManager,
    prefix: String,
    window_secs: u64,
    /// Requests per window from one address.
    pub per_ip: u64,
    /// Requests per window by one user.
    pub per_user: u64,
    /// Login attempts per window from one address.
    pub login: u64,
    limited: Arc<AtomicU64>,
}

impl RateLimiter {
    /// A limiter over `conn`; every key starts with `prefix`.
    pub fn new(conn: ConnectionManager, prefix: &str, config: &crate::config::ApiConfig) -> Self {
        RateLimiter {
            conn,
            prefix: prefix.to_owned(),
            window_secs: config.rate_window_secs.max(1),
            per_ip: config.rate_limit_ip,
            per_user: config.rate_limit_user,
            login: config.rate_limit_login,
            limited: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Requests refused so far by this process.
    pub fn limited_count(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }

    /// Counts one request in `bucket`/`who`; `Err(429)` with `Retry-After` once the requests
    /// of the last `window_secs` (estimated, see the module docs) exceed `limit`.
    pub async fn hit(&self, bucket: &str, who: &str, limit: u64) -> Result<(), AppError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let span = u128::from(self.window_secs) * 1000;
        let window = now / span;
        let key = |w: u128| format!("{}rl:{bucket}:{who}:{w}", self.prefix);
        let (current, previous) = (key(window), key(window.saturating_sub(1)));
        let mut conn = self.conn.clone();
        let counted: Result<(u64, Option<u64>), _> = redis::pipe()
            .atomic()
            .incr(&current, 1u64)
            .cmd("EXPIRE")
            .arg(&current)
            .arg(2 * self.window_secs + 1)
            .arg("NX")
            .ignore()
            .get(&previous)
            .query_async(&mut conn)
            .await;
        match counted {
            Ok((n, before)) if estimate(n, before.unwrap_or(0), now % span, span) > limit => {
                self.limited.fetch_add(1, Ordering::Relaxed);
                let retry = (span - now % span).div_ceil(1000) as u64;
                Err(AppError::too_many_requests(retry.max(1)))
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "rate limiter unavailable; letting the request through");
                Ok(())
            }
        }
    }
}

/// The requests of the last `span` ms: all of this window's `current`, and the part of the
/// previous window's `previous` that still lies within the span (`into` ms into this window),
/// rounded up: a limit errs on the strict side.
fn estimate(current: u64, previous: u64, into: u128, span: u128) -> u64 {
    let carried = (u128::from(previous) * (span - into.min(span))).div_ceil(span);
    current + carried as u64
}

#[cfg(test)]
mod tests {
    use super::estimate;

    #[test]
    fn a_burst_across_a_window_boundary_still_counts_as_one_burst() {
        // Two requests at the very end of a window, a third at the start of the next: three,
        // also a second into the new window (the previous one still counts almost whole).
        assert_eq!(estimate(1, 2, 0, 60_000), 3);
        assert_eq!(estimate(1, 2, 1_000, 60_000), 3);
        // Half a window later, the previous window counts half.
        assert_eq!(estimate(1, 2, 30_000, 60_000), 2);
        // A whole window later it no longer counts.
        assert_eq!(estimate(1, 2, 60_000, 60_000), 1);
        assert_eq!(estimate(5, 0, 10, 60_000), 5);
    }
}
