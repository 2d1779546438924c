//! The consume loop shared by every service: one message at a time, deduplicated and applied in
//! one PostgreSQL transaction, then its offset committed (see the module docs of [`crate::consumer`]).

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;
use nimbus_core::event::{AnyEvent, Message as ContractMessage};
use nimbus_core::retry::RetryPolicy;
use nimbus_core::topics::Topic;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::dead_letter::{self as dlq, Failure};
use super::{CrashHook, Handler, HandlerError, Origin, WorkerMetrics, error_chain, error_summary};
use crate::error::{Error, Result};
use crate::shutdown::pause;

/// Everything the loop needs; built by [`super::Worker::run`].
pub(crate) struct Consumer<H> {
    pub group_id: String,
    pub service: &'static str,
    pub pool: Pool,
    pub producer: FutureProducer,
    pub handler: H,
    pub metrics: Arc<WorkerMetrics>,
    pub retry: RetryPolicy,
    /// The crash test hook: stop after the database commit of the event it selects, before the
    /// offset commit.
    pub crash_after_db_commit: Option<CrashHook>,
}

impl Consumer<()> {
    /// The same loop with the service's handler.
    pub fn with<H: Handler>(self, handler: H) -> Consumer<H> {
        Consumer {
            group_id: self.group_id,
            service: self.service,
            pool: self.pool,
            producer: self.producer,
            handler,
            metrics: self.metrics,
            retry: self.retry,
            crash_after_db_commit: self.crash_after_db_commit,
        }
    }
}

/// What became of one message.
enum Outcome {
    /// Applied, skipped as a duplicate or dead-lettered: commit its offset.
    Done,
    /// Shutdown came while waiting: leave the offset, the message will be redelivered.
    Stopped,
    /// The crash test hook fired after the database commit.
    Crashed,
}

/// One attempt's result.
enum Applied {
    Processed,
    Duplicate,
}

/// Why an attempt failed.
enum AttemptError {
    /// The database is unreachable: wait it out, the event is not at fault.
    Unavailable(String),
    /// The event could not be applied: spend the retry budget, then dead-letter it.
    Failed(HandlerError),
}

impl From<HandlerError> for AttemptError {
    fn from(e: HandlerError) -> Self {
        match &e {
            HandlerError::Db(db) if db_unavailable(db) => AttemptError::Unavailable(error_summary(&e)),
            _ => AttemptError::Failed(e),
        }
    }
}

impl From<tokio_postgres::Error> for AttemptError {
    fn from(e: tokio_postgres::Error) -> Self {
        HandlerError::Db(e).into()
    }
}

/// Whether a PostgreSQL error means "no usable connection" rather than "this statement failed":
/// a closed connection, an I/O error, or the server's connection-exception / shutdown / too many
/// connections codes.
fn db_unavailable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return code.starts_with("08") || code.starts_with("57P") || code == "53300";
    }
    e.source().is_some_and(|s| s.is::<std::io::Error>())
}

impl<H: Handler> Consumer<H> {
    /// Subscribes to `topics` as the group and handles messages until `shutdown`.
    pub async fn run(self, brokers: &str, topics: &[Topic], shutdown: CancellationToken) -> Result<()> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .map_err(|e| Error::kafka("consumer", e))?;
        let names: Vec<&str> = topics.iter().map(|t| t.name()).collect();
        consumer.subscribe(&names).map_err(|e| Error::kafka(format!("subscribe {names:?}"), e))?;
        let consumer = Arc::new(consumer);

        let mut crashed = false;
        loop {
            let received = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                m = consumer.recv() => m,
            };
            let msg = match received {
                Ok(m) => m.detach(),
                Err(e) => {
                    // Broker errors surface here (unreachable broker, rebalance trouble);
                    // librdkafka reconnects by itself.
                    tracing::warn!(group_id = %self.group_id, error = %e, "consumer error");
                    if !pause(Duration::from_millis(500), &shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            self.metrics.consumed();
            // Tracing (off: a disabled span): the handling continues the producer's trace.
            let span = crate::trace::consume_span(&msg, &self.group_id);
            match tracing::Instrument::instrument(self.handle(&msg, &shutdown), span).await {
                Outcome::Done => self.commit(&consumer, &msg).await,
                Outcome::Stopped => break,
                Outcome::Crashed => {
                    tracing::warn!(
                        topic = msg.topic(),
                        partition = msg.partition(),
                        offset = msg.offset(),
                        "test hook: stopping after the database commit, before the offset commit"
                    );
                    crashed = true;
                    break;
                }
            }
        }
        // Closing leaves the group (so the partitions move on at once) and may block briefly.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        if !crashed {
            tracing::info!(group_id = %self.group_id, "consumer stopped");
        }
        Ok(())
    }

