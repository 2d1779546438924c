//! Content items and their versions in `content_service_db`: every command changes its rows and
//! enqueues its `content.events` event in one transaction ([`crate::outbox`]).
//!
//! The bytes are already in GridFS when [`create`] or [`add_version`] runs (an upload streams
//! straight into the store); if the transaction then fails, the command deletes that GridFS file
//! again, so a failed command leaves neither rows nor bytes.

use deadpool_postgres::{GenericClient, Pool};
use nimbus_core::event::content::{
    ContentCreatedPayload, ContentDeletedPayload, ContentPublicationPayload, ContentUpdatedPayload,
    ContentVersionedPayload,
};
use nimbus_core::event::{ChangeValue, Changes, ContentEvent};
use serde_json::json;
use tokio_postgres::Row;
use uuid::Uuid;

use super::store::{Store, Stored};
use super::{SERVICE, sniff};
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::listing::{self, Filter, ListQuery, Page, require_text};

/// A content item as the API shows it (its current version's file).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ContentItem {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    /// `document`, `slides`, `spreadsheet`, `video`, `audio`, `image`, `archive`, `other`.
    pub content_type: String,
    pub department_id: Option<String>,
    pub subject_ids: Vec<String>,
    pub current_version: i32,
    /// GridFS file id of the current version's bytes.
    pub mongo_document_id: String,
    pub file_name: String,
    pub mime_type: String,
    pub file_size: i64,
    pub sha256: String,
    pub is_published: bool,
    pub published_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_by: String,
    pub course_ids: Vec<String>,
    pub tags: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// One uploaded file of an item.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Version {
    pub version_number: i32,
    pub mongo_document_id: String,
    pub file_name: String,
    pub mime_type: String,
    pub file_size: i64,
    pub sha256: String,
    pub change_notes: Option<String>,
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The metadata part of an upload (`metadata` JSON of the multipart form).
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "title": "Week 1: arrays", "description": "Slides of the first lecture", "course_ids": ["CS101"], "tags": ["arrays", "week-1"] }))]
pub struct NewContent {
    /// 1 to 300 characters, not blank, no NUL.
    #[schema(schema_with = title_schema)]
    pub title: String,
    /// At most 5000 characters, no NUL.
    #[schema(schema_with = maybe_description_schema)]
    pub description: Option<String>,
    /// The courses it is for (at most 100 ids; duplicates count once).
    #[serde(default)]
    #[schema(schema_with = id_list_schema)]
    pub course_ids: Vec<String>,
    /// At most 100 ids.
    #[serde(default)]
    #[schema(schema_with = id_list_schema)]
    pub subject_ids: Vec<String>,
    #[schema(schema_with = maybe_id_schema)]
    pub department_id: Option<String>,
    /// At most 30 tags, stored trimmed and lower-case.
    #[serde(default)]
    #[schema(schema_with = tag_list_schema)]
    pub tags: Vec<String>,
    /// Publish at once (needs `content:publish`).
    #[serde(default)]
    pub is_published: bool,
}

/// Metadata changes; absent (or null) fields stay.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentUpdate {
    /// 1 to 300 characters, not blank, no NUL.
    #[schema(schema_with = maybe_title_schema)]
    pub title: Option<String>,
    /// At most 5000 characters, no NUL.
    #[schema(schema_with = maybe_description_schema)]
    pub description: Option<String>,
    /// Replaces the subjects (at most 100 ids).
    #[schema(schema_with = maybe_id_list_schema)]
    pub subject_ids: Option<Vec<String>>,
    #[schema(schema_with = maybe_id_schema)]
    pub department_id: Option<String>,
    /// Replaces the tags (at most 30, stored trimmed and lower-case).
    #[schema(schema_with = maybe_tag_list_schema)]
    pub tags: Option<Vec<String>>,
}

/// The optional metadata part of a version upload.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    /// At most 2000 characters, no NUL.
    #[schema(max_length = 2000, pattern = r"^[^\x00]*$")]
    pub change_notes: Option<String>,
}

/// Search filters of [`list`] (paging and `sort` apart: [`SORTABLE`]).
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContentFilter {
    /// Case-insensitive substring of the title.
    #[param(pattern = r"^[^\x00]*$")]
    pub title: Option<String>,
    /// A tag the item carries.
    #[param(pattern = r"^[^\x00]*$")]
    pub tag: Option<String>,
    /// A course the item is mapped to.
    #[param(pattern = r"^[^\x00]*$")]
    pub course_id: Option<String>,
    /// `document`, `slides`, `spreadsheet`, `video`, `audio`, `image`, `archive`, `other`.
    #[param(pattern = r"^[^\x00]*$")]
    pub content_type: Option<String>,
    pub is_published: Option<bool>,
    /// A folder the item is in.
    pub folder_id: Option<Uuid>,
}

impl listing::Sorted for ContentFilter {
    const SORT: &'static [(&'static str, &'static str)] = SORTABLE;
}

