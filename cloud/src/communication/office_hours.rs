//! Office hours: faculty publish slots (one-off, or weekly for up to 16 weeks) with a capacity;
//! students book and cancel; a reminder goes out before the slot.
//!
//! Two rules hold under any concurrency: a slot never has more live bookings than its capacity
//! (a booking locks the slot's row), and a student never holds two live bookings whose times
//! overlap (bookings of one student are serialised by a transaction-scoped advisory lock on the
//! student, so two overlapping slots booked at once cannot both pass the check).

use chrono::{DateTime, Datelike, Duration, Utc};
use nimbus_core::event::NotificationCommand;
use nimbus_core::event::notification::{Channel, NotificationPayload, Priority};
use serde::{Deserialize, Serialize};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use super::conversations::{conflict, ensure_active};
use super::{SERVICE, fields};
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};

/// Most weekly repetitions of a slot.
pub const MAX_WEEKS: u32 = 16;

/// How long before its start a booked student is reminded.
pub const REMIND_BEFORE: Duration = Duration::minutes(30);

/// Who is publishing or reading a slot's bookings: its faculty member, or an administrator
/// (`office_hours:manage`) for anyone's.
#[derive(Debug, Clone)]
pub struct Host {
    /// The user id.
    pub user_id: String,
    /// Holds `office_hours:manage`.
    pub admin: bool,
}

/// A slot to publish.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "Questions on lab 3", "location": "B-204", "starts_at": "2030-09-02T10:00:00Z",
    "ends_at": "2030-09-02T11:00:00Z", "capacity": 3, "weeks": 4
}))]
pub struct NewSlot {
    /// What it is for (1–200 characters).
    #[schema(schema_with = short_text)]
    pub title: String,
    /// Where (a room, an office, a video link; 1–200 characters).
    #[schema(schema_with = short_text)]
    pub location: String,
    /// Start, in the future (else 422).
    pub starts_at: DateTime<Utc>,
    /// End, after the start and at most 8 hours later (else 422).
    pub ends_at: DateTime<Utc>,
    /// Students per slot.
    #[schema(minimum = 1, maximum = 500)]
    pub capacity: i32,
    /// A course the slot is for (shown to students; anyone signed in may book).
    #[serde(default)]
    #[schema(schema_with = maybe_course)]
    pub course_id: Option<String>,
    /// The same slot every week for this many weeks (1, the default: once).
    #[serde(default = "once")]
    #[schema(minimum = 1, maximum = 16, default = 1)]
    pub weeks: u32,
}

fn short_text() -> utoipa::openapi::Object {
    fields::text_schema(Some(200), false)
}

fn maybe_course() -> utoipa::openapi::Object {
    fields::text_schema(Some(100), true)
}

fn once() -> u32 {
    1
}

/// A slot as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Slot {
    /// Its id.
    pub id: Uuid,
    /// The weekly series it belongs to (its own id for a one-off).
    pub series_id: Uuid,
    /// The faculty member holding it.
    pub faculty_id: String,
    /// The course it is for.
    pub course_id: Option<String>,
    /// What it is for.
    pub title: String,
    /// Where.
    pub location: String,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End.
    pub ends_at: DateTime<Utc>,
    /// Places.
    pub capacity: i32,
    /// Live bookings.
    pub booked: i64,
    /// Whether the caller holds a live booking.
    pub mine: bool,
    /// Set when cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// A booking as its slot's host sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Booking {
    /// Its id.
    pub id: Uuid,
    /// The slot.
    pub office_hour_id: Uuid,
    /// The student.
    pub student_id: String,
    /// What the student wants to discuss.
    pub note: String,
    /// Booked.
    pub booked_at: DateTime<Utc>,
}

/// A booking request.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "note": "Question 2 of lab 3" }))]
pub struct NewBooking {
    /// What to discuss (at most 1,000 characters).
    #[serde(default)]
    #[schema(max_length = 1000, pattern = r"^[^\u0000]*$", default = "")]
    pub note: String,
}

