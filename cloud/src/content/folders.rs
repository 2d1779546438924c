//! Folders: how faculty arrange a course's material (`content_folders`, `content_folder_items`).
//! A folder groups items; it grants nothing. Who may see an item is still the item's own
//! visibility, so a student listing a folder sees only what they could find by search. Folders
//! have no seed event (the contract has none); they are metadata of the content service alone.
//!
//! A folder's parent is fixed at creation, so the tree cannot get a cycle.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{self, delete, post, put};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::items::Visibility;
use super::state::ContentState;
use crate::error::{Error, FieldError, Result};
use crate::http::body::ObjectJson;
use crate::http::{Access, ApiPath, ApiRoutes, AppError, Caller};
use crate::listing::{self, Filter, ListQuery, Page};

/// A folder.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Folder {
    /// Its id.
    pub id: Uuid,
    /// Shown to users.
    pub name: String,
    /// The folder it is in (none: top level).
    pub parent_id: Option<Uuid>,
    /// The course it belongs to, if any (students see only their courses' folders).
    pub course_id: Option<String>,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Items in it (all of them, whoever asks).
    pub item_count: i64,
}

/// A new folder.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "name": "Week 1", "course_id": "CS101" }))]
pub struct NewFolder {
    /// 1 to 200 characters, not blank, no control characters.
    #[schema(schema_with = name_schema)]
    pub name: String,
    /// The parent folder (404 when there is none).
    pub parent_id: Option<Uuid>,
    /// The course (default: the parent's): 1 to 64 characters, not blank, no NUL.
    #[schema(schema_with = course_schema)]
    pub course_id: Option<String>,
}

/// Unicode `White_Space` and control characters, spelt out for the patterns (`\s` differs
/// between regex dialects).
const WHITE_SPACE: &str = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";
/// Longest folder name.
const MAX_NAME: usize = 200;
/// Longest course id of a folder.
const MAX_COURSE: usize = 64;

fn name_schema() -> utoipa::openapi::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_NAME))
        .pattern(Some(format!(r"^[^{CONTROL}]*[^{CONTROL}{WHITE_SPACE}][^{CONTROL}]*$")))
        .build()
}

fn course_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .min_length(Some(1))
        .max_length(Some(MAX_COURSE))
        .pattern(Some(format!(r"^[^\x00]*[^\x00{WHITE_SPACE}][^\x00]*$")))
        .build()
}

/// Filters of the folder list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FolderFilter {
    /// Children of this folder.
    pub parent_id: Option<Uuid>,
    /// Only top-level folders.
    pub top_level: Option<bool>,
    /// One course's folders (no NUL).
    #[param(pattern = r"^[^\x00]*$")]
    pub course_id: Option<String>,
}

impl crate::listing::Sorted for FolderFilter {
    const SORT: &'static [(&'static str, &'static str)] = &[("name", "f.name"), ("created_at", "f.created_at")];
}

/// An item to put into a folder.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderItem {
    /// The content item.
    pub content_id: Uuid,
}

const COLUMNS: &str = "f.id, f.name, f.parent_id, f.course_id, f.created_by, f.created_at,
                       (SELECT count(*) FROM content_folder_items i WHERE i.folder_id = f.id)";

fn folder(r: &tokio_postgres::Row) -> Folder {
    Folder {
        id: r.get(0),
        name: r.get(1),
        parent_id: r.get(2),
        course_id: r.get(3),
        created_by: r.get(4),
        created_at: r.get(5),
        item_count: r.get(6),
    }
}

impl NewFolder {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        if self.name.chars().any(char::is_control) {
            e.push(FieldError::new("name", "must not contain control characters"));
        } else {
            listing::require_text(&mut e, "name", &self.name, MAX_NAME);
        }
        if let Some(c) = &self.course_id {
            if c.contains('\0') {
                e.push(FieldError::new("course_id", "must not contain NUL characters"));
            } else {
                listing::require_text(&mut e, "course_id", c, MAX_COURSE);
            }
        }
        listing::finish(e)
    }
}