impl ContentFilter {
    /// The filters hold no NUL character (PostgreSQL text cannot).
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        for (field, value) in [
            ("title", &self.title),
            ("tag", &self.tag),
            ("course_id", &self.course_id),
            ("content_type", &self.content_type),
        ] {
            if value.as_ref().is_some_and(|v| v.contains('\0')) {
                e.push(FieldError::new(field, "must not contain NUL characters"));
            }
        }
        listing::finish(e)
    }
}

/// Unicode `White_Space` (what `str::trim` strips), spelt out for the document's patterns: `\s`
/// means different sets in ECMA, Python and Rust regexes.
const WHITE_SPACE: &str = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Control characters (`char::is_control`), for the same patterns.
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";

fn string_schema(nullable: bool) -> utoipa::openapi::schema::ObjectBuilder {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let kind = if nullable { SchemaType::from_iter([Type::String, Type::Null]) } else { SchemaType::new(Type::String) };
    ObjectBuilder::new().schema_type(kind)
}

/// Required text ([`require_text`] without NUL): not blank, at most `max` characters.
fn text_object(max: usize, nullable: bool) -> utoipa::openapi::Object {
    string_schema(nullable)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(format!(r"^[^\x00]*[^\x00{WHITE_SPACE}][^\x00]*$")))
        .build()
}

/// An id of another service ([`check_ids`]): not blank, no control characters, at most 100
/// characters.
fn id_object(nullable: bool) -> utoipa::openapi::Object {
    printable_object(MAX_ID, nullable)
}

fn printable_object(max: usize, nullable: bool) -> utoipa::openapi::Object {
    string_schema(nullable)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(format!(r"^[^{CONTROL}]*[^{CONTROL}{WHITE_SPACE}][^{CONTROL}]*$")))
        .build()
}

fn list_object(item: utoipa::openapi::Object, max: usize, nullable: bool) -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, SchemaType, Type};
    let kind = if nullable { SchemaType::from_iter([Type::Array, Type::Null]) } else { SchemaType::new(Type::Array) };
    ArrayBuilder::new().schema_type(kind).items(item).max_items(Some(max)).build()
}

fn title_schema() -> utoipa::openapi::Object {
    text_object(MAX_TITLE, false)
}

fn maybe_title_schema() -> utoipa::openapi::Object {
    text_object(MAX_TITLE, true)
}

fn maybe_description_schema() -> utoipa::openapi::Object {
    string_schema(true).max_length(Some(MAX_DESCRIPTION)).pattern(Some(r"^[^\x00]*$")).build()
}

pub(super) fn id_schema() -> utoipa::openapi::Object {
    id_object(false)
}

fn maybe_id_schema() -> utoipa::openapi::Object {
    id_object(true)
}

pub(super) fn id_list_schema() -> utoipa::openapi::schema::Array {
    list_object(id_object(false), MAX_LIST, false)
}

fn maybe_id_list_schema() -> utoipa::openapi::schema::Array {
    list_object(id_object(false), MAX_LIST, true)
}

fn tag_list_schema() -> utoipa::openapi::schema::Array {
    list_object(printable_object(MAX_TAG, false), MAX_TAGS, false)
}

fn maybe_tag_list_schema() -> utoipa::openapi::schema::Array {
    list_object(printable_object(MAX_TAG, false), MAX_TAGS, true)
}

/// Whose view a listing is.
#[derive(Debug, Clone)]
pub enum Visibility {
    /// Staff: every item that is not deleted.
    All,
    /// A student: published items mapped to one of `courses`, or granted to the user or one of
    /// those courses through `content_permissions`.
    Student {
        /// The user.
        user_id: String,
        /// The courses they are enrolled in.
        courses: Vec<String>,
    },
}

impl Visibility {
    /// The keys `content_permissions` rows match (`user:<id>`, `course:<id>`).
    fn grantee_keys(user_id: &str, courses: &[String]) -> Vec<String> {
        std::iter::once(format!("user:{user_id}")).chain(courses.iter().map(|c| format!("course:{c}"))).collect()
    }

    fn add_to(&self, filter: &mut Filter) {
        if let Visibility::Student { user_id, courses } = self {
            let mut keys = Self::grantee_keys(user_id, courses);
            keys.extend(courses.iter().map(|c| format!("mapped:{c}")));
            filter.and_sql("c.is_published").and(
                "(EXISTS (SELECT 1 FROM content_course_mapping m WHERE m.content_id = c.id \
                          AND ('mapped:' || m.course_id) = ANY($?)) \
                  OR EXISTS (SELECT 1 FROM content_permissions p WHERE p.content_id = c.id \
                          AND p.permission IN ('view', 'download') \
                          AND (p.grantee_type || ':' || p.grantee_id) = ANY($?)))",
                Some(keys),
            );
        }
    }
}

/// Most ids in a list.
const MAX_LIST: usize = 100;
/// Longest id.
const MAX_ID: usize = 100;
/// Most tags.
const MAX_TAGS: usize = 30;
/// Longest tag.
const MAX_TAG: usize = 50;
/// Longest title.
const MAX_TITLE: usize = 300;
/// Longest description.
const MAX_DESCRIPTION: usize = 5000;

