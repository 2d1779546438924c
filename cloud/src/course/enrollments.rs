//! # Enrollments and the waitlist
//!
//! - Enrolling locks the course row (`SELECT … FOR UPDATE`), so concurrent enrollments into one
//!   course are decided one after another and can never exceed `max_students`.
//! - Below capacity the student is `enrolled` (`STUDENT_ENROLLED`); at capacity they are
//!   `waitlisted` at the next 1-based position (`WAITLIST_ADDED`).
//! - A student is in a course at most once (`UNIQUE (course_id, student_id)`): enrolling again
//!   while enrolled or waiting is a conflict; after a drop (or a fail) the row is reused.
//! - Dropping an enrolled student promotes the first waiting student in the same transaction
//!   (`STUDENT_DROPPED` then `WAITLIST_PROMOTED`); dropping a waiting one closes the gap in the
//!   queue. Raising a course's capacity promotes waiting students too.
//!
//! Every event carries the seed's `EnrollmentPayload` with the course's enrolled count after the
//! change (`current_count`) and its `max_capacity`.

use deadpool_postgres::Pool;
use nimbus_core::event::enrollment::{EnrolledBy, EnrollmentEvent, EnrollmentPayload};
use serde_json::json;
use tokio_postgres::{Row, Transaction};
use uuid::Uuid;

use super::publish;
use super::record::{self as courses, Course};
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::http::fields::{self, check_filter, check_text};
use crate::listing::{self, Filter, ListQuery, Page};

/// The statuses of an enrollment.
pub const STATUSES: &[&str] = &["enrolled", "waitlisted", "dropped", "completed", "failed"];

/// An enrollment (or a place on the waitlist).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Enrollment {
    pub id: Uuid,
    pub course_id: Uuid,
    pub student_id: String,
    /// `enrolled`, `waitlisted`, `dropped`, `completed` or `failed`.
    pub status: String,
    /// 1-based place in the queue while waitlisted.
    pub waitlist_position: Option<i32>,
    /// `self` or `admin`.
    pub enrolled_by: String,
    pub enrollment_date: chrono::DateTime<chrono::Utc>,
}

/// A request to enroll a student.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "course_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "student_id": "3f2e1d0c-9b8a-4765-8432-10fedcba9876", "enrolled_by": "admin" }))]
pub struct NewEnrollment {
    /// An existing course (else 422); an inactive one is a 409.
    pub course_id: Uuid,
    /// An active student's user id (else 422).
    #[schema(schema_with = student_id)]
    pub student_id: String,
    /// The seed's `enrolled_by`: `self` or `admin` (default).
    #[serde(default)]
    #[schema(schema_with = enrolled_by)]
    pub enrolled_by: EnrolledBy,
}

fn enrolled_by() -> utoipa::openapi::Object {
    let mut o = crate::http::schema::one_of(&["self", "admin"]);
    o.default = Some(serde_json::json!("admin"));
    o
}

fn student_id() -> utoipa::openapi::Object {
    fields::text(100, false)
}

fn statuses() -> utoipa::openapi::Object {
    crate::http::schema::one_of(STATUSES)
}

fn no_nul() -> utoipa::openapi::Object {
    fields::free_text(None, false)
}

/// Filters of [`list_enrollments`].
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EnrollmentFilter {
    pub course_id: Option<Uuid>,
    #[param(schema_with = no_nul)]
    pub student_id: Option<String>,
    /// One of [`STATUSES`].
    #[param(schema_with = statuses)]
    pub status: Option<String>,
}

impl NewEnrollment {
    /// Field-by-field validation.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        check_text(&mut e, "student_id", &self.student_id, 100);
        listing::finish(e)
    }
}

impl EnrollmentFilter {
    /// The filters' own checks.
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        check_filter(&mut e, "student_id", self.student_id.as_deref());
        if let Some(s) = self.status.as_deref()
            && !STATUSES.contains(&s)
        {
            e.push(FieldError::new("status", format!("must be one of {}", STATUSES.join(", "))));
        }
        listing::finish(e)
    }
}

const COLUMNS: &str = "id, course_id, student_id, status, waitlist_position, enrolled_by, enrollment_date";
const SORTABLE: &[(&str, &str)] = &[
    ("enrollment_date", "enrollment_date"),
    ("waitlist_position", "waitlist_position"),
    ("student_id", "student_id"),
    ("status", "status"),
];

