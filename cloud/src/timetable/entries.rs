//! Timetable entries: weekly class slots (course, faculty member, room, day and times, optional
//! effective dates). Every booking is checked for double bookings first ([`super::conflicts`]);
//! deleting an entry deactivates it, so its history and the conflicts naming it stay.

use chrono::{NaiveDate, NaiveTime, Utc};
use deadpool_postgres::Pool;
use nimbus_core::event::TimetableEvent;
use nimbus_core::event::timetable::TimetableEntryPayload;
use serde_json::json;
use tokio_postgres::{Row, Transaction};
use uuid::Uuid;

use super::conflicts::{self, Placement};
use super::{rooms, slots, timetables};
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::listing::{self, Filter, ListQuery, Page, require_text};

/// A timetable entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entry {
    pub id: Uuid,
    pub timetable_id: Uuid,
    pub course_id: String,
    pub course_name: String,
    pub faculty_id: String,
    pub room_id: Uuid,
    pub time_slot_id: Option<Uuid>,
    pub day_of_week: i16,
    pub start_time: NaiveTime,
    pub end_time: NaiveTime,
    pub effective_from: Option<NaiveDate>,
    pub effective_until: Option<NaiveDate>,
    pub is_active: bool,
    pub created_by: String,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
}

/// A new entry: either `time_slot_id`, or `day_of_week` + `start_time` + `end_time`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    pub timetable_id: Uuid,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub course_id: String,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub course_name: String,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub faculty_id: String,
    pub room_id: Uuid,
    /// Either a time slot or `day_of_week`, `start_time` and `end_time` (else 422).
    pub time_slot_id: Option<Uuid>,
    #[schema(minimum = 1, maximum = 7)]
    pub day_of_week: Option<i16>,
    #[serde(default, deserialize_with = "crate::http::schema::strict_time_opt")]
    #[schema(schema_with = crate::http::schema::maybe_time_of_day)]
    pub start_time: Option<NaiveTime>,
    #[serde(default, deserialize_with = "crate::http::schema::strict_time_opt")]
    #[schema(schema_with = crate::http::schema::maybe_time_of_day)]
    pub end_time: Option<NaiveTime>,
    pub effective_from: Option<NaiveDate>,
    pub effective_until: Option<NaiveDate>,
}

/// Changes to an entry; absent fields stay. A `time_slot_id` or any of day/start/end moves it.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryUpdate {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub course_name: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub faculty_id: Option<String>,
    pub room_id: Option<Uuid>,
    pub time_slot_id: Option<Uuid>,
    #[schema(minimum = 1, maximum = 7)]
    pub day_of_week: Option<i16>,
    #[serde(default, deserialize_with = "crate::http::schema::strict_time_opt")]
    #[schema(schema_with = crate::http::schema::maybe_time_of_day)]
    pub start_time: Option<NaiveTime>,
    #[serde(default, deserialize_with = "crate::http::schema::strict_time_opt")]
    #[schema(schema_with = crate::http::schema::maybe_time_of_day)]
    pub end_time: Option<NaiveTime>,
    pub effective_from: Option<NaiveDate>,
    pub effective_until: Option<NaiveDate>,
}

/// Filters of [`list_entries`].
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EntryFilter {
    pub timetable_id: Option<Uuid>,
    pub course_id: Option<String>,
    pub faculty_id: Option<String>,
    pub room_id: Option<Uuid>,
    #[param(minimum = 1, maximum = 7)]
    pub day_of_week: Option<i16>,
    pub is_active: Option<bool>,
}

fn check_dates(rules: &mut Vec<FieldError>, from: Option<NaiveDate>, until: Option<NaiveDate>) {
    if let (Some(f), Some(u)) = (from, until)
        && f > u
    {
        rules.push(FieldError::new("effective_until", "must not be before effective_from"));
    }
}