/// Whether `s` is 1 to `max` characters without control characters and not blank (the
/// document's pattern of ids and tags).
fn printable(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// Pushes errors for a list of ids as sent (before any de-duplication, as the document counts).
pub(super) fn check_ids(errors: &mut Vec<FieldError>, field: &str, ids: &[String]) {
    if ids.len() > MAX_LIST {
        errors.push(FieldError::new(field, format!("must have at most {MAX_LIST} entries")));
    }
    for (i, id) in ids.iter().enumerate() {
        if !printable(id, MAX_ID) {
            errors.push(FieldError::new(format!("{field}[{i}]"), "must be 1 to 100 printable characters"));
        }
    }
}

fn check_id(errors: &mut Vec<FieldError>, field: &str, id: &str) {
    if !printable(id, MAX_ID) {
        errors.push(FieldError::new(field, "must be 1 to 100 printable characters"));
    }
}

/// Checks the tags as sent; returns them lower-case, trimmed, de-duplicated.
fn normalise_tags(errors: &mut Vec<FieldError>, tags: &[String]) -> Vec<String> {
    if tags.len() > MAX_TAGS {
        errors.push(FieldError::new("tags", format!("must have at most {MAX_TAGS} entries")));
    }
    for (i, t) in tags.iter().enumerate() {
        if !printable(t, MAX_TAG) {
            errors.push(FieldError::new(format!("tags[{i}]"), "must be 1 to 50 printable characters"));
        }
    }
    let mut out: Vec<String> = tags.iter().map(|t| t.trim().to_lowercase()).collect();
    out.sort();
    out.dedup();
    out
}

/// [`require_text`], and no NUL (PostgreSQL text cannot hold one).
fn check_title(errors: &mut Vec<FieldError>, title: &str) {
    if title.contains('\0') {
        errors.push(FieldError::new("title", "must not contain NUL characters"));
    } else {
        require_text(errors, "title", title, MAX_TITLE);
    }
}

fn check_description(errors: &mut Vec<FieldError>, d: &Option<String>) {
    if let Some(d) = d {
        if d.chars().count() > MAX_DESCRIPTION {
            errors.push(FieldError::new("description", format!("must be at most {MAX_DESCRIPTION} characters")));
        } else if d.contains('\0') {
            errors.push(FieldError::new("description", "must not contain NUL characters"));
        }
    }
}

impl NewContent {
    /// Validates and normalises (tags, course ids de-duplicated).
    pub fn validate(&mut self) -> Result<()> {
        let mut e = Vec::new();
        check_title(&mut e, &self.title);
        check_description(&mut e, &self.description);
        check_ids(&mut e, "course_ids", &self.course_ids);
        self.course_ids.sort();
        self.course_ids.dedup();
        check_ids(&mut e, "subject_ids", &self.subject_ids);
        if let Some(d) = &self.department_id {
            check_id(&mut e, "department_id", d);
        }
        self.tags = normalise_tags(&mut e, &self.tags);
        listing::finish(e)
    }
}

impl ContentUpdate {
    /// Validates the fields present and normalises tags.
    pub fn validate(&mut self) -> Result<()> {
        let mut e = Vec::new();
        if let Some(t) = &self.title {
            check_title(&mut e, t);
        }
        check_description(&mut e, &self.description);
        if let Some(s) = &self.subject_ids {
            check_ids(&mut e, "subject_ids", s);
        }
        if let Some(d) = &self.department_id {
            check_id(&mut e, "department_id", d);
        }
        if let Some(t) = &self.tags {
            self.tags = Some(normalise_tags(&mut e, t));
        }
        listing::finish(e)
    }
}

const ITEM_COLUMNS: &str = "c.id, c.title, c.description, c.content_type, c.department_id, c.subject_ids, \
    c.current_version, c.mongo_document_id, c.file_name, c.mime_type, c.file_size, c.sha256, c.is_published, \
    c.published_at, c.created_by, c.created_at, c.updated_at, \
    ARRAY(SELECT m.course_id FROM content_course_mapping m WHERE m.content_id = c.id ORDER BY m.course_id) AS course_ids, \
    ARRAY(SELECT t.name FROM content_tag_mapping tm JOIN content_tags t ON t.id = tm.tag_id \
          WHERE tm.content_id = c.id ORDER BY t.name) AS tags";

const SORTABLE: &[(&str, &str)] = &[
    ("created_at", "c.created_at"),
    ("title", "lower(c.title)"),
    ("updated_at", "c.updated_at"),
    ("file_size", "c.file_size"),
];

fn item(r: &Row) -> ContentItem {
    ContentItem {
        id: r.get("id"),
        title: r.get("title"),
        description: r.get("description"),
        content_type: r.get("content_type"),
        department_id: r.get("department_id"),
        subject_ids: r.get("subject_ids"),
        current_version: r.get("current_version"),
        mongo_document_id: r.get("mongo_document_id"),
        file_name: r.get("file_name"),
        mime_type: r.get("mime_type"),
        file_size: r.get("file_size"),
        sha256: r.get("sha256"),
        is_published: r.get("is_published"),
        published_at: r.get("published_at"),
        created_by: r.get("created_by"),
        course_ids: r.get("course_ids"),
        tags: r.get("tags"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

const VERSION_COLUMNS: &str =
    "version_number, mongo_document_id, file_name, mime_type, file_size, sha256, change_notes, created_by, created_at";

fn version(r: &Row) -> Version {
    Version {
        version_number: r.get("version_number"),
        mongo_document_id: r.get("mongo_document_id"),
        file_name: r.get("file_name"),
        mime_type: r.get("mime_type"),
        file_size: r.get("file_size"),
        sha256: r.get("sha256"),
        change_notes: r.get("change_notes"),
        created_by: r.get("created_by"),
        created_at: r.get("created_at"),
    }
}

fn not_found(id: Uuid) -> Error {
    Error::NotFound { what: "content", id: id.to_string() }
}

/// The item `id`, unless deleted.
pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<ContentItem> {
    let row = client
        .query_opt(
            &format!("SELECT {ITEM_COLUMNS} FROM content_metadata c WHERE c.id = $1 AND NOT c.is_deleted"),
            &[&id],
        )
        .await?;
    row.as_ref().map(item).ok_or_else(|| not_found(id))
}

/// One page of the items `visibility` may see that match `q`.
pub async fn list(
    client: &impl GenericClient,
    q: &ContentFilter,
    lq: &ListQuery,
    visibility: &Visibility,
) -> Result<Page<ContentItem>> {
    q.validate()?;
    let mut f = Filter::new();
    f.and_sql("NOT c.is_deleted");
    f.and("c.title ILIKE $?", q.title.as_ref().map(|t| format!("%{}%", escape_like(t))));
    f.and(
        "EXISTS (SELECT 1 FROM content_tag_mapping tm JOIN content_tags t ON t.id = tm.tag_id \
                 WHERE tm.content_id = c.id AND t.name = $?)",
        q.tag.as_ref().map(|t| t.trim().to_lowercase()),
    );
    f.and(
        "EXISTS (SELECT 1 FROM content_course_mapping m WHERE m.content_id = c.id AND m.course_id = $?)",
        q.course_id.clone(),
    );
    f.and("c.content_type = $?", q.content_type.clone());
    f.and("c.is_published = $?", q.is_published);
    f.and(
        "EXISTS (SELECT 1 FROM content_folder_items fi WHERE fi.content_id = c.id AND fi.folder_id = $?)",
        q.folder_id,
    );
    visibility.add_to(&mut f);
    listing::page(client, ITEM_COLUMNS, "content_metadata c", &f, lq, SORTABLE, item).await
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Whether `visibility` may see item `id` (which exists and is not deleted).
pub async fn visible(client: &impl GenericClient, id: Uuid, visibility: &Visibility) -> Result<bool> {
    let mut f = Filter::new();
    f.and("c.id = $?", Some(id)).and_sql("NOT c.is_deleted");
    visibility.add_to(&mut f);
    let sql = format!("SELECT count(*) FROM content_metadata c{}", f.where_sql());
    Ok(client.query_one(&sql, &f.params(&[])).await?.get::<_, i64>(0) > 0)
}

/// Every version of item `id`, newest first.
pub async fn versions(client: &impl GenericClient, id: Uuid) -> Result<Vec<Version>> {
    get(client, id).await?;
    let rows = client
        .query(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM content_versions WHERE content_id = $1 ORDER BY version_number DESC"
            ),
            &[&id],
        )
        .await?;
    Ok(rows.iter().map(version).collect())
}

/// Version `n` of item `id`.
pub async fn get_version(client: &impl GenericClient, id: Uuid, n: i32) -> Result<Version> {
    let row = client
        .query_opt(
            &format!("SELECT {VERSION_COLUMNS} FROM content_versions WHERE content_id = $1 AND version_number = $2"),
            &[&id, &n],
        )
        .await?;
    row.as_ref().map(version).ok_or_else(|| Error::NotFound { what: "content version", id: format!("{id}/{n}") })
}

async fn set_tags(tx: &tokio_postgres::Transaction<'_>, id: Uuid, tags: &[String]) -> Result<()> {
    tx.execute("DELETE FROM content_tag_mapping WHERE content_id = $1", &[&id]).await?;
    for t in tags {
        tx.execute("INSERT INTO content_tags (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", &[t]).await?;
        tx.execute(
            "INSERT INTO content_tag_mapping (content_id, tag_id) SELECT $1, id FROM content_tags WHERE name = $2 \
             ON CONFLICT DO NOTHING",
            &[&id, t],
        )
        .await?;
    }
    Ok(())
}

/// Records a freshly stored file as new content (version 1) and announces `CONTENT_CREATED`
/// (plus `CONTENT_PUBLISHED` when created published). `new` must be validated.
pub async fn create(
    pool: &Pool,
    store: &Store,
    actor: &Actor,
    new: &NewContent,
    file_name: &str,
    stored: &Stored,
) -> Result<ContentItem> {
    let result = async {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        let id = Uuid::new_v4();
        let by = actor.id();
        let content_type = sniff::content_type_of(&stored.mime_type);
        tx.execute(
            "INSERT INTO content_metadata (id, title, description, content_type, department_id, subject_ids, \
                 current_version, mongo_document_id, file_name, mime_type, file_size, sha256, is_published, \
                 published_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10, $11, $12, CASE WHEN $12 THEN now() END, $13)",
            &[
                &id,
                &new.title.trim(),
                &new.description,
                &content_type,
                &new.department_id,
                &new.subject_ids,
                &stored.id,
                &file_name,
                &stored.mime_type,
                &(stored.size as i64),
                &stored.sha256,
                &new.is_published,
                &by,
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO content_versions (content_id, version_number, mongo_document_id, file_name, mime_type, \
                 file_size, sha256, created_by) VALUES ($1, 1, $2, $3, $4, $5, $6, $7)",
            &[&id, &stored.id, &file_name, &stored.mime_type, &(stored.size as i64), &stored.sha256, &by],
        )
        .await?;
        for course in &new.course_ids {
            tx.execute("INSERT INTO content_course_mapping (content_id, course_id) VALUES ($1, $2)", &[&id, course])
                .await?;
        }
        set_tags(&tx, id, &new.tags).await?;
        let created = ContentCreatedPayload {
            content_id: id.to_string(),
            mongo_document_id: stored.id.clone(),
            title: new.title.trim().to_owned(),
            description: new.description.clone(),
            content_type: content_type.to_owned(),
            mime_type: stored.mime_type.clone(),
            file_size: stored.size as i64,
            created_by: by.clone(),
            course_ids: new.course_ids.clone(),
            subject_ids: new.subject_ids.clone(),
            department_id: new.department_id.clone(),
            is_published: new.is_published,
            tags: new.tags.clone(),
        };
        crate::outbox::publish(&tx, SERVICE, actor, ContentEvent::ContentCreated(created)).await?;
        if new.is_published {
            let published = ContentPublicationPayload {
                content_id: id.to_string(),
                title: new.title.trim().to_owned(),
                course_ids: new.course_ids.clone(),
                changed_by: by,
                changed_at: chrono::Utc::now(),
            };
            crate::outbox::publish(&tx, SERVICE, actor, ContentEvent::ContentPublished(published)).await?;
        }
        let created = get(&tx, id).await?;
        tx.commit().await?;
        Ok(created)
    }
    .await;
    if result.is_err() {
        forget(store, &stored.id).await;
    }
    result
}

async fn forget(store: &Store, file_id: &str) {
    if let Err(e) = store.delete(file_id).await {
        tracing::warn!(error = %e, file_id, "could not delete the bytes of a failed content command");
    }
}

/// Records a freshly stored file as the next version of `id` and announces `CONTENT_VERSIONED`.
pub async fn add_version(
    pool: &Pool,
    store: &Store,
    actor: &Actor,
    id: Uuid,
    file_name: &str,
    stored: &Stored,
    notes: &NewVersion,
) -> Result<Version> {
    let result = async {
        if notes.change_notes.as_ref().is_some_and(|n| n.chars().count() > 2000) {
            return Err(Error::Validation(vec![FieldError::new("change_notes", "must be at most 2000 characters")]));
        }
        if notes.change_notes.as_ref().is_some_and(|n| n.contains('\0')) {
            return Err(Error::Validation(vec![FieldError::new("change_notes", "must not contain NUL characters")]));
        }
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        // Lock the item so concurrent uploads get consecutive numbers.
        let row = tx
            .query_opt(
                "SELECT current_version FROM content_metadata WHERE id = $1 AND NOT is_deleted FOR UPDATE",
                &[&id],
            )
            .await?
            .ok_or_else(|| not_found(id))?;
        let n: i32 = row.get::<_, i32>(0) + 1;
        let by = actor.id();
        let size = stored.size as i64;
        let created_at: chrono::DateTime<chrono::Utc> = tx
            .query_one(
                "INSERT INTO content_versions (content_id, version_number, mongo_document_id, file_name, mime_type, \
                     file_size, sha256, change_notes, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 RETURNING created_at",
                &[&id, &n, &stored.id, &file_name, &stored.mime_type, &size, &stored.sha256, &notes.change_notes, &by],
            )
            .await?
            .get(0);
        tx.execute(
            "UPDATE content_metadata SET current_version = $2, mongo_document_id = $3, file_name = $4, mime_type = $5, \
                 file_size = $6, sha256 = $7, content_type = $8, updated_at = now() WHERE id = $1",
            &[
                &id,
                &n,
                &stored.id,
                &file_name,
                &stored.mime_type,
                &size,
                &stored.sha256,
                &sniff::content_type_of(&stored.mime_type),
            ],
        )
        .await?;
        let payload = ContentVersionedPayload {
            content_id: id.to_string(),
            version_number: n as u32,
            mongo_document_id: stored.id.clone(),
            mime_type: stored.mime_type.clone(),
            file_size: size,
            sha256: stored.sha256.clone(),
            change_notes: notes.change_notes.clone(),
            created_by: by,
            created_at,
        };
        crate::outbox::publish(&tx, SERVICE, actor, ContentEvent::ContentVersioned(payload)).await?;
        let v = get_version(&tx, id, n).await?;
        tx.commit().await?;
        Ok(v)
    }
    .await;
    if result.is_err() {
        forget(store, &stored.id).await;
    }
    result
}

fn change(changes: &mut Changes, field: &str, old: serde_json::Value, new: serde_json::Value) {
    if old != new {
        changes.insert(field.to_owned(), ChangeValue { old_value: old, new_value: new });
    }
}

/// Changes metadata and announces `CONTENT_UPDATED` with the changed fields (nothing when nothing
/// changed). `update` must be validated.
pub async fn update(pool: &Pool, actor: &Actor, id: Uuid, update: &ContentUpdate) -> Result<ContentItem> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT 1 FROM content_metadata WHERE id = $1 FOR UPDATE", &[&id]).await?;
    let old = get(&tx, id).await?;
    let mut changes = Changes::new();
    let title = update.title.as_ref().map(|t| t.trim().to_owned()).unwrap_or(old.title.clone());
    change(&mut changes, "title", json!(old.title), json!(title));
    let description = update.description.clone().or(old.description.clone());
    change(&mut changes, "description", json!(old.description), json!(description));
    let subjects = update.subject_ids.clone().unwrap_or(old.subject_ids.clone());
    change(&mut changes, "subject_ids", json!(old.subject_ids), json!(subjects));
    let department = update.department_id.clone().or(old.department_id.clone());
    change(&mut changes, "department_id", json!(old.department_id), json!(department));
    let tags = update.tags.clone().unwrap_or(old.tags.clone());
    change(&mut changes, "tags", json!(old.tags), json!(tags));
    if changes.is_empty() {
        return Ok(old);
    }
    tx.execute(
        "UPDATE content_metadata SET title = $2, description = $3, subject_ids = $4, department_id = $5, \
             updated_at = now() WHERE id = $1",
        &[&id, &title, &description, &subjects, &department],
    )
    .await?;
    if update.tags.is_some() {
        set_tags(&tx, id, &tags).await?;
    }
    announce_update(&tx, actor, id, changes).await?;
    let item = get(&tx, id).await?;
    tx.commit().await?;
    Ok(item)
}

async fn announce_update(
    tx: &tokio_postgres::Transaction<'_>,
    actor: &Actor,
    id: Uuid,
    changes: Changes,
) -> Result<()> {
    let payload = ContentUpdatedPayload {
        content_id: id.to_string(),
        changes,
        updated_by: actor.id(),
        updated_at: chrono::Utc::now(),
    };
    crate::outbox::publish(tx, SERVICE, actor, ContentEvent::ContentUpdated(payload)).await
}

/// Replaces the courses `id` is mapped to; announces `CONTENT_UPDATED` (`course_ids` changed).
pub async fn set_courses(pool: &Pool, actor: &Actor, id: Uuid, mut course_ids: Vec<String>) -> Result<ContentItem> {
    let mut e = Vec::new();
    check_ids(&mut e, "course_ids", &course_ids);
    listing::finish(e)?;
    course_ids.sort();
    course_ids.dedup();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT 1 FROM content_metadata WHERE id = $1 FOR UPDATE", &[&id]).await?;
    let old = get(&tx, id).await?;
    if old.course_ids == course_ids {
        return Ok(old);
    }
    tx.execute("DELETE FROM content_course_mapping WHERE content_id = $1", &[&id]).await?;
    for course in &course_ids {
        tx.execute("INSERT INTO content_course_mapping (content_id, course_id) VALUES ($1, $2)", &[&id, course])
            .await?;
    }
    tx.execute("UPDATE content_metadata SET updated_at = now() WHERE id = $1", &[&id]).await?;
    let mut changes = Changes::new();
    change(&mut changes, "course_ids", json!(old.course_ids), json!(course_ids));
    announce_update(&tx, actor, id, changes).await?;
    let item = get(&tx, id).await?;
    tx.commit().await?;
    Ok(item)
}

/// Publishes or unpublishes `id`; announces `CONTENT_PUBLISHED` / `CONTENT_UNPUBLISHED` when the
/// state changes (a repeated call changes and announces nothing).
pub async fn set_published(pool: &Pool, actor: &Actor, id: Uuid, publish: bool) -> Result<ContentItem> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT 1 FROM content_metadata WHERE id = $1 FOR UPDATE", &[&id]).await?;
    let old = get(&tx, id).await?;
    if old.is_published == publish {
        return Ok(old);
    }
    tx.execute(
        "UPDATE content_metadata SET is_published = $2, published_at = CASE WHEN $2 THEN now() END, \
             updated_at = now() WHERE id = $1",
        &[&id, &publish],
    )
    .await?;
    let payload = ContentPublicationPayload {
        content_id: id.to_string(),
        title: old.title.clone(),
        course_ids: old.course_ids.clone(),
        changed_by: actor.id(),
        changed_at: chrono::Utc::now(),
    };
    let event =
        if publish { ContentEvent::ContentPublished(payload) } else { ContentEvent::ContentUnpublished(payload) };
    crate::outbox::publish(&tx, SERVICE, actor, event).await?;
    let item = get(&tx, id).await?;
    tx.commit().await?;
    Ok(item)
}

/// Soft-deletes `id` (it disappears from every listing, download and manifest; the bytes stay
/// for audit and restore) and announces `CONTENT_DELETED`.
pub async fn delete(pool: &Pool, actor: &Actor, id: Uuid) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let by = actor.id();
    let row = tx
        .query_opt(
            "UPDATE content_metadata SET is_deleted = true, is_published = false, deleted_at = now(), deleted_by = $2, \
                 updated_at = now() WHERE id = $1 AND NOT is_deleted RETURNING mongo_document_id, deleted_at",
            &[&id, &by],
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    let payload = ContentDeletedPayload {
        content_id: id.to_string(),
        mongo_document_id: row.get(0),
        deleted_by: by,
        deleted_at: row.get(1),
        is_soft_delete: true,
    };
    crate::outbox::publish(&tx, SERVICE, actor, ContentEvent::ContentDeleted(payload)).await?;
    tx.commit().await?;
    Ok(())
}

/// The published content of `course_ids` for classroom nodes (see [`super::manifest`]).
pub async fn published_for_courses(
    client: &impl GenericClient,
    course_ids: &[String],
) -> Result<Vec<(ContentItem, Vec<String>)>> {
    let rows = client
        .query(
            &format!(
                "SELECT {ITEM_COLUMNS}, ARRAY(SELECT m.course_id FROM content_course_mapping m \
                     WHERE m.content_id = c.id AND m.course_id = ANY($1) ORDER BY m.course_id) AS for_courses \
                 FROM content_metadata c \
                 WHERE c.is_published AND NOT c.is_deleted AND EXISTS (SELECT 1 FROM content_course_mapping m \
                     WHERE m.content_id = c.id AND m.course_id = ANY($1)) \
                 ORDER BY c.id"
            ),
            &[&course_ids],
        )
        .await?;
    Ok(rows.iter().map(|r| (item(r), r.get("for_courses"))).collect())
}

/// A grant beyond the course mapping.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Permission {
    pub id: Uuid,
    /// `user`, `course` or `role`.
    pub grantee_type: String,
    pub grantee_id: String,
    /// `view`, `download`, `edit` or `manage`.
    pub permission: String,
    pub granted_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A permission to grant.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "grantee_type": "course", "grantee_id": "CS101", "permission": "download" }))]