    /// Commits the offset after `msg`. A failure is not fatal: the message comes back and is
    /// skipped as a duplicate.
    async fn commit(&self, consumer: &Arc<StreamConsumer>, msg: &OwnedMessage) {
        let mut tpl = TopicPartitionList::new();
        if let Err(e) = tpl.add_partition_offset(msg.topic(), msg.partition(), Offset::Offset(msg.offset() + 1)) {
            tracing::error!(error = %e, "building the offset to commit");
            return;
        }
        let c = consumer.clone();
        let result = tokio::task::spawn_blocking(move || c.commit(&tpl, CommitMode::Sync)).await;
        let error = match result {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        self.metrics.commit_failure();
        tracing::warn!(
            topic = msg.topic(),
            partition = msg.partition(),
            offset = msg.offset(),
            error = %error,
            "offset commit failed; the message will be redelivered and skipped as already processed"
        );
    }

    /// Parses, applies with retries, or dead-letters one message.
    async fn handle(&self, msg: &OwnedMessage, shutdown: &CancellationToken) -> Outcome {
        let topic: Option<Topic> = msg.topic().parse().ok();
        let parsed = match std::str::from_utf8(msg.payload().unwrap_or_default()) {
            Ok(text) => ContractMessage::from_json(text, topic).map_err(|e| (error_summary(&e), error_chain(&e))),
            Err(e) => Err((format!("payload is not UTF-8: {e}"), error_chain(&e))),
        };
        let event = match parsed {
            Ok(ContractMessage::Event(event)) => event,
            Ok(ContractMessage::DeadLetter(_)) => {
                // Workers do not subscribe to the DLQ; a dead letter elsewhere is nothing to apply.
                tracing::warn!(topic = msg.topic(), offset = msg.offset(), "ignoring a dead letter on a domain topic");
                return Outcome::Done;
            }
            Err((reason, chain)) => {
                tracing::warn!(
                    topic = msg.topic(),
                    partition = msg.partition(),
                    offset = msg.offset(),
                    reason = %reason,
                    "poison message: it cannot be parsed, so it goes to the DLQ without retries"
                );
                return self.dead_letter(msg, Failure { reason, chain, count: 1 }, shutdown).await;
            }
        };
        let origin = Origin {
            topic: event.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().and_then(|k| std::str::from_utf8(k).ok()),
        };

        let mut failures: u32 = 0;
        let mut outage_wait = self.retry.initial_backoff;
        loop {
            match self.attempt(&event, &origin).await {
                Ok(Applied::Processed) => {
                    self.metrics.processed();
                    tracing::debug!(event = %describe(&event), "applied");
                    if self.crash_after_db_commit.as_ref().is_some_and(|h| h.fires_for(&event)) {
                        return Outcome::Crashed;
                    }
                    return Outcome::Done;
                }
                Ok(Applied::Duplicate) => {
                    self.metrics.duplicate();
                    tracing::info!(event = %describe(&event), "already processed; skipping the redelivery");
                    return Outcome::Done;
                }
                Err(AttemptError::Unavailable(why)) => {
                    self.metrics.outage_wait();
                    tracing::warn!(event = %describe(&event), error = %why, wait = ?outage_wait, "database unavailable; waiting");
                    if !pause(outage_wait, shutdown).await {
                        return Outcome::Stopped;
                    }
                    outage_wait = outage_wait.mul_f64(self.retry.backoff_factor).min(self.retry.max_backoff);
                }
                Err(AttemptError::Failed(e)) => {
                    failures += 1;
                    let retry =
                        if matches!(e, HandlerError::Invalid(_)) { None } else { self.retry.backoff(failures - 1) };
                    match retry {
                        Some(wait) => {
                            self.metrics.retry();
                            tracing::warn!(
                                event = %describe(&event),
                                attempt = failures,
                                error = %error_summary(&e),
                                wait = ?wait,
                                "handling failed; retrying"
                            );
                            if !pause(wait, shutdown).await {
                                return Outcome::Stopped;
                            }
                        }
                        None => {
                            tracing::error!(
                                event = %describe(&event),
                                attempts = failures,
                                error = %error_summary(&e),
                                "handling failed on every attempt; dead-lettering"
                            );
                            let failure =
                                Failure { reason: error_summary(&e), chain: error_chain(&e), count: failures };
                            return self.dead_letter(msg, failure, shutdown).await;
                        }
                    }
                }
            }
        }
    }

    /// One attempt in a fresh transaction: claim the event id, apply, commit.
    async fn attempt(&self, event: &AnyEvent, origin: &Origin<'_>) -> Result<Applied, AttemptError> {
        let mut client = self.pool.get().await.map_err(|e| AttemptError::Unavailable(error_summary(&e)))?;
        let tx = client.transaction().await?;
        let claimed = tx
            .execute(
                "INSERT INTO processed_events (event_id, topic, event_type) VALUES ($1, $2, $3) \
                 ON CONFLICT (event_id) DO NOTHING",
                &[&event.event_id(), &event.topic().name(), &event.event_type()],
            )
            .await?;
        if claimed == 0 {
            tx.rollback().await?;
            return Ok(Applied::Duplicate);
        }
        self.handler.handle(&tx, event, origin).await?;
        tx.commit().await?;
        Ok(Applied::Processed)
    }

    /// Delivers the dead letter, waiting out a broker that does not confirm it (the offset must
    /// not move past a message that is nowhere).
    async fn dead_letter(&self, msg: &OwnedMessage, failure: Failure, shutdown: &CancellationToken) -> Outcome {
        let mut wait = self.retry.initial_backoff;
        loop {
            let letter = dlq::dead_letter(msg, &failure, &self.group_id, self.service, Utc::now());
            match dlq::deliver(&self.producer, &letter).await {
                Ok((partition, offset)) => {
                    self.metrics.dead_lettered();
                    tracing::warn!(
                        topic = msg.topic(),
                        partition = msg.partition(),
                        offset = msg.offset(),
                        dlq_partition = partition,
                        dlq_offset = offset,
                        reason = %failure.reason,
                        "dead-lettered"
                    );
                    return Outcome::Done;
                }
                Err(e) => {
                    self.metrics.outage_wait();
                    tracing::warn!(error = %e, wait = ?wait, "dlq.events did not confirm the dead letter; retrying");
                    if !pause(wait, shutdown).await {
                        return Outcome::Stopped;
                    }
                    wait = wait.mul_f64(self.retry.backoff_factor).min(self.retry.max_backoff);
                }
            }
        }
    }
}

fn describe(event: &AnyEvent) -> String {
    format!("{} on {} ({})", event.event_type(), event.topic(), event.event_id())
}
