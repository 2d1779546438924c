//! Bulk sends: the consumer only records the batch (`notification_batches`); this job resolves
//! its recipients from the user and course services and queues them in chunks, each chunk its own
//! transaction. A 5,000-recipient bulk thus never holds the consumer, and its rows are queued as
//! `bulk`, which the sender takes only after every due single send.
//!
//! Several instances share the batches (`FOR UPDATE SKIP LOCKED`, a lease). A crash mid-batch
//! leaves the chunks already committed; the next instance to take the batch queues the rest, and
//! the recipients queued before are no-ops ([`intake::accept`]'s duplicate check).

use std::collections::BTreeSet;
use std::time::Duration;

use deadpool_postgres::Pool;
use nimbus_core::event::notification::{BulkNotificationPayload, RecipientFilter};
use serde::{Deserialize, Serialize};
use tokio_postgres::Transaction;
use tokio_util::sync::CancellationToken;

use super::channels::Channels;
use super::intake::{self, Accepted, Directory, Request};
use crate::course::audience::{self, Audience};
use crate::error::{Error, Result};
use crate::user::directory as users;

/// Recipients queued per transaction.
pub const CHUNK: usize = 250;

/// How long an instance holds a batch before another may take it over.
const LEASE: Duration = Duration::from_secs(60);

/// A bulk send as recorded: the seed's payload, plus named users (an announcement to people) and
/// a link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The command.
    pub payload: BulkNotificationPayload,
    /// Named recipients, in addition to the filter's narrowing (an announcement's `user_ids`).
    #[serde(default)]
    pub user_ids: Option<Vec<String>>,
    /// A link into the app.
    #[serde(default)]
    pub action_url: Option<String>,
}

/// Records `batch` in `tx` (a batch id seen before is a no-op).
pub async fn record(tx: &Transaction<'_>, batch: &Batch) -> Result<()> {
    tx.execute(
        "INSERT INTO notification_batches (batch_id, command) VALUES ($1, $2) ON CONFLICT (batch_id) DO NOTHING",
        &[&batch.payload.batch_id, &serde_json::to_value(batch)?],
    )
    .await?;
    Ok(())
}

/// The recipients of `batch`: the filter's people (course service) narrowed by role (user
/// service), or the named users.
pub async fn recipients(directory: &Directory, batch: &Batch) -> Result<Vec<String>> {
    let f: &RecipientFilter = &batch.payload.recipient_filter;
    let mut semesters = None;
    if let Some(s) = &f.semesters {
        semesters = Some(s.iter().map(|n| i32::from(*n)).collect());
    }
    let audience = Audience {
        department_ids: f.department_ids.clone(),
        program_ids: f.program_ids.clone(),
        course_ids: f.course_ids.clone(),
        semesters,
    };
    let named = batch.user_ids.as_ref().filter(|u| !u.is_empty());
    let users_db = directory.users.get().await?;
    let mut people: BTreeSet<String> = match (named, audience.is_everyone()) {
        (Some(named), true) => named.iter().cloned().collect(),
        (named, _) => {
            let courses = directory.courses.get().await?;
            let mut found: BTreeSet<String> = if audience.is_everyone() {
                users::active_users(&**users_db, None).await?.into_iter().collect()
            } else {
                audience::members(&**courses, &audience).await?.into_iter().collect()
            };
            found.extend(named.into_iter().flatten().cloned());
            found
        }
    };
    if let Some(roles) = f.role_names.as_ref().filter(|r| !r.is_empty()) {
        let holders: BTreeSet<String> = users::active_users(&**users_db, Some(roles)).await?.into_iter().collect();
        people.retain(|p| holders.contains(p));
    }
    // Groups would be the communication service's group conversations, which are not resolved
    // here yet: a filter that names groups reaches nobody rather than everybody.
    if f.group_ids.as_ref().is_some_and(|g| !g.is_empty()) {
        people.clear();
    }
    Ok(people.into_iter().collect())
}