pub struct NewPermission {
    #[schema(schema_with = grantee_types)]
    pub grantee_type: nimbus_core::event::content::Grantee,
    /// A user id, course id or role name: 1 to 100 printable characters.
    #[schema(schema_with = id_schema)]
    pub grantee_id: String,
    #[schema(schema_with = permission_kinds)]
    pub permission: nimbus_core::event::content::ContentPermission,
}

/// The JSON names of [`nimbus_core::event::content::Grantee`] (tested below).
const GRANTEE_TYPES: &[&str] = &["user", "course", "role"];
/// The JSON names of [`nimbus_core::event::content::ContentPermission`] (tested below).
const PERMISSIONS: &[&str] = &["view", "download", "edit", "manage"];

fn grantee_types() -> utoipa::openapi::Object {
    crate::http::schema::one_of(GRANTEE_TYPES)
}

fn permission_kinds() -> utoipa::openapi::Object {
    crate::http::schema::one_of(PERMISSIONS)
}

fn enum_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn permission(r: &Row) -> Permission {
    Permission {
        id: r.get("id"),
        grantee_type: r.get("grantee_type"),
        grantee_id: r.get("grantee_id"),
        permission: r.get("permission"),
        granted_by: r.get("granted_by"),
        created_at: r.get("created_at"),
    }
}

