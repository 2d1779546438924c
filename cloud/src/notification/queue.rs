//! The delivery queue (`notification_queue`) shared by every worker instance: claiming due rows
//! with a lease, recording outcomes, and the `notification.status` event of every transition,
//! written in the same transaction as the transition itself.
//!
//! Each status event has a deterministic id (the row, the status and the attempt), so a
//! transition retried after a crash enqueues nothing twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use nimbus_core::event::Envelope;
use nimbus_core::event::notification::{
    Channel as ChannelKind, NotificationStatusEvent, NotificationStatusPayload, Priority,
};
use nimbus_core::retry::RetryPolicy;
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use super::SERVICE;
use super::channels::{SendError, channel_of};
use crate::error::Result;

/// Namespace of the ids derived here (status events, queue rows, notifications).
const NAMESPACE: Uuid = Uuid::from_u128(0x6e6f_7469_6669_6361_7469_6f6e_7321_0001);

/// A stable id for `parts` (a notification for a source and recipient, a queue row for a
/// notification, channel and address, a status event).
pub fn derived_id(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&NAMESPACE, parts.join("\u{1f}").as_bytes())
}

/// Sort rank of a priority: urgent rows are claimed first.
pub fn rank(priority: Priority) -> i16 {
    match priority {
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
        Priority::Urgent => 3,
    }
}

/// The name of a priority in the database.
pub fn priority_name(priority: Priority) -> &'static str {
    match priority {
        Priority::Low => "low",
        Priority::Normal => "normal",
        Priority::High => "high",
        Priority::Urgent => "urgent",
    }
}

/// A transition of a queue row, as `notification.status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Added to the queue.
    Queued,
    /// Accepted by the provider.
    Sent,
    /// In the recipient's inbox and announced to their sessions (in-app).
    Delivered,
    /// Given up (with the reason).
    Failed,
    /// Read by the recipient.
    Read,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
            Status::Read => "read",
        }
    }
}

/// What a status event says about one row.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    /// The queue row.
    pub queue_id: Uuid,
    /// Its notification.
    pub notification_id: Uuid,
    /// The recipient.
    pub user_id: &'a str,
    /// The channel.
    pub channel: ChannelKind,
    /// The template, for the statistics.
    pub template_id: Option<&'a str>,
    /// Attempts made so far.
    pub attempts: i32,
    /// The new status.
    pub status: Status,
    /// Why it failed.
    pub error: Option<String>,
}

/// Writes `t`'s `notification.status` event into the outbox, in `tx` (and tells the api
/// instances' live streams of an in-app delivery). The daily statistics are rolled up from the
/// rows themselves ([`super::statistics`]): a counter row updated by every transition would
/// serialise every sender lane on its lock.
pub async fn record(tx: &Transaction<'_>, t: &Transition<'_>) -> Result<()> {
    let now = Utc::now();
    let payload = NotificationStatusPayload {
        notification_id: t.notification_id.to_string(),
        queue_id: t.queue_id.to_string(),
        user_id: t.user_id.to_owned(),
        channel: t.channel,
        status: t.status.name().to_owned(),
        attempt_count: t.attempts.max(0) as u32,
        error_message: t.error.clone(),
        sent_at: matches!(t.status, Status::Sent | Status::Delivered).then_some(now),
        delivered_at: (t.status == Status::Delivered).then_some(now),
        read_at: (t.status == Status::Read).then_some(now),
    };
    let event = match t.status {
        Status::Queued => NotificationStatusEvent::NotificationQueued(payload),
        Status::Sent => NotificationStatusEvent::NotificationSent(payload),
        Status::Delivered => NotificationStatusEvent::NotificationDelivered(payload),
        Status::Failed => NotificationStatusEvent::NotificationFailed(payload),
        Status::Read => NotificationStatusEvent::NotificationRead(payload),
    };
    let id = derived_id(&["status", &t.queue_id.to_string(), t.status.name(), &t.attempts.to_string()]);
    crate::outbox::enqueue(tx, &Envelope::new(SERVICE, event).with_event_id(id)).await?;
    if t.status == Status::Delivered && t.channel == ChannelKind::InApp {
        let delivered = super::live::Delivered { user_id: t.user_id.to_owned(), notification_id: t.notification_id };
        super::live::notify(tx, &delivered).await?;
    }
    Ok(())
}