impl crate::listing::Sorted for EnrollmentFilter {
    const SORT: &'static [(&'static str, &'static str)] = SORTABLE;
}

fn from_row(r: &Row) -> Enrollment {
    Enrollment {
        id: r.get("id"),
        course_id: r.get("course_id"),
        student_id: r.get("student_id"),
        status: r.get("status"),
        waitlist_position: r.get("waitlist_position"),
        enrolled_by: r.get("enrolled_by"),
        enrollment_date: r.get("enrollment_date"),
    }
}

fn by_name(b: EnrolledBy) -> &'static str {
    match b {
        EnrolledBy::Student => "self",
        EnrolledBy::Admin => "admin",
    }
}

fn by_value(s: &str) -> EnrolledBy {
    if s == "self" { EnrolledBy::Student } else { EnrolledBy::Admin }
}

/// Students enrolled in `course` now.
pub(crate) async fn enrolled_count(tx: &Transaction<'_>, course: Uuid) -> Result<i64> {
    Ok(tx
        .query_one("SELECT count(*) FROM course_enrollments WHERE course_id = $1 AND status = 'enrolled'", &[&course])
        .await?
        .get(0))
}

fn payload(e: &Enrollment, c: &Course, current: i64) -> EnrollmentPayload {
    EnrollmentPayload {
        enrollment_id: e.id.to_string(),
        student_id: e.student_id.clone(),
        course_id: c.id.to_string(),
        course_name: c.course_name.clone(),
        enrollment_date: e.enrollment_date,
        enrolled_by: by_value(&e.enrolled_by),
        current_count: i32::try_from(current).unwrap_or(i32::MAX),
        max_capacity: c.max_students,
    }
}

/// Enrolls an active student (as the user service has them, even before `user.events` told this
/// service), or puts them on the waitlist when the course is full.
pub async fn enroll(pool: &Pool, users: &Pool, actor: &Actor, input: NewEnrollment) -> Result<Enrollment> {
    input.validate()?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let course = courses::lock(&tx, input.course_id).await.map_err(|e| match e {
        Error::NotFound { .. } => Error::Unprocessable(vec![FieldError::new("course_id", "no such course")]),
        e => e,
    })?;
    if !course.is_active {
        return Err(Error::Conflict {
            message: format!("course {} is not active", course.course_code),
            details: json!({ "course_id": course.id }),
        });
    }
    let student = input.student_id.trim().to_owned();
    let directory = users.get().await?;
    if !super::profiles::ensure_active(&tx, &**directory, super::profiles::ProfileKind::Student, &student).await? {
        return Err(Error::Unprocessable(vec![FieldError::new("student_id", "no active student with this id")]));
    }
    let existing = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM course_enrollments WHERE course_id = $1 AND student_id = $2"),
            &[&course.id, &student],
        )
        .await?
        .map(|r| from_row(&r));
    if let Some(e) = &existing
        && matches!(e.status.as_str(), "enrolled" | "waitlisted" | "completed")
    {
        return Err(Error::Conflict {
            message: format!("the student is already {} in this course", e.status),
            details: json!({ "enrollment_id": e.id, "status": e.status, "waitlist_position": e.waitlist_position }),
        });
    }
    let enrolled = enrolled_count(&tx, course.id).await?;
    let full = enrolled >= i64::from(course.max_students);
    let position: Option<i32> = if full {
        Some(
            tx.query_one(
                "SELECT COALESCE(max(waitlist_position), 0) + 1 FROM course_enrollments \
                 WHERE course_id = $1 AND status = 'waitlisted'",
                &[&course.id],
            )
            .await?
            .get(0),
        )
    } else {
        None
    };
    let status = if full { "waitlisted" } else { "enrolled" };
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO course_enrollments (course_id, student_id, status, waitlist_position, enrolled_by) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (course_id, student_id) DO UPDATE SET status = EXCLUDED.status, \
                   waitlist_position = EXCLUDED.waitlist_position, enrolled_by = EXCLUDED.enrolled_by, \
                   enrollment_date = now(), updated_at = now() \
                 RETURNING {COLUMNS}"
            ),
            &[&course.id, &student, &status, &position, &by_name(input.enrolled_by)],
        )
        .await?;
    let e = from_row(&row);
    let event = if full {
        EnrollmentEvent::WaitlistAdded(payload(&e, &course, enrolled))
    } else {
        EnrollmentEvent::StudentEnrolled(payload(&e, &course, enrolled + 1))
    };
    publish(&tx, actor, event).await?;
    tx.commit().await?;
    Ok(e)
}