/// The grants on `id`.
pub async fn permissions(client: &impl GenericClient, id: Uuid) -> Result<Vec<Permission>> {
    get(client, id).await?;
    let rows = client
        .query(
            "SELECT id, grantee_type, grantee_id, permission, granted_by, created_at FROM content_permissions \
             WHERE content_id = $1 ORDER BY created_at, id",
            &[&id],
        )
        .await?;
    Ok(rows.iter().map(permission).collect())
}

async fn announce_permission(
    tx: &tokio_postgres::Transaction<'_>,
    actor: &Actor,
    id: Uuid,
    p: &Permission,
    granted: bool,
) -> Result<()> {
    use nimbus_core::event::content::{ContentPermission, ContentPermissionPayload, Grantee};
    fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
    let payload = ContentPermissionPayload {
        content_id: id.to_string(),
        permission_id: p.id.to_string(),
        grantee_type: parse(&p.grantee_type).unwrap_or(Grantee::User),
        grantee_id: p.grantee_id.clone(),
        permission: parse(&p.permission).unwrap_or(ContentPermission::View),
        changed_by: actor.id(),
        changed_at: chrono::Utc::now(),
    };
    let event = if granted {
        ContentEvent::ContentPermissionGranted(payload)
    } else {
        ContentEvent::ContentPermissionRevoked(payload)
    };
    crate::outbox::publish(tx, SERVICE, actor, event).await
}

