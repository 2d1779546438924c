//! Schedule change requests: someone (typically the faculty member) asks to move one entry;
//! an administrator approves it (the change is applied with the full conflict check, and
//! announced as `ENTRY_MODIFIED`) or rejects it. A request whose change conflicts stays pending,
//! with the conflict recorded, so it can be rejected or retried after the clash is resolved.

use chrono::{NaiveDate, NaiveTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::Row;
use uuid::Uuid;

use super::entries::{self, Booking, Entry, EntryUpdate};
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::listing::{self, Filter, ListQuery, Page, require_text};

/// A change request.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChangeRequest {
    pub id: Uuid,
    pub entry_id: Uuid,
    pub requested_by: String,
    pub reason: String,
    pub new_room_id: Option<Uuid>,
    pub new_faculty_id: Option<String>,
    pub new_day_of_week: Option<i16>,
    pub new_start_time: Option<NaiveTime>,
    pub new_end_time: Option<NaiveTime>,
    pub new_effective_from: Option<NaiveDate>,
    pub new_effective_until: Option<NaiveDate>,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<chrono::DateTime<Utc>>,
    pub review_note: Option<String>,
    pub created_at: chrono::DateTime<Utc>,
}

/// A new change request; at least one `new_*` field.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChangeRequest {
    pub entry_id: Uuid,
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    pub reason: String,
    /// At least one `new_*` field (else 422).
    pub new_room_id: Option<Uuid>,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub new_faculty_id: Option<String>,
    #[schema(minimum = 1, maximum = 7)]
    pub new_day_of_week: Option<i16>,
    #[serde(default, deserialize_with = "crate::http::schema::strict_time_opt")]
    #[schema(schema_with = crate::http::schema::maybe_time_of_day)]
    pub new_start_time: Option<NaiveTime>,
    #[serde(default, deserialize_with = "crate::http::schema::strict_time_opt")]
    #[schema(schema_with = crate::http::schema::maybe_time_of_day)]
    pub new_end_time: Option<NaiveTime>,
    pub new_effective_from: Option<NaiveDate>,
    pub new_effective_until: Option<NaiveDate>,
}

/// A reviewer's decision note.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    pub note: Option<String>,
}

/// Filters of [`list_change_requests`].
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangeRequestFilter {
    pub entry_id: Option<Uuid>,
    pub status: Option<String>,
    pub requested_by: Option<String>,
}

impl NewChangeRequest {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        require_text(&mut e, "reason", &self.reason, 2000);
        if let Some(f) = &self.new_faculty_id {
            require_text(&mut e, "new_faculty_id", f, 100);
        }
        if self.new_day_of_week.is_some_and(|d| !(1..=7).contains(&d)) {
            e.push(FieldError::new("new_day_of_week", "must be 1 (Monday) to 7 (Sunday)"));
        }
        listing::finish(e)?;
        let mut rules = Vec::new();
        if let (Some(s), Some(t)) = (self.new_start_time, self.new_end_time)
            && s >= t
        {
            rules.push(FieldError::new("new_end_time", "must be after new_start_time"));
        }
        if self.update().moves_nothing() {
            rules.push(FieldError::new("new_room_id", "at least one new_* field is required"));
        }
        listing::finish_rules(rules)
    }

    fn update(&self) -> EntryUpdate {
        EntryUpdate {
            room_id: self.new_room_id,
            faculty_id: self.new_faculty_id.clone(),
            day_of_week: self.new_day_of_week,
            start_time: self.new_start_time,
            end_time: self.new_end_time,
            effective_from: self.new_effective_from,
            effective_until: self.new_effective_until,
            ..EntryUpdate::default()
        }
    }
}

impl EntryUpdate {
    fn moves_nothing(&self) -> bool {
        self.room_id.is_none()
            && self.faculty_id.is_none()
            && self.day_of_week.is_none()
            && self.start_time.is_none()
            && self.end_time.is_none()
            && self.effective_from.is_none()
            && self.effective_until.is_none()
    }
}

const COLUMNS: &str = "id, entry_id, requested_by, reason, new_room_id, new_faculty_id, new_day_of_week, \
    new_start_time, new_end_time, new_effective_from, new_effective_until, status, reviewed_by, reviewed_at, \
    review_note, created_at";
const SORTABLE: &[(&str, &str)] = &[("created_at", "created_at"), ("status", "status")];

impl crate::listing::Sorted for ChangeRequestFilter {
    const SORT: &'static [(&'static str, &'static str)] = SORTABLE;
}