/// Creates a folder; a missing parent is a 404.
pub async fn create(client: &impl GenericClient, by: &str, input: NewFolder) -> Result<Folder> {
    input.validate()?;
    let course_id = match (input.parent_id, input.course_id) {
        (_, Some(c)) => Some(c),
        (Some(parent), None) => get(client, parent).await?.course_id,
        (None, None) => None,
    };
    if let Some(parent) = input.parent_id {
        get(client, parent).await?;
    }
    let row = client
        .query_one(
            "INSERT INTO content_folders (name, parent_id, course_id, created_by) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&input.name, &input.parent_id, &course_id, &by],
        )
        .await?;
    get(client, row.get(0)).await
}

/// One folder.
pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Folder> {
    let row = client.query_opt(&format!("SELECT {COLUMNS} FROM content_folders f WHERE f.id = $1"), &[&id]).await?;
    row.as_ref().map(folder).ok_or_else(|| Error::NotFound { what: "folder", id: id.to_string() })
}

/// Folders, a page at a time; a student sees folders of no course or of their courses.
pub async fn list(
    client: &impl GenericClient,
    filter: FolderFilter,
    visibility: &Visibility,
    query: ListQuery,
) -> Result<Page<Folder>> {
    if filter.course_id.as_ref().is_some_and(|c| c.contains('\0')) {
        return Err(Error::Validation(vec![FieldError::new("course_id", "must not contain NUL characters")]));
    }
    let (limit, offset, order) = query.resolve(<FolderFilter as crate::listing::Sorted>::SORT)?;
    let order = order.replace(", id", ", f.id");
    let mut f = Filter::new();
    f.and("f.parent_id = $?", filter.parent_id).and("f.course_id = $?", filter.course_id);
    if filter.top_level == Some(true) {
        f.and_sql("f.parent_id IS NULL");
    }
    if let Visibility::Student { courses, .. } = visibility {
        f.and("(f.course_id IS NULL OR f.course_id = ANY($?))", Some(courses.clone()));
    }
    let total: i64 = client
        .query_one(&format!("SELECT count(*) FROM content_folders f {}", f.where_sql()), &f.params(&[]))
        .await?
        .get(0);
    let n = f.len();
    let sql =
        format!("SELECT {COLUMNS} FROM content_folders f {} {order} LIMIT ${} OFFSET ${}", f.where_sql(), n + 1, n + 2);
    let rows = client.query(&sql, &f.params(&[&limit, &offset])).await?;
    Ok(Page { items: rows.iter().map(folder).collect(), total, limit, offset })
}

/// Deletes a folder and its subfolders; the items themselves stay.
pub async fn remove(client: &impl GenericClient, id: Uuid) -> Result<()> {
    if client.execute("DELETE FROM content_folders WHERE id = $1", &[&id]).await? == 0 {
        return Err(Error::NotFound { what: "folder", id: id.to_string() });
    }
    Ok(())
}

/// Puts an item into a folder (again: no change).
pub async fn add_item(client: &impl GenericClient, folder_id: Uuid, content_id: Uuid) -> Result<()> {
    get(client, folder_id).await?;
    super::items::get(client, content_id).await?;
    client
        .execute(
            "INSERT INTO content_folder_items (folder_id, content_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&folder_id, &content_id],
        )
        .await?;
    Ok(())
}

/// Takes an item out of a folder.
pub async fn remove_item(client: &impl GenericClient, folder_id: Uuid, content_id: Uuid) -> Result<()> {
    let n = client
        .execute(
            "DELETE FROM content_folder_items WHERE folder_id = $1 AND content_id = $2",
            &[&folder_id, &content_id],
        )
        .await?;
    if n == 0 {
        return Err(Error::NotFound { what: "folder item", id: format!("{folder_id}/{content_id}") });
    }
    Ok(())
}

