//! The worker's counters: the seed's consumer metrics (consumed, DLQ) plus what shows that the
//! effectively-once machinery is working (duplicates skipped, retries, outage waits).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by a running worker and whoever watches it (logs, tests, later Prometheus).
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    consumed: AtomicU64,
    processed: AtomicU64,
    duplicates: AtomicU64,
    retries: AtomicU64,
    dead_lettered: AtomicU64,
    outage_waits: AtomicU64,
    commit_failures: AtomicU64,
    alerts_sent: AtomicU64,
}

/// A copy of the counters at one moment, comparable in tests and printable in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// Messages received from Kafka.
    pub consumed: u64,
    /// Events applied (their transaction committed), including ones the handler ignores.
    pub processed: u64,
    /// Events skipped because `processed_events` already had them (redeliveries).
    pub duplicates: u64,
    /// Failed attempts that were retried per the retry policy.
    pub retries: u64,
    /// Messages given up on and confirmed on `dlq.events`.
    pub dead_lettered: u64,
    /// Waits for an unreachable database or broker (not counted as retries).
    pub outage_waits: u64,
    /// Offset commits the broker refused (the message will be redelivered and skipped).
    pub commit_failures: u64,
    /// Low-attendance alerts published (with their notification).
    pub alerts_sent: u64,
}

impl WorkerMetrics {
    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            consumed: get(&self.consumed),
            processed: get(&self.processed),
            duplicates: get(&self.duplicates),
            retries: get(&self.retries),
            dead_lettered: get(&self.dead_lettered),
            outage_waits: get(&self.outage_waits),
            commit_failures: get(&self.commit_failures),
            alerts_sent: get(&self.alerts_sent),
        }
    }

    pub(crate) fn consumed(&self) {
        self.consumed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn processed(&self) {
        self.processed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn outage_wait(&self) {
        self.outage_waits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn commit_failure(&self) {
        self.commit_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn alerts_sent(&self, n: usize) {
        self.alerts_sent.fetch_add(n as u64, Ordering::Relaxed);
    }
}
