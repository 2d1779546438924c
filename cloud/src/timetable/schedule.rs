//! A room's schedule as classroom nodes cache it (the downlink's timetable snapshot).

use deadpool_postgres::GenericClient;
use nimbus_core::snapshot::TimetableEntry;

use crate::error::Result;

/// The active entries of **published** timetables in the room whose `room_number` or id is
/// `room`, ordered by day and time. Each entry's `room_id` is `room` exactly as given, since the
/// node matches entries against the room name it was configured with.
pub async fn room_schedule(client: &impl GenericClient, room: &str) -> Result<Vec<TimetableEntry>> {
    let rows = client
        .query(
            "SELECT e.id, e.course_id, e.course_name, e.faculty_id, e.day_of_week, e.start_time, e.end_time, \
                    COALESCE(e.effective_from, t.effective_from) AS effective_from, \
                    COALESCE(e.effective_until, t.effective_until) AS effective_until \
             FROM timetable_entries e \
             JOIN timetables t ON t.id = e.timetable_id \
             JOIN rooms r ON r.id = e.room_id \
             WHERE (r.room_number = $1 OR r.id::text = $1) AND t.status = 'published' AND e.is_active \
             ORDER BY e.day_of_week, e.start_time, e.id",
            &[&room],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TimetableEntry {
            entry_id: r.get::<_, uuid::Uuid>("id").to_string(),
            course_id: r.get("course_id"),
            course_name: r.get("course_name"),
            faculty_id: r.get("faculty_id"),
            room_id: room.to_owned(),
            day_of_week: u8::try_from(r.get::<_, i16>("day_of_week")).unwrap_or(1),
            start_time: r.get("start_time"),
            end_time: r.get("end_time"),
            effective_from: r.get("effective_from"),
            effective_until: r.get("effective_until"),
        })
        .collect())
}

/// The rooms (number and id) where each of `course_ids` is timetabled in a published timetable
/// (every course's when `None`), as `(course id, room number, room id)`.
pub async fn course_rooms(
    client: &impl GenericClient,
    course_ids: Option<&[String]>,
) -> Result<Vec<(String, String, String)>> {
    let rows = client
        .query(
            "SELECT DISTINCT e.course_id, r.room_number, r.id::text FROM timetable_entries e \
             JOIN timetables t ON t.id = e.timetable_id JOIN rooms r ON r.id = e.room_id \
             WHERE t.status = 'published' AND e.is_active AND ($1::text[] IS NULL OR e.course_id = ANY($1))",
            &[&course_ids],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// The names a room goes by (its number and its id) for `room` given as either; just `room`
/// when the timetable service does not know it.
pub async fn room_keys(client: &impl GenericClient, room: &str) -> Result<Vec<String>> {
    let row = client
        .query_opt("SELECT room_number, id::text FROM rooms WHERE room_number = $1 OR id::text = $1 LIMIT 1", &[&room])
        .await?;
    Ok(match row {
        Some(r) => vec![r.get(0), r.get(1)],
        None => vec![room.to_owned()],
    })
}
