//! The attendance service's Kafka handler: attendance from `attendance.events` (published by the
//! edge ingest on the service's behalf) into `attendance_service_db`, reference data from
//! `course.events` and `enrollment.events`.
//!
//! ## Counting
//!
//! - A class is one `attendance_id` (a session); a student has at most one record per class
//!   (`UNIQUE (attendance_id, student_id)`). The summary moves only when a record is inserted or
//!   its status changes, so a session re-sent under another event id (a node resending, a bulk
//!   import of the same class) never counts twice.
//! - Re-sent marks: the newest statement wins. A mark replaces a record's status only if its
//!   `marked_at` is newer than the time the current status was stated (`status_at`); a plain
//!   resend changes nothing.
//! - Corrections (`ATTENDANCE_UPDATED`) always apply (they are a person's explicit decision), once
//!   per `correction_id`, and move `status_at` forward so an older mark arriving later cannot
//!   undo them. The correction row keeps the status the record really had (`old_status`, what the
//!   summary moved away from) and the one the event claimed (`reported_old_status`). A correction
//!   of a record that does not exist is an error: with events keyed by course, its mark should
//!   have arrived first, so it is retried and then dead-lettered for replay.
//! - **Excused classes are excluded** from `total_classes` and hence from the percentage: an
//!   excused absence neither helps nor hurts. `attended` counts present and late students, as the
//!   seed's `present_count` does.

use nimbus_core::event::attendance::{AttendanceMarkedPayload, AttendanceStatus, AttendanceUpdatedPayload};
use nimbus_core::event::course::CourseEvent;
use nimbus_core::event::enrollment::EnrollmentEvent;
use nimbus_core::event::{AnyEvent, AttendanceEvent, Envelope};
use tokio_postgres::Transaction;

use crate::consumer::{Handler, HandlerError, Origin};
use crate::error::Result;

/// The attendance service's [`Handler`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AttendanceHandler;

impl Handler for AttendanceHandler {
    async fn handle(&self, tx: &Transaction<'_>, event: &AnyEvent, _origin: &Origin<'_>) -> Result<(), HandlerError> {
        match event {
            AnyEvent::Attendance(env) => match &env.event {
                AttendanceEvent::AttendanceMarked(p) | AttendanceEvent::AttendanceBulkMarked(p) => {
                    mark(tx, env, p).await
                }
                AttendanceEvent::AttendanceUpdated(p) => correct(tx, env, p).await,
                // Our own alerts coming back, and reports: nothing to store.
                AttendanceEvent::LowAttendanceAlert(_) | AttendanceEvent::AttendanceReportGenerated(_) => Ok(()),
            },
            AnyEvent::Course(env) => course(tx, env).await,
            AnyEvent::Enrollment(env) => enrollment(tx, env).await,
            _ => Ok(()),
        }
    }
}

/// Edge provenance from the envelope's metadata (absent for events that did not come from a node).
struct Provenance {
    source: Option<String>,
    node_id: Option<String>,
    seq: Option<i64>,
    clock_synced: Option<bool>,
}

impl Provenance {
    fn of<E>(env: &Envelope<E>) -> Self {
        let get = |k: &str| env.metadata.as_ref().and_then(|m| m.get(k)).cloned();
        Provenance {
            source: get("source"),
            node_id: get("node_id"),
            seq: get("seq").and_then(|s| s.parse().ok()),
            clock_synced: get("clock_synced").and_then(|s| s.parse().ok()),
        }
    }
}

fn parse_status(s: &str) -> Result<AttendanceStatus, HandlerError> {
    Ok(match s {
        "present" => AttendanceStatus::Present,
        "absent" => AttendanceStatus::Absent,
        "late" => AttendanceStatus::Late,
        "excused" => AttendanceStatus::Excused,
        other => return Err(HandlerError::Rejected(format!("unknown attendance status {other:?} in the database"))),
    })
}

/// Moves one student's summary from `old` to `new` (either may be absent: a new record, or none).
async fn adjust_summary(
    tx: &Transaction<'_>,
    student_id: &str,
    course_id: &str,
    old: Option<AttendanceStatus>,
    new: Option<AttendanceStatus>,
) -> Result<(), HandlerError> {
    if old == new {
        return Ok(());
    }
    let delta = |s: AttendanceStatus| -> i32 { i32::from(new == Some(s)) - i32::from(old == Some(s)) };
    let deltas = [
        delta(AttendanceStatus::Present),
        delta(AttendanceStatus::Late),
        delta(AttendanceStatus::Absent),
        delta(AttendanceStatus::Excused),
    ];
    let [present, late, absent, excused] = &deltas;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&student_id, &course_id, present, late, absent, excused];
    // UPDATE first: PostgreSQL checks an upsert's proposed row (with a negative delta) against
    // the CHECK constraints before it finds the conflict.
    let updated = tx
        .execute(
            "UPDATE attendance_summary SET present = present + $3, late = late + $4, absent = absent + $5, \
               excused = excused + $6, updated_at = now() \
             WHERE student_id = $1 AND course_id = $2",
            &params,
        )
        .await?;
    if updated == 1 {
        return Ok(());
    }
    if deltas.iter().any(|d| *d < 0) {
        return Err(HandlerError::Rejected(format!(
            "no attendance summary for student {student_id} in course {course_id}, yet a record of it changes"
        )));
    }
    tx.execute(
        "INSERT INTO attendance_summary AS s (student_id, course_id, present, late, absent, excused) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (student_id, course_id) DO UPDATE SET \
           present = s.present + EXCLUDED.present, late = s.late + EXCLUDED.late, \
           absent = s.absent + EXCLUDED.absent, excused = s.excused + EXCLUDED.excused, updated_at = now()",
        &params,
    )
    .await?;
    Ok(())
}

