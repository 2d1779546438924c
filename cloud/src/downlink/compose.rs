//! A node's snapshots, computed from the service databases: the timetable service knows the
//! room's entries, the course service the rosters of those courses, the edge registry the cards,
//! the user service the token keys and the faculty's and students' sign-in credentials, the
//! content service the manifest, the announcement service the room's announcements.

use deadpool_postgres::{Object, Pool};
use nimbus_core::snapshot::{
    AnnouncementsSnapshot, Card, KeysSnapshot, ManifestSnapshot, Role, RosterSnapshot, Student, TimetableEntry,
    TimetableSnapshot,
};
use nimbus_sync::topics::SnapshotKind;

use crate::error::{Error, Result};

/// The databases the downlink reads (full `postgres://` URLs).
#[derive(Debug, Clone)]
pub struct DatabaseUrls {
    /// edge_registry_db: nodes, cards, published versions.
    pub registry: String,
    /// timetable_service_db.
    pub timetable: String,
    /// course_service_db.
    pub course: String,
    /// user_service_db (token keys).
    pub user: String,
    /// content_service_db.
    pub content: String,
    /// announcement_service_db.
    pub announcement: String,
}

impl DatabaseUrls {
    /// Every database on one server, by the seed's names (`base` is `postgres://user@host:port`).
    pub fn on_server(base: &str) -> Self {
        let url = |db| crate::db::database_url(base, db);
        DatabaseUrls {
            registry: url("edge_registry_db"),
            timetable: url(crate::timetable::DATABASE),
            course: url(crate::course::DATABASE),
            user: url("user_service_db"),
            content: url("content_service_db"),
            announcement: url(crate::announcement::DATABASE),
        }
    }
}

/// Connection pools to the sources.
pub struct Sources {
    registry: Pool,
    timetable: Pool,
    course: Pool,
    user: Pool,
    content: Pool,
    announcement: Pool,
    content_base_url: String,
}

/// One computed snapshot, serialised on demand with the version it is published under.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    /// Its kind.
    pub kind: SnapshotKind,
    body: Body,
}

#[derive(Debug, Clone, PartialEq)]
enum Body {
    Timetable(TimetableSnapshot),
    Roster(RosterSnapshot),
    Keys(KeysSnapshot),
    Manifest(ManifestSnapshot),
    Announcements(AnnouncementsSnapshot),
}

impl Composed {
    /// The JSON body with `version` filled in (version 0 is what digests are computed over).
    pub fn body(&self, version: u64) -> Result<Vec<u8>> {
        let json = match &self.body {
            Body::Timetable(s) => serde_json::to_vec(&TimetableSnapshot { version, ..s.clone() }),
            Body::Roster(s) => serde_json::to_vec(&RosterSnapshot { version, ..s.clone() }),
            Body::Keys(s) => serde_json::to_vec(&KeysSnapshot { version, ..s.clone() }),
            Body::Manifest(s) => serde_json::to_vec(&ManifestSnapshot { version, ..s.clone() }),
            Body::Announcements(s) => serde_json::to_vec(&AnnouncementsSnapshot { version, ..s.clone() }),
        };
        json.map_err(Error::from)
    }
}