/// Grants `new` on `id` (granting an existing grant again returns it unchanged) and announces
/// `CONTENT_PERMISSION_GRANTED`.
pub async fn grant(pool: &Pool, actor: &Actor, id: Uuid, new: &NewPermission) -> Result<Permission> {
    let mut e = Vec::new();
    check_id(&mut e, "grantee_id", &new.grantee_id);
    listing::finish(e)?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    get(&tx, id).await?;
    let (grantee_type, perm) = (enum_text(&new.grantee_type), enum_text(&new.permission));
    let inserted = tx
        .query_opt(
            "INSERT INTO content_permissions (content_id, grantee_type, grantee_id, permission, granted_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING \
             RETURNING id, grantee_type, grantee_id, permission, granted_by, created_at",
            &[&id, &grantee_type, &new.grantee_id.trim(), &perm, &actor.id()],
        )
        .await?;
    let p = match inserted {
        Some(r) => {
            let p = permission(&r);
            announce_permission(&tx, actor, id, &p, true).await?;
            p
        }
        None => permission(
            &tx.query_one(
                "SELECT id, grantee_type, grantee_id, permission, granted_by, created_at FROM content_permissions \
                 WHERE content_id = $1 AND grantee_type = $2 AND grantee_id = $3 AND permission = $4",
                &[&id, &grantee_type, &new.grantee_id.trim(), &perm],
            )
            .await?,
        ),
    };
    tx.commit().await?;
    Ok(p)
}

