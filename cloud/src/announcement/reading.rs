//! Reading announcements: what reaches the caller (`me/announcements`), read marks, and the
//! author's read statistics.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::audience::Directory;
use super::store::{self, Author};
use super::targets::Profile;
use crate::error::{Error, Result};
use crate::listing::{ListQuery, Page};

/// Whether announcement `a` reaches the person whose values are `$1`–`$8` (see
/// [`super::targets`]; the same rule as `Targets::reaches`, which the targeting tests hold
/// this to): named, or matching one value of every filter kind named.
const REACHES: &str = "(EXISTS (SELECT 1 FROM announcement_targets u
                         WHERE u.announcement_id = a.id AND u.target_type = 'user' AND u.target_id = $1)
     OR (a.has_filter AND NOT EXISTS (
           SELECT 1 FROM announcement_targets t
           WHERE t.announcement_id = a.id AND t.target_type NOT IN ('everyone', 'user')
           GROUP BY t.target_type
           HAVING NOT bool_or(t.target_id = ANY(CASE t.target_type
               WHEN 'role' THEN $2::text[] WHEN 'department' THEN $3::text[] WHEN 'program' THEN $4::text[]
               WHEN 'semester' THEN $5::text[] WHEN 'course' THEN $6::text[] WHEN 'group' THEN $7::text[]
               WHEN 'room' THEN $8::text[] END)))))";

/// Urgent first, then high, normal, low; newest first within a priority.
const ORDER: &str = "CASE a.priority WHEN 'urgent' THEN 3 WHEN 'high' THEN 2 WHEN 'normal' THEN 1 ELSE 0 END DESC,
                     a.published_at DESC, a.id";

/// Live: published and not expired.
const LIVE: &str = "a.status = 'published' AND (a.expires_at IS NULL OR a.expires_at > now())";

/// An announcement as a reader sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Item {
    /// Its id.
    pub id: Uuid,
    /// Headline.
    pub title: String,
    /// Plain text.
    pub content: String,
    /// Type.
    pub announcement_type: String,
    /// Priority.
    pub priority: String,
    /// Published.
    pub published_at: Option<DateTime<Utc>>,
    /// Shown until.
    pub expires_at: Option<DateTime<Utc>>,
    /// The author.
    pub created_by: String,
    /// Whether the caller marked it read.
    pub read: bool,
    /// When.
    pub read_at: Option<DateTime<Utc>>,
}

/// `?unread=true` lists unread ones only.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MineFilter {
    /// Unread only.
    pub unread: Option<bool>,
}

impl crate::listing::Sorted for MineFilter {
    const SORT: &'static [(&'static str, &'static str)] = &[("priority", "priority")];
}

/// The profile's values as the eight parameters of [`REACHES`].
struct Values {
    user: String,
    lists: [Vec<String>; 7],
}

