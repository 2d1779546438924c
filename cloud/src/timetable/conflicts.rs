//! # Double-booking detection
//!
//! A booking (a new entry, a modified one, an approved change request) **conflicts** with an
//! existing entry when both are active, the existing one's timetable is not archived, they share
//! the **room** or the **faculty member**, fall on the same ISO weekday, their times overlap
//! (`start < other.end && other.start < end`; back-to-back classes do not overlap) and their
//! effective date ranges overlap (an entry without dates takes its timetable's; no dates at all
//! means always).
//!
//! ## Concurrency
//!
//! Two transactions that check and then insert could both find no conflict and both insert.
//! So before checking, a booking takes transaction-scoped advisory locks on its room and on its
//! faculty member (`pg_advisory_xact_lock` of a hash of `room:<id>` / `faculty:<id>`, always in
//! the same order so two bookings cannot deadlock). A second booking of the same room or person
//! waits until the first commits and then sees its entry. (An exclusion constraint cannot express
//! the rule: it depends on the timetable's status, another table.)
//!
//! ## A rejected booking
//!
//! The entry is not written; one `timetable_conflicts` row and one `ROOM_CONFLICT_DETECTED` /
//! `FACULTY_CONFLICT_DETECTED` event per clash are, and *committed* so the attempt is on record;
//! the command then returns [`Error::Conflict`] naming the clashing entries.

use chrono::{NaiveDate, NaiveTime, Utc};
use deadpool_postgres::Pool;
use nimbus_core::event::TimetableEvent;
use nimbus_core::event::timetable::ScheduleConflictPayload;
use serde_json::json;
use tokio_postgres::{Row, Transaction};
use uuid::Uuid;

use super::SERVICE;
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::listing::{self, Filter, ListQuery, Page};

/// Where and when a booking wants to be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Placement {
    pub room_id: Uuid,
    pub faculty_id: String,
    pub day_of_week: i16,
    pub start_time: NaiveTime,
    pub end_time: NaiveTime,
    /// The booking's effective range (its own dates, else its timetable's).
    pub from: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
}

/// What a booking clashed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// The same room at the same time.
    Room,
    /// The same faculty member at the same time.
    Faculty,
}

impl ConflictKind {
    fn as_str(self) -> &'static str {
        match self {
            ConflictKind::Room => "room",
            ConflictKind::Faculty => "faculty",
        }
    }
}

/// One existing entry a booking clashes with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Clash {
    pub kind: ConflictKind,
    pub entry_id: Uuid,
    pub timetable_id: Uuid,
    pub day_of_week: i16,
    pub start_time: NaiveTime,
    pub end_time: NaiveTime,
}

/// Serialises bookings of `room` and `faculty` until `tx` ends (see the module docs).
pub(crate) async fn lock_resources(tx: &Transaction<'_>, room: Uuid, faculty: &str) -> Result<()> {
    let mut keys = [format!("room:{room}"), format!("faculty:{faculty}")];
    keys.sort();
    for key in &keys {
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[key]).await?;
    }
    Ok(())
}

/// The active entries of non-archived timetables `p` clashes with, `exclude` (the entry being
/// modified) aside. Call [`lock_resources`] first.
pub(crate) async fn find(tx: &Transaction<'_>, p: &Placement, exclude: Option<Uuid>) -> Result<Vec<Clash>> {
    let rows = tx
        .query(
            "SELECT e.id, e.timetable_id, e.day_of_week, e.start_time, e.end_time, \
                    e.room_id = $1 AS room_clash, e.faculty_id = $2 AS faculty_clash \
             FROM timetable_entries e JOIN timetables t ON t.id = e.timetable_id \
             WHERE e.is_active AND t.status <> 'archived' \
               AND (e.room_id = $1 OR e.faculty_id = $2) \
               AND e.day_of_week = $3 AND e.start_time < $5 AND $4 < e.end_time \
               AND ($6::date IS NULL OR COALESCE(e.effective_until, t.effective_until) IS NULL \
                    OR COALESCE(e.effective_until, t.effective_until) >= $6) \
               AND ($7::date IS NULL OR COALESCE(e.effective_from, t.effective_from) IS NULL \
                    OR COALESCE(e.effective_from, t.effective_from) <= $7) \
               AND ($8::uuid IS NULL OR e.id <> $8) \
             ORDER BY e.start_time, e.id",
            &[&p.room_id, &p.faculty_id, &p.day_of_week, &p.start_time, &p.end_time, &p.from, &p.until, &exclude],
        )
        .await?;
    let mut clashes = Vec::new();
    for r in rows {
        let base = |kind| Clash {
            kind,
            entry_id: r.get("id"),
            timetable_id: r.get("timetable_id"),
            day_of_week: r.get("day_of_week"),
            start_time: r.get("start_time"),
            end_time: r.get("end_time"),
        };
        if r.get::<_, bool>("room_clash") {
            clashes.push(base(ConflictKind::Room));
        }
        if r.get::<_, bool>("faculty_clash") {
            clashes.push(base(ConflictKind::Faculty));
        }
    }
    Ok(clashes)
}