/// Revokes grant `permission_id` of `id` and announces `CONTENT_PERMISSION_REVOKED`.
pub async fn revoke(pool: &Pool, actor: &Actor, id: Uuid, permission_id: Uuid) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "DELETE FROM content_permissions WHERE id = $1 AND content_id = $2 \
             RETURNING id, grantee_type, grantee_id, permission, granted_by, created_at",
            &[&permission_id, &id],
        )
        .await?
        .ok_or_else(|| Error::NotFound { what: "content permission", id: permission_id.to_string() })?;
    announce_permission(&tx, actor, id, &permission(&row), false).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether `user_id` holds an `edit` or `manage` grant on `id`.
pub async fn may_edit(client: &impl GenericClient, id: Uuid, user_id: &str) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM content_permissions WHERE content_id = $1 AND grantee_type = 'user' \
                 AND grantee_id = $2 AND permission IN ('edit', 'manage'))",
            &[&id, &user_id],
        )
        .await?;
    Ok(row.get(0))
}

/// How one download went, for the access log.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Who (a user id, or `node:<node_id>` for a classroom node).
    pub user_id: String,
    /// The version served.
    pub version: i32,
    /// The client's address.
    pub ip_address: Option<String>,
    /// Its `User-Agent`.
    pub user_agent: Option<String>,
    /// `edge-node` for nodes; none for users.
    pub device_type: Option<String>,
    /// The byte range served (inclusive), if partial.
    pub range: Option<(u64, u64)>,
}