/// A row claimed for sending.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The row (and the `Message-ID`).
    pub id: Uuid,
    /// Its notification.
    pub notification_id: Uuid,
    /// The recipient.
    pub user_id: String,
    /// The channel.
    pub channel: ChannelKind,
    /// Where to.
    pub address: String,
    /// Subject or title.
    pub subject: String,
    /// Text.
    pub body: String,
    /// The template it was rendered from.
    pub template_id: Option<String>,
    /// Attempts including this one.
    pub attempts: i32,
    /// When it stops being worth sending.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Claims up to `limit` due rows for `lease`: pending rows whose time has come, and rows still
/// `sending` whose sender's lease ran out (it died). Single sends come before bulk ones, urgent
/// before low; a row is only due once every earlier row to the same address that was meant to go
/// no later (`order_at`: its schedule or the end of quiet hours, never moved by retries) is done,
/// so one recipient's messages go out in order. `bulk: false` claims single sends only.
pub async fn claim(pool: &Pool, limit: i64, lease: Duration, bulk: bool) -> Result<Vec<Claimed>> {
    let client = pool.get().await?;
    let lease_ms = lease.as_millis() as f64;
    let rows = client
        .query(
            "UPDATE notification_queue q
             SET status = 'sending', attempts = q.attempts + 1,
                 lease_until = now() + make_interval(secs => $3::float8 / 1000), updated_at = now()
             WHERE q.id IN (
               SELECT c.id FROM notification_queue c
               WHERE ((c.status = 'pending' AND c.next_attempt_at <= now())
                      OR (c.status = 'sending' AND c.lease_until < now()))
                 AND ($2 OR NOT c.bulk)
                 AND NOT EXISTS (
                   SELECT 1 FROM notification_queue e
                   WHERE e.channel = c.channel AND e.address = c.address AND e.seq < c.seq
                     AND e.order_at <= c.order_at AND e.status IN ('pending', 'sending'))
               ORDER BY c.bulk, c.priority_rank DESC, c.next_attempt_at, c.seq
               LIMIT $1
               FOR UPDATE SKIP LOCKED)
             RETURNING q.id, q.notification_id, q.user_id, q.channel, q.address, q.subject, q.body,
                       q.template_id, q.attempts, q.expires_at",
            &[&limit, &bulk, &lease_ms],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(Claimed {
                id: r.get(0),
                notification_id: r.get(1),
                user_id: r.get(2),
                channel: channel_of(r.get(3))?,
                address: r.get(4),
                subject: r.get(5),
                body: r.get(6),
                template_id: r.get(7),
                attempts: r.get(8),
                expires_at: r.get(9),
            })
        })
        .collect())
}

/// What became of a claimed row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Sent (or delivered).
    Sent,
    /// Back in the queue for a later attempt.
    Retrying,
    /// Given up.
    Failed,
    /// Another sender settled it first (its lease had run out); nothing written.
    Lost,
}

