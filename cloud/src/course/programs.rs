//! Degree programs of a department (unique `code`).

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use uuid::Uuid;

use super::duplicate;
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::http::fields::{self, check_text};
use crate::listing::{self, Filter, ListQuery, Page};

/// A program.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Program {
    pub id: Uuid,
    pub department_id: Uuid,
    pub code: String,
    pub name: String,
    pub degree_level: String,
    pub duration_semesters: i32,
    pub is_active: bool,
}

/// A new program.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "department_id": "0b6f3c1e-5d7a-4a43-9a59-2f4c1e9d8b10", "code": "BTECH-CSE", "name": "B.Tech Computer Science", "degree_level": "undergraduate", "duration_semesters": 8 }))]
pub struct NewProgram {
    /// An existing department (else 422).
    pub department_id: Uuid,
    /// Unique.
    #[schema(schema_with = code)]
    pub code: String,
    #[schema(schema_with = name)]
    pub name: String,
    #[serde(default = "undergraduate")]
    #[schema(schema_with = degree_level)]
    pub degree_level: String,
    #[serde(default = "eight")]
    #[schema(minimum = 1, maximum = 20, default = 8)]
    pub duration_semesters: i32,
}

fn code() -> utoipa::openapi::Object {
    fields::text(20, false)
}

fn name() -> utoipa::openapi::Object {
    fields::text(200, false)
}

fn degree_level() -> utoipa::openapi::Object {
    let mut o = fields::text(50, false);
    o.default = Some(serde_json::json!("undergraduate"));
    o
}

fn undergraduate() -> String {
    "undergraduate".into()
}

fn eight() -> i32 {
    8
}

/// Filters of [`list_programs`].
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProgramFilter {
    pub department_id: Option<Uuid>,
    pub is_active: Option<bool>,
}

impl NewProgram {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        check_text(&mut e, "code", &self.code, 20);
        check_text(&mut e, "name", &self.name, 200);
        check_text(&mut e, "degree_level", &self.degree_level, 50);
        if !(1..=20).contains(&self.duration_semesters) {
            e.push(FieldError::new("duration_semesters", "must be between 1 and 20"));
        }
        listing::finish(e)
    }
}

const COLUMNS: &str = "id, department_id, code, name, degree_level, duration_semesters, is_active";
const SORTABLE: &[(&str, &str)] = &[("code", "code"), ("name", "name")];

impl crate::listing::Sorted for ProgramFilter {
    const SORT: &'static [(&'static str, &'static str)] = SORTABLE;
}

fn from_row(r: &Row) -> Program {
    Program {
        id: r.get("id"),
        department_id: r.get("department_id"),
        code: r.get("code"),
        name: r.get("name"),
        degree_level: r.get("degree_level"),
        duration_semesters: r.get("duration_semesters"),
        is_active: r.get("is_active"),
    }
}

/// Creates a program.
pub async fn create_program(pool: &Pool, _actor: &Actor, input: NewProgram) -> Result<Program> {
    input.validate()?;
    let client = pool.get().await?;
    let code = input.code.trim().to_owned();
    let row = client
        .query_one(
            &format!(
                "INSERT INTO programs (department_id, code, name, degree_level, duration_semesters) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            &[&input.department_id, &code, &input.name.trim(), &input.degree_level, &input.duration_semesters],
        )
        .await
        .map_err(|e| {
            if listing::unique_violation(&e).is_some() {
                duplicate("program", "code", &code)
            } else if listing::foreign_key_violation(&e) {
                Error::Unprocessable(vec![FieldError::new("department_id", "no such department")])
            } else {
                e.into()
            }
        })?;
    Ok(from_row(&row))
}

/// One program.
pub async fn get_program(pool: &Pool, id: Uuid) -> Result<Program> {
    let client = pool.get().await?;
    client
        .query_opt(&format!("SELECT {COLUMNS} FROM programs WHERE id = $1"), &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "program", id: id.to_string() })
}

/// Programs, a page at a time.
pub async fn list_programs(pool: &Pool, filter: ProgramFilter, query: ListQuery) -> Result<Page<Program>> {
    let client = pool.get().await?;
    let mut f = Filter::new();
    f.and("department_id = $?", filter.department_id).and("is_active = $?", filter.is_active);
    listing::page(&client, COLUMNS, "programs", &f, &query, SORTABLE, from_row).await
}
