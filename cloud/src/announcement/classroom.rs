//! What a classroom node shows: the live announcements for everyone (or a role), for its room,
//! or for the courses timetabled there, as the downlink's `announcements` snapshot. A node
//! checks only what it can check offline (course, role, expiry), so announcements narrowed by
//! department, program, semester or group are for the cloud's readers, not the room display.

use nimbus_core::snapshot::Announcement;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::targets::Targets;
use crate::error::Result;

/// The announcements for a room known as any of `room_keys` (its number and id) where
/// `course_ids` are taught, urgent first then newest.
pub async fn for_room(
    db: &impl GenericClient,
    room_keys: &[String],
    course_ids: &[String],
) -> Result<Vec<Announcement>> {
    let rows = db
        .query(
            "SELECT a.id, a.title, a.content, a.priority, a.published_at, a.expires_at,
                    array_agg(t.target_type) AS kinds, array_agg(t.target_id) AS ids
             FROM announcements a JOIN announcement_targets t ON t.announcement_id = a.id
             WHERE a.status = 'published' AND (a.expires_at IS NULL OR a.expires_at > now()) AND a.has_filter
               AND EXISTS (SELECT 1 FROM announcement_targets c WHERE c.announcement_id = a.id
                           AND ((c.target_type = 'room' AND c.target_id = ANY($1))
                             OR (c.target_type = 'course' AND c.target_id = ANY($2))
                             OR c.target_type IN ('everyone', 'role')))
             GROUP BY a.id",
            &[&room_keys, &course_ids],
        )
        .await?;
    let mut items = Vec::new();
    for r in rows {
        let kinds: Vec<String> = r.get("kinds");
        let ids: Vec<String> = r.get("ids");
        let t = Targets::from_rows(kinds.iter().map(String::as_str).zip(ids.iter().map(String::as_str)));
        let Some(course_ids) = shown_here(&t, room_keys, course_ids) else { continue };
        items.push(Announcement {
            announcement_id: r.get::<_, Uuid>("id").to_string(),
            title: r.get("title"),
            body: r.get("content"),
            published_at: r.get::<_, Option<chrono::DateTime<chrono::Utc>>>("published_at").unwrap_or_default(),
            course_ids,
            user_ids: Vec::new(),
            roles: t.roles.clone(),
            priority: r.get("priority"),
            expires_at: r.get("expires_at"),
        });
    }
    Announcement::sort(&mut items);
    Ok(items)
}

/// Whether `t` is shown in the room, and then to the students of which of its courses (empty:
/// everyone the roles allow).
fn shown_here(t: &Targets, room_keys: &[String], course_ids: &[String]) -> Option<Vec<String>> {
    let offline_checkable =
        t.department_ids.is_empty() && t.program_ids.is_empty() && t.semesters.is_empty() && t.group_ids.is_empty();
    let room_ok = t.room_ids.is_empty() || t.room_ids.iter().any(|r| room_keys.contains(r));
    let courses: Vec<String> = t.course_ids.iter().filter(|c| course_ids.contains(c)).cloned().collect();
    let course_ok = t.course_ids.is_empty() || !courses.is_empty();
    (offline_checkable && room_ok && course_ok).then_some(courses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<String> {
        vec!["B-101".into(), "3f1c".into()]
    }

    #[test]
    fn the_room_shows_what_targets_everyone_the_room_or_its_courses_only() {
        let here = vec!["c1".to_string(), "c2".to_string()];
        let everyone = Targets { everyone: true, ..Targets::default() };
        assert_eq!(shown_here(&everyone, &keys(), &here), Some(vec![]));
        let room = Targets { room_ids: vec!["B-101".into()], ..Targets::default() };
        assert_eq!(shown_here(&room, &keys(), &here), Some(vec![]));
        let other_room = Targets { room_ids: vec!["C-7".into()], ..Targets::default() };
        assert_eq!(shown_here(&other_room, &keys(), &here), None);
        let course = Targets { course_ids: vec!["c2".into(), "c9".into()], ..Targets::default() };
        assert_eq!(shown_here(&course, &keys(), &here), Some(vec!["c2".to_string()]));
        let elsewhere = Targets { course_ids: vec!["c9".into()], ..Targets::default() };
        assert_eq!(shown_here(&elsewhere, &keys(), &here), None);
        let department = Targets { everyone: true, department_ids: vec!["d".into()], ..Targets::default() };
        assert_eq!(shown_here(&department, &keys(), &here), None, "a node cannot check departments");
    }
}
