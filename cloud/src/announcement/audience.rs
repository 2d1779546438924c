//! A person's values for targeting, and whole audiences, from the services that own them: roles
//! from the user service, memberships from the course service, rooms from the timetable
//! service. Reads only.

use std::collections::{BTreeSet, HashMap};

use deadpool_postgres::Pool;
use tokio_postgres::GenericClient;

use super::targets::{Profile, Targets};
use crate::course::audience::{Membership, memberships};
use crate::error::Result;

/// Where the announcement service looks people up.
#[derive(Clone)]
pub struct Directory {
    /// `user_service_db`.
    pub users: Pool,
    /// `course_service_db`.
    pub courses: Pool,
    /// `timetable_service_db`.
    pub timetable: Pool,
}

impl Directory {
    /// The profile of one signed-in person holding `roles` (from their token).
    pub async fn profile(&self, user_id: &str, roles: &[String]) -> Result<Profile> {
        let ids = [user_id.to_owned()];
        let courses = self.courses.get().await?;
        let membership = memberships(&**courses, Some(&ids)).await?.pop();
        let mut profile = Profile { user_id: user_id.to_owned(), roles: roles.to_vec(), ..Profile::default() };
        if let Some(m) = membership {
            let rooms = self.rooms(&m.course_ids).await?;
            fill(&mut profile, m, rooms);
        }
        Ok(profile)
    }

    /// Every active person's profile.
    pub async fn everyone(&self) -> Result<Vec<Profile>> {
        let users = self.users.get().await?;
        let people = crate::user::directory::active_people(&**users).await?;
        let courses = self.courses.get().await?;
        let mut members: HashMap<String, Membership> =
            memberships(&**courses, None).await?.into_iter().map(|m| (m.user_id.clone(), m)).collect();
        let timetable = self.timetable.get().await?;
        let mut rooms_of: HashMap<String, Vec<String>> = HashMap::new();
        for (course, number, id) in crate::timetable::schedule::course_rooms(&timetable, None).await? {
            let rooms = rooms_of.entry(course).or_default();
            rooms.push(number);
            rooms.push(id);
        }
        Ok(people
            .into_iter()
            .map(|(user_id, role)| {
                let mut p = Profile { user_id: user_id.clone(), roles: vec![role], ..Profile::default() };
                if let Some(m) = members.remove(&user_id) {
                    let rooms =
                        m.course_ids.iter().flat_map(|c| rooms_of.get(c).into_iter().flatten()).cloned().collect();
                    fill(&mut p, m, rooms);
                }
                p
            })
            .collect())
    }

    /// The ids of the active people `targets` reaches, sorted, without those the announcement
    /// service knows to be inactive (`db` is `announcement_service_db`).
    pub async fn audience(&self, db: &impl GenericClient, targets: &Targets) -> Result<Vec<String>> {
        let inactive = inactive_users(db).await?;
        Ok(self
            .everyone()
            .await?
            .into_iter()
            .filter(|p| targets.reaches(p) && !inactive.contains(&p.user_id))
            .map(|p| p.user_id)
            .collect())
    }

    async fn rooms(&self, course_ids: &[String]) -> Result<Vec<String>> {
        if course_ids.is_empty() {
            return Ok(Vec::new());
        }
        let timetable = self.timetable.get().await?;
        let rows = crate::timetable::schedule::course_rooms(&timetable, Some(course_ids)).await?;
        Ok(rows.into_iter().flat_map(|(_, number, id)| [number, id]).collect())
    }
}

fn fill(p: &mut Profile, m: Membership, mut rooms: Vec<String>) {
    rooms.sort();
    rooms.dedup();
    p.department_ids = m.department_ids;
    p.program_ids = m.program_ids;
    p.semesters = m.semesters;
    p.course_ids = m.course_ids;
    p.room_ids = rooms;
}

/// The people `user.events` said are not active.
pub async fn inactive_users(db: &impl GenericClient) -> Result<BTreeSet<String>> {
    let rows = db.query("SELECT user_id FROM inactive_users", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