/// `ATTENDANCE_MARKED` / `ATTENDANCE_BULK_MARKED`: one record per student, counted once.
async fn mark(
    tx: &Transaction<'_>,
    env: &Envelope<AttendanceEvent>,
    p: &AttendanceMarkedPayload,
) -> Result<(), HandlerError> {
    // The course service's name wins over the one a node carried; this only fills a gap.
    tx.execute(
        "INSERT INTO courses (course_id, course_name) VALUES ($1, $2) ON CONFLICT (course_id) DO NOTHING",
        &[&p.course_id, &p.course_name],
    )
    .await?;
    let from = Provenance::of(env);
    for r in &p.student_records {
        let existing = tx
            .query_opt(
                "SELECT status, status_at, course_id FROM attendance_records \
                 WHERE attendance_id = $1 AND student_id = $2 FOR UPDATE",
                &[&p.attendance_id, &r.student_id],
            )
            .await?;
        match existing {
            None => {
                let inserted = tx
                    .execute(
                        "INSERT INTO attendance_records (attendance_id, student_id, course_id, entry_id, class_date, \
                           status, remarks, marked_by, marked_at, status_at, event_id, source, source_node_id, \
                           source_seq, clock_synced) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14) \
                         ON CONFLICT (attendance_id, student_id) DO NOTHING",
                        &[
                            &p.attendance_id,
                            &r.student_id,
                            &p.course_id,
                            &p.entry_id,
                            &p.class_date,
                            &r.status.as_str(),
                            &r.remarks,
                            &p.marked_by,
                            &p.marked_at,
                            &env.event_id,
                            &from.source,
                            &from.node_id,
                            &from.seq,
                            &from.clock_synced,
                        ],
                    )
                    .await?;
                if inserted == 0 {
                    // Another transaction inserted it since our SELECT; a fresh attempt sees it.
                    return Err(HandlerError::Rejected(format!(
                        "record {}/{} was inserted concurrently",
                        p.attendance_id, r.student_id
                    )));
                }
                adjust_summary(tx, &r.student_id, &p.course_id, None, Some(r.status)).await?;
            }
            Some(row) => {
                let old = parse_status(row.get(0))?;
                let status_at: chrono::DateTime<chrono::Utc> = row.get(1);
                let course_id: String = row.get(2);
                if p.marked_at <= status_at {
                    continue; // a resend, or older than what we know
                }
                tx.execute(
                    "UPDATE attendance_records SET status = $3, remarks = $4, marked_by = $5, marked_at = $6, \
                       status_at = $6, event_id = $7, source = $8, source_node_id = $9, source_seq = $10, \
                       clock_synced = $11, updated_at = now() \
                     WHERE attendance_id = $1 AND student_id = $2",
                    &[
                        &p.attendance_id,
                        &r.student_id,
                        &r.status.as_str(),
                        &r.remarks,
                        &p.marked_by,
                        &p.marked_at,
                        &env.event_id,
                        &from.source,
                        &from.node_id,
                        &from.seq,
                        &from.clock_synced,
                    ],
                )
                .await?;
                adjust_summary(tx, &r.student_id, &course_id, Some(old), Some(r.status)).await?;
            }
        }
    }
    Ok(())
}