fn from_row(r: &Row) -> ChangeRequest {
    ChangeRequest {
        id: r.get("id"),
        entry_id: r.get("entry_id"),
        requested_by: r.get("requested_by"),
        reason: r.get("reason"),
        new_room_id: r.get("new_room_id"),
        new_faculty_id: r.get("new_faculty_id"),
        new_day_of_week: r.get("new_day_of_week"),
        new_start_time: r.get("new_start_time"),
        new_end_time: r.get("new_end_time"),
        new_effective_from: r.get("new_effective_from"),
        new_effective_until: r.get("new_effective_until"),
        status: r.get("status"),
        reviewed_by: r.get("reviewed_by"),
        reviewed_at: r.get("reviewed_at"),
        review_note: r.get("review_note"),
        created_at: r.get("created_at"),
    }
}

/// Files a change request for an active entry.
pub async fn create_change_request(pool: &Pool, actor: &Actor, input: NewChangeRequest) -> Result<ChangeRequest> {
    input.validate()?;
    let client = pool.get().await?;
    let active: Option<bool> = client
        .query_opt("SELECT is_active FROM timetable_entries WHERE id = $1", &[&input.entry_id])
        .await?
        .map(|r| r.get(0));
    if active != Some(true) {
        return Err(Error::Unprocessable(vec![FieldError::new("entry_id", "no such active entry")]));
    }
    let row = client
        .query_one(
            &format!(
                "INSERT INTO schedule_change_requests (entry_id, requested_by, reason, new_room_id, new_faculty_id, \
                   new_day_of_week, new_start_time, new_end_time, new_effective_from, new_effective_until) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
            ),
            &[
                &input.entry_id,
                &actor.id(),
                &input.reason.trim(),
                &input.new_room_id,
                &input.new_faculty_id.as_deref().map(str::trim),
                &input.new_day_of_week,
                &input.new_start_time,
                &input.new_end_time,
                &input.new_effective_from,
                &input.new_effective_until,
            ],
        )
        .await
        .map_err(|e| {
            if listing::foreign_key_violation(&e) {
                Error::Unprocessable(vec![FieldError::new("new_room_id", "no such room")])
            } else {
                e.into()
            }
        })?;
    Ok(from_row(&row))
}

async fn lock_pending(tx: &tokio_postgres::Transaction<'_>, id: Uuid) -> Result<ChangeRequest> {
    let req = tx
        .query_opt(&format!("SELECT {COLUMNS} FROM schedule_change_requests WHERE id = $1 FOR UPDATE"), &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "schedule change request", id: id.to_string() })?;
    if req.status != "pending" {
        return Err(Error::Conflict {
            message: format!("the request is already {}", req.status),
            details: serde_json::json!({ "request_id": id, "status": req.status }),
        });
    }
    Ok(req)
}

async fn decide(
    tx: &tokio_postgres::Transaction<'_>,
    actor: &Actor,
    id: Uuid,
    status: &str,
    note: Option<String>,
) -> Result<ChangeRequest> {
    let row = tx
        .query_one(
            &format!(
                "UPDATE schedule_change_requests SET status = $2, reviewed_by = $3, reviewed_at = now(), review_note = $4 \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &status, &actor.id(), &note],
        )
        .await?;
    Ok(from_row(&row))
}

/// Approves a pending request: applies its change to the entry (conflict-checked, announced as
/// `ENTRY_MODIFIED`). A conflicting change leaves the request pending and answers
/// [`Error::Conflict`] (the conflict is recorded).
pub async fn approve_change_request(
    pool: &Pool,
    actor: &Actor,
    id: Uuid,
    review: Review,
) -> Result<(ChangeRequest, Entry)> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let req = lock_pending(&tx, id).await?;
    let update = EntryUpdate {
        room_id: req.new_room_id,
        faculty_id: req.new_faculty_id.clone(),
        day_of_week: req.new_day_of_week,
        start_time: req.new_start_time,
        end_time: req.new_end_time,
        effective_from: req.new_effective_from,
        effective_until: req.new_effective_until,
        ..EntryUpdate::default()
    };
    match entries::modify_in(&tx, actor, req.entry_id, &update).await? {
        Booking::Done(entry) => {
            let req = decide(&tx, actor, id, "approved", review.note).await?;
            tx.commit().await?;
            Ok((req, entry))
        }
        Booking::Rejected(err) => {
            tx.commit().await?;
            Err(err)
        }
    }
}

/// Rejects a pending request.
pub async fn reject_change_request(pool: &Pool, actor: &Actor, id: Uuid, review: Review) -> Result<ChangeRequest> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    lock_pending(&tx, id).await?;
    let req = decide(&tx, actor, id, "rejected", review.note).await?;
    tx.commit().await?;
    Ok(req)
}

/// Change requests, a page at a time.
pub async fn list_change_requests(
    pool: &Pool,
    filter: ChangeRequestFilter,
    query: ListQuery,
) -> Result<Page<ChangeRequest>> {
    let client = pool.get().await?;
    let mut f = Filter::new();
    f.and("entry_id = $?", filter.entry_id)
        .and("status = $?", filter.status)
        .and("requested_by = $?", filter.requested_by);
    listing::page(&client, COLUMNS, "schedule_change_requests", &f, &query, SORTABLE, from_row).await
}
