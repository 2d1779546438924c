//! When a person wants to be reached (`notification_settings`): quiet hours in their time zone,
//! during which non-urgent e-mail, SMS and push wait until the hours end (in-app is silent and
//! always immediate); and a digest, hourly or daily at a local hour, that holds non-urgent e-mail
//! and sends it as one message. Urgent and security notifications ignore both.
//!
//! Time zones are PostgreSQL's (`pg_timezone_names`, `AT TIME ZONE`), so daylight saving time is
//! handled by the database's tz data and the worker carries none.

use chrono::{DateTime, Duration, NaiveDateTime, NaiveTime, Utc};
use deadpool_postgres::Pool;
use nimbus_core::event::notification::Channel as ChannelKind;
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::queue::{self, Status, Transition, derived_id};
use crate::error::{FieldError, Result};
use crate::listing::{finish, finish_rules};

/// A person's settings as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "time_zone": "Europe/Berlin", "quiet_start": "22:00", "quiet_end": "07:00", "digest": "daily", "digest_hour": 8 }))]
pub struct Settings {
    /// An IANA time zone PostgreSQL knows (`Europe/Berlin`); another name is a 422.
    #[serde(default = "utc")]
    #[schema(default = "UTC", max_length = 64, pattern = r"^[^\u0000]*$")]
    pub time_zone: String,
    /// Start of quiet hours, local (`22:00`); with `quiet_end`, or neither (422).
    #[serde(default, deserialize_with = "crate::http::schema::strict_time_opt")]
    #[schema(schema_with = crate::http::schema::maybe_time_of_day)]
    pub quiet_start: Option<NaiveTime>,
    /// End of quiet hours, local (`07:00`); may be before the start (overnight), not equal to it.
    #[serde(default, deserialize_with = "crate::http::schema::strict_time_opt")]
    #[schema(schema_with = crate::http::schema::maybe_time_of_day)]
    pub quiet_end: Option<NaiveTime>,
    /// `off`, `hourly` or `daily`.
    #[serde(default = "off")]
    #[schema(schema_with = digests)]
    pub digest: String,
    /// The local hour of the daily digest.
    #[serde(default = "eight")]
    #[schema(default = 8, minimum = 0, maximum = 23)]
    pub digest_hour: i16,
}

/// The digest settings.
pub const DIGESTS: &[&str] = &["off", "hourly", "daily"];

/// Longest time zone name taken (PostgreSQL's longest is 32 characters).
pub const MAX_ZONE: usize = 64;

fn digests() -> utoipa::openapi::Object {
    crate::http::schema::one_of(DIGESTS)
}

fn utc() -> String {
    "UTC".into()
}
fn off() -> String {
    "off".into()
}
fn eight() -> i16 {
    8
}

impl Default for Settings {
    fn default() -> Self {
        Settings { time_zone: utc(), quiet_start: None, quiet_end: None, digest: off(), digest_hour: 8 }
    }
}

/// `user_id`'s settings (the defaults when none were saved).
pub async fn get(db: &impl GenericClient, user_id: &str) -> Result<Settings> {
    let row = db
        .query_opt(
            "SELECT time_zone, quiet_start, quiet_end, digest, digest_hour FROM notification_settings WHERE user_id = $1",
            &[&user_id],
        )
        .await?;
    Ok(row.map_or_else(Settings::default, |r| Settings {
        time_zone: r.get(0),
        quiet_start: r.get(1),
        quiet_end: r.get(2),
        digest: r.get(3),
        digest_hour: r.get(4),
    }))
}