impl NewEntry {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let (mut e, mut r) = (Vec::new(), Vec::new());
        require_text(&mut e, "course_id", &self.course_id, 100);
        require_text(&mut e, "course_name", &self.course_name, 200);
        require_text(&mut e, "faculty_id", &self.faculty_id, 100);
        let explicit = self.day_of_week.is_some() || self.start_time.is_some() || self.end_time.is_some();
        match (self.time_slot_id, explicit) {
            (Some(_), true) => r.push(FieldError::new(
                "time_slot_id",
                "give either time_slot_id or day_of_week/start_time/end_time, not both",
            )),
            (None, _) => match (self.day_of_week, self.start_time, self.end_time) {
                (Some(d), Some(s), Some(t)) => slots::check_time(&mut e, &mut r, "", d, s, t),
                (d, s, t) => {
                    for (name, missing) in
                        [("day_of_week", d.is_none()), ("start_time", s.is_none()), ("end_time", t.is_none())]
                    {
                        if missing {
                            r.push(FieldError::new(name, "is required unless time_slot_id is given"));
                        }
                    }
                }
            },
            (Some(_), false) => {}
        }
        check_dates(&mut r, self.effective_from, self.effective_until);
        listing::finish(e)?;
        listing::finish_rules(r)
    }
}

impl EntryUpdate {
    /// Field-by-field validation of the fields present.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        if let Some(v) = &self.course_name {
            require_text(&mut e, "course_name", v, 200);
        }
        if let Some(v) = &self.faculty_id {
            require_text(&mut e, "faculty_id", v, 100);
        }
        let mut r = Vec::new();
        let explicit = self.day_of_week.is_some() || self.start_time.is_some() || self.end_time.is_some();
        if self.time_slot_id.is_some() && explicit {
            r.push(FieldError::new(
                "time_slot_id",
                "give either time_slot_id or day_of_week/start_time/end_time, not both",
            ));
        }
        if self.day_of_week.is_some_and(|d| !(1..=7).contains(&d)) {
            e.push(FieldError::new("day_of_week", "must be 1 (Monday) to 7 (Sunday)"));
        }
        check_dates(&mut r, self.effective_from, self.effective_until);
        listing::finish(e)?;
        listing::finish_rules(r)
    }

    /// Whether the update moves the entry in time, place or person (so needs a conflict check).
    fn moves(&self) -> bool {
        self.faculty_id.is_some()
            || self.room_id.is_some()
            || self.time_slot_id.is_some()
            || self.day_of_week.is_some()
            || self.start_time.is_some()
            || self.end_time.is_some()
            || self.effective_from.is_some()
            || self.effective_until.is_some()
    }
}

pub(crate) const COLUMNS: &str = "id, timetable_id, course_id, course_name, faculty_id, room_id, time_slot_id, \
    day_of_week, start_time, end_time, effective_from, effective_until, is_active, created_by, created_at, updated_at";
const SORTABLE: &[(&str, &str)] = &[
    ("day_of_week", "day_of_week, start_time"),
    ("start_time", "start_time"),
    ("course_id", "course_id"),
    ("created_at", "created_at"),
];

impl crate::listing::Sorted for EntryFilter {
    const SORT: &'static [(&'static str, &'static str)] = SORTABLE;
}

