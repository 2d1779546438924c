//! Departments (unique `code`).

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use uuid::Uuid;

use super::duplicate;
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::listing::{self, Filter, ListQuery, Page, require_text};

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
pub struct NewDepartment {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// Changes to a department.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
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
        require_text(&mut e, "code", &self.code, 20);
        require_text(&mut e, "name", &self.name, 200);
        listing::finish(e)
    }
}

impl DepartmentUpdate {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        if let Some(n) = &self.name {
            require_text(&mut e, "name", n, 200);
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
