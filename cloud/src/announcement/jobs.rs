//! The worker's jobs: publish scheduled announcements when their time comes, expire published
//! ones, and queue each urgent or high publication's notifications. Every job claims its rows
//! with `FOR UPDATE SKIP LOCKED` and writes its events in the same transaction, so any number
//! of worker instances do each thing once, and a killed instance's work is redone by the next
//! round of any instance (its transaction never committed).

use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;
use nimbus_core::event::announcement::AnnouncementRemovedPayload;
use nimbus_core::event::notification::{BulkNotificationPayload, Channel, Priority, RecipientFilter, RecipientType};
use nimbus_core::event::{AnnouncementEvent, NotificationCommand};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::SERVICE;
use super::audience::Directory;
use super::store;
use crate::actor::Actor;
use crate::error::Result;

/// Recipients named per `SEND_BULK` command (keeps each Kafka message far below its limit).
pub const FANOUT_CHUNK: usize = 2_000;

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Scheduled announcements published.
    pub published: usize,
    /// Announcements expired.
    pub expired: usize,
    /// Publications whose notifications were queued.
    pub fanned_out: usize,
}

/// Publishes the scheduled announcements that are due.
pub async fn publish_due(pool: &Pool) -> Result<usize> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT id FROM announcements WHERE status = 'scheduled' AND publish_at <= now()
             ORDER BY publish_at LIMIT 50 FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await?;
    for r in &rows {
        let v = store::publish_locked(&tx, &Actor::system(), r.get(0)).await?;
        tracing::info!(announcement = %v.id, priority = %v.priority, "published a scheduled announcement");
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// Expires the published announcements whose expiry has passed.
pub async fn expire_due(pool: &Pool) -> Result<usize> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "UPDATE announcements SET status = 'expired', fanout_due = false, updated_at = now()
             WHERE id IN (SELECT id FROM announcements WHERE status = 'published' AND expires_at <= now()
                          ORDER BY expires_at LIMIT 200 FOR UPDATE SKIP LOCKED)
             RETURNING id, title, expires_at",
            &[],
        )
        .await?;
    for r in &rows {
        let id: Uuid = r.get(0);
        let event = AnnouncementEvent::AnnouncementExpired(AnnouncementRemovedPayload {
            announcement_id: id.to_string(),
            title: Some(r.get(1)),
            changed_by: None,
            occurred_at: r.get::<_, Option<chrono::DateTime<Utc>>>(2).unwrap_or_else(Utc::now),
        });
        crate::outbox::publish(&tx, SERVICE, &Actor::system(), event).await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// Queues the notifications of one publication that still needs them: urgent ones by push and
/// e-mail, high ones in-app, to the audience resolved now. `Ok(false)` when none was due.
pub async fn fan_out_one(pool: &Pool, directory: &Directory) -> Result<bool> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT id, publication FROM announcements WHERE fanout_due ORDER BY published_at
             LIMIT 1 FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await?
    else {
        return Ok(false);
    };
    let (id, publication): (Uuid, i32) = (row.get(0), row.get(1));
    let v = store::load(&*tx, id)
        .await?
        .ok_or_else(|| crate::error::Error::NotFound { what: "announcement", id: id.to_string() })?;
    let people = directory.audience(&*tx, &v.targets).await?;
    let (channels, priority, template) = match v.priority.as_str() {
        "urgent" => (vec![Channel::Push, Channel::Email], Priority::Urgent, Some("template-urgent-announcement")),
        _ => (vec![Channel::InApp], Priority::High, None),
    };
    for (n, chunk) in people.chunks(FANOUT_CHUNK).enumerate() {
        let command = NotificationCommand::SendBulk(BulkNotificationPayload {
            batch_id: format!("announcement:{id}:{publication}:{n}"),
            recipient_type: RecipientType::All,
            recipient_filter: RecipientFilter::default(),
            notification_type: "announcement".into(),
            title: v.title.clone(),
            message: v.content.clone(),
            channels: channels.clone(),
            priority,
            template_id: template.map(str::to_owned),
            template_data: None,
            user_ids: Some(chunk.to_vec()),
            action_url: Some(format!("/announcements/{id}")),
        });
        crate::outbox::publish(&tx, SERVICE, &Actor::system(), command).await?;
    }
    tx.execute("UPDATE announcements SET fanout_due = false WHERE id = $1", &[&id]).await?;
    tx.commit().await?;
    tracing::info!(announcement = %id, recipients = people.len(), "queued the announcement's notifications");
    Ok(true)
}

/// One round of every job.
pub async fn round(pool: &Pool, directory: &Directory) -> Result<Round> {
    let mut r = Round { published: publish_due(pool).await?, expired: expire_due(pool).await?, fanned_out: 0 };
    while fan_out_one(pool, directory).await? {
        r.fanned_out += 1;
    }
    Ok(r)
}

/// Runs [`round`] every `every` until `shutdown`; failures are logged and retried next round.
pub async fn run(pool: Pool, directory: Directory, every: Duration, shutdown: CancellationToken) {
    loop {
        if let Err(e) = round(&pool, &directory).await {
            tracing::warn!(error = %e, "announcement jobs failed; retrying");
        }
        if !crate::shutdown::pause(every, &shutdown).await {
            return;
        }
    }
}