/// Records every clash of the booking `entry_id` (in `timetable_id`, as proposed in `proposed`)
/// with its event, and returns the error the command answers with. The caller commits `tx`.
pub(crate) async fn record(
    tx: &Transaction<'_>,
    actor: &Actor,
    timetable_id: Uuid,
    entry_id: Uuid,
    p: &Placement,
    clashes: &[Clash],
    proposed: serde_json::Value,
) -> Result<Error> {
    let mut listed = Vec::with_capacity(clashes.len());
    for c in clashes {
        let (room, faculty) = match c.kind {
            ConflictKind::Room => (Some(p.room_id), None),
            ConflictKind::Faculty => (None, Some(p.faculty_id.clone())),
        };
        let row = tx
            .query_one(
                "INSERT INTO timetable_conflicts (timetable_id, conflict_type, entry_id, conflicting_entry_id, \
                   room_id, faculty_id, day_of_week, start_time, end_time, proposed) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id, detected_at",
                &[
                    &timetable_id,
                    &c.kind.as_str(),
                    &entry_id,
                    &c.entry_id,
                    &room,
                    &faculty,
                    &p.day_of_week,
                    &p.start_time,
                    &p.end_time,
                    &proposed,
                ],
            )
            .await?;
        let conflict_id: Uuid = row.get(0);
        let payload = ScheduleConflictPayload {
            conflict_id: conflict_id.to_string(),
            timetable_id: timetable_id.to_string(),
            entry_id: entry_id.to_string(),
            conflicting_entry_id: c.entry_id.to_string(),
            room_id: room.map(|r| r.to_string()),
            faculty_id: faculty,
            day_of_week: u8::try_from(p.day_of_week).unwrap_or(1),
            start_time: p.start_time,
            end_time: p.end_time,
            detected_at: row.get(1),
        };
        let event = match c.kind {
            ConflictKind::Room => TimetableEvent::RoomConflictDetected(payload),
            ConflictKind::Faculty => TimetableEvent::FacultyConflictDetected(payload),
        };
        crate::outbox::publish(tx, SERVICE, actor, event).await?;
        listed.push(json!({
            "conflict_id": conflict_id,
            "kind": c.kind,
            "conflicting_entry_id": c.entry_id,
            "conflicting_timetable_id": c.timetable_id,
            "day_of_week": c.day_of_week,
            "start_time": c.start_time,
            "end_time": c.end_time,
        }));
    }
    let kinds: Vec<&str> = {
        let mut k: Vec<&str> = clashes.iter().map(|c| c.kind.as_str()).collect();
        k.dedup();
        k
    };
    Ok(Error::Conflict {
        message: format!(
            "{} double booking on day {} {}-{}",
            kinds.join(" and "),
            p.day_of_week,
            p.start_time.format("%H:%M"),
            p.end_time.format("%H:%M")
        ),
        details: json!({
            "entry_id": entry_id,
            "room_id": p.room_id,
            "faculty_id": p.faculty_id,
            "day_of_week": p.day_of_week,
            "start_time": p.start_time,
            "end_time": p.end_time,
            "conflicts": listed,
        }),
    })
}

/// A recorded conflict.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConflictRecord {
    pub id: Uuid,
    pub timetable_id: Uuid,
    pub conflict_type: String,
    pub entry_id: Uuid,
    pub conflicting_entry_id: Uuid,
    pub room_id: Option<Uuid>,
    pub faculty_id: Option<String>,
    pub day_of_week: i16,
    pub start_time: NaiveTime,
    pub end_time: NaiveTime,
    /// The rejected booking as it was proposed.
    pub proposed: serde_json::Value,
    pub resolved: bool,
    pub detected_at: chrono::DateTime<Utc>,
}

/// Filters of [`list_conflicts`].
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConflictFilter {
    pub timetable_id: Option<Uuid>,
    pub conflict_type: Option<String>,
    pub resolved: Option<bool>,
}

const COLUMNS: &str = "id, timetable_id, conflict_type, entry_id, conflicting_entry_id, room_id, faculty_id, \
    day_of_week, start_time, end_time, proposed, resolved, detected_at";
const SORTABLE: &[(&str, &str)] = &[("detected_at", "detected_at"), ("conflict_type", "conflict_type")];

impl crate::listing::Sorted for ConflictFilter {
    const SORT: &'static [(&'static str, &'static str)] = SORTABLE;
}

fn from_row(r: &Row) -> ConflictRecord {
    ConflictRecord {
        id: r.get("id"),
        timetable_id: r.get("timetable_id"),
        conflict_type: r.get("conflict_type"),
        entry_id: r.get("entry_id"),
        conflicting_entry_id: r.get("conflicting_entry_id"),
        room_id: r.get("room_id"),
        faculty_id: r.get("faculty_id"),
        day_of_week: r.get("day_of_week"),
        start_time: r.get("start_time"),
        end_time: r.get("end_time"),
        proposed: r.get("proposed"),
        resolved: r.get("resolved"),
        detected_at: r.get("detected_at"),
    }
}

/// Recorded conflicts, a page at a time.
pub async fn list_conflicts(pool: &Pool, filter: ConflictFilter, query: ListQuery) -> Result<Page<ConflictRecord>> {
    let client = pool.get().await?;
    let mut f = Filter::new();
    f.and("timetable_id = $?", filter.timetable_id)
        .and("conflict_type = $?", filter.conflict_type)
        .and("resolved = $?", filter.resolved);
    listing::page(&client, COLUMNS, "timetable_conflicts", &f, &query, SORTABLE, from_row).await
}

/// Marks a recorded conflict as dealt with.
pub async fn resolve_conflict(pool: &Pool, _actor: &Actor, id: Uuid) -> Result<ConflictRecord> {
    let client = pool.get().await?;
    client
        .query_opt(&format!("UPDATE timetable_conflicts SET resolved = true WHERE id = $1 RETURNING {COLUMNS}"), &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "conflict", id: id.to_string() })
}