/// Checks a slot: each field on its own (400), then its times against now and each other (422).
fn validate(s: &NewSlot, now: DateTime<Utc>) -> Result<()> {
    let mut errors = Vec::new();
    for (field, value) in [("title", &s.title), ("location", &s.location)] {
        fields::text(&mut errors, field, value, 200);
    }
    if !(1..=500).contains(&s.capacity) {
        errors.push(FieldError::new("capacity", "must be 1 to 500"));
    }
    if !(1..=MAX_WEEKS).contains(&s.weeks) {
        errors.push(FieldError::new("weeks", format!("must be 1 to {MAX_WEEKS}")));
    }
    if let Some(course) = &s.course_id {
        fields::text(&mut errors, "course_id", course, 100);
    }
    crate::listing::finish(errors)?;
    let mut rules = Vec::new();
    if s.starts_at <= now {
        rules.push(FieldError::new("starts_at", "must be in the future"));
    }
    if s.ends_at <= s.starts_at || s.ends_at - s.starts_at > Duration::hours(8) {
        rules.push(FieldError::new("ends_at", "must be after starts_at, at most 8 hours later"));
    }
    // The last week's slot is shown as an RFC 3339 time, whose years end at 9999.
    let last_end = s.ends_at.checked_add_signed(Duration::weeks(i64::from(s.weeks.saturating_sub(1))));
    if last_end.is_none_or(|end| end.year() > 9999) {
        rules.push(FieldError::new("weeks", "the last week must end before the year 10000"));
    }
    crate::listing::finish_rules(rules)
}

/// The slot columns, `booked`, and `mine` for the caller given as parameter `caller` (`$1`).
fn columns(caller: &str) -> String {
    format!(
        "o.id, o.series_id, o.faculty_id, o.course_id, o.title, o.location, o.starts_at, o.ends_at, o.capacity, \
         o.cancelled_at, \
         (SELECT count(*) FROM office_hour_bookings b WHERE b.office_hour_id = o.id AND b.cancelled_at IS NULL), \
         EXISTS (SELECT 1 FROM office_hour_bookings b WHERE b.office_hour_id = o.id AND b.cancelled_at IS NULL \
                 AND b.student_id = {caller})"
    )
}

fn slot(r: &Row) -> Slot {
    Slot {
        id: r.get(0),
        series_id: r.get(1),
        faculty_id: r.get(2),
        course_id: r.get(3),
        title: r.get(4),
        location: r.get(5),
        starts_at: r.get(6),
        ends_at: r.get(7),
        capacity: r.get(8),
        cancelled_at: r.get(9),
        booked: r.get(10),
        mine: r.get(11),
    }
}

/// Publishes a slot, or `weeks` weekly slots of one series; the host must not already hold a
/// live slot overlapping any of them.
pub async fn publish(db: &mut deadpool_postgres::Object, host: &Host, s: NewSlot) -> Result<Vec<Slot>> {
    validate(&s, Utc::now())?;
    let tx = db.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('office_hours:' || $1))", &[&host.user_id]).await?;
    let series = Uuid::new_v4();
    let mut ids = Vec::new();
    for week in 0..i64::from(s.weeks) {
        let (start, end) = (s.starts_at + Duration::weeks(week), s.ends_at + Duration::weeks(week));
        let clash = tx
            .query_opt(
                "SELECT id FROM office_hours WHERE faculty_id = $1 AND cancelled_at IS NULL
                 AND tstzrange(starts_at, ends_at) && tstzrange($2, $3) LIMIT 1",
                &[&host.user_id, &start, &end],
            )
            .await?;
        if let Some(c) = clash {
            return Err(Error::Conflict {
                message: format!("week {} overlaps another of your office hours", week + 1),
                details: serde_json::json!({"office_hour_id": c.get::<_, Uuid>(0)}),
            });
        }
        let id = if week == 0 { series } else { Uuid::new_v4() };
        tx.execute(
            "INSERT INTO office_hours (id, series_id, faculty_id, course_id, title, location, starts_at, ends_at, capacity)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[&id, &series, &host.user_id, &s.course_id, &s.title.trim(), &s.location.trim(), &start, &end, &s.capacity],
        )
        .await?;
        ids.push(id);
    }
    tx.commit().await?;
    let rows = db
        .query(
            &format!("SELECT {} FROM office_hours o WHERE o.id = ANY($2) ORDER BY o.starts_at", columns("$1")),
            &[&host.user_id, &ids],
        )
        .await?;
    Ok(rows.iter().map(slot).collect())
}