impl Values {
    fn of(p: &Profile) -> Self {
        Values {
            user: p.user_id.clone(),
            lists: [
                p.roles.clone(),
                p.department_ids.clone(),
                p.program_ids.clone(),
                p.semesters.iter().map(i32::to_string).collect(),
                p.course_ids.clone(),
                p.group_ids.clone(),
                p.room_ids.clone(),
            ],
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut out: Vec<&(dyn ToSql + Sync)> = vec![&self.user];
        out.extend(self.lists.iter().map(|l| l as &(dyn ToSql + Sync)));
        out
    }
}

/// The live announcements that reach `p`, urgent first, with the caller's read marks.
pub async fn mine(db: &impl GenericClient, p: &Profile, f: &MineFilter, q: &ListQuery) -> Result<Page<Item>> {
    let (limit, offset, _) = q.resolve(<MineFilter as crate::listing::Sorted>::SORT)?;
    let values = Values::of(p);
    let unread = f.unread.unwrap_or(false);
    let mut params = values.params();
    params.extend([&unread as &(dyn ToSql + Sync), &limit, &offset]);
    let rows = db
        .query(
            &format!(
                "SELECT a.id, a.title, a.content, a.announcement_type, a.priority, a.published_at, a.expires_at,
                        a.created_by, r.read_at, count(*) OVER () AS total
                 FROM announcements a
                 LEFT JOIN announcement_reads r ON r.announcement_id = a.id AND r.user_id = $1
                 WHERE {LIVE} AND {REACHES} AND (NOT $9 OR r.read_at IS NULL)
                 ORDER BY {ORDER} LIMIT $10 OFFSET $11"
            ),
            &params,
        )
        .await?;
    let mut total = rows.first().map_or(0, |r| r.get::<_, i64>("total"));
    if rows.is_empty() && offset > 0 {
        let mut params = values.params();
        params.push(&unread);
        total = db
            .query_one(
                &format!(
                    "SELECT count(*) FROM announcements a
                     LEFT JOIN announcement_reads r ON r.announcement_id = a.id AND r.user_id = $1
                     WHERE {LIVE} AND {REACHES} AND (NOT $9 OR r.read_at IS NULL)"
                ),
                &params,
            )
            .await?
            .get(0);
    }
    let items = rows
        .iter()
        .map(|r| {
            let read_at: Option<DateTime<Utc>> = r.get("read_at");
            Item {
                id: r.get("id"),
                title: r.get("title"),
                content: r.get("content"),
                announcement_type: r.get("announcement_type"),
                priority: r.get("priority"),
                published_at: r.get("published_at"),
                expires_at: r.get("expires_at"),
                created_by: r.get("created_by"),
                read: read_at.is_some(),
                read_at,
            }
        })
        .collect();
    Ok(Page { items, total, limit, offset })
}

/// Whether live announcement `id` reaches `p`.
pub async fn reaches(db: &impl GenericClient, p: &Profile, id: Uuid) -> Result<bool> {
    let values = Values::of(p);
    let mut params = values.params();
    params.push(&id);
    let row = db
        .query_opt(&format!("SELECT 1 FROM announcements a WHERE a.id = $9 AND {LIVE} AND {REACHES}"), &params)
        .await?;
    Ok(row.is_some())
}

/// Marks `id` read by `p` (again: no change). An announcement that does not reach them is
/// "not found".
pub async fn mark_read(db: &impl GenericClient, p: &Profile, id: Uuid) -> Result<()> {
    if !reaches(db, p, id).await? {
        return Err(Error::NotFound { what: "announcement", id: id.to_string() });
    }
    db.execute(
        "INSERT INTO announcement_reads (announcement_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&id, &p.user_id],
    )
    .await?;
    Ok(())
}

/// Who read an announcement, counted over its current audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReadStats {
    /// The announcement.
    pub announcement_id: Uuid,
    /// Active people it reaches now.
    pub audience: usize,
    /// Of those, how many read it.
    pub read: usize,
    /// Of those, how many did not.
    pub unread: usize,
    /// For an announcement to courses: who of the audience has not read it.
    pub not_read: Option<Vec<String>>,
}

/// The read statistics of `id` for its author (or an administrator). Counted over the current
/// audience, so people who left it (suspended, deleted, dropped the course) leave the counts.
pub async fn stats(db: &impl GenericClient, directory: &Directory, author: &Author, id: Uuid) -> Result<ReadStats> {
    let v = store::get(db, author, id).await?;
    let audience: BTreeSet<String> = directory.audience(db, &v.targets).await?.into_iter().collect();
    let rows = db.query("SELECT user_id FROM announcement_reads WHERE announcement_id = $1", &[&id]).await?;
    let readers: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
    let read = audience.intersection(&readers).count();
    let not_read =
        (!v.targets.course_ids.is_empty()).then(|| audience.difference(&readers).cloned().collect::<Vec<_>>());
    Ok(ReadStats { announcement_id: id, audience: audience.len(), read, unread: audience.len() - read, not_read })
}
