//! # Transactional outbox
//!
//! A service that changes its database *and* announces the change on Kafka must not do one
//! without the other: the broker has no transactions, and a crash between the database commit
//! and the produce would lose the event (or, the other way round, announce a change that was
//! rolled back). So a service writes the event into its own database's `event_outbox` table in
//! the **same transaction** as the change ([`enqueue`]), and a relay ([`relay`], run by the
//! service's worker role) produces the pending rows in order and deletes them once the broker
//! confirmed them.
//!
//! An event written while tracing is on carries its trace context in `metadata.traceparent`; the
//! relay copies it into the record's `traceparent` header (`crate::trace`).
//!
//! Delivery is at least once: a crash between the broker's confirmation and the delete produces
//! the rows again with the same `event_id`, which every consumer deduplicates on. Several
//! processes may relay one database (two api or worker instances): a transaction-scoped advisory
//! lock lets one of them work at a time, so they neither produce a row twice nor reorder it.
//!
//! Every service database that publishes has this table in its migrations:
//!
//! ```sql
//! CREATE TABLE event_outbox (
//!     id         BIGSERIAL PRIMARY KEY,
//!     event_id   UUID NOT NULL UNIQUE,
//!     topic      TEXT NOT NULL,
//!     key        TEXT NOT NULL,
//!     payload    TEXT NOT NULL,
//!     created_at TIMESTAMPTZ NOT NULL DEFAULT now()
//! );
//! ```

use std::time::Duration;

use deadpool_postgres::Pool;
use nimbus_core::event::{Envelope, TopicEvent};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Rows produced per round.
const BATCH: i64 = 500;

/// The advisory lock key that makes one relay at a time work on a database's outbox.
const RELAY_LOCK: i64 = 0x6e69_6d62_7573_6f62; // "nimbusob"

/// Records `event` for publication when `tx` commits. Enqueueing the same event id twice is a
/// no-op, so a retried command cannot announce itself twice.
///
/// While tracing is on, the current span's context goes into the event's `metadata.traceparent`
/// (unless the event already carries one), so the relay can hand it to Kafka (`crate::trace`).
pub async fn enqueue<E: TopicEvent>(tx: &tokio_postgres::Transaction<'_>, event: &Envelope<E>) -> Result<()> {
    let traced;
    let event = match crate::trace::current_traceparent() {
        Some(tp) if !event.metadata.as_ref().is_some_and(|m| m.contains_key(crate::trace::TRACEPARENT)) => {
            traced = event.clone().with_metadata(crate::trace::TRACEPARENT, tp);
            &traced
        }
        _ => event,
    };
    tx.execute(
        "INSERT INTO event_outbox (event_id, topic, key, payload) VALUES ($1, $2, $3, $4)
         ON CONFLICT (event_id) DO NOTHING",
        &[&event.event_id, &E::TOPIC.name(), &event.partition_key(), &event.to_json()],
    )
    .await?;
    Ok(())
}

/// Writes `event` into `tx`'s outbox as `service` announces it on behalf of `actor` (stamped with
/// the request's correlation id and the acting user): the one way a command publishes.
pub async fn publish<E: TopicEvent>(
    tx: &tokio_postgres::Transaction<'_>,
    service: &'static str,
    actor: &crate::actor::Actor,
    event: E,
) -> Result<()> {
    enqueue(tx, &actor.stamp(Envelope::new(service, event))).await
}

/// Produces every pending row in order, waits for all confirmations and deletes the confirmed
/// rows; returns how many were published. A row the broker refuses stays for the next round
/// (and so do the rows after it, keeping each key's order).
pub async fn publish_pending(pool: &Pool, producer: &FutureProducer, timeout: Duration) -> Result<usize> {
    let mut client = pool.get().await?;
    // One relay per database at a time: several instances of a role (two api processes, two
    // workers) would otherwise produce the same rows twice, or a later row before an earlier
    // one. The lock is the transaction's: a relay that dies releases it with its connection.
    let tx = client.transaction().await?;
    let mine: bool = tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&RELAY_LOCK]).await?.get(0);
    if !mine {
        return Ok(0);
    }
    let rows = tx.query("SELECT id, topic, key, payload FROM event_outbox ORDER BY id LIMIT $1", &[&BATCH]).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    // Enqueue everything first (librdkafka batches it), then wait for the confirmations in order.
    let mut deliveries = Vec::with_capacity(rows.len());
    for r in &rows {
        let (topic, key, payload): (&str, &str, &str) = (r.get(1), r.get(2), r.get(3));
        let mut record = FutureRecord::to(topic).key(key).payload(payload);
        if let Some(headers) = crate::trace::kafka_headers(payload) {
            record = record.headers(headers);
        }
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push(delivery),
            Err((e, _)) => {
                tracing::debug!(error = %e, "producer queue refused an outbox row; the rest waits");
                break;
            }
        }
    }
    let enqueued = deliveries.len();
    let mut confirmed = 0;
    let mut failure = None;
    for delivery in deliveries {
        match tokio::time::timeout(timeout, delivery).await {
            Ok(Ok(Ok(_))) => confirmed += 1,
            Ok(Ok(Err((e, _)))) => {
                failure = Some(e.to_string());
                break;
            }
            Ok(Err(_)) => {
                failure = Some("producer dropped the message".into());
                break;
            }
            Err(_) => {
                failure = Some(format!("no confirmation within {timeout:?}"));
                break;
            }
        }
    }
    // Delete the confirmed prefix only: a later row confirmed after an earlier failure is
    // produced again next round (at least once) rather than reordered.
    if confirmed > 0 {
        let last: i64 = rows[confirmed - 1].get(0);
        tx.execute("DELETE FROM event_outbox WHERE id <= $1", &[&last]).await?;
    }
    tx.commit().await?;
    if let Some(e) = failure {
        return Err(Error::kafka(format!("outbox ({confirmed} of {} published)", rows.len()), e));
    }
    if enqueued < rows.len() && confirmed == 0 {
        return Err(Error::kafka_msg("outbox: the producer queue is full"));
    }
    Ok(confirmed)
}

/// Publishes the outbox until `shutdown`: polls every `interval` (immediately again while rows
/// keep coming), and backs off while the broker or the database is unreachable.
pub async fn relay(pool: Pool, producer: FutureProducer, interval: Duration, shutdown: CancellationToken) {
    let mut backoff = interval;
    loop {
        let wait = match publish_pending(&pool, &producer, Duration::from_secs(10)).await {
            Ok(n) if n as i64 == BATCH => Duration::ZERO,
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(published = n, "outbox relayed");
                }
                backoff = interval;
                interval
            }
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(5));
                backoff
            }
        };
        if !crate::shutdown::pause(wait, &shutdown).await {
            return;
        }
    }
}