/// Filters of the slot list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SlotFilter {
    /// One faculty member's slots.
    pub faculty_id: Option<String>,
    /// One course's slots.
    pub course_id: Option<String>,
    /// Only the caller's booked slots.
    #[serde(default)]
    pub mine: bool,
}

impl crate::listing::Sorted for SlotFilter {
    const SORT: &'static [(&'static str, &'static str)] = &[("starts_at", "o.starts_at")];
}

/// Upcoming slots (not ended, not cancelled), soonest first.
pub async fn upcoming(
    db: &impl GenericClient,
    caller: &str,
    f: &SlotFilter,
    q: &crate::listing::ListQuery,
) -> Result<crate::listing::Page<Slot>> {
    let (limit, offset, _) = q.resolve(<SlotFilter as crate::listing::Sorted>::SORT)?;
    let mut filter = crate::listing::Filter::new();
    if [&f.faculty_id, &f.course_id].into_iter().flatten().any(|v| v.contains('\0')) {
        // No id has a NUL character (PostgreSQL's text cannot even hold one): nothing matches.
        filter.and_sql("false");
    } else {
        filter.and("o.faculty_id = $?", f.faculty_id.clone());
        filter.and("o.course_id = $?", f.course_id.clone());
    }
    filter.and_sql("o.cancelled_at IS NULL").and_sql("o.ends_at > now()");
    // The caller (for `booked`/`mine`) follows the filter's parameters.
    let me = format!("${}", filter.len() + 1);
    if f.mine {
        filter.and_sql(&format!(
            "EXISTS (SELECT 1 FROM office_hour_bookings b WHERE b.office_hour_id = o.id AND b.cancelled_at IS NULL \
             AND b.student_id = {me})"
        ));
    }
    let where_sql = filter.where_sql();
    let n = filter.len();
    // The count names the caller only through `mine`.
    let count_params = if f.mine { filter.params(&[&caller]) } else { filter.params(&[]) };
    let total: i64 =
        db.query_one(&format!("SELECT count(*) FROM office_hours o{where_sql}"), &count_params).await?.get(0);
    let rows = db
        .query(
            &format!(
                "SELECT {} FROM office_hours o{where_sql} ORDER BY o.starts_at, o.id LIMIT ${} OFFSET ${}",
                columns(&me),
                n + 2,
                n + 3
            ),
            &filter.params(&[&caller, &limit, &offset]),
        )
        .await?;
    Ok(crate::listing::Page { items: rows.iter().map(slot).collect(), total, limit, offset })
}

