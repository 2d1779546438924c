//! Departments (unique `code`).

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use uuid::Uuid;

use super::duplicate;
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::http::fields::{self, check_free_text, check_text};
use crate::listing::{self, Filter, ListQuery, Page};

/// A department.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Department {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub description: String,
    pub is_active: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A new department.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "code": "CSE", "name": "Computer Science and Engineering", "description": "Block B" }))]
pub struct NewDepartment {
    /// Unique.
    #[schema(schema_with = code)]
    pub code: String,
    #[schema(schema_with = name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = description)]
    pub description: String,
}

/// Changes to a department; absent (or null) fields stay.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentUpdate {
    #[schema(schema_with = maybe_name)]
    pub name: Option<String>,
    #[schema(schema_with = maybe_description)]
    pub description: Option<String>,
    pub is_active: Option<bool>,
}

fn code() -> utoipa::openapi::Object {
    fields::text(20, false)
}

fn name() -> utoipa::openapi::Object {
    fields::text(200, false)
}

fn maybe_name() -> utoipa::openapi::Object {
    fields::text(200, true)
}

fn description() -> utoipa::openapi::Object {
    fields::free_text(None, false)
}

fn maybe_description() -> utoipa::openapi::Object {
    fields::free_text(None, true)
}

/// Filters of [`list_departments`].
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DepartmentFilter {
    pub is_active: Option<bool>,
}

impl NewDepartment {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        check_text(&mut e, "code", &self.code, 20);
        check_text(&mut e, "name", &self.name, 200);
        check_free_text(&mut e, "description", &self.description);
        listing::finish(e)
    }
}

impl DepartmentUpdate {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        if let Some(n) = &self.name {
            check_text(&mut e, "name", n, 200);
        }
        if let Some(d) = &self.description {
            check_free_text(&mut e, "description", d);
        }
        listing::finish(e)
    }
}

const COLUMNS: &str = "id, code, name, description, is_active, created_at";
const SORTABLE: &[(&str, &str)] = &[("code", "code"), ("name", "name"), ("created_at", "created_at")];

impl crate::listing::Sorted for DepartmentFilter {
    const SORT: &'static [(&'static str, &'static str)] = SORTABLE;
}

fn from_row(r: &Row) -> Department {
    Department {
        id: r.get("id"),
        code: r.get("code"),
        name: r.get("name"),
        description: r.get("description"),
        is_active: r.get("is_active"),
        created_at: r.get("created_at"),
    }
}

/// Creates a department.
pub async fn create_department(pool: &Pool, _actor: &Actor, input: NewDepartment) -> Result<Department> {
    input.validate()?;
    let client = pool.get().await?;
    let code = input.code.trim().to_owned();
    let row = client
        .query_one(
            &format!("INSERT INTO departments (code, name, description) VALUES ($1, $2, $3) RETURNING {COLUMNS}"),
            &[&code, &input.name.trim(), &input.description],
        )
        .await
        .map_err(|e| {
            if listing::unique_violation(&e).is_some() { duplicate("department", "code", &code) } else { e.into() }
        })?;
    Ok(from_row(&row))
}

/// One department.
pub async fn get_department(pool: &Pool, id: Uuid) -> Result<Department> {
    let client = pool.get().await?;
    client
        .query_opt(&format!("SELECT {COLUMNS} FROM departments WHERE id = $1"), &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "department", id: id.to_string() })
}

/// Updates a department.
pub async fn update_department(pool: &Pool, _actor: &Actor, id: Uuid, input: DepartmentUpdate) -> Result<Department> {
    input.validate()?;
    let client = pool.get().await?;
    client
        .query_opt(
            &format!(
                "UPDATE departments SET name = COALESCE($2, name), description = COALESCE($3, description), \
                   is_active = COALESCE($4, is_active), updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &input.name.as_deref().map(str::trim), &input.description, &input.is_active],
        )
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "department", id: id.to_string() })
}

/// Departments, a page at a time.
pub async fn list_departments(pool: &Pool, filter: DepartmentFilter, query: ListQuery) -> Result<Page<Department>> {
    let client = pool.get().await?;
    let mut f = Filter::new();
    f.and("is_active = $?", filter.is_active);
    listing::page(&client, COLUMNS, "departments", &f, &query, SORTABLE, from_row).await
}