/// Logs a download in `content_access_logs` and announces `CONTENT_ACCESSED`, in one transaction.
pub async fn record_access(pool: &Pool, actor: &Actor, id: Uuid, access: &Access) -> Result<()> {
    use nimbus_core::event::content::{AccessType, ContentAccessedPayload};
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let (from, to) = match access.range {
        Some((a, b)) => (Some(a as i64), Some(b as i64)),
        None => (None, None),
    };
    let at: chrono::DateTime<chrono::Utc> = tx
        .query_one(
            "INSERT INTO content_access_logs (content_id, version_number, user_id, access_type, ip_address, \
                 user_agent, device_type, range_start, range_end) \
             VALUES ($1, $2, $3, 'download', $4, $5, $6, $7, $8) RETURNING accessed_at",
            &[
                &id,
                &access.version,
                &access.user_id,
                &access.ip_address,
                &access.user_agent,
                &access.device_type,
                &from,
                &to,
            ],
        )
        .await?
        .get(0);
    let payload = ContentAccessedPayload {
        content_id: id.to_string(),
        user_id: access.user_id.clone(),
        access_type: AccessType::Download,
        ip_address: access.ip_address.clone(),
        user_agent: access.user_agent.clone(),
        device_type: access.device_type.clone(),
        duration_seconds: None,
        accessed_at: at,
    };
    crate::outbox::publish(&tx, SERVICE, actor, ContentEvent::ContentAccessed(payload)).await?;
    tx.commit().await?;
    Ok(())
}
