//! Timetables: one department's (optionally one program's) weekly classes for a semester.
//! Lifecycle: `draft` → `published` (nodes get it through the downlink) → `archived` (its entries
//! no longer block rooms or faculty). Archived is final.

use chrono::{NaiveDate, Utc};
use deadpool_postgres::Pool;
use nimbus_core::event::TimetableEvent;
use nimbus_core::event::timetable::{TimetablePayload, TimetablePublishedPayload};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::listing::{self, Filter, ListQuery, Page, require_text};

/// The statuses of a timetable.
pub const STATUSES: &[&str] = &["draft", "published", "archived"];

/// A timetable.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Timetable {
    pub id: Uuid,
    pub name: String,
    pub semester_id: String,
    pub semester_name: String,
    pub semester_number: Option<i32>,
    pub department_id: String,
    pub department_name: String,
    pub program_id: Option<String>,
    pub status: String,
    pub effective_from: Option<NaiveDate>,
    pub effective_until: Option<NaiveDate>,
    pub created_by: String,
    pub published_by: Option<String>,
    pub published_at: Option<chrono::DateTime<Utc>>,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
}

/// A new (draft) timetable.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTimetable {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub semester_id: String,
    #[serde(default)]
    pub semester_name: String,
    #[schema(minimum = 1, maximum = 20)]
    pub semester_number: Option<i32>,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub department_id: String,
    #[serde(default)]
    pub department_name: String,
    pub program_id: Option<String>,
    pub effective_from: Option<NaiveDate>,
    /// Not before `effective_from` (else 422).
    pub effective_until: Option<NaiveDate>,
}

/// Changes to a timetable's fields; absent fields stay.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimetableUpdate {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    pub semester_name: Option<String>,
    #[schema(minimum = 1, maximum = 20)]
    pub semester_number: Option<i32>,
    pub department_name: Option<String>,
    pub program_id: Option<String>,
    pub effective_from: Option<NaiveDate>,
    pub effective_until: Option<NaiveDate>,
}

/// Filters of [`list_timetables`].
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimetableFilter {
    pub semester_id: Option<String>,
    pub department_id: Option<String>,
    pub program_id: Option<String>,
    #[param(schema_with = statuses)]
    pub status: Option<String>,
}

fn check_dates(rules: &mut Vec<FieldError>, from: Option<NaiveDate>, until: Option<NaiveDate>) {
    if let (Some(f), Some(u)) = (from, until)
        && f > u
    {
        rules.push(FieldError::new("effective_until", "must not be before effective_from"));
    }
}

fn check_semester_number(e: &mut Vec<FieldError>, n: Option<i32>) {
    if n.is_some_and(|n| !(1..=20).contains(&n)) {
        e.push(FieldError::new("semester_number", "must be between 1 and 20"));
    }
}

impl NewTimetable {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        require_text(&mut e, "name", &self.name, 200);
        require_text(&mut e, "semester_id", &self.semester_id, 100);
        require_text(&mut e, "department_id", &self.department_id, 100);
        check_semester_number(&mut e, self.semester_number);
        listing::finish(e)?;
        let mut rules = Vec::new();
        check_dates(&mut rules, self.effective_from, self.effective_until);
        listing::finish_rules(rules)
    }
}

impl TimetableUpdate {
    /// Field-by-field validation of the fields present.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        if let Some(n) = &self.name {
            require_text(&mut e, "name", n, 200);
        }
        check_semester_number(&mut e, self.semester_number);
        listing::finish(e)?;
        let mut rules = Vec::new();
        check_dates(&mut rules, self.effective_from, self.effective_until);
        listing::finish_rules(rules)
    }
}

const COLUMNS: &str = "id, name, semester_id, semester_name, semester_number, department_id, department_name, \
    program_id, status, effective_from, effective_until, created_by, published_by, published_at, created_at, updated_at";
const SORTABLE: &[(&str, &str)] =
    &[("created_at", "created_at"), ("name", "name"), ("status", "status"), ("semester_id", "semester_id")];

impl crate::listing::Sorted for TimetableFilter {
    const SORT: &'static [(&'static str, &'static str)] = SORTABLE;
}

fn from_row(r: &Row) -> Timetable {
    Timetable {
        id: r.get("id"),
        name: r.get("name"),
        semester_id: r.get("semester_id"),
        semester_name: r.get("semester_name"),
        semester_number: r.get("semester_number"),
        department_id: r.get("department_id"),
        department_name: r.get("department_name"),
        program_id: r.get("program_id"),
        status: r.get("status"),
        effective_from: r.get("effective_from"),
        effective_until: r.get("effective_until"),
        created_by: r.get("created_by"),
        published_by: r.get("published_by"),
        published_at: r.get("published_at"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

fn payload(t: &Timetable, actor: &Actor) -> TimetablePayload {
    TimetablePayload {
        timetable_id: t.id.to_string(),
        semester_id: t.semester_id.clone(),
        department_id: t.department_id.clone(),
        program_id: t.program_id.clone(),
        semester_number: t.semester_number,
        changed_by: actor.id(),
        changed_at: Utc::now(),
    }
}

/// Creates a draft timetable and announces `TIMETABLE_CREATED`.
pub async fn create_timetable(pool: &Pool, actor: &Actor, input: NewTimetable) -> Result<Timetable> {
    input.validate()?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO timetables (name, semester_id, semester_name, semester_number, department_id, \
                   department_name, program_id, effective_from, effective_until, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
            ),
            &[
                &input.name.trim(),
                &input.semester_id.trim(),
                &input.semester_name,
                &input.semester_number,
                &input.department_id.trim(),
                &input.department_name,
                &input.program_id,
                &input.effective_from,
                &input.effective_until,
                &actor.id(),
            ],
        )
        .await?;
    let t = from_row(&row);
    super::publish(&tx, actor, TimetableEvent::TimetableCreated(payload(&t, actor))).await?;
    tx.commit().await?;
    Ok(t)
}

/// One timetable by id.
pub async fn get_timetable(pool: &Pool, id: Uuid) -> Result<Timetable> {
    let client = pool.get().await?;
    client
        .query_opt(&format!("SELECT {COLUMNS} FROM timetables WHERE id = $1"), &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "timetable", id: id.to_string() })
}

/// The timetable, locked for the rest of `tx` (entries and status changes serialise on it).
pub(crate) async fn lock(tx: &tokio_postgres::Transaction<'_>, id: Uuid) -> Result<Timetable> {
    tx.query_opt(&format!("SELECT {COLUMNS} FROM timetables WHERE id = $1 FOR UPDATE"), &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "timetable", id: id.to_string() })
}

