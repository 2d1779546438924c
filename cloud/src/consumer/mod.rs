//! # The consumer loop every service's Kafka handler runs in (a low floor: no service, no role)
//!
//! A service reacts to its topics by implementing [`Handler`]; the loop ([`engine`]) owns
//! everything around it and applies every event to the service's PostgreSQL database
//! **effectively once**, even though Kafka delivers at least once.
//!
//! ## How a batch is handled
//!
//! The loop takes a poll's worth of messages at once: the first it waits for, then whatever the
//! client has already fetched, up to `worker.batch_size` (500). Then:
//!
//! 1. Parse each with the seed contract (`Message::from_json(text, Some(topic))`). A message that
//!    does not parse (not UTF-8, not JSON, not a valid event of its topic) is poison: no retry can
//!    fix it, so it goes straight to `dlq.events`, and the rest of the batch goes on.
//! 2. Begin one transaction and claim every event id with one `INSERT INTO processed_events ...
//!    SELECT * FROM unnest(...) ON CONFLICT DO NOTHING RETURNING event_id`. Ids not returned were
//!    applied before (Kafka redelivered them after a crash or a rebalance): they are skipped.
//! 3. Run the service's [`Handler::handle_batch`] on the claimed events in that transaction, in
//!    order, then commit it.
//! 4. Only then commit the Kafka offsets after the batch's last message of each partition,
//!    asynchronously (a lost commit only means a redelivery, which step 2 makes a no-op; a
//!    clean stop commits the last batch once more and waits). A crash between 3 and 4 redelivers
//!    the batch; a crash before 3 leaves nothing behind.
//!
//! A batch that fails in step 3 is rolled back and split in halves, each applied on its own, down
//! to single events, which get the retries below on their own: a poison event costs its
//! neighbours about `2 log2(n)` extra transactions, never their place or a dead letter. Batches
//! are handled one after another in the order received, so each partition's events are applied
//! (and their offsets committed) in order.
//!
//! ## Failures
//!
//! - A handler error, or a statement PostgreSQL refuses, of a single event is retried per the seed's
//!   [`RetryPolicy::SEED`] (3 retries after 100, 200, 400 ms; every attempt a fresh transaction).
//!   After the last one the message becomes a seed [`DeadLetterEvent`] on `dlq.events`; once the
//!   broker confirms it, the offset is committed and the worker moves on.
//! - When the database or the broker is unreachable (no connection, a connection that dropped, a
//!   dead letter the broker does not confirm), the event is not at fault: the worker waits
//!   (doubling up to the policy's maximum) and tries again for as long as it takes, without
//!   spending the retry budget and without dead-lettering anything. An outage therefore stalls the
//!   worker instead of emptying its topics into the DLQ.
//! - A failed offset commit (typically a rebalance took the partition away) is logged and
//!   counted; the message is redelivered to whoever owns the partition and skipped there.
//! - A dead-lettered event is *not* recorded in `processed_events`, so replaying it from the DLQ
//!   (after fixing what made it fail) applies it. Dead letters themselves are at least once: a
//!   crash between the DLQ's confirmation and the offset commit dead-letters the message again,
//!   and the replay of the second copy is then skipped by its event id.
//!
//! ## Coming back
//!
//! A consumer joins with a short session (`session.timeout.ms` 6 s, heartbeats every 2 s) and,
//! when the worker has a stable instance name, static membership (`group.instance.id`), so a
//! restarted worker gets its partitions back within seconds. [`health`] measures the group's lag
//! per partition every 5 s (the seed's `kafka_consumer_lag`); a partition with lag whose
//! committed offset has not moved for 30 s makes the worker unready, and a member holding no
//! partitions then replaces its client, which rejoins the group.
//!
//! ## Requirements on a service database
//!
//! Every service database a worker writes to has a `processed_events (event_id UUID PRIMARY KEY,
//! topic TEXT, event_type TEXT, processed_at TIMESTAMPTZ DEFAULT now())` table in its migrations;
//! the worker applies the migrations of the service's database at start.
//!
//! ## Layout
//!
//! - `mod.rs` (this file): the [`Handler`] trait, [`Claimed`], [`HandlerError`], [`Origin`], the [`CrashHook`]
//!   test hook.
//! - [`engine`]: the consume → transaction → offset-commit loop over batches, the split of a
//!   failing batch, retries and the wait on outages.
//! - [`health`]: [`Membership`] settings, the lag and stall watchdog, [`ConsumerHealth`] for
//!   readiness.
//! - [`dead_letter`]: the seed's dead letter built from a Kafka message, and its delivery.
//! - [`metrics`]: [`WorkerMetrics`] counters and their [`MetricsSnapshot`] (on `/metrics` with the
//!   seed's `kafka_*` metrics, which the loop records into the process's registry).