/// Saves `user_id`'s settings after checking them: each field on its own (400), then the time
/// zone against PostgreSQL's and the quiet window's two ends together (422).
pub async fn set(db: &impl GenericClient, user_id: &str, s: &Settings) -> Result<Settings> {
    let mut errors = Vec::new();
    super::fields::no_nul(&mut errors, "time_zone", &s.time_zone);
    if s.time_zone.chars().count() > MAX_ZONE {
        errors.push(FieldError::new("time_zone", format!("must be at most {MAX_ZONE} characters")));
    }
    if !DIGESTS.contains(&s.digest.as_str()) {
        errors.push(FieldError::new("digest", "must be off, hourly or daily"));
    }
    if !(0..=23).contains(&s.digest_hour) {
        errors.push(FieldError::new("digest_hour", "must be 0 to 23"));
    }
    finish(errors)?;
    let mut rules = Vec::new();
    let known: bool =
        db.query_one("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)", &[&s.time_zone]).await?.get(0);
    if !known {
        rules.push(FieldError::new("time_zone", "is not a known time zone (e.g. Europe/Berlin)"));
    }
    if s.quiet_start.is_some() != s.quiet_end.is_some() {
        rules.push(FieldError::new("quiet_end", "quiet_start and quiet_end go together"));
    }
    if s.quiet_start.is_some() && s.quiet_start == s.quiet_end {
        rules.push(FieldError::new("quiet_end", "must differ from quiet_start"));
    }
    finish_rules(rules)?;
    db.execute(
        "INSERT INTO notification_settings (user_id, time_zone, quiet_start, quiet_end, digest, digest_hour)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (user_id) DO UPDATE SET time_zone = EXCLUDED.time_zone, quiet_start = EXCLUDED.quiet_start,
           quiet_end = EXCLUDED.quiet_end, digest = EXCLUDED.digest, digest_hour = EXCLUDED.digest_hour, updated_at = now()",
        &[&user_id, &s.time_zone, &s.quiet_start, &s.quiet_end, &s.digest, &s.digest_hour],
    )
    .await?;
    get(db, user_id).await
}

/// The local end of the quiet window `start..end` that `now` (local) is in, if it is in one.
/// A window whose end is before its start runs overnight.
pub fn quiet_until(now: NaiveDateTime, start: NaiveTime, end: NaiveTime) -> Option<NaiveDateTime> {
    let t = now.time();
    let today_end = now.date().and_time(end);
    if start <= end {
        (t >= start && t < end).then_some(today_end)
    } else if t >= start {
        Some(today_end + Duration::days(1))
    } else if t < end {
        Some(today_end)
    } else {
        None
    }
}

/// How a delivery to `user_id` on `channel` must wait, per their settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// As soon as it is due.
    Now,
    /// Not before this (the end of quiet hours).
    After(DateTime<Utc>),
    /// Held for the digest.
    Digest,
}

/// The [`Timing`] of a non-urgent, non-security delivery on `channel` to `user_id`, now.
pub async fn timing(db: &impl GenericClient, user_id: &str, channel: ChannelKind) -> Result<Timing> {
    if channel == ChannelKind::InApp {
        return Ok(Timing::Now);
    }
    let Some(row) = db
        .query_opt(
            "SELECT digest, quiet_start, quiet_end, (now() AT TIME ZONE time_zone), time_zone
             FROM notification_settings WHERE user_id = $1",
            &[&user_id],
        )
        .await?
    else {
        return Ok(Timing::Now);
    };
    let digest: String = row.get(0);
    if channel == ChannelKind::Email && digest != "off" {
        return Ok(Timing::Digest);
    }
    let (start, end, local_now, zone): (Option<NaiveTime>, Option<NaiveTime>, NaiveDateTime, String) =
        (row.get(1), row.get(2), row.get(3), row.get(4));
    let (Some(start), Some(end)) = (start, end) else { return Ok(Timing::Now) };
    let Some(until) = quiet_until(local_now, start, end) else { return Ok(Timing::Now) };
    let at: DateTime<Utc> = db.query_one("SELECT ($1::timestamp AT TIME ZONE $2)", &[&until, &zone]).await?.get(0);
    Ok(Timing::After(at))
}

/// Sends the digests due at `now`: for each user whose hour (hourly) or local digest hour
/// (daily) has passed since their last digest, their held e-mail becomes one e-mail. Returns
/// how many digests were queued. `now` is a parameter so tests need not wait for the hour.
pub async fn send_digests(pool: &Pool, now: DateTime<Utc>) -> Result<usize> {
    let mut sent = 0;
    loop {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        // One due user at a time, locked so two instances never build the same digest.
        let Some(row) = tx
            .query_opt(
                "WITH b AS (
                   SELECT s.user_id, s.last_digest_at,
                          CASE WHEN s.digest = 'hourly' THEN date_trunc('hour', $1::timestamptz)
                               ELSE (SELECT CASE WHEN d > $1::timestamptz THEN d - interval '1 day' ELSE d END
                                     FROM (SELECT (date_trunc('day', $1::timestamptz AT TIME ZONE s.time_zone)
                                                   + make_interval(hours => s.digest_hour)) AT TIME ZONE s.time_zone AS d) x)
                          END AS boundary
                   FROM notification_settings s WHERE s.digest <> 'off')
                 SELECT b.user_id, b.boundary FROM b
                 JOIN notification_settings s ON s.user_id = b.user_id
                 WHERE (b.last_digest_at IS NULL OR b.last_digest_at < b.boundary)
                   AND EXISTS (SELECT 1 FROM notification_queue q
                               WHERE q.user_id = b.user_id AND q.status = 'held' AND q.created_at < b.boundary)
                 LIMIT 1
                 FOR UPDATE OF s SKIP LOCKED",
                &[&now],
            )
            .await?
        else {
            return Ok(sent);
        };
        let (user_id, boundary): (String, DateTime<Utc>) = (row.get(0), row.get(1));
        build_digest(&tx, &user_id, boundary).await?;
        tx.commit().await?;
        sent += 1;
    }
}