/// What expanding a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expanded {
    /// Recipients found.
    pub recipients: usize,
    /// Deliveries queued now.
    pub queued: usize,
    /// Recipients that could not be reached on any channel asked for.
    pub unreachable: usize,
}

/// Takes one pending batch (if any) and queues all of it. `Ok(None)` when there was none.
pub async fn expand_one(pool: &Pool, directory: &Directory, channels: &Channels) -> Result<Option<Expanded>> {
    let client = pool.get().await?;
    let Some(row) = client
        .query_opt(
            "UPDATE notification_batches SET lease_until = now() + make_interval(secs => $1)
             WHERE batch_id = (SELECT batch_id FROM notification_batches
                               WHERE status = 'pending' AND (lease_until IS NULL OR lease_until < now())
                               ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING batch_id, command",
            &[&(LEASE.as_secs() as f64)],
        )
        .await?
    else {
        return Ok(None);
    };
    drop(client);
    let batch_id: String = row.get(0);
    let batch: Batch = serde_json::from_value(row.get(1))?;
    let result = expand(pool, directory, channels, &batch).await;
    let client = pool.get().await?;
    match &result {
        Ok(done) => {
            client
                .execute(
                    "UPDATE notification_batches SET status = 'done', recipients = $2, done_at = now(), lease_until = NULL
                     WHERE batch_id = $1",
                    &[&batch_id, &(done.recipients as i32)],
                )
                .await?;
        }
        Err(Error::Config(reason)) => {
            // The batch itself is wrong (its template cannot be filled): no retry will help.
            client
                .execute(
                    "UPDATE notification_batches SET status = 'failed', last_error = $2, lease_until = NULL WHERE batch_id = $1",
                    &[&batch_id, reason],
                )
                .await?;
            tracing::warn!(%batch_id, %reason, "bulk refused");
        }
        Err(e) => {
            // Infrastructure trouble: let the lease run out and try again later.
            tracing::warn!(%batch_id, error = %crate::consumer::error_summary(e), "bulk expansion interrupted");
        }
    }
    result.map(Some)
}

async fn expand(pool: &Pool, directory: &Directory, channels: &Channels, batch: &Batch) -> Result<Expanded> {
    let p = &batch.payload;
    let people = recipients(directory, batch).await?;
    let mut out = Expanded { recipients: people.len(), ..Expanded::default() };
    let mut templates = intake::TemplateCache::default();
    for chunk in people.chunks(CHUNK) {
        let contacts = directory.contacts(chunk).await?;
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        for user_id in chunk {
            let request = Request {
                source_id: p.batch_id.clone(),
                user_id: user_id.clone(),
                notification_type: p.notification_type.clone(),
                title: p.title.clone(),
                message: p.message.clone(),
                action_url: batch.action_url.clone(),
                channels: p.channels.clone(),
                priority: p.priority,
                template_id: p.template_id.clone(),
                data: p.template_data.clone().unwrap_or_default(),
                batch_id: Some(p.batch_id.clone()),
                ..Request::default()
            };
            match intake::accept(&tx, channels, &mut templates, &request, contacts.get(user_id)).await? {
                Ok(Accepted::Queued(n)) => out.queued += n,
                Ok(Accepted::Duplicate | Accepted::Cancelled) => {}
                Err(intake::Refused::Template(e)) => return Err(Error::Config(format!("batch {}: {e}", p.batch_id))),
                Err(_) => out.unreachable += 1,
            }
        }
        tx.commit().await?;
    }
    Ok(out)
}

/// Expands batches until `shutdown`, looking every `interval` when there are none.
pub async fn expand_loop(
    pool: Pool,
    directory: Directory,
    channels: Channels,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let wait = match expand_one(&pool, &directory, &channels).await {
            Ok(Some(done)) => {
                tracing::info!(
                    recipients = done.recipients,
                    queued = done.queued,
                    unreachable = done.unreachable,
                    "bulk queued"
                );
                Duration::ZERO
            }
            Ok(None) => interval,
            Err(e) => {
                tracing::warn!(error = %crate::consumer::error_summary(&e), "bulk expansion failed");
                interval.max(Duration::from_secs(1))
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
