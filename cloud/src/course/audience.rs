//! Who an audience is, from the course service's data: the students and faculty a bulk
//! notification or an announcement reaches when it targets departments, programs, courses or
//! semesters. Reads only.

use tokio_postgres::GenericClient;

use crate::error::Result;

/// An audience by the course service's dimensions; `None` does not narrow. Several dimensions
/// narrow together (students of program P *and* enrolled in course C).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    /// Departments: their programs' students and their faculty.
    pub department_ids: Option<Vec<String>>,
    /// Programs: their students.
    pub program_ids: Option<Vec<String>>,
    /// Courses: their enrolled students and their assigned faculty.
    pub course_ids: Option<Vec<String>>,
    /// Semester numbers: students enrolled in a course of that semester.
    pub semesters: Option<Vec<i32>>,
}

impl Audience {
    /// Whether no dimension narrows it (everyone).
    pub fn is_everyone(&self) -> bool {
        self.department_ids.is_none()
            && self.program_ids.is_none()
            && self.course_ids.is_none()
            && self.semesters.is_none()
    }
}

/// The user ids of the active students and faculty in `audience`, sorted and without
/// duplicates. Everyone known to the course service when nothing narrows it.
pub async fn members(db: &impl GenericClient, audience: &Audience) -> Result<Vec<String>> {
    // Each dimension is a condition on the person; absent dimensions are TRUE. Faculty match the
    // department and course dimensions only; a program or semester narrows to students.
    let rows = db
        .query(
            "WITH people AS (
               SELECT s.user_id, 'student' AS kind, s.program_id, p.department_id::text AS department_id
               FROM students s LEFT JOIN programs p ON p.id::text = s.program_id WHERE s.is_active
               UNION ALL
               SELECT f.user_id, 'faculty', NULL, f.department_id FROM faculties f WHERE f.is_active
             )
             SELECT DISTINCT user_id FROM people pe
             WHERE ($1::text[] IS NULL OR pe.department_id = ANY($1))
               AND ($2::text[] IS NULL OR (pe.kind = 'student' AND pe.program_id = ANY($2)))
               AND ($3::text[] IS NULL OR EXISTS (
                     SELECT 1 FROM course_enrollments e WHERE pe.kind = 'student' AND e.student_id = pe.user_id
                       AND e.status = 'enrolled' AND e.course_id::text = ANY($3))
                   OR EXISTS (
                     SELECT 1 FROM faculty_courses fc WHERE pe.kind = 'faculty' AND fc.faculty_id = pe.user_id
                       AND fc.course_id::text = ANY($3)))
               AND ($4::int[] IS NULL OR (pe.kind = 'student' AND EXISTS (
                     SELECT 1 FROM course_enrollments e JOIN courses c ON c.id = e.course_id
                     WHERE e.student_id = pe.user_id AND e.status = 'enrolled' AND c.semester = ANY($4))))
             ORDER BY user_id",
            &[&audience.department_ids, &audience.program_ids, &audience.course_ids, &audience.semesters],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Where one person stands in the course service's data: what announcements target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// The user id.
    pub user_id: String,
    /// A student's program's department, or a faculty member's own.
    pub department_ids: Vec<String>,
    /// A student's program.
    pub program_ids: Vec<String>,
    /// The semesters of the courses a student is enrolled in.
    pub semesters: Vec<i32>,
    /// The courses a student is enrolled in or a faculty member teaches.
    pub course_ids: Vec<String>,
}

/// The memberships of the active students and faculty among `user_ids` (everyone's when
/// `None`); a person with both profiles gets one membership with both sides' values.
pub async fn memberships(db: &impl GenericClient, user_ids: Option<&[String]>) -> Result<Vec<Membership>> {
    let rows = db
        .query(
            "WITH people AS (
               SELECT s.user_id, 'student' AS kind, s.program_id, p.department_id::text AS department_id
               FROM students s LEFT JOIN programs p ON p.id::text = s.program_id
               WHERE s.is_active AND ($1::text[] IS NULL OR s.user_id = ANY($1))
               UNION ALL
               SELECT f.user_id, 'faculty', NULL, f.department_id FROM faculties f
               WHERE f.is_active AND ($1::text[] IS NULL OR f.user_id = ANY($1))
             )
             SELECT pe.user_id, pe.program_id, pe.department_id,
                    CASE WHEN pe.kind = 'student' THEN ARRAY(
                        SELECT e.course_id::text FROM course_enrollments e
                        WHERE e.student_id = pe.user_id AND e.status = 'enrolled')
                    ELSE ARRAY(SELECT fc.course_id::text FROM faculty_courses fc WHERE fc.faculty_id = pe.user_id)
                    END AS courses,
                    CASE WHEN pe.kind = 'student' THEN ARRAY(
                        SELECT DISTINCT c.semester FROM course_enrollments e JOIN courses c ON c.id = e.course_id
                        WHERE e.student_id = pe.user_id AND e.status = 'enrolled')
                    ELSE '{}'::int[] END AS semesters
             FROM people pe ORDER BY pe.user_id",
            &[&user_ids],
        )
        .await?;
    let mut out: Vec<Membership> = Vec::with_capacity(rows.len());
    for r in rows {
        let user_id: String = r.get(0);
        if out.last().is_none_or(|m| m.user_id != user_id) {
            out.push(Membership { user_id, ..Membership::default() });
        }
        let m = out.last_mut().expect("pushed above");
        m.program_ids.extend(r.get::<_, Option<String>>(1));
        m.department_ids.extend(r.get::<_, Option<String>>(2));
        m.course_ids.extend(r.get::<_, Vec<String>>(3));
        m.semesters.extend(r.get::<_, Vec<i32>>(4));
    }
    for m in &mut out {
        for v in [&mut m.program_ids, &mut m.department_ids, &mut m.course_ids] {
            v.sort();
            v.dedup();
        }
        m.semesters.sort();
        m.semesters.dedup();
    }
    Ok(out)
}

/// Which of `course_ids` `faculty_id` is assigned to teach.
pub async fn taught_by(db: &impl GenericClient, faculty_id: &str, course_ids: &[String]) -> Result<Vec<String>> {
    let rows = db
        .query(
            "SELECT course_id::text FROM faculty_courses WHERE faculty_id = $1 AND course_id::text = ANY($2)
             ORDER BY 1",
            &[&faculty_id, &course_ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// How `user_id` belongs to course `course_id`: `Some("faculty")` when they teach it,
/// `Some("student")` when enrolled, `None` otherwise (also for a course id that is not one).
pub async fn role_in_course(db: &impl GenericClient, user_id: &str, course_id: &str) -> Result<Option<&'static str>> {
    let row = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM faculty_courses WHERE faculty_id = $1 AND course_id::text = $2),
                    EXISTS (SELECT 1 FROM course_enrollments WHERE student_id = $1 AND course_id::text = $2
                            AND status = 'enrolled')",
            &[&user_id, &course_id],
        )
        .await?;
    Ok(match (row.get(0), row.get(1)) {
        (true, _) => Some("faculty"),
        (false, true) => Some("student"),
        _ => None,
    })
}

/// The students enrolled in any of `course_ids`.
pub async fn enrolled_students(db: &impl GenericClient, course_ids: &[String]) -> Result<Vec<String>> {
    let rows = db
        .query(
            "SELECT DISTINCT student_id FROM course_enrollments
             WHERE status = 'enrolled' AND course_id::text = ANY($1) ORDER BY student_id",
            &[&course_ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