impl Sources {
    /// Pools to every source (connections are made on first use).
    pub fn connect(urls: &DatabaseUrls, content_base_url: &str) -> Result<Self> {
        Ok(Sources {
            registry: crate::db::pool(&urls.registry, 2)?,
            timetable: crate::db::pool(&urls.timetable, 2)?,
            course: crate::db::pool(&urls.course, 2)?,
            user: crate::db::pool(&urls.user, 2)?,
            content: crate::db::pool(&urls.content, 2)?,
            announcement: crate::db::pool(&urls.announcement, 2)?,
            content_base_url: content_base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Applies the registry's migrations (the downlink's bookkeeping lives there).
    pub async fn migrate_registry(&self) -> Result<()> {
        let m = crate::db::migrations_for("edge_registry_db")
            .ok_or_else(|| Error::Config("no registry migrations".into()))?;
        crate::db::migrate(&self.registry, m).await?;
        Ok(())
    }

    /// A registry connection.
    pub async fn registry(&self) -> Result<Object> {
        Ok(self.registry.get().await?)
    }

    /// Registered nodes and their rooms.
    pub async fn nodes(&self) -> Result<Vec<(String, String)>> {
        let client = self.registry.get().await?;
        let rows = client.query("SELECT node_id, room_id FROM nodes ORDER BY node_id", &[]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The current token key set, or `None` when the user service cannot say (then no keys
    /// snapshot is sent this round).
    pub async fn keys(&self) -> Option<KeysSnapshot> {
        match crate::user::key_set(&self.user).await {
            Ok(k) if !k.keys.is_empty() => Some(k),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, "downlink: no token keys this round");
                None
            }
        }
    }

    /// Every snapshot of a node in `room`; each may fail on its own.
    pub async fn for_room(&self, room: &str, keys: Option<&KeysSnapshot>) -> Vec<Result<Composed>> {
        let mut out = Vec::with_capacity(4);
        let entries = self.timetable_entries(room).await;
        let course_ids = entries.as_ref().ok().map(|e| course_ids(e));
        out.push(entries.map(|entries| Composed {
            kind: SnapshotKind::Timetable,
            body: Body::Timetable(TimetableSnapshot { version: 0, entries }),
        }));
        match &course_ids {
            Some(ids) => {
                out.push(
                    self.roster(ids).await.map(|r| Composed { kind: SnapshotKind::Roster, body: Body::Roster(r) }),
                );
                out.push(
                    self.manifest(ids)
                        .await
                        .map(|m| Composed { kind: SnapshotKind::Manifest, body: Body::Manifest(m) }),
                );
                out.push(
                    self.announcements(room, ids)
                        .await
                        .map(|a| Composed { kind: SnapshotKind::Announcements, body: Body::Announcements(a) }),
                );
            }
            None => tracing::debug!(room, "downlink: no timetable, so no roster or manifest this round"),
        }
        if let Some(k) = keys {
            out.push(Ok(Composed { kind: SnapshotKind::Keys, body: Body::Keys(k.clone()) }));
        }
        out
    }

    async fn timetable_entries(&self, room: &str) -> Result<Vec<TimetableEntry>> {
        let client = self.timetable.get().await?;
        let mut entries = crate::timetable::room_schedule(&client, room).await?;
        entries.sort_by(|a, b| a.entry_id.cmp(&b.entry_id));
        Ok(entries)
    }

    async fn roster(&self, course_ids: &[String]) -> Result<RosterSnapshot> {
        let client = self.course.get().await?;
        let (mut faculty, mut enrollments) = crate::course::rosters(&client, course_ids).await?;
        faculty.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        faculty.dedup_by(|a, b| a.user_id == b.user_id);
        // How each signs in at the node: PIN hash, staff number and e-mail from the user service.
        let ids: Vec<String> = faculty.iter().map(|f| f.user_id.clone()).collect();
        let credentials = crate::user::classroom_credentials(&self.user, &ids).await?;
        for f in &mut faculty {
            if let Some(c) = credentials.iter().find(|c| c.user_id == f.user_id) {
                f.pin_hash = c.pin_hash.clone();
                f.staff_number = Some(c.staff_number.clone());
                f.email = Some(c.email.clone());
            }
        }
        enrollments.sort_by(|a, b| (&a.course_id, &a.student_id).cmp(&(&b.course_id, &b.student_id)));
        // Students sign in at the node's student page the same way (register number or e-mail
        // and PIN); one entry per student, and only the students enrolled here.
        let mut student_ids: Vec<String> = enrollments.iter().map(|e| e.student_id.clone()).collect();
        student_ids.sort();
        student_ids.dedup();
        let students = crate::user::student_credentials(&self.user, &student_ids)
            .await?
            .into_iter()
            .map(|c| Student {
                name: enrollments
                    .iter()
                    .find(|e| e.student_id == c.user_id)
                    .map(|e| e.name.clone())
                    .unwrap_or_default(),
                user_id: c.user_id,
                register_number: Some(c.staff_number),
                email: Some(c.email),
                pin_hash: c.pin_hash,
            })
            .collect();
        let mut people: Vec<String> = faculty.iter().map(|f| f.user_id.clone()).collect();
        people.extend(enrollments.iter().map(|e| e.student_id.clone()));
        people.sort();
        people.dedup();
        let registry = self.registry.get().await?;
        let rows = registry
            .query(
                "SELECT card_uid, user_id, role, display_name FROM cards WHERE user_id = ANY($1) ORDER BY card_uid",
                &[&people],
            )
            .await?;
        let name_of = |user: &str| {
            faculty
                .iter()
                .find(|f| f.user_id == user)
                .map(|f| f.name.clone())
                .or_else(|| enrollments.iter().find(|e| e.student_id == user).map(|e| e.name.clone()))
                .unwrap_or_default()
        };
        let cards = rows
            .iter()
            .map(|r| {
                let user: String = r.get(1);
                let display: String = r.get(3);
                Card {
                    card_uid: r.get(0),
                    role: if r.get::<_, &str>(2) == "faculty" { Role::Faculty } else { Role::Student },
                    name: if display.is_empty() { name_of(&user) } else { display },
                    user_id: user,
                }
            })
            .collect();
        Ok(RosterSnapshot { version: 0, cards, faculty, enrollments, students })
    }

    async fn announcements(&self, room: &str, course_ids: &[String]) -> Result<AnnouncementsSnapshot> {
        let keys = crate::timetable::schedule::room_keys(&self.timetable.get().await?, room).await?;
        let client = self.announcement.get().await?;
        let items = crate::announcement::classroom::for_room(&**client, &keys, course_ids).await?;
        Ok(AnnouncementsSnapshot { version: 0, items })
    }

    async fn manifest(&self, course_ids: &[String]) -> Result<ManifestSnapshot> {
        let client = self.content.get().await?;
        let mut items = crate::content::manifest(&client, course_ids, &self.content_base_url).await?;
        items.sort_by(|a, b| a.content_id.cmp(&b.content_id));
        Ok(ManifestSnapshot { version: 0, items })
    }
}

/// The distinct courses of `entries`, sorted.
fn course_ids(entries: &[TimetableEntry]) -> Vec<String> {
    let mut ids: Vec<String> = entries.iter().map(|e| e.course_id.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}
