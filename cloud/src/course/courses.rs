//! Courses: a subject offered to a program in a semester, with a unique `course_code` and a
//! capacity (`max_students`). Announced on `course.events`.

use chrono::Utc;
use deadpool_postgres::Pool;
use nimbus_core::event::course::{CourseCreatedPayload, CourseEvent, CourseRefPayload, CourseUpdatedPayload};
use nimbus_core::event::{ChangeValue, Changes};
use serde_json::json;
use uuid::Uuid;

pub use super::record::Course;
use super::record::{COLUMNS, from_row, lock};
use super::{duplicate, enrollments, publish};
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::http::fields::{self, check_text};
use crate::listing::{self, Filter, ListQuery, Page};

/// A new course.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "course_code": "CS201-F26", "course_name": "Data Structures", "subject_id": "7d1e0c55-3f0a-4c8e-a1d2-9b8c7d6e5f40", "department_id": "0b6f3c1e-5d7a-4a43-9a59-2f4c1e9d8b10", "program_id": "2c9a8b7d-6e5f-4a3b-8c1d-0e9f8a7b6c5d", "semester_id": null, "semester": 3, "academic_year": 2026, "max_students": 60 }))]
pub struct NewCourse {
    /// Unique.
    #[schema(schema_with = course_code)]
    pub course_code: String,
    #[schema(schema_with = course_name)]
    pub course_name: String,
    /// An existing subject (else 422), as are the department, program and semester.
    pub subject_id: Uuid,
    pub department_id: Uuid,
    pub program_id: Uuid,
    pub semester_id: Option<Uuid>,
    /// The program's semester number (1, 2, …).
    #[schema(minimum = 1, maximum = 20)]
    pub semester: i32,
    #[schema(minimum = 2000, maximum = 2200)]
    pub academic_year: i32,
    #[schema(minimum = 1, maximum = 10000)]
    pub max_students: i32,
}

/// Changes to a course; absent (or null) fields stay.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CourseUpdate {
    /// Unique (else 409).
    #[schema(schema_with = maybe_course_code)]
    pub course_code: Option<String>,
    #[schema(schema_with = maybe_course_name)]
    pub course_name: Option<String>,
    /// Not below the students already enrolled (else 422); raising it promotes waiting students.
    #[schema(minimum = 1, maximum = 10000)]
    pub max_students: Option<i32>,
    /// An existing semester (else 422).
    pub semester_id: Option<Uuid>,
}

fn course_code() -> utoipa::openapi::Object {
    fields::text(20, false)
}

fn maybe_course_code() -> utoipa::openapi::Object {
    fields::text(20, true)
}

fn course_name() -> utoipa::openapi::Object {
    fields::text(200, false)
}

fn maybe_course_name() -> utoipa::openapi::Object {
    fields::text(200, true)
}

/// Filters of [`list_courses`].
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CourseFilter {
    pub department_id: Option<Uuid>,
    pub program_id: Option<Uuid>,
    pub semester_id: Option<Uuid>,
    pub academic_year: Option<i32>,
    pub is_active: Option<bool>,
}

fn check_capacity(e: &mut Vec<FieldError>, n: i32) {
    if !(1..=10_000).contains(&n) {
        e.push(FieldError::new("max_students", "must be between 1 and 10000"));
    }
}

impl NewCourse {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        check_text(&mut e, "course_code", &self.course_code, 20);
        check_text(&mut e, "course_name", &self.course_name, 200);
        if !(1..=20).contains(&self.semester) {
            e.push(FieldError::new("semester", "must be between 1 and 20"));
        }
        if !(2000..=2200).contains(&self.academic_year) {
            e.push(FieldError::new("academic_year", "must be between 2000 and 2200"));
        }
        check_capacity(&mut e, self.max_students);
        listing::finish(e)
    }
}

impl CourseUpdate {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        if let Some(v) = &self.course_code {
            check_text(&mut e, "course_code", v, 20);
        }
        if let Some(v) = &self.course_name {
            check_text(&mut e, "course_name", v, 200);
        }
        if let Some(v) = self.max_students {
            check_capacity(&mut e, v);
        }
        listing::finish(e)
    }
}

const SORTABLE: &[(&str, &str)] = &[
    ("course_code", "course_code"),
    ("course_name", "course_name"),
    ("created_at", "created_at"),
    ("max_students", "max_students"),
];

impl crate::listing::Sorted for CourseFilter {
    const SORT: &'static [(&'static str, &'static str)] = SORTABLE;
}