/// The folder routes (items in a folder are listed by `GET /api/v1/content?folder_id=`).
pub fn routes() -> ApiRoutes<ContentState> {
    let read = Access::Permission("content:read");
    let write = Access::Permission("content:write");
    ApiRoutes::new()
        .route(Method::GET, "/api/v1/content-folders", read, routing::get(list_folders))
        .route(Method::POST, "/api/v1/content-folders", write, post(create_folder))
        .route(Method::GET, "/api/v1/content-folders/:id", read, routing::get(show_folder))
        .route(Method::DELETE, "/api/v1/content-folders/:id", write, delete(delete_folder))
        .route(Method::PUT, "/api/v1/content-folders/:id/items", write, put(add_folder_item))
        .route(Method::DELETE, "/api/v1/content-folders/:id/items/:content_id", write, delete(remove_folder_item))
}

/// The folder routes' OpenAPI paths.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_folders, create_folder, show_folder, delete_folder, add_folder_item, remove_folder_item))]
pub struct FolderApi;

async fn client(s: &ContentState) -> Result<deadpool_postgres::Object, AppError> {
    Ok(s.pool.get().await.map_err(Error::from)?)
}

#[utoipa::path(get, path = "/api/v1/content-folders", tag = "content", params(FolderFilter, crate::listing::Paging<FolderFilter>), responses((status = 200, description = "A page of folders: items, total, limit, offset")))]
async fn list_folders(
    State(s): State<ContentState>,
    axum::Extension(caller): axum::Extension<Caller>,
    l: crate::http::Listing<FolderFilter>,
) -> Result<Json<Page<Folder>>, AppError> {
    let visibility = s.visibility(&caller).await?;
    Ok(Json(list(&client(&s).await?, l.filter, &visibility, l.query).await?))
}

#[utoipa::path(post, path = "/api/v1/content-folders", tag = "content", request_body = NewFolder, responses((status = 201, description = "The folder", body = Folder), (status = 404, description = "No such parent")))]
async fn create_folder(
    State(s): State<ContentState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ObjectJson(input): ObjectJson<NewFolder>,
) -> Result<(StatusCode, Json<Folder>), AppError> {
    Ok((StatusCode::CREATED, Json(create(&client(&s).await?, &caller.user_id, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/content-folders/{id}", tag = "content", params(("id" = Uuid, Path)), responses((status = 200, description = "The folder", body = Folder), (status = 404, description = "No such folder, or not one of the student's courses")))]
async fn show_folder(
    State(s): State<ContentState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Folder>, AppError> {
    let f = get(&client(&s).await?, id).await?;
    if let Visibility::Student { courses, .. } = s.visibility(&caller).await?
        && f.course_id.as_ref().is_some_and(|c| !courses.contains(c))
    {
        return Err(AppError::from(Error::NotFound { what: "folder", id: id.to_string() }));
    }
    Ok(Json(f))
}

#[utoipa::path(delete, path = "/api/v1/content-folders/{id}", tag = "content", params(("id" = Uuid, Path)), responses((status = 204, description = "Deleted with its subfolders; the items stay")))]
async fn delete_folder(State(s): State<ContentState>, ApiPath(id): ApiPath<Uuid>) -> Result<StatusCode, AppError> {
    remove(&client(&s).await?, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/content-folders/{id}/items", tag = "content", params(("id" = Uuid, Path)), request_body = FolderItem, responses((status = 204, description = "The item is in the folder"), (status = 404, description = "No such folder or content item")))]
async fn add_folder_item(
    State(s): State<ContentState>,
    ApiPath(id): ApiPath<Uuid>,
    ObjectJson(item): ObjectJson<FolderItem>,
) -> Result<StatusCode, AppError> {
    add_item(&client(&s).await?, id, item.content_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/content-folders/{id}/items/{content_id}", tag = "content", params(("id" = Uuid, Path), ("content_id" = Uuid, Path)), responses((status = 204, description = "Taken out")))]
async fn remove_folder_item(
    State(s): State<ContentState>,
    ApiPath((id, content_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, AppError> {
    remove_item(&client(&s).await?, id, content_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