impl Claimed {
    fn transition(&self, status: Status, error: Option<String>) -> Transition<'_> {
        Transition {
            queue_id: self.id,
            notification_id: self.notification_id,
            user_id: &self.user_id,
            channel: self.channel,
            template_id: self.template_id.as_deref(),
            attempts: self.attempts,
            status,
            error,
        }
    }

    /// Records the outcome of sending this row: sent; retried per `policy` (a provider that
    /// cannot be reached does not spend an attempt); or failed with the reason.
    pub async fn settle(
        &self,
        pool: &Pool,
        outcome: std::result::Result<(), SendError>,
        policy: &RetryPolicy,
    ) -> Result<Settled> {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        let settled = match outcome {
            Ok(()) => {
                let n = tx
                    .execute(
                        "UPDATE notification_queue SET status = $2, sent_at = now(), lease_until = NULL, last_error = NULL,
                                updated_at = now()
                         WHERE id = $1 AND status = 'sending' AND attempts = $3",
                        &[&self.id, &if self.channel == ChannelKind::InApp { "delivered" } else { "sent" }, &self.attempts],
                    )
                    .await?;
                if n == 0 {
                    return Ok(Settled::Lost);
                }
                record(&tx, &self.transition(Status::Sent, None)).await?;
                forget_secrets(&tx, self.notification_id).await?;
                if self.channel == ChannelKind::InApp {
                    record(&tx, &self.transition(Status::Delivered, None)).await?;
                }
                Settled::Sent
            }
            Err(SendError::Unavailable(reason)) => {
                // Not this message's fault: wait a little longer each time, up to the policy's
                // longest wait, without spending an attempt.
                let wait =
                    policy.max_backoff.min(Duration::from_millis(250) * 2u32.pow(self.attempts.clamp(0, 5) as u32));
                self.requeue(&tx, wait, &format!("provider unreachable: {reason}"), -1).await?
            }
            Err(SendError::Transient { reason, retry_after }) => {
                match policy.backoff((self.attempts - 1).max(0) as u32) {
                    Some(backoff) => {
                        let wait = retry_after.map_or(backoff, |r| r.max(backoff));
                        self.requeue(&tx, wait, &format!("temporary failure: {reason}"), 0).await?
                    }
                    None => self.fail(&tx, &format!("{reason} (after {} attempts)", self.attempts)).await?,
                }
            }
            Err(SendError::InvalidAddress(reason)) => {
                if self.channel == ChannelKind::Push {
                    tx.execute("DELETE FROM push_devices WHERE token = $1", &[&self.address]).await?;
                }
                self.fail(&tx, &format!("invalid address: {reason}")).await?
            }
            Err(SendError::Permanent(reason)) => self.fail(&tx, &reason).await?,
        };
        tx.commit().await?;
        Ok(settled)
    }

    async fn requeue(&self, tx: &Transaction<'_>, wait: Duration, reason: &str, refund: i32) -> Result<Settled> {
        let n = tx
            .execute(
                "UPDATE notification_queue SET status = 'pending', lease_until = NULL, attempts = attempts + $4,
                        next_attempt_at = now() + make_interval(secs => $2::float8 / 1000), last_error = $3, updated_at = now()
                 WHERE id = $1 AND status = 'sending' AND attempts = $5",
                &[&self.id, &(wait.as_millis() as f64), &reason, &refund, &self.attempts],
            )
            .await?;
        Ok(if n == 0 { Settled::Lost } else { Settled::Retrying })
    }

    /// Gives the row up with `reason` (also used for rows that expired before they went out).
    pub async fn fail(&self, tx: &Transaction<'_>, reason: &str) -> Result<Settled> {
        let n = tx
            .execute(
                "UPDATE notification_queue SET status = 'failed', lease_until = NULL, last_error = $2, updated_at = now()
                 WHERE id = $1 AND status = 'sending' AND attempts = $3",
                &[&self.id, &reason, &self.attempts],
            )
            .await?;
        if n == 0 {
            return Ok(Settled::Lost);
        }
        record(tx, &self.transition(Status::Failed, Some(reason.to_owned()))).await?;
        forget_secrets(tx, self.notification_id).await?;
        Ok(Settled::Failed)
    }

    /// Marks the row expired (its notification's `expires_at` passed before it went out).
    pub async fn expire(&self, pool: &Pool) -> Result<Settled> {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "UPDATE notification_queue SET status = 'expired', lease_until = NULL, last_error = 'expired', updated_at = now()
                 WHERE id = $1 AND status = 'sending' AND attempts = $2",
                &[&self.id, &self.attempts],
            )
            .await?;
        if n == 0 {
            return Ok(Settled::Lost);
        }
        record(&tx, &self.transition(Status::Failed, Some("expired before it could be sent".into()))).await?;
        forget_secrets(&tx, self.notification_id).await?;
        tx.commit().await?;
        Ok(Settled::Failed)
    }
}

/// What replaces a secret once its message is done with.
pub const REMOVED: &str = "(removed once sent: it held a password reset link)";

/// Once a message carrying a password reset link has been sent (or given up), the link is no
/// business of the database's any more: its text, message and data lose it, so a leaked backup
/// or a curious reader of the delivery history finds no live token.
async fn forget_secrets(tx: &Transaction<'_>, notification_id: uuid::Uuid) -> Result<()> {
    let n = tx
        .execute(
            "UPDATE notifications SET message = $2, data = data - 'reset_link' WHERE id = $1 AND data ? 'reset_link'",
            &[&notification_id, &REMOVED],
        )
        .await?;
    if n > 0 {
        tx.execute(
            "UPDATE notification_queue SET body = $2
             WHERE notification_id = $1 AND status NOT IN ('pending', 'sending', 'held')",
            &[&notification_id, &REMOVED],
        )
        .await?;
    }
    Ok(())
}

/// Counts of the queue by status (for metrics and tests).
pub async fn counts(db: &impl GenericClient) -> Result<Vec<(String, i64)>> {
    let rows = db.query("SELECT status, count(*) FROM notification_queue GROUP BY status ORDER BY status", &[]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        assert_eq!(derived_id(&["a", "b"]), derived_id(&["a", "b"]));
        assert_ne!(derived_id(&["a", "b"]), derived_id(&["ab"]));
        assert_ne!(derived_id(&["a", "b"]), derived_id(&["b", "a"]));
    }

    #[test]
    fn urgent_outranks_everything() {
        let ranks: Vec<i16> = [Priority::Low, Priority::Normal, Priority::High, Priority::Urgent].map(rank).into();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]));
    }
}