/// Drops a student from a course (enrolled or waiting). Dropping an enrolled student promotes
/// the first waiting one in the same transaction. Returns the dropped enrollment and the
/// promoted one, if any.
pub async fn drop_enrollment(
    pool: &Pool,
    actor: &Actor,
    course_id: Uuid,
    student_id: &str,
) -> Result<(Enrollment, Option<Enrollment>)> {
    let mut e = Vec::new();
    fields::check_free_text(&mut e, "student_id", student_id);
    listing::finish(e)?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let course = courses::lock(&tx, course_id).await?;
    let current = tx
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM course_enrollments WHERE course_id = $1 AND student_id = $2 \
                   AND status IN ('enrolled', 'waitlisted')"
            ),
            &[&course_id, &student_id],
        )
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| Error::NotFound { what: "enrollment", id: format!("{course_id}/{student_id}") })?;
    let row = tx
        .query_one(
            &format!(
                "UPDATE course_enrollments SET status = 'dropped', waitlist_position = NULL, updated_at = now() \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&current.id],
        )
        .await?;
    let dropped = from_row(&row);
    if let Some(pos) = current.waitlist_position {
        close_gap(&tx, course_id, pos).await?;
    }
    let count = enrolled_count(&tx, course_id).await?;
    publish(&tx, actor, EnrollmentEvent::StudentDropped(payload(&dropped, &course, count))).await?;
    let promoted =
        if current.status == "enrolled" { fill_from_waitlist(&tx, actor, &course).await?.pop() } else { None };
    tx.commit().await?;
    Ok((dropped, promoted))
}

async fn close_gap(tx: &Transaction<'_>, course: Uuid, position: i32) -> Result<()> {
    tx.execute(
        "UPDATE course_enrollments SET waitlist_position = waitlist_position - 1, updated_at = now() \
         WHERE course_id = $1 AND status = 'waitlisted' AND waitlist_position > $2",
        &[&course, &position],
    )
    .await?;
    Ok(())
}

/// Promotes waiting students, first come first served, while `course` (locked by the caller)
/// has free places; each promotion is announced as `WAITLIST_PROMOTED`.
pub(crate) async fn fill_from_waitlist(
    tx: &Transaction<'_>,
    actor: &Actor,
    course: &Course,
) -> Result<Vec<Enrollment>> {
    let mut promoted = Vec::new();
    loop {
        let count = enrolled_count(tx, course.id).await?;
        if count >= i64::from(course.max_students) {
            break;
        }
        let next = tx
            .query_opt(
                &format!(
                    "UPDATE course_enrollments SET status = 'enrolled', waitlist_position = NULL, updated_at = now() \
                     WHERE id = (SELECT id FROM course_enrollments WHERE course_id = $1 AND status = 'waitlisted' \
                                 ORDER BY waitlist_position LIMIT 1) \
                     RETURNING {COLUMNS}"
                ),
                &[&course.id],
            )
            .await?;
        let Some(row) = next else { break };
        let e = from_row(&row);
        close_gap(tx, course.id, 1).await?;
        publish(tx, actor, EnrollmentEvent::WaitlistPromoted(payload(&e, course, count + 1))).await?;
        promoted.push(e);
    }
    Ok(promoted)
}

/// Enrollments matching `filter`, a page at a time.
pub async fn list_enrollments(pool: &Pool, filter: EnrollmentFilter, query: ListQuery) -> Result<Page<Enrollment>> {
    filter.validate()?;
    let client = pool.get().await?;
    let mut f = Filter::new();
    f.and("course_id = $?", filter.course_id)
        .and("student_id = $?", filter.student_id)
        .and("status = $?", filter.status);
    listing::page(&client, COLUMNS, "course_enrollments", &f, &query, SORTABLE, from_row).await
}