/// Books the caller into slot `id`: 409 when it is full, past, cancelled, theirs already, or
/// overlaps another slot they hold.
pub async fn book(db: &mut deadpool_postgres::Object, student: &str, id: Uuid, b: NewBooking) -> Result<Booking> {
    if b.note.chars().count() > 1_000 || b.note.contains('\0') {
        return Err(Error::Validation(vec![FieldError::new("note", "must be at most 1000 characters, without NUL")]));
    }
    ensure_active(&***db, student).await?;
    let tx = db.transaction().await?;
    // One booking of this student at a time (the overlap rule spans slots), then the slot.
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('office_hour_bookings:' || $1))", &[&student]).await?;
    let row = tx
        .query_opt(
            "SELECT starts_at, ends_at, capacity, cancelled_at IS NOT NULL, faculty_id FROM office_hours
             WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .ok_or(Error::NotFound { what: "office hour", id: id.to_string() })?;
    let (starts_at, ends_at, capacity, cancelled, faculty): (DateTime<Utc>, DateTime<Utc>, i32, bool, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    if cancelled {
        return Err(conflict("the office hour was cancelled".into()));
    }
    if starts_at <= Utc::now() {
        return Err(conflict("the office hour has started".into()));
    }
    if faculty == student {
        return Err(conflict("one does not book one's own office hour".into()));
    }
    let overlap = tx
        .query_opt(
            "SELECT o.id FROM office_hour_bookings b JOIN office_hours o ON o.id = b.office_hour_id
             WHERE b.student_id = $1 AND b.cancelled_at IS NULL AND o.cancelled_at IS NULL
               AND tstzrange(o.starts_at, o.ends_at) && tstzrange($2, $3) LIMIT 1",
            &[&student, &starts_at, &ends_at],
        )
        .await?;
    if let Some(o) = overlap {
        let other: Uuid = o.get(0);
        let message = if other == id { "already booked" } else { "it overlaps another office hour you booked" };
        return Err(Error::Conflict { message: message.into(), details: serde_json::json!({"office_hour_id": other}) });
    }
    let booked: i64 = tx
        .query_one(
            "SELECT count(*) FROM office_hour_bookings WHERE office_hour_id = $1 AND cancelled_at IS NULL",
            &[&id],
        )
        .await?
        .get(0);
    if booked >= i64::from(capacity) {
        return Err(Error::Conflict {
            message: "the office hour is full".into(),
            details: serde_json::json!({"capacity": capacity, "booked": booked}),
        });
    }
    let row = tx
        .query_one(
            "INSERT INTO office_hour_bookings (id, office_hour_id, student_id, note) VALUES ($1, $2, $3, $4)
             RETURNING id, office_hour_id, student_id, note, booked_at",
            &[&Uuid::new_v4(), &id, &student, &b.note],
        )
        .await?;
    tx.commit().await?;
    Ok(booking(&row))
}

fn booking(r: &Row) -> Booking {
    Booking { id: r.get(0), office_hour_id: r.get(1), student_id: r.get(2), note: r.get(3), booked_at: r.get(4) }
}

/// Cancels the caller's booking of slot `id` (404 when they hold none).
pub async fn cancel_booking(db: &impl GenericClient, student: &str, id: Uuid) -> Result<()> {
    let n = db
        .execute(
            "UPDATE office_hour_bookings SET cancelled_at = now()
             WHERE office_hour_id = $1 AND student_id = $2 AND cancelled_at IS NULL",
            &[&id, &student],
        )
        .await?;
    if n == 0 {
        return Err(Error::NotFound { what: "booking", id: id.to_string() });
    }
    Ok(())
}

/// The host's slot, locked when `write` (404 for anyone else's unless an administrator).
async fn hosted(db: &impl GenericClient, host: &Host, id: Uuid, write: bool) -> Result<()> {
    let lock = if write { " FOR UPDATE" } else { "" };
    let faculty: Option<String> = db
        .query_opt(&format!("SELECT faculty_id FROM office_hours WHERE id = $1{lock}"), &[&id])
        .await?
        .map(|r| r.get(0));
    match faculty {
        Some(f) if f == host.user_id || host.admin => Ok(()),
        _ => Err(Error::NotFound { what: "office hour", id: id.to_string() }),
    }
}

/// The live bookings of a slot, for its host (or an administrator), in booking order.
pub async fn bookings(db: &impl GenericClient, host: &Host, id: Uuid) -> Result<Vec<Booking>> {
    hosted(db, host, id, false).await?;
    let rows = db
        .query(
            "SELECT id, office_hour_id, student_id, note, booked_at FROM office_hour_bookings
             WHERE office_hour_id = $1 AND cancelled_at IS NULL ORDER BY booked_at, id",
            &[&id],
        )
        .await?;
    Ok(rows.iter().map(booking).collect())
}

/// Cancels a slot (its host or an administrator); its booked students are told in-app.
pub async fn cancel_slot(db: &mut deadpool_postgres::Object, actor: &Actor, host: &Host, id: Uuid) -> Result<()> {
    let tx = db.transaction().await?;
    hosted(&*tx, host, id, true).await?;
    let row = tx
        .query_opt(
            "UPDATE office_hours SET cancelled_at = now() WHERE id = $1 AND cancelled_at IS NULL
             RETURNING title, starts_at",
            &[&id],
        )
        .await?;
    let Some(row) = row else { return Ok(()) };
    let (title, starts_at): (String, DateTime<Utc>) = (row.get(0), row.get(1));
    let students = tx
        .query("SELECT student_id FROM office_hour_bookings WHERE office_hour_id = $1 AND cancelled_at IS NULL", &[&id])
        .await?;
    for s in &students {
        let student: String = s.get(0);
        let message = format!("\"{title}\" on {} is cancelled.", starts_at.format("%Y-%m-%d %H:%M UTC"));
        let command =
            notify(format!("office-hour-cancelled:{id}:{student}"), student, "Office hour cancelled", message, id);
        crate::outbox::publish(&tx, SERVICE, actor, command).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn notify(notification_id: String, student: String, title: &str, message: String, id: Uuid) -> NotificationCommand {
    NotificationCommand::SendNotification(NotificationPayload {
        notification_id,
        recipient_user_id: student,
        notification_type: "office_hours".into(),
        title: title.into(),
        message,
        channels: vec![Channel::InApp, Channel::Email],
        priority: Priority::Normal,
        action_url: Some(format!("/office-hours/{id}")),
        ..NotificationPayload::default()
    })
}

/// Writes the reminder of every live booking whose slot starts within [`REMIND_BEFORE`], once
/// per booking (claimed with `FOR UPDATE SKIP LOCKED`, marked in the same transaction as the
/// command it writes); returns how many.
pub async fn remind_due(pool: &deadpool_postgres::Pool) -> Result<usize> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let before = REMIND_BEFORE;
    let rows = tx
        .query(
            "SELECT b.id, b.student_id, o.id, o.title, o.location, o.starts_at
             FROM office_hour_bookings b JOIN office_hours o ON o.id = b.office_hour_id
             WHERE b.cancelled_at IS NULL AND b.reminded_at IS NULL AND o.cancelled_at IS NULL
               AND o.starts_at > now() AND o.starts_at <= now() + make_interval(secs => $1)
             ORDER BY o.starts_at LIMIT 500
             FOR UPDATE OF b SKIP LOCKED",
            &[&(before.num_seconds() as f64)],
        )
        .await?;
    for r in &rows {
        let (booking, student, id, title, location, starts_at): (Uuid, String, Uuid, String, String, DateTime<Utc>) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        let message = format!("\"{title}\" starts at {} in {location}.", starts_at.format("%H:%M UTC"));
        let command = notify(format!("office-hour-reminder:{booking}"), student, "Office hour soon", message, id);
        crate::outbox::publish(&tx, SERVICE, &Actor::system(), command).await?;
        tx.execute("UPDATE office_hour_bookings SET reminded_at = now() WHERE id = $1", &[&booking]).await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// Runs [`remind_due`] every `every` until `shutdown`; failures are logged and retried.
pub async fn remind_loop(
    pool: deadpool_postgres::Pool,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        match remind_due(&pool).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(reminders = n, "queued office hour reminders"),
            Err(e) => tracing::warn!(error = %e, "office hour reminders failed; retrying"),
        }
        if !crate::shutdown::pause(every, &shutdown).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot_at(start: DateTime<Utc>, minutes: i64) -> NewSlot {
        NewSlot {
            title: "Questions on lab 3".into(),
            location: "B-204".into(),
            starts_at: start,
            ends_at: start + Duration::minutes(minutes),
            capacity: 3,
            course_id: None,
            weeks: 1,
        }
    }

    #[test]
    fn a_slot_is_in_the_future_short_and_sized() {
        let now = Utc::now();
        assert!(validate(&slot_at(now + Duration::hours(1), 60), now).is_ok());
        assert!(validate(&slot_at(now - Duration::hours(1), 60), now).is_err(), "past");
        assert!(validate(&slot_at(now + Duration::hours(1), 0), now).is_err(), "empty");
        assert!(validate(&slot_at(now + Duration::hours(1), 9 * 60), now).is_err(), "longer than 8 hours");
        assert!(validate(&NewSlot { capacity: 0, ..slot_at(now + Duration::hours(1), 60) }, now).is_err());
        assert!(validate(&NewSlot { weeks: 17, ..slot_at(now + Duration::hours(1), 60) }, now).is_err());
    }
}
