//! The consume loop shared by every service: a poll's worth of messages applied in one
//! PostgreSQL transaction (deduplicated by `processed_events`), then their offsets committed;
//! an event that fails is isolated by splitting the batch and gets the seed's retries and dead
//! letter on its own (see the module docs of [`crate::consumer`]).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::error::Error as StdError;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
use uuid::Uuid;

use super::dead_letter::{self as dlq, Failure};
use super::health::{self, ConsumerHealth, Membership};
use super::{Claimed, CrashHook, Handler, HandlerError, Origin, WorkerMetrics, error_chain, error_summary};
use crate::error::{Error, Result};
use crate::http::metrics::{KAFKA_CONSUMED, KAFKA_CONSUMER_ERRORS, KAFKA_DLQ, KAFKA_PROCESSING, Registry};
use crate::shutdown::pause;

/// How long the loop waits for more messages after the first of a batch: what the client has
/// already fetched arrives at once, so this only bounds the wait when the topic is quiet.
const LINGER: Duration = Duration::from_millis(5);

/// Everything the loop needs; built by [`super::Worker::run`].
pub(crate) struct Consumer<H> {
    pub group_id: String,
    pub service: &'static str,
    pub pool: Pool,
    pub producer: FutureProducer,
    pub handler: H,
    pub metrics: Arc<WorkerMetrics>,
    pub registry: Arc<Registry>,
    pub health: Arc<ConsumerHealth>,
    pub membership: Membership,
    pub retry: RetryPolicy,
    /// Most messages applied in one transaction.
    pub batch_size: usize,
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
            registry: self.registry,
            health: self.health,
            membership: self.membership,
            retry: self.retry,
            batch_size: self.batch_size,
            crash_after_db_commit: self.crash_after_db_commit,
        }
    }
}

/// What became of a batch (or one message of it).
enum Outcome {
    /// Applied, skipped as duplicates or dead-lettered: commit the offsets.
    Done,
    /// Shutdown came while waiting: leave the offsets, the messages will be redelivered.
    Stopped,
    /// The crash test hook fired after the database commit.
    Crashed,
}

/// A message as received, with when (the processing duration runs from here).
struct Received {
    msg: OwnedMessage,
    at: Instant,
}

/// A message that parsed into an event of the contract.
struct Parsed<'a> {
    received: &'a Received,
    event: AnyEvent,
}

impl Parsed<'_> {
    fn origin(&self) -> Origin<'_> {
        let msg = &self.received.msg;
        Origin {
            topic: self.event.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().and_then(|k| std::str::from_utf8(k).ok()),
        }
    }
}

