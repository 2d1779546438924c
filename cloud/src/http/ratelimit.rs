//! Rate limits in Redis, shared by every API instance: fixed windows counted with `INCR` and
//! expired with `EXPIRE … NX` in one `MULTI`, so counting is atomic without scripts. Buckets:
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

    /// Counts one request in `bucket`/`who`; `Err(429)` with `Retry-After` once it exceeds
    /// `limit` in the current window.
    pub async fn hit(&self, bucket: &str, who: &str, limit: u64) -> Result<(), AppError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let window = now / self.window_secs;
        let key = format!("{}rl:{bucket}:{who}:{window}", self.prefix);
        let mut conn = self.conn.clone();
        let counted: Result<(u64,), _> = redis::pipe()
            .atomic()
            .incr(&key, 1u64)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(self.window_secs + 1)
            .arg("NX")
            .ignore()
            .query_async(&mut conn)
            .await;
        match counted {
            Ok((n,)) if n > limit => {
                self.limited.fetch_add(1, Ordering::Relaxed);
                let retry = (window + 1) * self.window_secs - now;
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