fn reference_error(e: tokio_postgres::Error, code: &str) -> Error {
    if listing::unique_violation(&e).is_some() {
        duplicate("course", "course_code", code)
    } else if listing::foreign_key_violation(&e) {
        let field = match e.as_db_error().and_then(|d| d.constraint()) {
            Some(c) if c.contains("subject") => "subject_id",
            Some(c) if c.contains("program") => "program_id",
            Some(c) if c.contains("semester") => "semester_id",
            _ => "department_id",
        };
        Error::Unprocessable(vec![FieldError::new(field, "does not exist")])
    } else {
        e.into()
    }
}

/// Creates a course and announces `COURSE_CREATED`.
pub async fn create_course(pool: &Pool, actor: &Actor, input: NewCourse) -> Result<Course> {
    input.validate()?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let code = input.course_code.trim().to_owned();
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO courses (course_code, course_name, subject_id, department_id, program_id, semester_id, \
                   semester, academic_year, max_students, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
            ),
            &[
                &code,
                &input.course_name.trim(),
                &input.subject_id,
                &input.department_id,
                &input.program_id,
                &input.semester_id,
                &input.semester,
                &input.academic_year,
                &input.max_students,
                &actor.id(),
            ],
        )
        .await
        .map_err(|e| reference_error(e, &code))?;
    let c = from_row(&row);
    let event = CourseEvent::CourseCreated(CourseCreatedPayload {
        course_id: c.id.to_string(),
        course_code: c.course_code.clone(),
        course_name: c.course_name.clone(),
        subject_id: c.subject_id.to_string(),
        department_id: c.department_id.to_string(),
        program_id: c.program_id.to_string(),
        semester: c.semester,
        academic_year: c.academic_year,
        max_students: c.max_students,
        created_by: c.created_by.clone(),
    });
    publish(&tx, actor, event).await?;
    tx.commit().await?;
    Ok(c)
}

/// One course.
pub async fn get_course(pool: &Pool, id: Uuid) -> Result<Course> {
    let client = pool.get().await?;
    client
        .query_opt(&format!("SELECT {COLUMNS} FROM courses WHERE id = $1"), &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "course", id: id.to_string() })
}

/// Updates a course and announces `COURSE_UPDATED` with the changed fields. Capacity cannot
/// drop below the students already enrolled; raising it promotes waiting students.
pub async fn update_course(pool: &Pool, actor: &Actor, id: Uuid, input: CourseUpdate) -> Result<Course> {
    input.validate()?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let old = lock(&tx, id).await?;
    let enrolled = enrollments::enrolled_count(&tx, id).await?;
    if let Some(max) = input.max_students
        && i64::from(max) < enrolled
    {
        return Err(Error::Unprocessable(vec![FieldError::new(
            "max_students",
            format!("{enrolled} students are already enrolled"),
        )]));
    }
    let code = input.course_code.as_deref().map(|s| s.trim().to_owned());
    let row = tx
        .query_one(
            &format!(
                "UPDATE courses SET course_code = COALESCE($2, course_code), course_name = COALESCE($3, course_name), \
                   max_students = COALESCE($4, max_students), semester_id = COALESCE($5, semester_id), updated_at = now() \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &code, &input.course_name.as_deref().map(str::trim), &input.max_students, &input.semester_id],
        )
        .await
        .map_err(|e| reference_error(e, code.as_deref().unwrap_or_default()))?;
    let new = from_row(&row);
    let mut changes = Changes::new();
    let mut change = |name: &str, o: serde_json::Value, n: serde_json::Value| {
        if o != n {
            changes.insert(name.to_owned(), ChangeValue { old_value: o, new_value: n });
        }
    };
    change("course_code", json!(old.course_code), json!(new.course_code));
    change("course_name", json!(old.course_name), json!(new.course_name));
    change("max_students", json!(old.max_students), json!(new.max_students));
    change("semester_id", json!(old.semester_id), json!(new.semester_id));
    if !changes.is_empty() {
        let event = CourseEvent::CourseUpdated(CourseUpdatedPayload {
            course_id: id.to_string(),
            changes,
            updated_by: actor.id(),
            updated_at: new.updated_at,
        });
        publish(&tx, actor, event).await?;
    }
    if new.max_students > old.max_students {
        enrollments::fill_from_waitlist(&tx, actor, &new).await?;
    }
    tx.commit().await?;
    Ok(new)
}

fn reference(c: &Course, actor: &Actor) -> CourseRefPayload {
    CourseRefPayload {
        course_id: c.id.to_string(),
        course_code: c.course_code.clone(),
        changed_by: actor.id(),
        changed_at: Utc::now(),
    }
}

/// Activates or deactivates a course (`COURSE_ACTIVATED` / `COURSE_DEACTIVATED`). An inactive
/// course takes no enrollments, and the timetable service removes its entries.
pub async fn set_course_active(pool: &Pool, actor: &Actor, id: Uuid, active: bool) -> Result<Course> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let old = lock(&tx, id).await?;
    if old.is_active == active {
        return Ok(old);
    }
    let row = tx
        .query_one(
            &format!("UPDATE courses SET is_active = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"),
            &[&id, &active],
        )
        .await?;
    let c = from_row(&row);
    let payload = reference(&c, actor);
    let event = if active { CourseEvent::CourseActivated(payload) } else { CourseEvent::CourseDeactivated(payload) };
    publish(&tx, actor, event).await?;
    tx.commit().await?;
    Ok(c)
}