/// One attempt's result: which events of the slice were applied (the rest were duplicates).
struct Applied {
    fresh: Vec<usize>,
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
    fn client(&self, brokers: &str, topics: &[Topic]) -> Result<StreamConsumer> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", self.membership.session_timeout.as_millis().to_string())
            .set("heartbeat.interval.ms", (self.membership.session_timeout / 3).as_millis().to_string());
        if let Some(id) = &self.membership.instance_id {
            config.set("group.instance.id", id);
        }
        let consumer: StreamConsumer = config.create().map_err(|e| Error::kafka("consumer", e))?;
        let names: Vec<&str> = topics.iter().map(|t| t.name()).collect();
        consumer.subscribe(&names).map_err(|e| Error::kafka(format!("subscribe {names:?}"), e))?;
        Ok(consumer)
    }

    /// Subscribes to `topics` as the group and handles messages until `shutdown`. A watchdog
    /// ([`health`]) measures the lag and asks for a rejoin when this member holds no partitions
    /// while the group's lag stands still; the loop then replaces its client.
    pub async fn run(self, brokers: &str, topics: &[Topic], shutdown: CancellationToken) -> Result<()> {
        let mut consumer = Arc::new(self.client(brokers, topics)?);
        let watch = shutdown.child_token();
        let monitor = health::Monitor {
            group_id: self.group_id.clone(),
            topics: topics.to_vec(),
            membership: self.membership.clone(),
            health: self.health.clone(),
            registry: self.registry.clone(),
        };
        let watchdog = tokio::spawn(monitor.run(consumer.clone(), watch.clone()));
        self.health.started();

        let mut crashed = false;
        let mut last_commit: Option<TopicPartitionList> = None;
        loop {
            let batch = tokio::select! {
                biased;
                _ = self.health.rejoin_requested() => {
                    tracing::warn!(group_id = %self.group_id, "holding no partitions while the group's lag stands still; rejoining with a new client");
                    let old = std::mem::replace(&mut consumer, Arc::new(self.client(brokers, topics)?));
                    let _ = tokio::task::spawn_blocking(move || drop(old)).await;
                    self.health.rejoined(consumer.clone());
                    continue;
                }
                b = self.next_batch(&consumer, &shutdown) => b,
            };
            let Some(batch) = batch else { break };
            // Tracing (off: no spans): the batch runs in its first message's span; every other
            // trace among its messages gets a span over the batch too (see `consume_spans`).
            let spans = crate::trace::consume_spans(batch.iter().map(|r| &r.msg), &self.group_id);
            let span = spans.first().cloned().unwrap_or_else(tracing::Span::none);
            let outcome = tracing::Instrument::instrument(self.process(&batch, &shutdown), span).await;
            drop(spans);
            match outcome {
                Outcome::Done => last_commit = self.commit(&consumer, &batch).or(last_commit),
                Outcome::Stopped => break,
                Outcome::Crashed => {
                    tracing::warn!(
                        group_id = %self.group_id,
                        "test hook: stopping after the database commit, before the offset commit"
                    );
                    crashed = true;
                    break;
                }
            }
        }
        watch.cancel();
        let _ = watchdog.await;
        // The last asynchronous commit may still be in flight: commit it once more, waiting, so
        // a clean stop redelivers nothing. Closing then leaves the group (its partitions move on
        // at once) and may block briefly.
        let _ = tokio::task::spawn_blocking(move || {
            if let (Some(tpl), false) = (last_commit, crashed) {
                let _ = consumer.commit(&tpl, CommitMode::Sync);
            }
            drop(consumer)
        })
        .await;
        if !crashed {
            tracing::info!(group_id = %self.group_id, "consumer stopped");
        }
        Ok(())
    }

    /// The next batch: waits for one message, then takes what follows without waiting longer
    /// than [`LINGER`], up to `batch_size`. `None` on shutdown.
    async fn next_batch(&self, consumer: &StreamConsumer, shutdown: &CancellationToken) -> Option<Vec<Received>> {
        let first = loop {
            let received = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return None,
                m = consumer.recv() => m,
            };
            match received {
                Ok(m) => break m.detach(),
                Err(e) => {
                    // Broker errors surface here (unreachable broker, rebalance trouble);
                    // librdkafka reconnects by itself.
                    self.registry.add(&KAFKA_CONSUMER_ERRORS, &[("consumer_group", &self.group_id)], 1);
                    tracing::warn!(group_id = %self.group_id, error = %e, "consumer error");
                    if !pause(Duration::from_millis(500), shutdown).await {
                        return None;
                    }
                }
            }
        };
        let mut batch = vec![Received { msg: first, at: Instant::now() }];
        while batch.len() < self.batch_size.max(1) {
            match tokio::time::timeout(LINGER, consumer.recv()).await {
                Ok(Ok(m)) => batch.push(Received { msg: m.detach(), at: Instant::now() }),
                Ok(Err(e)) => {
                    self.registry.add(&KAFKA_CONSUMER_ERRORS, &[("consumer_group", &self.group_id)], 1);
                    tracing::warn!(group_id = %self.group_id, error = %e, "consumer error");
                    break;
                }
                Err(_) => break,
            }
        }
        Some(batch)
    }

    /// Commits, asynchronously, the offset after the last message of each partition in `batch`
    /// and returns what it committed. A failure is not fatal: the messages come back and are
    /// skipped as duplicates.
    fn commit(&self, consumer: &StreamConsumer, batch: &[Received]) -> Option<TopicPartitionList> {
        let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for r in batch {
            let offset = next.entry((r.msg.topic(), r.msg.partition())).or_default();
            *offset = (*offset).max(r.msg.offset() + 1);
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            if let Err(e) = tpl.add_partition_offset(topic, partition, Offset::Offset(offset)) {
                tracing::error!(error = %e, "building the offsets to commit");
                return None;
            }
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            self.metrics.commit_failure();
            tracing::warn!(
                error = %e,
                "offset commit failed; the messages will be redelivered and skipped as already processed"
            );
        }
        Some(tpl)
    }

    /// Parses the batch, dead-letters what does not parse, and applies the rest: the whole slice
    /// in one transaction, or, when that fails, each half on its own, down to single events,
    /// which get the seed's retries and dead letter.
    async fn process(&self, batch: &[Received], shutdown: &CancellationToken) -> Outcome {
        let mut events = Vec::with_capacity(batch.len());
        for r in batch {
            self.metrics.consumed();
            match parse(&r.msg) {
                Ok(Some(event)) => {
                    let labels = [
                        ("topic", r.msg.topic()),
                        ("consumer_group", self.group_id.as_str()),
                        ("event_type", event.event_type()),
                    ];
                    self.registry.add(&KAFKA_CONSUMED, &labels, 1);
                    events.push(Parsed { received: r, event });
                }
                Ok(None) => {
                    // Workers do not subscribe to the DLQ; a dead letter elsewhere is nothing to apply.
                    tracing::warn!(
                        topic = r.msg.topic(),
                        offset = r.msg.offset(),
                        "ignoring a dead letter on a domain topic"
                    );
                }
                Err((reason, chain)) => {
                    let labels =
                        [("topic", r.msg.topic()), ("consumer_group", self.group_id.as_str()), ("event_type", "")];
                    self.registry.add(&KAFKA_CONSUMED, &labels, 1);
                    tracing::warn!(
                        topic = r.msg.topic(),
                        partition = r.msg.partition(),
                        offset = r.msg.offset(),
                        reason = %reason,
                        "poison message: it cannot be parsed, so it goes to the DLQ without retries"
                    );
                    let failure = Failure { reason, chain, count: 1 };
                    match self.dead_letter(&r.msg, failure, "unparseable", shutdown).await {
                        Outcome::Done => {}
                        other => return other,
                    }
                }
            }
        }

        let mut work: VecDeque<Range<usize>> = VecDeque::new();
        work.push_back(0..events.len());
        let mut outage_wait = self.retry.initial_backoff;
        while let Some(range) = work.pop_front() {
            let slice = &events[range.clone()];
            match slice.len() {
                0 => continue,
                1 => match self.handle_one(&slice[0], shutdown).await {
                    Outcome::Done => continue,
                    other => return other,
                },
                _ => {}
            }
            match self.attempt(slice).await {
                Ok(applied) => {
                    outage_wait = self.retry.initial_backoff;
                    if self.applied(slice, &applied) {
                        return Outcome::Crashed;
                    }
                }
                Err(AttemptError::Unavailable(why)) => {
                    self.metrics.outage_wait();
                    tracing::warn!(events = slice.len(), error = %why, wait = ?outage_wait, "database unavailable; waiting");
                    if !pause(outage_wait, shutdown).await {
                        return Outcome::Stopped;
                    }
                    outage_wait = outage_wait.mul_f64(self.retry.backoff_factor).min(self.retry.max_backoff);
                    work.push_front(range);
                }
                Err(AttemptError::Failed(e)) => {
                    // Some event of the slice cannot be applied: split it so its neighbours go
                    // through and the culprit ends up alone, with its own retries.
                    tracing::info!(events = slice.len(), error = %error_summary(&e), "a batch failed; splitting it");
                    let mid = range.start + slice.len() / 2;
                    work.push_front(mid..range.end);
                    work.push_front(range.start..mid);
                }
            }
        }
        Outcome::Done
    }

    /// Counts what an attempt applied; `true` when the crash test hook selects one of them.
    fn applied(&self, slice: &[Parsed<'_>], applied: &Applied) -> bool {
        let now = Instant::now();
        let mut fresh = applied.fresh.iter().peekable();
        let mut crash = false;
        for (i, p) in slice.iter().enumerate() {
            if fresh.peek() == Some(&&i) {
                fresh.next();
                self.metrics.processed();
                let labels = [("topic", p.event.topic().name()), ("event_type", p.event.event_type())];
                self.registry.observe(&KAFKA_PROCESSING, &labels, now.duration_since(p.received.at));
                tracing::debug!(event = %describe(&p.event), "applied");
                crash |= self.crash_after_db_commit.as_ref().is_some_and(|h| h.fires_for(&p.event));
            } else {
                self.metrics.duplicate();
                tracing::info!(event = %describe(&p.event), "already processed; skipping the redelivery");
            }
        }
        crash
    }

    /// Applies one event with the seed's retries, or dead-letters it.
    async fn handle_one(&self, parsed: &Parsed<'_>, shutdown: &CancellationToken) -> Outcome {
        let event = &parsed.event;
        let mut failures: u32 = 0;
        let mut outage_wait = self.retry.initial_backoff;
        loop {
            match self.attempt(std::slice::from_ref(parsed)).await {
                Ok(applied) => {
                    return if self.applied(std::slice::from_ref(parsed), &applied) {
                        Outcome::Crashed
                    } else {
                        Outcome::Done
                    };
                }
                Err(AttemptError::Unavailable(why)) => {
                    self.metrics.outage_wait();
                    tracing::warn!(event = %describe(event), error = %why, wait = ?outage_wait, "database unavailable; waiting");
                    if !pause(outage_wait, shutdown).await {
                        return Outcome::Stopped;
                    }
                    outage_wait = outage_wait.mul_f64(self.retry.backoff_factor).min(self.retry.max_backoff);
                }
                Err(AttemptError::Failed(e)) => {
                    failures += 1;
                    let invalid = matches!(e, HandlerError::Invalid(_));
                    let retry = if invalid { None } else { self.retry.backoff(failures - 1) };
                    match retry {
                        Some(wait) => {
                            self.metrics.retry();
                            tracing::warn!(
                                event = %describe(event),
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
                                event = %describe(event),
                                attempts = failures,
                                error = %error_summary(&e),
                                "handling failed on every attempt; dead-lettering"
                            );
                            let failure =
                                Failure { reason: error_summary(&e), chain: error_chain(&e), count: failures };
                            let class = if invalid { "invalid" } else { "retries_exhausted" };
                            return self.dead_letter(&parsed.received.msg, failure, class, shutdown).await;
                        }
                    }
                }
            }
        }
    }

    /// One attempt in a fresh transaction: claim the slice's event ids in `processed_events` in
    /// one statement, hand the ones not seen before to the handler, commit.
    async fn attempt(&self, slice: &[Parsed<'_>]) -> Result<Applied, AttemptError> {
        let mut client = self.pool.get().await.map_err(|e| AttemptError::Unavailable(error_summary(&e)))?;
        let tx = client.transaction().await?;
        let ids: Vec<Uuid> = slice.iter().map(|p| p.event.event_id()).collect();
        let topics: Vec<&str> = slice.iter().map(|p| p.event.topic().name()).collect();
        let types: Vec<&str> = slice.iter().map(|p| p.event.event_type()).collect();
        let rows = tx
            .query(
                "INSERT INTO processed_events (event_id, topic, event_type)                  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])                  ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                &[&ids, &topics, &types],
            )
            .await?;
        let mut claimed: HashSet<Uuid> = rows.iter().map(|r| r.get(0)).collect();
        // An id twice in the slice is applied once, at its first place.
        let fresh: Vec<usize> = (0..slice.len()).filter(|&i| claimed.remove(&ids[i])).collect();
        if fresh.is_empty() {
            tx.rollback().await?;
            return Ok(Applied { fresh });
        }
        let claimed: Vec<Claimed<'_>> =
            fresh.iter().map(|&i| Claimed { event: &slice[i].event, origin: slice[i].origin() }).collect();
        self.handler.handle_batch(&tx, &claimed).await?;
        tx.commit().await?;
        Ok(Applied { fresh })
    }

    /// Delivers the dead letter, waiting out a broker that does not confirm it (the offset must
    /// not move past a message that is nowhere).
    async fn dead_letter(
        &self,
        msg: &OwnedMessage,
        failure: Failure,
        class: &'static str,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let mut wait = self.retry.initial_backoff;
        loop {
            let letter = dlq::dead_letter(msg, &failure, &self.group_id, self.service, Utc::now());
            match dlq::deliver(&self.producer, &letter).await {
                Ok((partition, offset)) => {
                    self.metrics.dead_lettered();
                    self.registry.add(&KAFKA_DLQ, &[("original_topic", msg.topic()), ("failure_reason", class)], 1);
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

/// The contract's event in `msg`: `Ok(None)` for a dead letter on a domain topic, `Err` with the
/// reason and its chain for poison.
fn parse(msg: &OwnedMessage) -> std::result::Result<Option<AnyEvent>, (String, String)> {
    let topic: Option<Topic> = msg.topic().parse().ok();
    let parsed = match std::str::from_utf8(msg.payload().unwrap_or_default()) {
        Ok(text) => ContractMessage::from_json(text, topic).map_err(|e| (error_summary(&e), error_chain(&e))),
        Err(e) => Err((format!("payload is not UTF-8: {e}"), error_chain(&e))),
    };
    match parsed? {
        ContractMessage::Event(event) => Ok(Some(*event)),
        ContractMessage::DeadLetter(_) => Ok(None),
    }
}

fn describe(event: &AnyEvent) -> String {
    format!("{} on {} ({})", event.event_type(), event.topic(), event.event_id())
}
