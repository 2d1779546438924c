//! The course row itself: [`Course`], how it is read, and `lock`, which enrollments and
//! capacity changes serialise on. Its own file so that `courses` (which promotes the waitlist
//! when capacity grows) and `enrollments` (which locks the course) both build on it without
//! importing each other in a loop.

use chrono::Utc;
use tokio_postgres::{Row, Transaction};
use uuid::Uuid;

use crate::error::{Error, Result};

/// A course.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Course {
    pub id: Uuid,
    pub course_code: String,
    pub course_name: String,
    pub subject_id: Uuid,
    pub department_id: Uuid,
    pub program_id: Uuid,
    pub semester_id: Option<Uuid>,
    pub semester: i32,
    pub academic_year: i32,
    pub max_students: i32,
    pub is_active: bool,
    pub created_by: String,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
}

pub(crate) const COLUMNS: &str = "id, course_code, course_name, subject_id, department_id, program_id, semester_id, \
    semester, academic_year, max_students, is_active, created_by, created_at, updated_at";
pub(crate) fn from_row(r: &Row) -> Course {
    Course {
        id: r.get("id"),
        course_code: r.get("course_code"),
        course_name: r.get("course_name"),
        subject_id: r.get("subject_id"),
        department_id: r.get("department_id"),
        program_id: r.get("program_id"),
        semester_id: r.get("semester_id"),
        semester: r.get("semester"),
        academic_year: r.get("academic_year"),
        max_students: r.get("max_students"),
        is_active: r.get("is_active"),
        created_by: r.get("created_by"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

/// The course, locked for the rest of `tx`: enrollments and capacity changes serialise on it.
pub(crate) async fn lock(tx: &Transaction<'_>, id: Uuid) -> Result<Course> {
    tx.query_opt(&format!("SELECT {COLUMNS} FROM courses WHERE id = $1 FOR UPDATE"), &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "course", id: id.to_string() })
}
