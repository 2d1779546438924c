//! Subjects (unique `code`): what a course teaches; a course is a subject offered in a semester.

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use uuid::Uuid;

use super::duplicate;
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::http::fields::{self, check_free_text, check_text};
use crate::listing::{self, Filter, ListQuery, Page};

/// A subject.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Subject {
    pub id: Uuid,
    pub department_id: Uuid,
    pub code: String,
    pub name: String,
    pub credits: i32,
    pub description: String,
}

/// A new subject.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "department_id": "0b6f3c1e-5d7a-4a43-9a59-2f4c1e9d8b10", "code": "CS201", "name": "Data Structures", "credits": 4, "description": "Lists, trees, graphs" }))]
pub struct NewSubject {
    /// An existing department (else 422).
    pub department_id: Uuid,
    /// Unique.
    #[schema(schema_with = code)]
    pub code: String,
    #[schema(schema_with = name)]
    pub name: String,
    #[schema(minimum = 0, maximum = 30)]
    pub credits: i32,
    #[serde(default)]
    #[schema(schema_with = description)]
    pub description: String,
}

fn code() -> utoipa::openapi::Object {
    fields::text(20, false)
}

fn name() -> utoipa::openapi::Object {
    fields::text(200, false)
}

fn description() -> utoipa::openapi::Object {
    fields::free_text(None, false)
}

/// Filters of [`list_subjects`].
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubjectFilter {
    pub department_id: Option<Uuid>,
}

impl NewSubject {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        check_text(&mut e, "code", &self.code, 20);
        check_text(&mut e, "name", &self.name, 200);
        check_free_text(&mut e, "description", &self.description);
        if !(0..=30).contains(&self.credits) {
            e.push(FieldError::new("credits", "must be between 0 and 30"));
        }
        listing::finish(e)
    }
}

const COLUMNS: &str = "id, department_id, code, name, credits, description";
const SORTABLE: &[(&str, &str)] = &[("code", "code"), ("name", "name"), ("credits", "credits")];

impl crate::listing::Sorted for SubjectFilter {
    const SORT: &'static [(&'static str, &'static str)] = SORTABLE;
}

fn from_row(r: &Row) -> Subject {
    Subject {
        id: r.get("id"),
        department_id: r.get("department_id"),
        code: r.get("code"),
        name: r.get("name"),
        credits: r.get("credits"),
        description: r.get("description"),
    }
}

/// Creates a subject.
pub async fn create_subject(pool: &Pool, _actor: &Actor, input: NewSubject) -> Result<Subject> {
    input.validate()?;
    let client = pool.get().await?;
    let code = input.code.trim().to_owned();
    let row = client
        .query_one(
            &format!(
                "INSERT INTO subjects (department_id, code, name, credits, description) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            &[&input.department_id, &code, &input.name.trim(), &input.credits, &input.description],
        )
        .await
        .map_err(|e| {
            if listing::unique_violation(&e).is_some() {
                duplicate("subject", "code", &code)
            } else if listing::foreign_key_violation(&e) {
                Error::Unprocessable(vec![FieldError::new("department_id", "no such department")])
            } else {
                e.into()
            }
        })?;
    Ok(from_row(&row))
}

/// One subject.
pub async fn get_subject(pool: &Pool, id: Uuid) -> Result<Subject> {
    let client = pool.get().await?;
    client
        .query_opt(&format!("SELECT {COLUMNS} FROM subjects WHERE id = $1"), &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "subject", id: id.to_string() })
}

/// Subjects, a page at a time.
pub async fn list_subjects(pool: &Pool, filter: SubjectFilter, query: ListQuery) -> Result<Page<Subject>> {
    let client = pool.get().await?;
    let mut f = Filter::new();
    f.and("department_id = $?", filter.department_id);
    listing::page(&client, COLUMNS, "subjects", &f, &query, SORTABLE, from_row).await
}
