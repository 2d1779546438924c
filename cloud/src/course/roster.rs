//! What classroom nodes need about courses (the downlink's roster snapshot).

use deadpool_postgres::GenericClient;
use nimbus_core::snapshot::{Enrollment, Faculty};

use crate::error::Result;

/// The assigned faculty (with active profiles; their sign-in credentials are the user service's,
/// see [`crate::user::classroom_credentials`]) and the
/// enrolled students of `course_ids`, names from the profiles (falling back to the e-mail, then
/// the id). Unknown ids match nothing.
pub async fn rosters(client: &impl GenericClient, course_ids: &[String]) -> Result<(Vec<Faculty>, Vec<Enrollment>)> {
    let faculty = client
        .query(
            "SELECT DISTINCT fc.faculty_id, COALESCE(NULLIF(f.name, ''), NULLIF(f.email, ''), fc.faculty_id) AS name \
             FROM faculty_courses fc LEFT JOIN faculties f ON f.user_id = fc.faculty_id \
             WHERE fc.course_id::text = ANY($1) AND COALESCE(f.is_active, true) \
             ORDER BY fc.faculty_id",
            &[&course_ids],
        )
        .await?
        .iter()
        .map(|r| Faculty { user_id: r.get(0), name: r.get(1), pin_hash: None, staff_number: None, email: None })
        .collect();
    let enrollments = client
        .query(
            "SELECT e.course_id::text, e.student_id, COALESCE(NULLIF(s.name, ''), NULLIF(s.email, ''), e.student_id) \
             FROM course_enrollments e LEFT JOIN students s ON s.user_id = e.student_id \
             WHERE e.course_id::text = ANY($1) AND e.status = 'enrolled' AND COALESCE(s.is_active, true) \
             ORDER BY e.course_id, e.student_id",
            &[&course_ids],
        )
        .await?
        .iter()
        .map(|r| Enrollment { course_id: r.get(0), student_id: r.get(1), name: r.get(2) })
        .collect();
    Ok((faculty, enrollments))
}

/// The courses `student_id` is enrolled in now.
pub async fn courses_of_student(client: &impl GenericClient, student_id: &str) -> Result<Vec<String>> {
    Ok(client
        .query(
            "SELECT course_id::text FROM course_enrollments WHERE student_id = $1 AND status = 'enrolled' \
             ORDER BY course_id",
            &[&student_id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
