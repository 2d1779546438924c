//! Writing announcements: create a draft, edit, publish now, schedule, unpublish, delete. Each
//! change and its `announcement.events` event are one transaction (the outbox); the row is
//! locked first, so concurrent commands on one announcement apply one after the other.

use chrono::{DateTime, Utc};
use nimbus_core::event::AnnouncementEvent;
use nimbus_core::event::announcement::{AnnouncementPayload, AnnouncementRemovedPayload};
use serde::{Deserialize, Deserializer, Serialize};
use tokio_postgres::{GenericClient, Row, Transaction};
use uuid::Uuid;

use super::SERVICE;
use super::audience::Directory;
use super::fields;
use super::targets::Targets;
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::listing::{self, Filter, ListQuery, Page};

/// The priorities, lowest first.
pub const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];

/// Who is writing: administrators (`announcement:manage`) announce to anyone and manage every
/// announcement; faculty announce only to the courses they teach and manage their own.
#[derive(Debug, Clone)]
pub struct Author {
    /// The user id.
    pub user_id: String,
    /// Holds `announcement:manage`.
    pub admin: bool,
}

/// A new announcement (a draft until published or scheduled).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "Lab 3 moves to B-204", "content": "From Monday, lab 3 meets in B-204.", "announcement_type": "academic",
    "priority": "high", "expires_at": null, "targets": { "roles": ["student"] }
}))]
pub struct Draft {
    /// Headline (1–200 characters).
    #[schema(schema_with = title)]
    pub title: String,
    /// Plain text (1–10,000 characters; never rendered as HTML).
    #[schema(schema_with = content)]
    pub content: String,
    /// A lower-case word (`general`, `academic`, `exam`, `event`, `emergency`, …).
    #[serde(default = "general")]
    #[schema(default = "general", pattern = "^[a-z_]{1,40}$")]
    pub announcement_type: String,
    /// `low`, `normal`, `high` or `urgent`.
    #[serde(default = "normal")]
    #[schema(schema_with = priority)]
    pub priority: String,
    /// When it stops being shown; in the future, before the year 10000 (else 422).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Who it is for: at least one target, at most 1,000 values in all (422).
    #[serde(deserialize_with = "fields::object")]
    pub targets: Targets,
}

fn title() -> utoipa::openapi::Object {
    fields::text_schema(Some(200), false)
}

fn content() -> utoipa::openapi::Object {
    fields::text_schema(Some(10_000), false)
}

fn maybe_title() -> utoipa::openapi::Object {
    fields::text_schema(Some(200), true)
}

fn maybe_content() -> utoipa::openapi::Object {
    fields::text_schema(Some(10_000), true)
}

fn general() -> String {
    "general".into()
}

fn normal() -> String {
    "normal".into()
}

fn priority() -> utoipa::openapi::Object {
    let mut o = crate::http::schema::one_of(&PRIORITIES);
    o.default = Some(serde_json::json!("normal"));
    o
}

fn maybe_priority() -> utoipa::openapi::Object {
    crate::http::schema::maybe_one_of(&PRIORITIES)
}

