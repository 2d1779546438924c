//! Semesters (at most one current) and the academic calendar's dated events within them.

use chrono::NaiveDate;
use deadpool_postgres::Pool;
use tokio_postgres::Row;
use uuid::Uuid;

use super::duplicate;
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::http::fields::{self, check_text};
use crate::listing::{self, Filter, ListQuery, Page};

/// A semester.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Semester {
    pub id: Uuid,
    pub name: String,
    pub academic_year: i32,
    pub term_number: i32,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub is_current: bool,
}

/// A new semester.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "name": "Fall 2026", "academic_year": 2026, "term_number": 1, "start_date": "2026-08-01", "end_date": "2026-12-15" }))]
pub struct NewSemester {
    /// Unique.
    #[schema(schema_with = semester_name)]
    pub name: String,
    #[schema(minimum = 2000, maximum = 2200)]
    pub academic_year: i32,
    #[schema(minimum = 1, maximum = 4)]
    pub term_number: i32,
    #[serde(deserialize_with = "fields::strict_date")]
    #[schema(schema_with = fields::date)]
    pub start_date: NaiveDate,
    /// After `start_date` (else 422).
    #[serde(deserialize_with = "fields::strict_date")]
    #[schema(schema_with = fields::date)]
    pub end_date: NaiveDate,
}

fn semester_name() -> utoipa::openapi::Object {
    fields::text(100, false)
}

fn title() -> utoipa::openapi::Object {
    fields::text(200, false)
}

fn event_types() -> utoipa::openapi::Object {
    crate::http::schema::one_of(CALENDAR_EVENT_TYPES)
}

/// The kinds of calendar event.
pub const CALENDAR_EVENT_TYPES: &[&str] = &["holiday", "exam", "registration", "classes", "other"];

/// A dated event of the academic calendar.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CalendarEvent {
    pub id: Uuid,
    pub semester_id: Uuid,
    pub title: String,
    pub event_type: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
}

/// A new calendar event.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "semester_id": "5f0c6a2e-8a1b-4c3d-9e4f-0a1b2c3d4e5f", "title": "Mid-term exams", "event_type": "exam", "start_date": "2026-10-05", "end_date": "2026-10-09" }))]
pub struct NewCalendarEvent {
    /// An existing semester (else 422).
    pub semester_id: Uuid,
    #[schema(schema_with = title)]
    pub title: String,
    /// One of [`CALENDAR_EVENT_TYPES`].
    #[schema(schema_with = event_types)]
    pub event_type: String,
    /// Within the semester (else 422).
    #[serde(deserialize_with = "fields::strict_date")]
    #[schema(schema_with = fields::date)]
    pub start_date: NaiveDate,
    /// Not before `start_date` and within the semester (else 422).
    #[serde(deserialize_with = "fields::strict_date")]
    #[schema(schema_with = fields::date)]
    pub end_date: NaiveDate,
}

impl NewSemester {
    /// Field-by-field validation (400), then the rule between the dates (422).
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        check_text(&mut e, "name", &self.name, 100);
        if !(2000..=2200).contains(&self.academic_year) {
            e.push(FieldError::new("academic_year", "must be between 2000 and 2200"));
        }
        if !(1..=4).contains(&self.term_number) {
            e.push(FieldError::new("term_number", "must be between 1 and 4"));
        }
        listing::finish(e)?;
        let mut r = Vec::new();
        if self.start_date >= self.end_date {
            r.push(FieldError::new("end_date", "must be after start_date"));
        }
        listing::finish_rules(r)
    }
}

impl NewCalendarEvent {
    /// Field-by-field validation (400), then the rule between the dates (422).
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        check_text(&mut e, "title", &self.title, 200);
        if !CALENDAR_EVENT_TYPES.contains(&self.event_type.as_str()) {
            e.push(FieldError::new("event_type", format!("must be one of {}", CALENDAR_EVENT_TYPES.join(", "))));
        }
        listing::finish(e)?;
        let mut r = Vec::new();
        if self.start_date > self.end_date {
            r.push(FieldError::new("end_date", "must not be before start_date"));
        }
        listing::finish_rules(r)
    }
}

const COLUMNS: &str = "id, name, academic_year, term_number, start_date, end_date, is_current";
pub(crate) const SORTABLE: &[(&str, &str)] = &[("start_date", "start_date"), ("name", "name")];