/// `ATTENDANCE_UPDATED`: one student's correction, applied once per `correction_id`.
async fn correct(
    tx: &Transaction<'_>,
    env: &Envelope<AttendanceEvent>,
    p: &AttendanceUpdatedPayload,
) -> Result<(), HandlerError> {
    let row = tx
        .query_opt(
            "SELECT status, course_id FROM attendance_records WHERE attendance_id = $1 AND student_id = $2 FOR UPDATE",
            &[&p.attendance_id, &p.student_id],
        )
        .await?
        .ok_or_else(|| {
            HandlerError::Rejected(format!(
                "ATTENDANCE_UPDATED {} corrects attendance {} of student {}, which has no record \
                 (its ATTENDANCE_MARKED has not been applied)",
                p.correction_id, p.attendance_id, p.student_id
            ))
        })?;
    let old = parse_status(row.get(0))?;
    let course_id: String = row.get(1);
    let inserted = tx
        .execute(
            "INSERT INTO attendance_corrections (correction_id, attendance_id, student_id, course_id, old_status, \
               reported_old_status, new_status, reason, corrected_by, corrected_at, event_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (correction_id) DO NOTHING",
            &[
                &p.correction_id,
                &p.attendance_id,
                &p.student_id,
                &course_id,
                &old.as_str(),
                &p.old_status.as_str(),
                &p.new_status.as_str(),
                &p.reason,
                &p.corrected_by,
                &p.corrected_at,
                &env.event_id,
            ],
        )
        .await?;
    if inserted == 0 {
        tracing::info!(correction_id = %p.correction_id, "correction already applied");
        return Ok(());
    }
    if old != p.old_status {
        tracing::warn!(
            correction_id = %p.correction_id,
            recorded = old.as_str(),
            reported = p.old_status.as_str(),
            "correction's old status differs from the record; applying it to the record's status"
        );
    }
    tx.execute(
        "UPDATE attendance_records SET status = $3, corrected = TRUE, status_at = GREATEST(status_at, $4), \
           event_id = $5, updated_at = now() \
         WHERE attendance_id = $1 AND student_id = $2",
        &[&p.attendance_id, &p.student_id, &p.new_status.as_str(), &p.corrected_at, &env.event_id],
    )
    .await?;
    adjust_summary(tx, &p.student_id, &course_id, Some(old), Some(p.new_status)).await
}

/// Course names and whether a course is active (inactive courses get no alerts).
async fn course(tx: &Transaction<'_>, env: &Envelope<CourseEvent>) -> Result<(), HandlerError> {
    match &env.event {
        CourseEvent::CourseCreated(p) => {
            tx.execute(
                "INSERT INTO courses (course_id, course_code, course_name) VALUES ($1, $2, $3) \
                 ON CONFLICT (course_id) DO UPDATE SET course_code = EXCLUDED.course_code, \
                   course_name = EXCLUDED.course_name, updated_at = now()",
                &[&p.course_id, &p.course_code, &p.course_name],
            )
            .await?;
        }
        CourseEvent::CourseUpdated(p) => {
            let text = |field: &str| p.changes.get(field).and_then(|c| c.new_value.as_str()).map(str::to_owned);
            let (name, code) = (text("course_name"), text("course_code"));
            if name.is_some() || code.is_some() {
                tx.execute(
                    "INSERT INTO courses (course_id, course_code, course_name) VALUES ($1, $2, COALESCE($3, '')) \
                     ON CONFLICT (course_id) DO UPDATE SET \
                       course_code = COALESCE($2, courses.course_code), \
                       course_name = COALESCE($3, courses.course_name), updated_at = now()",
                    &[&p.course_id, &code, &name],
                )
                .await?;
            }
        }
        CourseEvent::CourseDeleted(p) | CourseEvent::CourseDeactivated(p) | CourseEvent::CourseActivated(p) => {
            let active = matches!(env.event, CourseEvent::CourseActivated(_));
            tx.execute(
                "INSERT INTO courses (course_id, course_code, active) VALUES ($1, $2, $3) \
                 ON CONFLICT (course_id) DO UPDATE SET active = EXCLUDED.active, updated_at = now()",
                &[&p.course_id, &p.course_code, &active],
            )
            .await?;
        }
        CourseEvent::FacultyAssigned(_) | CourseEvent::FacultyUnassigned(_) => {}
    }
    Ok(())
}

/// Who is enrolled (students who dropped a course get no alerts for it).
async fn enrollment(tx: &Transaction<'_>, env: &Envelope<EnrollmentEvent>) -> Result<(), HandlerError> {
    let status = match &env.event {
        EnrollmentEvent::StudentEnrolled(_)
        | EnrollmentEvent::EnrollmentCompleted(_)
        | EnrollmentEvent::WaitlistPromoted(_) => "enrolled",
        EnrollmentEvent::StudentDropped(_) => "dropped",
        EnrollmentEvent::EnrollmentFailed(_) | EnrollmentEvent::WaitlistAdded(_) => return Ok(()),
    };
    let p = env.event.payload();
    tx.execute(
        "INSERT INTO courses (course_id, course_name) VALUES ($1, $2) ON CONFLICT (course_id) DO NOTHING",
        &[&p.course_id, &p.course_name],
    )
    .await?;
    tx.execute(
        "INSERT INTO enrollments AS e (course_id, student_id, enrollment_id, status, changed_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (course_id, student_id) DO UPDATE SET enrollment_id = EXCLUDED.enrollment_id, \
           status = EXCLUDED.status, changed_at = EXCLUDED.changed_at \
         WHERE e.changed_at <= EXCLUDED.changed_at",
        &[&p.course_id, &p.student_id, &p.enrollment_id, &status, &env.timestamp],
    )
    .await?;
    Ok(())
}
