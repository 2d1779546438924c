//! Named weekly time slots (`day_of_week` 1 = Monday … 7 = Sunday, ISO), which entries may refer
//! to instead of spelling out their day and times.

use chrono::NaiveTime;
use deadpool_postgres::Pool;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::listing::{self, Filter, ListQuery, Page};

/// A weekly time slot.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TimeSlot {
    pub id: Uuid,
    pub day_of_week: i16,
    pub start_time: NaiveTime,
    pub end_time: NaiveTime,
    pub label: String,
}

/// A new time slot.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTimeSlot {
    /// 1 (Monday) to 7 (Sunday).
    #[schema(minimum = 1, maximum = 7)]
    pub day_of_week: i16,
    #[serde(deserialize_with = "crate::http::schema::strict_time")]
    #[schema(schema_with = crate::http::schema::time_of_day)]
    pub start_time: NaiveTime,
    /// After `start_time` (else 422).
    #[serde(deserialize_with = "crate::http::schema::strict_time")]
    #[schema(schema_with = crate::http::schema::time_of_day)]
    pub end_time: NaiveTime,
    #[serde(default)]
    #[schema(max_length = 100)]
    pub label: String,
}

/// Filters of [`list_time_slots`].
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimeSlotFilter {
    #[param(minimum = 1, maximum = 7)]
    pub day_of_week: Option<i16>,
}

/// A `day_of_week` filter is 1 to 7, like the field it filters.
pub(crate) fn check_day_filter(day: Option<i16>) -> Result<()> {
    match day {
        Some(d) if !(1..=7).contains(&d) => Err(crate::error::Error::Validation(vec![FieldError::new(
            "day_of_week",
            "must be 1 (Monday) to 7 (Sunday)",
        )])),
        _ => Ok(()),
    }
}

/// Checks a day (into `errors`) and a time range (a rule between fields, into `rules`), naming
/// `prefix`ed fields.
pub(crate) fn check_time(
    errors: &mut Vec<FieldError>,
    rules: &mut Vec<FieldError>,
    prefix: &str,
    day: i16,
    start: NaiveTime,
    end: NaiveTime,
) {
    if !(1..=7).contains(&day) {
        errors.push(FieldError::new(format!("{prefix}day_of_week"), "must be 1 (Monday) to 7 (Sunday)"));
    }
    if start >= end {
        rules.push(FieldError::new(format!("{prefix}end_time"), "must be after start_time"));
    }
}

impl NewTimeSlot {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let (mut e, mut rules) = (Vec::new(), Vec::new());
        check_time(&mut e, &mut rules, "", self.day_of_week, self.start_time, self.end_time);
        if self.label.chars().count() > 100 {
            e.push(FieldError::new("label", "must be at most 100 characters"));
        }
        listing::finish(e)?;
        listing::finish_rules(rules)
    }
}

const COLUMNS: &str = "id, day_of_week, start_time, end_time, label";
const SORTABLE: &[(&str, &str)] = &[("day_of_week", "day_of_week, start_time"), ("start_time", "start_time")];

impl crate::listing::Sorted for TimeSlotFilter {
    const SORT: &'static [(&'static str, &'static str)] = SORTABLE;
}

fn from_row(r: &Row) -> TimeSlot {
    TimeSlot {
        id: r.get("id"),
        day_of_week: r.get("day_of_week"),
        start_time: r.get("start_time"),
        end_time: r.get("end_time"),
        label: r.get("label"),
    }
}

/// Creates a time slot; the same day and times twice is a conflict.
pub async fn create_time_slot(pool: &Pool, _actor: &Actor, input: NewTimeSlot) -> Result<TimeSlot> {
    input.validate()?;
    let client = pool.get().await?;
    let row = client
        .query_one(
            &format!("INSERT INTO time_slots (day_of_week, start_time, end_time, label) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"),
            &[&input.day_of_week, &input.start_time, &input.end_time, &input.label],
        )
        .await
        .map_err(|e| {
            if listing::unique_violation(&e).is_some() {
                Error::Conflict {
                    message: "this time slot already exists".into(),
                    details: serde_json::json!({ "day_of_week": input.day_of_week, "start_time": input.start_time, "end_time": input.end_time }),
                }
            } else {
                e.into()
            }
        })?;
    Ok(from_row(&row))
}

/// One time slot by id.
pub async fn get_time_slot(pool: &Pool, id: Uuid) -> Result<TimeSlot> {
    let client = pool.get().await?;
    client
        .query_opt(&format!("SELECT {COLUMNS} FROM time_slots WHERE id = $1"), &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "time slot", id: id.to_string() })
}

/// Deletes a time slot no entry refers to.
pub async fn delete_time_slot(pool: &Pool, _actor: &Actor, id: Uuid) -> Result<()> {
    let client = pool.get().await?;
    match client.execute("DELETE FROM time_slots WHERE id = $1", &[&id]).await {
        Ok(0) => Err(Error::NotFound { what: "time slot", id: id.to_string() }),
        Ok(_) => Ok(()),
        Err(e) if listing::foreign_key_violation(&e) => Err(Error::Conflict {
            message: "the time slot is used by timetable entries".into(),
            details: serde_json::json!({ "time_slot_id": id }),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Time slots, a page at a time.
pub async fn list_time_slots(pool: &Pool, filter: TimeSlotFilter, query: ListQuery) -> Result<Page<TimeSlot>> {
    check_day_filter(filter.day_of_week)?;
    let client = pool.get().await?;
    let mut f = Filter::new();
    f.and("day_of_week = $?", filter.day_of_week);
    listing::page(&client, COLUMNS, "time_slots", &f, &query, SORTABLE, from_row).await
}

/// A slot by id inside a transaction.
pub(crate) async fn find(tx: &tokio_postgres::Transaction<'_>, id: Uuid) -> Result<Option<TimeSlot>> {
    Ok(tx.query_opt(&format!("SELECT {COLUMNS} FROM time_slots WHERE id = $1"), &[&id]).await?.map(|r| from_row(&r)))
}
