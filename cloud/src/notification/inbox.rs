//! The in-app inbox: a person's notifications, unread first, and read marks (each announced as
//! `NOTIFICATION_READ`). Scheduled notifications appear when their time comes; cancelled ones
//! never.

use chrono::{DateTime, Utc};
use nimbus_core::event::notification::Channel as ChannelKind;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use super::queue::{self, Status, Transition};
use crate::error::{Error, Result};
use crate::listing::{ListQuery, Page};

/// One notification as its recipient sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InboxItem {
    /// Its id.
    pub id: Uuid,
    /// Its type.
    pub notification_type: String,
    /// Title.
    pub title: String,
    /// Text.
    pub message: String,
    /// A link into the app.
    pub action_url: Option<String>,
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: String,
    /// The command's data.
    #[schema(value_type = Object)]
    pub data: Value,
    /// When it was created (or, scheduled, when it was due).
    pub created_at: DateTime<Utc>,
    /// When the recipient read it.
    pub read_at: Option<DateTime<Utc>>,
}

const VISIBLE: &str = "user_id = $1 AND in_app AND status <> 'cancelled'
                       AND (scheduled_at IS NULL OR scheduled_at <= now())
                       AND (expires_at IS NULL OR expires_at > now())";

/// The columns [`item`] reads, in its order.
const ITEM: &str =
    "id, notification_type, title, message, action_url, priority, data, COALESCE(scheduled_at, created_at), read_at";

/// `user_id`'s inbox: unread first, newest first; `unread_only` leaves out what was read.
/// The inbox is newest first; `created_at` is its one sort field.
pub const INBOX_SORT: &[(&str, &str)] = &[("created_at", "created_at")];

pub async fn list(
    db: &impl GenericClient,
    user_id: &str,
    unread_only: bool,
    query: &ListQuery,
) -> Result<Page<InboxItem>> {
    let (limit, offset, _) = query.resolve(crate::notification::inbox::INBOX_SORT)?;
    let unread = if unread_only { " AND read_at IS NULL" } else { "" };
    let total: i64 =
        db.query_one(&format!("SELECT count(*) FROM notifications WHERE {VISIBLE}{unread}"), &[&user_id]).await?.get(0);
    let rows = db
        .query(
            &format!(
                "SELECT {ITEM} FROM notifications WHERE {VISIBLE}{unread}
                 ORDER BY read_at IS NULL DESC, COALESCE(scheduled_at, created_at) DESC, id
                 LIMIT $2 OFFSET $3"
            ),
            &[&user_id, &limit, &offset],
        )
        .await?;
    let items = rows.iter().map(item).collect();
    Ok(Page { items, total, limit, offset })
}

/// One of `user_id`'s visible notifications.
pub async fn get(db: &impl GenericClient, user_id: &str, id: Uuid) -> Result<Option<InboxItem>> {
    let row = db
        .query_opt(&format!("SELECT {ITEM} FROM notifications WHERE {VISIBLE} AND id = $2"), &[&user_id, &id])
        .await?;
    Ok(row.as_ref().map(item))
}

fn item(r: &tokio_postgres::Row) -> InboxItem {
    InboxItem {
        id: r.get(0),
        notification_type: r.get(1),
        title: r.get(2),
        message: r.get(3),
        action_url: r.get(4),
        priority: r.get(5),
        data: r.get(6),
        created_at: r.get(7),
        read_at: r.get(8),
    }
}

/// How many of `user_id`'s notifications are unread.
pub async fn unread_count(db: &impl GenericClient, user_id: &str) -> Result<i64> {
    Ok(db
        .query_one(&format!("SELECT count(*) FROM notifications WHERE {VISIBLE} AND read_at IS NULL"), &[&user_id])
        .await?
        .get(0))
}

/// Marks `ids` (all unread ones when `None`) of `user_id` read; marking a read one again changes
/// nothing. Returns how many became read; 404 when a named one is not the caller's.
pub async fn mark_read(tx: &Transaction<'_>, user_id: &str, ids: Option<&[Uuid]>) -> Result<u64> {
    if let Some([id]) = ids
        && tx
            .query_opt(&format!("SELECT 1 FROM notifications WHERE {VISIBLE} AND id = $2"), &[&user_id, id])
            .await?
            .is_none()
    {
        return Err(Error::NotFound { what: "notification", id: id.to_string() });
    }
    let rows = tx
        .query(
            &format!(
                "UPDATE notifications SET read_at = now()
                 WHERE {VISIBLE} AND read_at IS NULL AND ($2::uuid[] IS NULL OR id = ANY($2))
                 RETURNING id"
            ),
            &[&user_id, &ids.map(<[Uuid]>::to_vec)],
        )
        .await?;
    for r in &rows {
        let notification_id: Uuid = r.get(0);
        let Some(q) = tx
            .query_opt(
                "SELECT id, template_id, attempts FROM notification_queue WHERE notification_id = $1 AND channel = 'in_app'",
                &[&notification_id],
            )
            .await?
        else {
            continue;
        };
        let template_id: Option<String> = q.get(1);
        queue::record(
            tx,
            &Transition {
                queue_id: q.get(0),
                notification_id,
                user_id,
                channel: ChannelKind::InApp,
                template_id: template_id.as_deref(),
                attempts: q.get(2),
                status: Status::Read,
                error: None,
            },
        )
        .await?;
    }
    Ok(rows.len() as u64)
}
