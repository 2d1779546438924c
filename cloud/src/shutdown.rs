//! Stopping cleanly: every long-running loop of every role takes a [`CancellationToken`] and
//! waits through [`pause`], so a shutdown interrupts its sleeps instead of waiting them out.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Sleeps `wait` unless `shutdown` comes first; `false` means stop.
pub async fn pause(wait: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pause_runs_its_time_unless_shutdown_comes_first() {
        let stop = CancellationToken::new();
        assert!(pause(Duration::from_secs(30), &stop).await, "the whole wait, in paused time");
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            s.cancel();
        });
        let started = tokio::time::Instant::now();
        assert!(!pause(Duration::from_secs(3600), &stop).await);
        assert!(started.elapsed() < Duration::from_secs(2), "interrupted by the shutdown");
    }
}