/// Changes to an announcement; absent (or null) fields stay. `"expires_at": null` removes the
/// expiry.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "title": "Lab 3 moves to B-205", "expires_at": null }))]
pub struct Edit {
    /// Headline.
    #[schema(schema_with = maybe_title)]
    pub title: Option<String>,
    /// Text.
    #[schema(schema_with = maybe_content)]
    pub content: Option<String>,
    /// Type.
    #[schema(pattern = "^[a-z_]{1,40}$")]
    pub announcement_type: Option<String>,
    /// Priority.
    #[schema(schema_with = maybe_priority)]
    pub priority: Option<String>,
    /// Expiry (`null` removes it); in the future, before the year 10000, and after a scheduled
    /// publication (else 422).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// Who it is for (replaces every target).
    #[serde(default, deserialize_with = "fields::maybe_object")]
    pub targets: Option<Targets>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// An announcement as its author sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct View {
    /// Its id.
    pub id: Uuid,
    /// Headline.
    pub title: String,
    /// Text.
    pub content: String,
    /// Type.
    pub announcement_type: String,
    /// Priority.
    pub priority: String,
    /// The seed's summary of the targets.
    pub target_audience: String,
    /// Who it is for.
    pub targets: Targets,
    /// `draft`, `scheduled`, `published`, `expired` or `deleted`.
    pub status: String,
    /// The author.
    pub created_by: String,
    /// When a scheduled announcement will be published.
    pub publish_at: Option<DateTime<Utc>>,
    /// When it was (last) published.
    pub published_at: Option<DateTime<Utc>>,
    /// When it stops being shown.
    pub expires_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, title, content, announcement_type, priority, target_audience, status, created_by, \
                       publish_at, published_at, expires_at, created_at, updated_at";

fn view(r: &Row, targets: Targets) -> View {
    View {
        id: r.get("id"),
        title: r.get("title"),
        content: r.get("content"),
        announcement_type: r.get("announcement_type"),
        priority: r.get("priority"),
        target_audience: r.get("target_audience"),
        targets,
        status: r.get("status"),
        created_by: r.get("created_by"),
        publish_at: r.get("publish_at"),
        published_at: r.get("published_at"),
        expires_at: r.get("expires_at"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

/// The targets of `id`.
pub async fn targets_of(db: &impl GenericClient, id: Uuid) -> Result<Targets> {
    let rows =
        db.query("SELECT target_type, target_id FROM announcement_targets WHERE announcement_id = $1", &[&id]).await?;
    Ok(Targets::from_rows(rows.iter().map(|r| (r.get::<_, &str>(0), r.get::<_, &str>(1)))))
}

/// One announcement with its targets, deleted ones included.
pub async fn load(db: &impl GenericClient, id: Uuid) -> Result<Option<View>> {
    let Some(row) = db.query_opt(&format!("SELECT {COLUMNS} FROM announcements WHERE id = $1"), &[&id]).await? else {
        return Ok(None);
    };
    Ok(Some(view(&row, targets_of(db, id).await?)))
}

/// `id` as `author` may see it: any for an administrator, their own for anyone else; deleted
/// ones are gone. Others' announcements are "not found", so ids are not probed.
pub async fn get(db: &impl GenericClient, author: &Author, id: Uuid) -> Result<View> {
    match load(db, id).await? {
        Some(v) if v.status != "deleted" && (author.admin || v.created_by == author.user_id) => Ok(v),
        _ => Err(not_found(id)),
    }
}

fn not_found(id: Uuid) -> Error {
    Error::NotFound { what: "announcement", id: id.to_string() }
}

/// `?status=` of the authors' list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListFilter {
    /// One status.
    #[param(schema_with = listed_statuses)]
    pub status: Option<String>,
}

/// The statuses the authors' list filters by.
pub const LISTED: [&str; 4] = ["draft", "scheduled", "published", "expired"];

fn listed_statuses() -> utoipa::openapi::Object {
    crate::http::schema::one_of(&LISTED)
}

impl crate::listing::Sorted for ListFilter {
    const SORT: &'static [(&'static str, &'static str)] =
        &[("created_at", "created_at"), ("published_at", "published_at"), ("priority", "priority")];
}

/// The announcements `author` manages, newest first by default.
pub async fn list(
    db: &deadpool_postgres::Object,
    author: &Author,
    f: &ListFilter,
    q: &ListQuery,
) -> Result<Page<View>> {
    if let Some(s) = &f.status
        && !LISTED.contains(&s.as_str())
    {
        return Err(Error::Validation(vec![FieldError::new(
            "status",
            "must be draft, scheduled, published or expired",
        )]));
    }
    let mut filter = Filter::new();
    filter.and_sql("status <> 'deleted'");
    filter.and("created_by = $?", (!author.admin).then(|| author.user_id.clone()));
    filter.and("status = $?", f.status.clone());
    let mut q = q.clone();
    q.sort.get_or_insert_with(|| "-created_at".into());
    let page =
        listing::page(db, COLUMNS, "announcements", &filter, &q, <ListFilter as crate::listing::Sorted>::SORT, |r| {
            view(r, Targets::default())
        })
        .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for mut v in page.items {
        v.targets = targets_of(&***db, v.id).await?;
        items.push(v);
    }
    Ok(Page { items, ..page })
}

/// Whether `at` can be shown as an RFC 3339 time (in UTC, whose years end at 9999): a time sent
/// with an offset may fall in the year 10000 once in UTC.
fn shown(at: DateTime<Utc>) -> bool {
    chrono::Datelike::year(&at) <= 9999
}

/// Field errors of the text fields shared by drafts and edits.
fn text_errors(
    errors: &mut Vec<FieldError>,
    title: Option<&str>,
    content: Option<&str>,
    kind: Option<&str>,
    priority: Option<&str>,
) {
    if let Some(t) = title {
        fields::text(errors, "title", t, 200);
    }
    if let Some(c) = content {
        fields::text(errors, "content", c, 10_000);
    }
    if let Some(k) = kind
        && (k.is_empty() || k.len() > 40 || !k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    {
        errors.push(FieldError::new("announcement_type", "must be 1 to 40 lower-case letters or _"));
    }
    if let Some(p) = priority
        && !PRIORITIES.contains(&p)
    {
        errors.push(FieldError::new("priority", "must be low, normal, high or urgent"));
    }
}

/// Faculty may announce only to courses they teach (and may narrow those by role).
async fn authorize(directory: &Directory, author: &Author, t: &Targets) -> Result<()> {
    if author.admin {
        return Ok(());
    }
    let beyond_courses = t.everyone
        || !(t.department_ids.is_empty()
            && t.program_ids.is_empty()
            && t.semesters.is_empty()
            && t.group_ids.is_empty()
            && t.user_ids.is_empty()
            && t.room_ids.is_empty());
    if beyond_courses || t.course_ids.is_empty() {
        return Err(Error::Forbidden("faculty may announce only to the courses they teach".into()));
    }
    let courses = directory.courses.get().await?;
    let taught = crate::course::audience::taught_by(&**courses, &author.user_id, &t.course_ids).await?;
    let foreign: Vec<&String> = t.course_ids.iter().filter(|c| !taught.contains(c)).collect();
    if !foreign.is_empty() {
        return Err(Error::Forbidden(format!("you do not teach course {}", foreign[0])));
    }
    Ok(())
}

async fn write_targets(tx: &Transaction<'_>, id: Uuid, t: &Targets) -> Result<()> {
    tx.execute("DELETE FROM announcement_targets WHERE announcement_id = $1", &[&id]).await?;
    let rows = t.rows();
    let kinds: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let values: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    tx.execute(
        "INSERT INTO announcement_targets (announcement_id, target_type, target_id)
         SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS x(k, v)",
        &[&id, &kinds, &values],
    )
    .await?;
    Ok(())
}

/// The seed payload of `v`; `published_at` is the publication (or planned, or creation) time.
pub fn payload(v: &View) -> AnnouncementPayload {
    AnnouncementPayload {
        announcement_id: v.id.to_string(),
        title: v.title.clone(),
        content: v.content.clone(),
        announcement_type: v.announcement_type.clone(),
        priority: v.priority.clone(),
        target_audience: v.target_audience.clone(),
        target_details: v.targets.seed_target(),
        created_by: v.created_by.clone(),
        published_at: v.published_at.or(v.publish_at).unwrap_or(v.created_at),
        expires_at: v.expires_at,
    }
}

async fn emit(tx: &Transaction<'_>, actor: &Actor, event: AnnouncementEvent) -> Result<()> {
    crate::outbox::publish(tx, SERVICE, actor, event).await
}

/// Creates a draft.
pub async fn create(
    db: &mut deadpool_postgres::Object,
    directory: &Directory,
    actor: &Actor,
    author: &Author,
    mut d: Draft,
) -> Result<View> {
    let mut errors = Vec::new();
    text_errors(&mut errors, Some(&d.title), Some(&d.content), Some(&d.announcement_type), Some(&d.priority));
    errors.extend(d.targets.field_errors());
    listing::finish(errors)?;
    d.targets.normalise();
    let mut rules = d.targets.rule_errors();
    if d.expires_at.is_some_and(|e| e <= Utc::now() || !shown(e)) {
        rules.push(FieldError::new("expires_at", "must be in the future, before the year 10000"));
    }
    listing::finish_rules(rules)?;
    authorize(directory, author, &d.targets).await?;
    let id = Uuid::new_v4();
    let tx = db.transaction().await?;
    tx.execute(
        "INSERT INTO announcements (id, title, content, announcement_type, priority, target_audience, has_filter,
                                    status, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'draft', $8, $9)",
        &[
            &id,
            &d.title.trim(),
            &d.content.trim(),
            &d.announcement_type,
            &d.priority,
            &d.targets.audience_name(),
            &d.targets.has_filter(),
            &author.user_id,
            &d.expires_at,
        ],
    )
    .await?;
    write_targets(&tx, id, &d.targets).await?;
    let v = load(&*tx, id).await?.ok_or_else(|| not_found(id))?;
    emit(&tx, actor, AnnouncementEvent::AnnouncementCreated(payload(&v))).await?;
    tx.commit().await?;
    Ok(v)
}

/// Locks `id` for a change by `author`.
async fn lock(tx: &Transaction<'_>, author: &Author, id: Uuid) -> Result<View> {
    let row = tx.query_opt(&format!("SELECT {COLUMNS} FROM announcements WHERE id = $1 FOR UPDATE"), &[&id]).await?;
    match row {
        Some(r) => {
            let v = view(&r, targets_of(tx, id).await?);
            if v.status == "deleted" || !(author.admin || v.created_by == author.user_id) {
                return Err(not_found(id));
            }
            Ok(v)
        }
        None => Err(not_found(id)),
    }
}

fn conflict(message: impl Into<String>, status: &str) -> Error {
    Error::Conflict { message: message.into(), details: serde_json::json!({ "status": status }) }
}

/// Edits an announcement that has not expired.
pub async fn edit(
    db: &mut deadpool_postgres::Object,
    directory: &Directory,
    actor: &Actor,
    author: &Author,
    id: Uuid,
    mut e: Edit,
) -> Result<View> {
    let mut errors = Vec::new();
    text_errors(
        &mut errors,
        e.title.as_deref(),
        e.content.as_deref(),
        e.announcement_type.as_deref(),
        e.priority.as_deref(),
    );
    if let Some(t) = &e.targets {
        errors.extend(t.field_errors());
    }
    listing::finish(errors)?;
    let mut rules = Vec::new();
    if let Some(t) = e.targets.as_mut() {
        t.normalise();
        rules.extend(t.rule_errors());
    }
    if let Some(Some(at)) = e.expires_at
        && (at <= Utc::now() || !shown(at))
    {
        rules.push(FieldError::new("expires_at", "must be in the future, before the year 10000"));
    }
    listing::finish_rules(rules)?;
    if let Some(t) = &e.targets {
        authorize(directory, author, t).await?;
    }
    let tx = db.transaction().await?;
    let before = lock(&tx, author, id).await?;
    if before.status == "expired" {
        return Err(conflict("an expired announcement cannot be edited; write a new one", "expired"));
    }
    let expires_at = e.expires_at.unwrap_or(before.expires_at);
    if let (Some(exp), Some(at)) = (expires_at, before.publish_at)
        && before.status == "scheduled"
        && exp <= at
    {
        return Err(Error::Unprocessable(vec![FieldError::new(
            "expires_at",
            "must be after the scheduled publication",
        )]));
    }
    let targets = e.targets.clone().unwrap_or_else(|| before.targets.clone());
    tx.execute(
        "UPDATE announcements SET title = $2, content = $3, announcement_type = $4, priority = $5, expires_at = $6,
                target_audience = $7, has_filter = $8, updated_at = now()
         WHERE id = $1",
        &[
            &id,
            &e.title.as_deref().map(str::trim).unwrap_or(&before.title),
            &e.content.as_deref().map(str::trim).unwrap_or(&before.content),
            &e.announcement_type.as_ref().unwrap_or(&before.announcement_type),
            &e.priority.as_ref().unwrap_or(&before.priority),
            &expires_at,
            &targets.audience_name(),
            &targets.has_filter(),
        ],
    )
    .await?;
    if e.targets.is_some() {
        write_targets(&tx, id, &targets).await?;
    }
    let v = load(&*tx, id).await?.ok_or_else(|| not_found(id))?;
    emit(&tx, actor, AnnouncementEvent::AnnouncementUpdated(payload(&v))).await?;
    tx.commit().await?;
    Ok(v)
}

/// Publishes the locked row `id` now: the one way an announcement goes out, for the API and the
/// scheduler alike. Urgent and high ones get their notification fan-out queued.
pub(crate) async fn publish_locked(tx: &Transaction<'_>, actor: &Actor, id: Uuid) -> Result<View> {
    tx.execute(
        "UPDATE announcements SET status = 'published', published_at = now(), publish_at = NULL,
                publication = publication + 1, fanout_due = priority IN ('urgent', 'high'), updated_at = now()
         WHERE id = $1",
        &[&id],
    )
    .await?;
    let v = load(tx, id).await?.ok_or_else(|| not_found(id))?;
    emit(tx, actor, AnnouncementEvent::AnnouncementPublished(payload(&v))).await?;
    Ok(v)
}

/// Publishes a draft or scheduled announcement now.
pub async fn publish(db: &mut deadpool_postgres::Object, actor: &Actor, author: &Author, id: Uuid) -> Result<View> {
    let tx = db.transaction().await?;
    let before = lock(&tx, author, id).await?;
    if !matches!(before.status.as_str(), "draft" | "scheduled") {
        return Err(conflict(format!("the announcement is {}", before.status), &before.status));
    }
    if before.expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(Error::Conflict {
            message: "its expiry has passed; change it to publish".into(),
            details: serde_json::json!({ "status": before.status, "field": "expires_at" }),
        });
    }
    let v = publish_locked(&tx, actor, id).await?;
    tx.commit().await?;
    Ok(v)
}

/// When to publish.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "publish_at": "2030-09-01T08:00:00Z" }))]
pub struct ScheduleAt {
    /// A time in the future, before the expiry and the year 10000 (else 422).
    pub publish_at: DateTime<Utc>,
}

/// Schedules a draft (or reschedules a scheduled announcement).
pub async fn schedule(
    db: &mut deadpool_postgres::Object,
    actor: &Actor,
    author: &Author,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<View> {
    if at <= Utc::now() || !shown(at) {
        return Err(Error::Unprocessable(vec![FieldError::new(
            "publish_at",
            "must be in the future, before the year 10000",
        )]));
    }
    let tx = db.transaction().await?;
    let before = lock(&tx, author, id).await?;
    if !matches!(before.status.as_str(), "draft" | "scheduled") {
        return Err(conflict(format!("the announcement is {}", before.status), &before.status));
    }
    if before.expires_at.is_some_and(|e| e <= at) {
        return Err(Error::Unprocessable(vec![FieldError::new("publish_at", "must be before the expiry")]));
    }
    tx.execute(
        "UPDATE announcements SET status = 'scheduled', publish_at = $2, updated_at = now() WHERE id = $1",
        &[&id, &at],
    )
    .await?;
    let v = load(&*tx, id).await?.ok_or_else(|| not_found(id))?;
    emit(&tx, actor, AnnouncementEvent::AnnouncementScheduled(payload(&v))).await?;
    tx.commit().await?;
    Ok(v)
}

/// Takes a published or scheduled announcement back to a draft.
pub async fn unpublish(db: &mut deadpool_postgres::Object, actor: &Actor, author: &Author, id: Uuid) -> Result<View> {
    let tx = db.transaction().await?;
    let before = lock(&tx, author, id).await?;
    if !matches!(before.status.as_str(), "published" | "scheduled") {
        return Err(conflict(format!("the announcement is {}", before.status), &before.status));
    }
    tx.execute(
        "UPDATE announcements SET status = 'draft', publish_at = NULL, fanout_due = false, updated_at = now()
         WHERE id = $1",
        &[&id],
    )
    .await?;
    let v = load(&*tx, id).await?.ok_or_else(|| not_found(id))?;
    emit(&tx, actor, AnnouncementEvent::AnnouncementUpdated(payload(&v))).await?;
    tx.commit().await?;
    Ok(v)
}

/// Deletes an announcement (a tombstone: its events and reads keep referring to it).
pub async fn delete(db: &mut deadpool_postgres::Object, actor: &Actor, author: &Author, id: Uuid) -> Result<()> {
    let tx = db.transaction().await?;
    let before = lock(&tx, author, id).await?;
    tx.execute(
        "UPDATE announcements SET status = 'deleted', fanout_due = false, updated_at = now() WHERE id = $1",
        &[&id],
    )
    .await?;
    let removed = AnnouncementRemovedPayload {
        announcement_id: id.to_string(),
        title: Some(before.title),
        changed_by: Some(actor.id()),
        occurred_at: Utc::now(),
    };
    emit(&tx, actor, AnnouncementEvent::AnnouncementDeleted(removed)).await?;
    tx.commit().await?;
    Ok(())
}
