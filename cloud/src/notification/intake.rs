//! From "tell this person this" to rows: one `notifications` row per source and recipient and one
//! `notification_queue` row per channel and address, each rendered from its template and
//! filtered by the recipient's preferences, with a `NOTIFICATION_QUEUED` event per row — all in
//! the caller's transaction (the consumer's, or a bulk chunk's).

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use nimbus_core::event::notification::{Channel as ChannelKind, Priority};
use serde_json::{Map, Value};
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::channels::{Channels, channel_name};
use super::queue::{self, Status, Transition, derived_id, priority_name, rank};
use super::schedule::{self, Timing};
use super::{preferences, templates};
use crate::error::{Error, Result};
use crate::user::directory::{self, Contact};

/// Where the notification service looks people up: the user service (contacts, roles) and the
/// course service (audiences), through their own functions.
#[derive(Clone)]
pub struct Directory {
    /// `user_service_db`.
    pub users: Pool,
    /// `course_service_db`.
    pub courses: Pool,
}

impl Directory {
    /// The contacts of `ids`, by id.
    pub async fn contacts(&self, ids: &[String]) -> Result<std::collections::HashMap<String, Contact>> {
        let client = self.users.get().await?;
        Ok(directory::contacts(&**client, ids).await?.into_iter().map(|c| (c.user_id.clone(), c)).collect())
    }
}

/// One notification for one recipient.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// What makes it unique with the recipient: the command's `notification_id`, a bulk's
    /// `batch_id`, or the domain event it answers (`password-reset:<id>`).
    pub source_id: String,
    /// The recipient.
    pub user_id: String,
    /// Type, and the preference category.
    pub notification_type: String,
    /// Title (used when no template applies).
    pub title: String,
    /// Text (used when no template applies).
    pub message: String,
    /// A link into the app.
    pub action_url: Option<String>,
    /// The channels asked for.
    pub channels: Vec<ChannelKind>,
    /// Urgency.
    pub priority: Priority,
    /// The template to render, per channel, when one exists for the channel.
    pub template_id: Option<String>,
    /// The template's variables.
    pub data: Map<String, Value>,
    /// The bulk it belongs to (sent after single sends).
    pub batch_id: Option<String>,
    /// Not before.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Not after.
    pub expires_at: Option<DateTime<Utc>>,
    /// An address given by the command, used instead of the user service's.
    pub email: Option<String>,
    /// A phone number given by the command.
    pub phone: Option<String>,
    /// Security mail (a password reset): ignores opt-outs and the account's status.
    pub security: bool,
}

/// The templates one intake has looked up, by id and channel: a bulk renders the same template
/// for thousands of recipients and reads it once.
#[derive(Debug, Default)]
pub struct TemplateCache(std::collections::HashMap<(String, &'static str), Option<templates::Template>>);

impl TemplateCache {
    async fn get(
        &mut self,
        tx: &Transaction<'_>,
        id: &str,
        channel: ChannelKind,
    ) -> Result<Option<templates::Template>> {
        let key = (id.to_owned(), channel_name(channel));
        if let Some(t) = self.0.get(&key) {
            return Ok(t.clone());
        }
        let t = templates::active(tx, id, channel).await?;
        self.0.insert(key, t.clone());
        Ok(t)
    }
}

/// What [`accept`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Queued this many deliveries.
    Queued(usize),
    /// The same source and recipient were accepted before: nothing added.
    Duplicate,
    /// Cancelled before it arrived.
    Cancelled,
}

/// Why a request cannot be delivered at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The recipient is not a user and the command gave no address.
    #[error("unknown recipient {0}")]
    UnknownRecipient(String),
    /// No channel asked for can reach the recipient (none configured, no address, all opted out).
    #[error("no usable channel for {user}: {reasons}")]
    NoChannel {
        /// The recipient.
        user: String,
        /// Why each channel was left out.
        reasons: String,
    },
    /// A template could not be rendered with the data given.
    #[error("{0}")]
    Template(String),
}

