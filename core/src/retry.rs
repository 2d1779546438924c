//! The seed's consumer retry policy ("Retry Strategy"): 3 retries, 100 ms doubling up to 5 s,
//! then the dead-letter queue.

use core::time::Duration;

/// How often and how patiently a failed event is retried before it goes to `dlq.events`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Wait before the first retry.
    pub initial_backoff: Duration,
    /// Upper bound on any wait.
    pub max_backoff: Duration,
    /// Growth of the wait per retry.
    pub backoff_factor: f64,
}

impl RetryPolicy {
    /// The seed's `DefaultRetryConfig`.
    pub const SEED: RetryPolicy = RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(5),
        backoff_factor: 2.0,
    };

    /// The wait before retry number `retry` (0-based), or `None` once retries are exhausted.
    pub fn backoff(&self, retry: u32) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        let mut wait = self.initial_backoff;
        for _ in 0..retry {
            wait = wait.mul_f64(self.backoff_factor).min(self.max_backoff);
        }
        Some(wait.min(self.max_backoff))
    }

    /// Total attempts (first try plus retries).
    pub fn attempts(&self) -> u32 {
        self.max_retries + 1
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::SEED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_policy_waits_100_200_400_ms_then_gives_up() {
        let p = RetryPolicy::SEED;
        assert_eq!(p.backoff(0), Some(Duration::from_millis(100)));
        assert_eq!(p.backoff(1), Some(Duration::from_millis(200)));
        assert_eq!(p.backoff(2), Some(Duration::from_millis(400)));
        assert_eq!(p.backoff(3), None);
        assert_eq!(p.attempts(), 4);
    }

    #[test]
    fn backoff_is_capped_at_the_maximum() {
        let p = RetryPolicy { max_retries: 10, ..RetryPolicy::SEED };
        assert_eq!(p.backoff(9), Some(Duration::from_secs(5)));
    }
}
