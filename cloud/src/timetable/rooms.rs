//! Rooms classes are booked into. `room_number` is unique; a room is deactivated rather than
//! deleted once entries refer to it.

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::listing::{self, Filter, ListQuery, Page, require_text};

/// The kinds of room.
pub const ROOM_TYPES: &[&str] = &["lecture", "lab", "seminar", "auditorium", "other"];

/// A room.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Room {
    pub id: Uuid,
    pub room_number: String,
    pub building: String,
    pub capacity: i32,
    pub room_type: String,
    pub is_active: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A new room.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "room_number": "B-204", "building": "Block B", "capacity": 60, "room_type": "lecture" }))]
pub struct NewRoom {
    /// Unique across the campus.
    #[schema(min_length = 1, max_length = 50, pattern = r"\S")]
    pub room_number: String,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub building: String,
    #[schema(minimum = 1, maximum = 100000)]
    pub capacity: i32,
    /// One of [`ROOM_TYPES`].
    #[schema(schema_with = room_types)]
    pub room_type: String,
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub is_active: bool,
}

fn room_types() -> utoipa::openapi::Object {
    crate::http::schema::one_of(ROOM_TYPES)
}

fn maybe_room_types() -> utoipa::openapi::Object {
    crate::http::schema::maybe_one_of(ROOM_TYPES)
}

fn yes() -> bool {
    true
}

/// Changes to a room; absent (or null) fields stay.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomUpdate {
    #[schema(min_length = 1, max_length = 50, pattern = r"\S")]
    pub room_number: Option<String>,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub building: Option<String>,
    #[schema(minimum = 1, maximum = 100000)]
    pub capacity: Option<i32>,
    #[schema(schema_with = maybe_room_types)]
    pub room_type: Option<String>,
    pub is_active: Option<bool>,
}

/// Filters of [`list_rooms`].
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RoomFilter {
    pub building: Option<String>,
    pub room_type: Option<String>,
    pub is_active: Option<bool>,
    pub min_capacity: Option<i32>,
}

fn check_type(errors: &mut Vec<FieldError>, t: &str) {
    if !ROOM_TYPES.contains(&t) {
        errors.push(FieldError::new("room_type", format!("must be one of {}", ROOM_TYPES.join(", "))));
    }
}

fn check_capacity(errors: &mut Vec<FieldError>, c: i32) {
    if !(1..=100_000).contains(&c) {
        errors.push(FieldError::new("capacity", "must be between 1 and 100000"));
    }
}

impl NewRoom {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        require_text(&mut e, "room_number", &self.room_number, 50);
        require_text(&mut e, "building", &self.building, 200);
        check_capacity(&mut e, self.capacity);
        check_type(&mut e, &self.room_type);
        listing::finish(e)
    }
}

impl RoomUpdate {
    /// Field-by-field validation of the fields present.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        if let Some(v) = &self.room_number {
            require_text(&mut e, "room_number", v, 50);
        }
        if let Some(v) = &self.building {
            require_text(&mut e, "building", v, 200);
        }
        if let Some(v) = self.capacity {
            check_capacity(&mut e, v);
        }
        if let Some(v) = &self.room_type {
            check_type(&mut e, v);
        }
        listing::finish(e)
    }
}

const COLUMNS: &str = "id, room_number, building, capacity, room_type, is_active, created_at, updated_at";
const SORTABLE: &[(&str, &str)] = &[
    ("room_number", "room_number"),
    ("building", "building"),
    ("capacity", "capacity"),
    ("room_type", "room_type"),
    ("created_at", "created_at"),
];

impl listing::Sorted for RoomFilter {
    const SORT: &'static [(&'static str, &'static str)] = SORTABLE;
}

fn from_row(r: &Row) -> Room {
    Room {
        id: r.get("id"),
        room_number: r.get("room_number"),
        building: r.get("building"),
        capacity: r.get("capacity"),
        room_type: r.get("room_type"),
        is_active: r.get("is_active"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

fn duplicate(number: &str) -> Error {
    Error::Conflict {
        message: format!("room number {number} already exists"),
        details: serde_json::json!({ "field": "room_number", "room_number": number }),
    }
}

/// Creates a room.
pub async fn create_room(pool: &Pool, _actor: &Actor, input: NewRoom) -> Result<Room> {
    input.validate()?;
    let client = pool.get().await?;
    let number = input.room_number.trim().to_owned();
    let row = client
        .query_one(
            &format!(
                "INSERT INTO rooms (room_number, building, capacity, room_type, is_active) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            &[&number, &input.building.trim(), &input.capacity, &input.room_type, &input.is_active],
        )
        .await
        .map_err(|e| if listing::unique_violation(&e).is_some() { duplicate(&number) } else { e.into() })?;
    Ok(from_row(&row))
}

/// One room by id.
pub async fn get_room(pool: &Pool, id: Uuid) -> Result<Room> {
    let client = pool.get().await?;
    client
        .query_opt(&format!("SELECT {COLUMNS} FROM rooms WHERE id = $1"), &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "room", id: id.to_string() })
}

/// Updates a room's fields.
pub async fn update_room(pool: &Pool, _actor: &Actor, id: Uuid, input: RoomUpdate) -> Result<Room> {
    input.validate()?;
    let client = pool.get().await?;
    let number = input.room_number.as_deref().map(|s| s.trim().to_owned());
    let row = client
        .query_opt(
            &format!(
                "UPDATE rooms SET room_number = COALESCE($2, room_number), building = COALESCE($3, building), \
                   capacity = COALESCE($4, capacity), room_type = COALESCE($5, room_type), \
                   is_active = COALESCE($6, is_active), updated_at = now() \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &number,
                &input.building.as_deref().map(str::trim),
                &input.capacity,
                &input.room_type,
                &input.is_active,
            ],
        )
        .await
        .map_err(|e| {
            if listing::unique_violation(&e).is_some() {
                duplicate(number.as_deref().unwrap_or_default())
            } else {
                e.into()
            }
        })?;
    row.map(|r| from_row(&r)).ok_or_else(|| Error::NotFound { what: "room", id: id.to_string() })
}

/// Deletes a room that no entry refers to; a room in use must be deactivated instead.
pub async fn delete_room(pool: &Pool, _actor: &Actor, id: Uuid) -> Result<()> {
    let client = pool.get().await?;
    match client.execute("DELETE FROM rooms WHERE id = $1", &[&id]).await {
        Ok(0) => Err(Error::NotFound { what: "room", id: id.to_string() }),
        Ok(_) => Ok(()),
        Err(e) if listing::foreign_key_violation(&e) => Err(Error::Conflict {
            message: "the room is used by timetable entries; deactivate it instead".into(),
            details: serde_json::json!({ "room_id": id }),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Rooms matching `filter`, a page at a time.
pub async fn list_rooms(pool: &Pool, filter: RoomFilter, query: ListQuery) -> Result<Page<Room>> {
    let client = pool.get().await?;
    let mut f = Filter::new();
    f.and("building = $?", filter.building)
        .and("room_type = $?", filter.room_type)
        .and("is_active = $?", filter.is_active)
        .and("capacity >= $?", filter.min_capacity);
    listing::page(&client, COLUMNS, "rooms", &f, &query, SORTABLE, from_row).await
}

/// Looks a room up by id inside a command's or handler's transaction.
pub(crate) async fn find(client: &tokio_postgres::Transaction<'_>, id: Uuid) -> Result<Option<Room>> {
    Ok(client.query_opt(&format!("SELECT {COLUMNS} FROM rooms WHERE id = $1"), &[&id]).await?.map(|r| from_row(&r)))
}