/// Queues `request` for `contact` (`None`: not a user) in `tx`, rendering through `templates`. A source already accepted for
/// the recipient is a no-op; so is one cancelled before it arrived.
pub async fn accept(
    tx: &Transaction<'_>,
    channels: &Channels,
    templates: &mut TemplateCache,
    request: &Request,
    contact: Option<&Contact>,
) -> Result<std::result::Result<Accepted, Refused>> {
    if request.channels.is_empty() {
        return Ok(Err(Refused::NoChannel { user: request.user_id.clone(), reasons: "no channel asked for".into() }));
    }
    if contact.is_none() && request.email.is_none() && request.phone.is_none() {
        return Ok(Err(Refused::UnknownRecipient(request.user_id.clone())));
    }
    if tx
        .query_opt("SELECT 1 FROM notification_cancellations WHERE source_id = $1", &[&request.source_id])
        .await?
        .is_some()
    {
        return Ok(Ok(Accepted::Cancelled));
    }
    let notification_id = derived_id(&["notification", &request.source_id, &request.user_id]);
    if tx.query_opt("SELECT 1 FROM notifications WHERE id = $1", &[&notification_id]).await?.is_some() {
        return Ok(Ok(Accepted::Duplicate));
    }

    // Which channels, to which addresses.
    let opted_out = if request.security {
        Vec::new()
    } else {
        preferences::opted_out(tx, &request.user_id, &request.notification_type).await?
    };
    let inactive = contact.is_some_and(|c| !c.active) && !request.security;
    let mut deliveries: Vec<(ChannelKind, String)> = Vec::new();
    let mut reasons = Vec::new();
    for &channel in &request.channels {
        let name = channel_name(channel);
        if deliveries.iter().any(|(c, _)| *c == channel) {
            continue;
        }
        if inactive {
            reasons.push(format!("{name}: the account is not active"));
            continue;
        }
        if opted_out.contains(&channel) {
            reasons.push(format!("{name}: opted out"));
            continue;
        }
        if !channels.has(channel) {
            reasons.push(format!("{name}: not configured"));
            continue;
        }
        let addresses: Vec<String> = match channel {
            ChannelKind::Email => {
                request.email.clone().or_else(|| contact.map(|c| c.email.clone())).into_iter().collect()
            }
            ChannelKind::Sms => request
                .phone
                .clone()
                .or_else(|| contact.map(|c| c.phone.clone()))
                .filter(|p| !p.trim().is_empty())
                .into_iter()
                .collect(),
            ChannelKind::Push => tx
                .query("SELECT token FROM push_devices WHERE user_id = $1 ORDER BY created_at", &[&request.user_id])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect(),
            ChannelKind::InApp if contact.is_some() => vec![request.user_id.clone()],
            ChannelKind::InApp => Vec::new(),
        };
        if addresses.is_empty() {
            reasons.push(format!("{name}: no address"));
        }
        deliveries.extend(addresses.into_iter().map(|a| (channel, a)));
    }
    if deliveries.is_empty() {
        return Ok(Err(Refused::NoChannel { user: request.user_id.clone(), reasons: reasons.join("; ") }));
    }

    // Render per channel before writing anything.
    let mut data = request.data.clone();
    data.entry("title").or_insert_with(|| Value::String(request.title.clone()));
    data.entry("message").or_insert_with(|| Value::String(request.message.clone()));
    if let Some(url) = &request.action_url {
        data.entry("action_url").or_insert_with(|| Value::String(url.clone()));
    }
    if let Some(c) = contact {
        data.entry("recipient_name").or_insert_with(|| Value::String(c.name.clone()));
    }
    let mut rendered = Vec::with_capacity(deliveries.len());
    for (channel, address) in deliveries {
        let template = match &request.template_id {
            Some(id) => templates.get(tx, id, channel).await?,
            None => None,
        };
        let (subject, body, template_id) = match &template {
            Some(t) => match t.render(&data) {
                Ok(r) => (r.subject, r.body, Some(t.template_id.clone())),
                Err(e) => return Ok(Err(Refused::Template(e))),
            },
            None => {
                let mut body = request.message.clone();
                if let (Some(url), ChannelKind::Email) = (&request.action_url, channel) {
                    body.push_str(&format!("\n\n{url}\n"));
                }
                (request.title.clone(), body, None)
            }
        };
        rendered.push((channel, address, subject, body, template_id));
    }

    let in_app = rendered.iter().any(|(c, ..)| *c == ChannelKind::InApp);
    let scheduled = request.scheduled_at.filter(|at| *at > Utc::now());
    tx.execute(
        "INSERT INTO notifications (id, source_id, user_id, notification_type, title, message, action_url, priority,
                                    data, batch_id, in_app, status, scheduled_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &notification_id,
            &request.source_id,
            &request.user_id,
            &request.notification_type,
            &request.title,
            &request.message,
            &request.action_url,
            &priority_name(request.priority),
            &Value::Object(request.data.clone()),
            &request.batch_id,
            &in_app,
            &if scheduled.is_some() { "scheduled" } else { "active" },
            &scheduled,
            &request.expires_at,
        ],
    )
    .await?;
    let due = scheduled.unwrap_or_else(Utc::now);
    // Urgent and security messages ignore quiet hours and digests.
    let interruptible = !request.security && request.priority != Priority::Urgent;
    for (channel, address, subject, body, template_id) in &rendered {
        let queue_id = derived_id(&["queue", &notification_id.to_string(), channel_name(*channel), address]);
        let timing = if interruptible { schedule::timing(tx, &request.user_id, *channel).await? } else { Timing::Now };
        let (status, next_attempt) = match timing {
            Timing::Now => ("pending", due),
            Timing::After(at) => ("pending", due.max(at)),
            Timing::Digest => ("held", due),
        };
        tx.execute(
            "INSERT INTO notification_queue (id, notification_id, user_id, channel, address, subject, body, template_id,
                                             priority_rank, bulk, next_attempt_at, expires_at, status, order_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $11)",
            &[
                &queue_id,
                &notification_id,
                &request.user_id,
                &channel_name(*channel),
                address,
                subject,
                body,
                template_id,
                &rank(request.priority),
                &request.batch_id.is_some(),
                &next_attempt,
                &request.expires_at,
                &status,
            ],
        )
        .await?;
        queue::record(
            tx,
            &Transition {
                queue_id,
                notification_id,
                user_id: &request.user_id,
                channel: *channel,
                template_id: template_id.as_deref(),
                attempts: 0,
                status: Status::Queued,
                error: None,
            },
        )
        .await?;
    }
    Ok(Ok(Accepted::Queued(rendered.len())))
}