async fn build_digest(tx: &tokio_postgres::Transaction<'_>, user_id: &str, boundary: DateTime<Utc>) -> Result<()> {
    let held = tx
        .query(
            "SELECT q.id, q.address, q.subject, q.body FROM notification_queue q
             WHERE q.user_id = $1 AND q.status = 'held' AND q.created_at < $2
             ORDER BY q.address, q.seq FOR UPDATE",
            &[&user_id, &boundary],
        )
        .await?;
    let source = format!("digest:{user_id}:{}", boundary.to_rfc3339());
    let notification_id = derived_id(&["notification", &source, user_id]);
    tx.execute(
        "INSERT INTO notifications (id, source_id, user_id, notification_type, title, message, priority, in_app, status)
         VALUES ($1, $2, $3, 'digest', 'Your NimbusU digest', '', 'low', false, 'active')
         ON CONFLICT (id) DO NOTHING",
        &[&notification_id, &source, &user_id],
    )
    .await?;
    // One e-mail per address the held rows were going to (usually one).
    let mut addresses: Vec<String> = held.iter().map(|r| r.get::<_, String>(1)).collect();
    addresses.dedup();
    for address in addresses {
        let rows: Vec<_> = held.iter().filter(|r| r.get::<_, String>(1) == address).collect();
        let mut body = format!("{} notifications since your last digest:\n", rows.len());
        for r in &rows {
            body.push_str(&format!("\n— {}\n{}\n", r.get::<_, String>(2), r.get::<_, String>(3).trim_end()));
        }
        let digest_id = derived_id(&["queue", &notification_id.to_string(), "email", &address]);
        tx.execute(
            "INSERT INTO notification_queue (id, notification_id, user_id, channel, address, subject, body, priority_rank)
             VALUES ($1, $2, $3, 'email', $4, $5, $6, 0) ON CONFLICT (id) DO NOTHING",
            &[
                &digest_id,
                &notification_id,
                &user_id,
                &address,
                &format!("Your NimbusU digest: {} notifications", rows.len()),
                &body,
            ],
        )
        .await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
        tx.execute(
            "UPDATE notification_queue SET status = 'digested', digest_id = $2, updated_at = now() WHERE id = ANY($1)",
            &[&ids, &digest_id],
        )
        .await?;
        queue::record(
            tx,
            &Transition {
                queue_id: digest_id,
                notification_id,
                user_id,
                channel: ChannelKind::Email,
                template_id: None,
                attempts: 0,
                status: Status::Queued,
                error: None,
            },
        )
        .await?;
    }
    tx.execute("UPDATE notification_settings SET last_digest_at = $2 WHERE user_id = $1", &[&user_id, &boundary])
        .await?;
    Ok(())
}

/// Sends due digests every `interval` until `shutdown`.
pub async fn digest_loop(pool: Pool, interval: std::time::Duration, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        if let Err(e) = send_digests(&pool, Utc::now()).await {
            tracing::warn!(error = %crate::consumer::error_summary(&e), "digests failed; retrying");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn at(h: u32, m: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 3, 10).unwrap().and_hms_opt(h, m, 0).unwrap()
    }

    fn t(h: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, 0, 0).unwrap()
    }

    #[test]
    fn an_overnight_window_ends_tomorrow_before_midnight_and_today_after() {
        assert_eq!(quiet_until(at(23, 30), t(22), t(7)), Some(at(7, 0) + Duration::days(1)));
        assert_eq!(quiet_until(at(3, 0), t(22), t(7)), Some(at(7, 0)));
        assert_eq!(quiet_until(at(12, 0), t(22), t(7)), None);
        assert_eq!(quiet_until(at(7, 0), t(22), t(7)), None, "the end is not quiet");
    }

    #[test]
    fn a_daytime_window_holds_only_inside_it() {
        assert_eq!(quiet_until(at(13, 0), t(12), t(14)), Some(at(14, 0)));
        assert_eq!(quiet_until(at(11, 59), t(12), t(14)), None);
        assert_eq!(quiet_until(at(14, 0), t(12), t(14)), None);
    }
}
