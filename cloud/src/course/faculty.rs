//! Faculty assignment: who teaches a course (`FACULTY_ASSIGNED` / `FACULTY_UNASSIGNED`).

use chrono::Utc;
use deadpool_postgres::Pool;
use nimbus_core::event::course::{CourseEvent, FacultyAssignmentPayload};
use uuid::Uuid;

use super::publish;
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::http::fields::{self, check_free_text, check_text};
use crate::listing;

/// The roles a faculty member can have on a course.
pub const ASSIGNMENT_ROLES: &[&str] = &["primary", "assistant", "guest"];

/// An assignment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Assignment {
    pub course_id: Uuid,
    pub faculty_id: String,
    pub assignment_role: String,
    pub assigned_by: String,
    pub assigned_at: chrono::DateTime<Utc>,
}

/// A new assignment.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "faculty_id": "3f2e1d0c-9b8a-4765-8432-10fedcba9876", "assignment_role": "primary" }))]
pub struct NewAssignment {
    /// An active faculty member's user id (else 422).
    #[schema(schema_with = faculty_id)]
    pub faculty_id: String,
    /// One of [`ASSIGNMENT_ROLES`].
    #[serde(default = "primary")]
    #[schema(schema_with = assignment_roles)]
    pub assignment_role: String,
}

fn primary() -> String {
    "primary".into()
}

fn faculty_id() -> utoipa::openapi::Object {
    fields::text(100, false)
}

fn assignment_roles() -> utoipa::openapi::Object {
    let mut o = crate::http::schema::one_of(ASSIGNMENT_ROLES);
    o.default = Some(serde_json::json!("primary"));
    o
}

impl NewAssignment {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        check_text(&mut e, "faculty_id", &self.faculty_id, 100);
        if !ASSIGNMENT_ROLES.contains(&self.assignment_role.as_str()) {
            e.push(FieldError::new("assignment_role", format!("must be one of {}", ASSIGNMENT_ROLES.join(", "))));
        }
        listing::finish(e)
    }
}

/// Assigns an active faculty member (as the user service has them, even before `user.events`
/// told this service) to a course; re-assigning changes the role.
pub async fn assign_faculty(
    pool: &Pool,
    users: &Pool,
    actor: &Actor,
    course_id: Uuid,
    input: NewAssignment,
) -> Result<Assignment> {
    input.validate()?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    super::record::lock(&tx, course_id).await?;
    let faculty_id = input.faculty_id.trim().to_owned();
    let directory = users.get().await?;
    if !super::profiles::ensure_active(&tx, &**directory, super::profiles::ProfileKind::Faculty, &faculty_id).await? {
        return Err(Error::Unprocessable(vec![FieldError::new("faculty_id", "no active faculty member with this id")]));
    }
    let row = tx
        .query_one(
            "INSERT INTO faculty_courses (course_id, faculty_id, assignment_role, assigned_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (course_id, faculty_id) DO UPDATE SET assignment_role = EXCLUDED.assignment_role \
             RETURNING course_id, faculty_id, assignment_role, assigned_by, assigned_at",
            &[&course_id, &faculty_id, &input.assignment_role, &actor.id()],
        )
        .await?;
    let a = Assignment {
        course_id: row.get(0),
        faculty_id: row.get(1),
        assignment_role: row.get(2),
        assigned_by: row.get(3),
        assigned_at: row.get(4),
    };
    let event = CourseEvent::FacultyAssigned(FacultyAssignmentPayload {
        course_id: course_id.to_string(),
        faculty_id: a.faculty_id.clone(),
        assignment_role: Some(a.assignment_role.clone()),
        changed_by: actor.id(),
        changed_at: Utc::now(),
    });
    publish(&tx, actor, event).await?;
    tx.commit().await?;
    Ok(a)
}

/// Removes a faculty member from a course.
pub async fn unassign_faculty(pool: &Pool, actor: &Actor, course_id: Uuid, faculty_id: &str) -> Result<()> {
    let mut e = Vec::new();
    check_free_text(&mut e, "faculty_id", faculty_id);
    listing::finish(e)?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "DELETE FROM faculty_courses WHERE course_id = $1 AND faculty_id = $2 RETURNING assignment_role",
            &[&course_id, &faculty_id],
        )
        .await?
        .ok_or_else(|| Error::NotFound { what: "faculty assignment", id: format!("{course_id}/{faculty_id}") })?;
    let event = CourseEvent::FacultyUnassigned(FacultyAssignmentPayload {
        course_id: course_id.to_string(),
        faculty_id: faculty_id.to_owned(),
        assignment_role: Some(row.get(0)),
        changed_by: actor.id(),
        changed_at: Utc::now(),
    });
    publish(&tx, actor, event).await?;
    tx.commit().await?;
    Ok(())
}

/// The assignments of a course.
pub async fn course_faculty(pool: &Pool, course_id: Uuid) -> Result<Vec<Assignment>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT course_id, faculty_id, assignment_role, assigned_by, assigned_at FROM faculty_courses \
             WHERE course_id = $1 ORDER BY assigned_at, faculty_id",
            &[&course_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Assignment {
            course_id: r.get(0),
            faculty_id: r.get(1),
            assignment_role: r.get(2),
            assigned_by: r.get(3),
            assigned_at: r.get(4),
        })
        .collect())
}
