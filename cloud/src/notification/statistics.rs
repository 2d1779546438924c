//! Daily statistics per channel and template (`notification_statistics`), rolled up from the
//! queue rows of those days: queued (rows created), sent (accepted by the provider or delivered
//! in-app), failed (failed or expired), read (in-app rows whose notification was read). Computed
//! from the rows rather than counted at each transition, so the sender lanes never queue up on
//! one counter row; recomputing a day is idempotent.

use chrono::NaiveDate;
use serde::Serialize;
use tokio_postgres::GenericClient;

use crate::error::Result;

/// One day, channel and template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DayCount {
    /// The day (UTC) the rows were queued.
    pub day: NaiveDate,
    /// The channel.
    pub channel: String,
    /// The template (`""` when none).
    pub template_id: String,
    /// Rows queued.
    pub queued: i64,
    /// Rows sent or delivered.
    pub sent: i64,
    /// Rows failed or expired.
    pub failed: i64,
    /// In-app rows read.
    pub read: i64,
}

/// Recomputes the days `from..=to` from the queue.
pub async fn refresh(db: &impl GenericClient, from: NaiveDate, to: NaiveDate) -> Result<()> {
    db.execute(
        "INSERT INTO notification_statistics (day, channel, template_id, queued, sent, failed, read)
         SELECT (q.created_at AT TIME ZONE 'UTC')::date, q.channel, coalesce(q.template_id, ''), count(*),
                count(*) FILTER (WHERE q.status IN ('sent', 'delivered')),
                count(*) FILTER (WHERE q.status IN ('failed', 'expired')),
                count(*) FILTER (WHERE q.channel = 'in_app' AND n.read_at IS NOT NULL)
         FROM notification_queue q JOIN notifications n ON n.id = q.notification_id
         WHERE (q.created_at AT TIME ZONE 'UTC')::date BETWEEN $1 AND $2
         GROUP BY 1, 2, 3
         ON CONFLICT (day, channel, template_id) DO UPDATE SET queued = EXCLUDED.queued, sent = EXCLUDED.sent,
           failed = EXCLUDED.failed, read = EXCLUDED.read",
        &[&from, &to],
    )
    .await?;
    Ok(())
}

/// The days `from..=to`, freshly rolled up.
pub async fn days(db: &impl GenericClient, from: NaiveDate, to: NaiveDate) -> Result<Vec<DayCount>> {
    refresh(db, from, to).await?;
    let rows = db
        .query(
            "SELECT day, channel, template_id, queued, sent, failed, read FROM notification_statistics
             WHERE day BETWEEN $1 AND $2 ORDER BY day, channel, template_id",
            &[&from, &to],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DayCount {
            day: r.get(0),
            channel: r.get(1),
            template_id: r.get(2),
            queued: r.get(3),
            sent: r.get(4),
            failed: r.get(5),
            read: r.get(6),
        })
        .collect())
}