fn archived(t: &Timetable) -> Error {
    Error::Conflict {
        message: format!("timetable {} is archived", t.id),
        details: serde_json::json!({ "timetable_id": t.id, "status": t.status }),
    }
}

/// Updates a timetable's fields (not archived ones) and announces `TIMETABLE_UPDATED`.
pub async fn update_timetable(pool: &Pool, actor: &Actor, id: Uuid, input: TimetableUpdate) -> Result<Timetable> {
    input.validate()?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let current = lock(&tx, id).await?;
    if current.status == "archived" {
        return Err(archived(&current));
    }
    let from = input.effective_from.or(current.effective_from);
    let until = input.effective_until.or(current.effective_until);
    let mut e = Vec::new();
    check_dates(&mut e, from, until);
    listing::finish(e)?;
    let row = tx
        .query_one(
            &format!(
                "UPDATE timetables SET name = COALESCE($2, name), semester_name = COALESCE($3, semester_name), \
                   semester_number = COALESCE($4, semester_number), department_name = COALESCE($5, department_name), \
                   program_id = COALESCE($6, program_id), effective_from = $7, effective_until = $8, updated_at = now() \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &input.name.as_deref().map(str::trim),
                &input.semester_name,
                &input.semester_number,
                &input.department_name,
                &input.program_id,
                &from,
                &until,
            ],
        )
        .await?;
    let t = from_row(&row);
    super::publish(&tx, actor, TimetableEvent::TimetableUpdated(payload(&t, actor))).await?;
    tx.commit().await?;
    Ok(t)
}

/// Publishes a draft timetable and announces `TIMETABLE_PUBLISHED` with its active entry count;
/// classroom nodes get its entries through the downlink from then on.
pub async fn publish_timetable(pool: &Pool, actor: &Actor, id: Uuid) -> Result<Timetable> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let current = lock(&tx, id).await?;
    if current.status != "draft" {
        return Err(Error::Conflict {
            message: format!("only a draft timetable can be published; this one is {}", current.status),
            details: serde_json::json!({ "timetable_id": id, "status": current.status }),
        });
    }
    let entry_count: i64 = tx
        .query_one("SELECT count(*) FROM timetable_entries WHERE timetable_id = $1 AND is_active", &[&id])
        .await?
        .get(0);
    let by = actor.id();
    let row = tx
        .query_one(
            &format!(
                "UPDATE timetables SET status = 'published', published_by = $2, published_at = now(), updated_at = now() \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &by],
        )
        .await?;
    let t = from_row(&row);
    let published_at = t.published_at.unwrap_or_else(Utc::now);
    let effective_from =
        t.effective_from.and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc()).unwrap_or(published_at);
    let event = TimetableEvent::TimetablePublished(TimetablePublishedPayload {
        timetable_id: t.id.to_string(),
        semester_id: t.semester_id.clone(),
        semester_name: t.semester_name.clone(),
        department_id: t.department_id.clone(),
        department_name: t.department_name.clone(),
        program_id: t.program_id.clone().unwrap_or_default(),
        semester_number: t.semester_number.unwrap_or(0),
        entry_count: i32::try_from(entry_count).unwrap_or(i32::MAX),
        published_by: by,
        published_at,
        effective_from,
    });
    super::publish(&tx, actor, event).await?;
    tx.commit().await?;
    Ok(t)
}

/// Archives a timetable: its entries stop counting for conflicts and leave the nodes' schedules.
/// Announced as `TIMETABLE_UPDATED`.
pub async fn archive_timetable(pool: &Pool, actor: &Actor, id: Uuid) -> Result<Timetable> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let current = lock(&tx, id).await?;
    if current.status == "archived" {
        return Err(archived(&current));
    }
    let row = tx
        .query_one(
            &format!("UPDATE timetables SET status = 'archived', updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"),
            &[&id],
        )
        .await?;
    let t = from_row(&row);
    super::publish(&tx, actor, TimetableEvent::TimetableUpdated(payload(&t, actor))).await?;
    tx.commit().await?;
    Ok(t)
}

fn statuses() -> utoipa::openapi::Object {
    crate::http::schema::one_of(STATUSES)
}

/// Timetables matching `filter`, a page at a time.
pub async fn list_timetables(pool: &Pool, filter: TimetableFilter, query: ListQuery) -> Result<Page<Timetable>> {
    if let Some(s) = &filter.status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(Error::Validation(vec![FieldError::new("status", "must be draft, published or archived")]));
    }
    let client = pool.get().await?;
    let mut f = Filter::new();
    f.and("semester_id = $?", filter.semester_id)
        .and("department_id = $?", filter.department_id)
        .and("program_id = $?", filter.program_id)
        .and("status = $?", filter.status);
    listing::page(&client, COLUMNS, "timetables", &f, &query, SORTABLE, from_row).await
}