/// Deletes a course that has no enrolled or waiting students (`COURSE_DELETED`).
pub async fn delete_course(pool: &Pool, actor: &Actor, id: Uuid) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let c = lock(&tx, id).await?;
    let active: i64 = tx
        .query_one(
            "SELECT count(*) FROM course_enrollments WHERE course_id = $1 AND status IN ('enrolled', 'waitlisted')",
            &[&id],
        )
        .await?
        .get(0);
    if active > 0 {
        return Err(Error::Conflict {
            message: format!("{active} students are enrolled or waiting; deactivate the course instead"),
            details: json!({ "course_id": id, "students": active }),
        });
    }
    tx.execute("DELETE FROM courses WHERE id = $1", &[&id]).await?;
    publish(&tx, actor, CourseEvent::CourseDeleted(reference(&c, actor))).await?;
    tx.commit().await?;
    Ok(())
}

/// Courses, a page at a time.
pub async fn list_courses(pool: &Pool, filter: CourseFilter, query: ListQuery) -> Result<Page<Course>> {
    let client = pool.get().await?;
    let mut f = Filter::new();
    f.and("department_id = $?", filter.department_id)
        .and("program_id = $?", filter.program_id)
        .and("semester_id = $?", filter.semester_id)
        .and("academic_year = $?", filter.academic_year)
        .and("is_active = $?", filter.is_active);
    listing::page(&client, COLUMNS, "courses", &f, &query, SORTABLE, from_row).await
}

/// Records that `prerequisite` must be passed before `course` (no self-reference, no cycles of
/// two). `course` must exist (404); `prerequisite` is the body's `course_id` (422 when missing).
pub async fn add_prerequisite(pool: &Pool, _actor: &Actor, course: Uuid, prerequisite: Uuid) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    must_exist(&tx, course).await?;
    if course == prerequisite {
        return Err(Error::Unprocessable(vec![FieldError::new("course_id", "a course cannot require itself")]));
    }
    let reverse = tx
        .query_opt(
            "SELECT 1 FROM course_prerequisites WHERE course_id = $1 AND prerequisite_id = $2",
            &[&prerequisite, &course],
        )
        .await?;
    if reverse.is_some() {
        return Err(Error::Conflict {
            message: "the prerequisite already requires this course".into(),
            details: json!({ "course_id": course, "prerequisite_id": prerequisite }),
        });
    }
    tx.execute(
        "INSERT INTO course_prerequisites (course_id, prerequisite_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&course, &prerequisite],
    )
    .await
    .map_err(|e| no_such_course(e, "course_id"))?;
    tx.commit().await?;
    Ok(())
}

/// Records that `corequisite` must be taken together with `course` (which must exist: 404; the
/// corequisite is the body's `course_id`, 422 when missing).
pub async fn add_corequisite(pool: &Pool, _actor: &Actor, course: Uuid, corequisite: Uuid) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    must_exist(&tx, course).await?;
    if course == corequisite {
        return Err(Error::Unprocessable(vec![FieldError::new("course_id", "a course cannot require itself")]));
    }
    tx.execute(
        "INSERT INTO course_corequisites (course_id, corequisite_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&course, &corequisite],
    )
    .await
    .map_err(|e| no_such_course(e, "course_id"))?;
    tx.commit().await?;
    Ok(())
}

/// 404 unless `course` exists; kept until `tx` ends (a key-share lock, which links taken in
/// both directions at once do not wait on).
async fn must_exist(tx: &tokio_postgres::Transaction<'_>, course: Uuid) -> Result<()> {
    match tx.query_opt("SELECT 1 FROM courses WHERE id = $1 FOR KEY SHARE", &[&course]).await? {
        Some(_) => Ok(()),
        None => Err(Error::NotFound { what: "course", id: course.to_string() }),
    }
}

fn no_such_course(e: tokio_postgres::Error, field: &str) -> Error {
    if listing::foreign_key_violation(&e) {
        Error::Unprocessable(vec![FieldError::new(field, "no such course")])
    } else {
        e.into()
    }
}