pub(crate) fn from_row(r: &Row) -> Entry {
    Entry {
        id: r.get("id"),
        timetable_id: r.get("timetable_id"),
        course_id: r.get("course_id"),
        course_name: r.get("course_name"),
        faculty_id: r.get("faculty_id"),
        room_id: r.get("room_id"),
        time_slot_id: r.get("time_slot_id"),
        day_of_week: r.get("day_of_week"),
        start_time: r.get("start_time"),
        end_time: r.get("end_time"),
        effective_from: r.get("effective_from"),
        effective_until: r.get("effective_until"),
        is_active: r.get("is_active"),
        created_by: r.get("created_by"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

/// The event payload of an entry.
pub(crate) fn payload(e: &Entry, changed_by: String) -> TimetableEntryPayload {
    TimetableEntryPayload {
        entry_id: e.id.to_string(),
        timetable_id: e.timetable_id.to_string(),
        course_id: e.course_id.clone(),
        faculty_id: e.faculty_id.clone(),
        room_id: e.room_id.to_string(),
        day_of_week: u8::try_from(e.day_of_week).unwrap_or(1),
        start_time: e.start_time,
        end_time: e.end_time,
        effective_from: e.effective_from,
        effective_until: e.effective_until,
        changed_by,
        changed_at: Utc::now(),
    }
}

/// The outcome of a booking inside a transaction the caller commits either way: a rejected
/// booking has its conflicts recorded, which must be kept.
pub(crate) enum Booking {
    /// Written.
    Done(Entry),
    /// Refused with this error (conflicts recorded in the transaction).
    Rejected(Error),
}

impl Booking {
    async fn finish(self, tx: deadpool_postgres::Transaction<'_>) -> Result<Entry> {
        tx.commit().await?;
        match self {
            Booking::Done(e) => Ok(e),
            Booking::Rejected(err) => Err(err),
        }
    }
}

async fn usable_room(tx: &Transaction<'_>, id: Uuid, field: &str) -> Result<()> {
    match rooms::find(tx, id).await? {
        None => Err(Error::Unprocessable(vec![FieldError::new(field, "no such room")])),
        Some(r) if !r.is_active => Err(Error::Unprocessable(vec![FieldError::new(field, "the room is inactive")])),
        Some(_) => Ok(()),
    }
}

async fn slot_times(tx: &Transaction<'_>, id: Uuid) -> Result<(i16, NaiveTime, NaiveTime)> {
    let s = slots::find(tx, id)
        .await?
        .ok_or_else(|| Error::Unprocessable(vec![FieldError::new("time_slot_id", "no such time slot")]))?;
    Ok((s.day_of_week, s.start_time, s.end_time))
}

fn writable(t: &timetables::Timetable) -> Result<()> {
    if t.status == "archived" {
        return Err(Error::Conflict {
            message: format!("timetable {} is archived", t.id),
            details: json!({ "timetable_id": t.id, "status": t.status }),
        });
    }
    Ok(())
}

/// Adds an entry unless it double-books its room or faculty member; announces `ENTRY_ADDED`, or
/// records the conflicts (with their events) and answers [`Error::Conflict`].
pub async fn add_entry(pool: &Pool, actor: &Actor, input: NewEntry) -> Result<Entry> {
    input.validate()?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let t = timetables::lock(&tx, input.timetable_id).await?;
    writable(&t)?;
    usable_room(&tx, input.room_id, "room_id").await?;
    let (day, start, end) = match input.time_slot_id {
        Some(id) => slot_times(&tx, id).await?,
        // validate() made sure all three are there.
        None => (
            input.day_of_week.unwrap_or_default(),
            input.start_time.unwrap_or_default(),
            input.end_time.unwrap_or_default(),
        ),
    };
    let faculty_id = input.faculty_id.trim().to_owned();
    let placement = Placement {
        room_id: input.room_id,
        faculty_id: faculty_id.clone(),
        day_of_week: day,
        start_time: start,
        end_time: end,
        from: input.effective_from.or(t.effective_from),
        until: input.effective_until.or(t.effective_until),
    };
    let id = Uuid::new_v4();
    conflicts::lock_resources(&tx, placement.room_id, &placement.faculty_id).await?;
    let clashes = conflicts::find(&tx, &placement, None).await?;
    let booking = if clashes.is_empty() {
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO timetable_entries (id, timetable_id, course_id, course_name, faculty_id, room_id, \
                       time_slot_id, day_of_week, start_time, end_time, effective_from, effective_until, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {COLUMNS}"
                ),
                &[
                    &id,
                    &t.id,
                    &input.course_id.trim(),
                    &input.course_name.trim(),
                    &faculty_id,
                    &input.room_id,
                    &input.time_slot_id,
                    &day,
                    &start,
                    &end,
                    &input.effective_from,
                    &input.effective_until,
                    &actor.id(),
                ],
            )
            .await?;
        let entry = from_row(&row);
        super::publish(&tx, actor, TimetableEvent::EntryAdded(payload(&entry, actor.id()))).await?;
        Booking::Done(entry)
    } else {
        let proposed = serde_json::to_value(&input).unwrap_or_default();
        Booking::Rejected(conflicts::record(&tx, actor, t.id, id, &placement, &clashes, proposed).await?)
    };
    booking.finish(tx).await
}

/// Applies `update` to entry `id` inside `tx`, with the conflict check when it moves.
pub(crate) async fn modify_in(tx: &Transaction<'_>, actor: &Actor, id: Uuid, update: &EntryUpdate) -> Result<Booking> {
    let current = tx
        .query_opt(&format!("SELECT {COLUMNS} FROM timetable_entries WHERE id = $1"), &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "timetable entry", id: id.to_string() })?;
    let t = timetables::lock(tx, current.timetable_id).await?;
    writable(&t)?;
    if !current.is_active {
        return Err(Error::Conflict { message: "the entry was deleted".into(), details: json!({ "entry_id": id }) });
    }
    if let Some(room) = update.room_id {
        usable_room(tx, room, "room_id").await?;
    }
    let (mut day, mut start, mut end, mut slot) =
        (current.day_of_week, current.start_time, current.end_time, current.time_slot_id);
    if let Some(s) = update.time_slot_id {
        (day, start, end) = slot_times(tx, s).await?;
        slot = Some(s);
    } else if update.day_of_week.is_some() || update.start_time.is_some() || update.end_time.is_some() {
        day = update.day_of_week.unwrap_or(day);
        start = update.start_time.unwrap_or(start);
        end = update.end_time.unwrap_or(end);
        slot = None;
    }
    let from = update.effective_from.or(current.effective_from);
    let until = update.effective_until.or(current.effective_until);
    let (mut e, mut r) = (Vec::new(), Vec::new());
    slots::check_time(&mut e, &mut r, "", day, start, end);
    check_dates(&mut r, from, until);
    listing::finish(e)?;
    listing::finish_rules(r)?;
    let placement = Placement {
        room_id: update.room_id.unwrap_or(current.room_id),
        faculty_id: update.faculty_id.as_deref().map(str::trim).unwrap_or(&current.faculty_id).to_owned(),
        day_of_week: day,
        start_time: start,
        end_time: end,
        from: from.or(t.effective_from),
        until: until.or(t.effective_until),
    };
    if update.moves() {
        conflicts::lock_resources(tx, placement.room_id, &placement.faculty_id).await?;
        let clashes = conflicts::find(tx, &placement, Some(id)).await?;
        if !clashes.is_empty() {
            let proposed = json!({ "entry_id": id, "changes": update });
            return Ok(Booking::Rejected(
                conflicts::record(tx, actor, t.id, id, &placement, &clashes, proposed).await?,
            ));
        }
    }
    let row = tx
        .query_one(
            &format!(
                "UPDATE timetable_entries SET course_name = COALESCE($2, course_name), faculty_id = $3, room_id = $4, \
                   time_slot_id = $5, day_of_week = $6, start_time = $7, end_time = $8, effective_from = $9, \
                   effective_until = $10, updated_at = now() \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &update.course_name.as_deref().map(str::trim),
                &placement.faculty_id,
                &placement.room_id,
                &slot,
                &day,
                &start,
                &end,
                &from,
                &until,
            ],
        )
        .await?;
    let entry = from_row(&row);
    super::publish(tx, actor, TimetableEvent::EntryModified(payload(&entry, actor.id()))).await?;
    Ok(Booking::Done(entry))
}

/// Changes an entry (with the conflict check when it moves) and announces `ENTRY_MODIFIED`.
pub async fn modify_entry(pool: &Pool, actor: &Actor, id: Uuid, update: EntryUpdate) -> Result<Entry> {
    update.validate()?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let booking = modify_in(&tx, actor, id, &update).await?;
    booking.finish(tx).await
}

/// Deactivates an entry (it frees its room and faculty member) and announces `ENTRY_DELETED`.
pub async fn delete_entry(pool: &Pool, actor: &Actor, id: Uuid) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            &format!(
                "UPDATE timetable_entries SET is_active = false, updated_at = now() \
                 WHERE id = $1 AND is_active RETURNING {COLUMNS}"
            ),
            &[&id],
        )
        .await?;
    let Some(row) = row else {
        return Err(Error::NotFound { what: "timetable entry", id: id.to_string() });
    };
    let entry = from_row(&row);
    super::publish(&tx, actor, TimetableEvent::EntryDeleted(payload(&entry, actor.id()))).await?;
    tx.commit().await?;
    Ok(())
}

/// One entry by id.
pub async fn get_entry(pool: &Pool, id: Uuid) -> Result<Entry> {
    let client = pool.get().await?;
    client
        .query_opt(&format!("SELECT {COLUMNS} FROM timetable_entries WHERE id = $1"), &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "timetable entry", id: id.to_string() })
}

/// Entries matching `filter`, a page at a time.
pub async fn list_entries(pool: &Pool, filter: EntryFilter, query: ListQuery) -> Result<Page<Entry>> {
    slots::check_day_filter(filter.day_of_week)?;
    let client = pool.get().await?;
    let mut f = Filter::new();
    f.and("timetable_id = $?", filter.timetable_id)
        .and("course_id = $?", filter.course_id)
        .and("faculty_id = $?", filter.faculty_id)
        .and("room_id = $?", filter.room_id)
        .and("day_of_week = $?", filter.day_of_week)
        .and("is_active = $?", filter.is_active);
    listing::page(&client, COLUMNS, "timetable_entries", &f, &query, SORTABLE, from_row).await
}