pub mod dead_letter;
pub mod engine;
pub mod health;
pub mod inactive;
pub mod metrics;

use std::future::Future;
use std::sync::Arc;

use nimbus_core::event::AnyEvent;
use nimbus_core::topics::Topic;

pub(crate) use engine::Consumer;
pub use health::{ConsumerHealth, HealthSnapshot, Membership};
pub use metrics::{MetricsSnapshot, WorkerMetrics};

#[cfg(doc)]
use nimbus_core::event::DeadLetterEvent;
#[cfg(doc)]
use nimbus_core::retry::RetryPolicy;

/// **Test hook** (`worker::WorkerSettings::fail_after_db_commit_once`): which applied event the worker
/// "dies" after. Tests share the broker's topics, so they pick their own event rather than
/// whatever arrives first.
#[derive(Clone)]
pub struct CrashHook(Arc<dyn Fn(&AnyEvent) -> bool + Send + Sync>);

impl CrashHook {
    /// After the first event applied.
    pub fn any() -> Self {
        CrashHook(Arc::new(|_| true))
    }

    /// After the first applied event for which `select` is true.
    pub fn when(select: impl Fn(&AnyEvent) -> bool + Send + Sync + 'static) -> Self {
        CrashHook(Arc::new(select))
    }

    pub(crate) fn fires_for(&self, event: &AnyEvent) -> bool {
        (self.0)(event)
    }
}

impl std::fmt::Debug for CrashHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CrashHook")
    }
}

/// Where a message was read from, for handlers that need more than the event itself (logging,
/// provenance columns).
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The topic it was read from.
    pub topic: Topic,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key, when it had a UTF-8 one.
    pub key: Option<&'a str>,
}

/// Why a handler could not apply an event. Database errors and rejections are retried per the
/// retry policy and then dead-lettered, except database errors that mean the server is
/// unreachable (see the module docs), which are waited out; invalid events are dead-lettered at
/// once.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A statement failed.
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// The event cannot be applied to the current state (a correction of a record that does not
    /// exist, a status the database does not know, …).
    #[error("{0}")]
    Rejected(String),
    /// The event itself can never be applied, whatever the state (a command naming no
    /// recipient, asking for no channel, …): dead-lettered at once, without retries.
    #[error("{0}")]
    Invalid(String),
}

/// An event the loop claimed in `processed_events` (seen for the first time), with its origin.
#[derive(Debug, Clone, Copy)]
pub struct Claimed<'a> {
    /// The event.
    pub event: &'a AnyEvent,
    /// Where it was read from.
    pub origin: Origin<'a>,
}

/// A service's reaction to its events. The worker owns everything around it (deduplication,
/// transactions, retries, the DLQ, offsets); a handler only writes the event's effects.
pub trait Handler: Send + Sync + 'static {
    /// Applies one event inside `tx`, which the worker commits afterwards together with the
    /// event's `processed_events` row. Everything written must go through `tx`, or a redelivery
    /// would apply it twice. Events the service does not care about are simply `Ok(())`.
    fn handle(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        event: &AnyEvent,
        origin: &Origin<'_>,
    ) -> impl Future<Output = std::result::Result<(), HandlerError>> + Send;

    /// Applies a batch of events, in order, inside one transaction. The default hands each to
    /// [`Handler::handle`]; a service with a hot path (attendance) overrides it with set-based
    /// statements. An error rolls the whole batch back; the loop then splits it to find the
    /// event at fault, so the result must be the same as handling the events one by one.
    fn handle_batch(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        events: &[Claimed<'_>],
    ) -> impl Future<Output = std::result::Result<(), HandlerError>> + Send {
        async move {
            for c in events {
                self.handle(tx, c.event, &c.origin).await?;
            }
            Ok(())
        }
    }
}

/// The error's message followed by its chain of causes, one per line: the dead letter's
/// `stack_trace` (Rust has no stack trace worth shipping).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str("\ncaused by: ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The error and its causes on one line (`database: db error: ERROR: …`): the dead letter's
/// `failure_reason` and what the logs show. Some errors (PostgreSQL's) only say what they are
/// in their cause, so the message alone is not enough.
pub fn error_summary(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}