fn from_row(r: &Row) -> Semester {
    Semester {
        id: r.get("id"),
        name: r.get("name"),
        academic_year: r.get("academic_year"),
        term_number: r.get("term_number"),
        start_date: r.get("start_date"),
        end_date: r.get("end_date"),
        is_current: r.get("is_current"),
    }
}

/// Creates a semester.
pub async fn create_semester(pool: &Pool, _actor: &Actor, input: NewSemester) -> Result<Semester> {
    input.validate()?;
    let client = pool.get().await?;
    let name = input.name.trim().to_owned();
    let row = client
        .query_one(
            &format!(
                "INSERT INTO semesters (name, academic_year, term_number, start_date, end_date) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            &[&name, &input.academic_year, &input.term_number, &input.start_date, &input.end_date],
        )
        .await
        .map_err(|e| {
            if listing::unique_violation(&e).is_some() { duplicate("semester", "name", &name) } else { e.into() }
        })?;
    Ok(from_row(&row))
}

/// Makes `id` the current semester (and no other).
pub async fn set_current_semester(pool: &Pool, _actor: &Actor, id: Uuid) -> Result<Semester> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // One switch at a time: two at once would each clear the old current semester and then
    // collide on `semesters_one_current`.
    tx.execute("LOCK TABLE semesters IN SHARE ROW EXCLUSIVE MODE", &[]).await?;
    tx.execute("UPDATE semesters SET is_current = false WHERE is_current AND id <> $1", &[&id]).await?;
    let row = tx
        .query_opt(&format!("UPDATE semesters SET is_current = true WHERE id = $1 RETURNING {COLUMNS}"), &[&id])
        .await?
        .ok_or_else(|| Error::NotFound { what: "semester", id: id.to_string() })?;
    tx.commit().await?;
    Ok(from_row(&row))
}

/// One semester.
pub async fn get_semester(pool: &Pool, id: Uuid) -> Result<Semester> {
    let client = pool.get().await?;
    client
        .query_opt(&format!("SELECT {COLUMNS} FROM semesters WHERE id = $1"), &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "semester", id: id.to_string() })
}

/// Semesters, a page at a time.
pub async fn list_semesters(pool: &Pool, query: ListQuery) -> Result<Page<Semester>> {
    let client = pool.get().await?;
    listing::page(&client, COLUMNS, "semesters", &Filter::new(), &query, SORTABLE, from_row).await
}

/// Adds an event to the academic calendar; it must lie within its semester.
pub async fn add_calendar_event(pool: &Pool, _actor: &Actor, input: NewCalendarEvent) -> Result<CalendarEvent> {
    input.validate()?;
    let client = pool.get().await?;
    let sem = client
        .query_opt("SELECT start_date, end_date FROM semesters WHERE id = $1", &[&input.semester_id])
        .await?
        .ok_or_else(|| Error::Unprocessable(vec![FieldError::new("semester_id", "no such semester")]))?;
    let (start, end): (NaiveDate, NaiveDate) = (sem.get(0), sem.get(1));
    if input.start_date < start || input.end_date > end {
        return Err(Error::Unprocessable(vec![FieldError::new("start_date", "must lie within the semester")]));
    }
    let row = client
        .query_one(
            "INSERT INTO academic_calendar (semester_id, title, event_type, start_date, end_date) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id, semester_id, title, event_type, start_date, end_date",
            &[&input.semester_id, &input.title.trim(), &input.event_type, &input.start_date, &input.end_date],
        )
        .await?;
    Ok(CalendarEvent {
        id: row.get(0),
        semester_id: row.get(1),
        title: row.get(2),
        event_type: row.get(3),
        start_date: row.get(4),
        end_date: row.get(5),
    })
}

/// The calendar of a semester, in date order.
pub async fn calendar(pool: &Pool, semester_id: Uuid) -> Result<Vec<CalendarEvent>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, semester_id, title, event_type, start_date, end_date FROM academic_calendar \
             WHERE semester_id = $1 ORDER BY start_date, id",
            &[&semester_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| CalendarEvent {
            id: r.get(0),
            semester_id: r.get(1),
            title: r.get(2),
            event_type: r.get(3),
            start_date: r.get(4),
            end_date: r.get(5),
        })
        .collect())
}