/// Cancels what `source_id` scheduled (and anything of it still queued), and remembers the
/// cancellation for a schedule that has not arrived yet. Returns the deliveries cancelled.
pub async fn cancel(tx: &Transaction<'_>, source_id: &str, by: &str, at: DateTime<Utc>) -> Result<u64> {
    tx.execute(
        "INSERT INTO notification_cancellations (source_id, cancelled_by, cancelled_at) VALUES ($1, $2, $3)
         ON CONFLICT (source_id) DO NOTHING",
        &[&source_id, &by, &at],
    )
    .await?;
    tx.execute(
        "UPDATE notifications SET status = 'cancelled' WHERE source_id = $1 AND status <> 'cancelled'",
        &[&source_id],
    )
    .await?;
    let rows = tx
        .query(
            "UPDATE notification_queue q SET status = 'cancelled', last_error = 'cancelled by ' || $2, updated_at = now()
             FROM notifications n
             WHERE n.id = q.notification_id AND n.source_id = $1 AND q.status = 'pending'
             RETURNING q.id, q.notification_id, q.user_id, q.channel, q.template_id, q.attempts",
            &[&source_id, &by],
        )
        .await?;
    for r in &rows {
        let channel = super::channels::channel_of(r.get(3)).ok_or_else(|| Error::Config("unknown channel".into()))?;
        queue::record(
            tx,
            &Transition {
                queue_id: r.get(0),
                notification_id: r.get(1),
                user_id: r.get(2),
                channel,
                template_id: r.get(4),
                attempts: r.get(5),
                status: Status::Failed,
                error: Some(format!("cancelled by {by}")),
            },
        )
        .await?;
    }
    Ok(rows.len() as u64)
}

/// The notification id [`accept`] gives `source_id` for `user_id` (for tests and the inbox).
pub fn notification_id(source_id: &str, user_id: &str) -> Uuid {
    derived_id(&["notification", source_id, user_id])
}
