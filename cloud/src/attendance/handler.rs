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
//! - **Batches** ([`Handler::handle_batch`]): a run of marks is applied with a handful of
//!   set-based statements (lock the existing records of the whole run, decide every record in
//!   memory in event order with exactly the rules above, then one multi-row insert, one update,
//!   and the summaries' net changes); any other event is applied on its own between runs, so the
//!   result is the one of handling the events one by one.
//! - **Excused classes are excluded** from `total_classes` and hence from the percentage: an
//!   excused absence neither helps nor hurts. `attended` counts present and late students, as the
//!   seed's `present_count` does.

use nimbus_core::event::attendance::{AttendanceMarkedPayload, AttendanceStatus, AttendanceUpdatedPayload};
use nimbus_core::event::course::CourseEvent;
use nimbus_core::event::enrollment::EnrollmentEvent;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use nimbus_core::event::{AnyEvent, AttendanceEvent, Envelope};
use tokio_postgres::Transaction;
use uuid::Uuid;

use crate::consumer::{Claimed, Handler, HandlerError, Origin};
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

    async fn handle_batch(&self, tx: &Transaction<'_>, events: &[Claimed<'_>]) -> Result<(), HandlerError> {
        let mut run: Vec<Mark<'_>> = Vec::new();
        for c in events {
            if let AnyEvent::Attendance(env) = c.event
                && let AttendanceEvent::AttendanceMarked(p) | AttendanceEvent::AttendanceBulkMarked(p) = &env.event
            {
                run.push((env, p));
                continue;
            }
            mark_many(tx, &run).await?;
            run.clear();
            self.handle(tx, c.event, &c.origin).await?;
        }
        mark_many(tx, &run).await
    }
}

/// A mark event and its payload.
type Mark<'a> = (&'a Envelope<AttendanceEvent>, &'a AttendanceMarkedPayload);

/// One record's state while a run of marks is decided in memory.
struct Decided<'a> {
    /// In the table before this run (then it is updated, else inserted).
    existed: bool,
    /// Changed by this run.
    changed: bool,
    status: AttendanceStatus,
    status_at: DateTime<Utc>,
    /// The course its summary counts under (the row's, which a later mark does not change).
    course_id: String,
    /// Written once, by the mark that created the record.
    entry_id: &'a str,
    class_date: NaiveDate,
    /// Written by every mark that changes the status.
    remarks: Option<&'a str>,
    marked_by: &'a str,
    event_id: Uuid,
    /// Index of its provenance in the run's list.
    from: usize,
}

/// `(attendance_id, student_id)`.
type RecordKey = (String, String);

/// Per student and course: present, late, absent, excused.
type Deltas = BTreeMap<(String, String), [i32; 4]>;

fn slot(status: AttendanceStatus) -> usize {
    match status {
        AttendanceStatus::Present => 0,
        AttendanceStatus::Late => 1,
        AttendanceStatus::Absent => 2,
        AttendanceStatus::Excused => 3,
    }
}

/// A run of `ATTENDANCE_MARKED` / `ATTENDANCE_BULK_MARKED`, with the rules of [`mark`] (see the
/// module docs) in a constant number of statements.
async fn mark_many(tx: &Transaction<'_>, run: &[Mark<'_>]) -> Result<(), HandlerError> {
    if run.is_empty() {
        return Ok(());
    }
    let (course_ids, course_names): (Vec<&str>, Vec<&str>) =
        run.iter().map(|(_, p)| (p.course_id.as_str(), p.course_name.as_str())).unzip();
    tx.execute(
        "INSERT INTO courses (course_id, course_name)          SELECT DISTINCT ON (c) c, n FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(c, n, i) ORDER BY c, i          ON CONFLICT (course_id) DO NOTHING",
        &[&course_ids, &course_names],
    )
    .await?;

    let mut keys: (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for (_, p) in run {
        for r in &p.student_records {
            keys.0.push(&p.attendance_id);
            keys.1.push(&r.student_id);
        }
    }
    let rows = tx
        .query(
            "SELECT r.attendance_id, r.student_id, r.status, r.status_at, r.course_id              FROM attendance_records r JOIN unnest($1::text[], $2::text[]) AS k(a, s)                ON r.attendance_id = k.a AND r.student_id = k.s              ORDER BY r.record_id FOR UPDATE OF r",
            &[&keys.0, &keys.1],
        )
        .await?;
    let mut records: HashMap<(String, String), Decided<'_>> = HashMap::with_capacity(keys.0.len());
    for row in rows {
        let key: (String, String) = (row.get(0), row.get(1));
        records.insert(
            key,
            Decided {
                existed: true,
                changed: false,
                status: parse_status(row.get(2))?,
                status_at: row.get(3),
                course_id: row.get(4),
                entry_id: "",
                class_date: NaiveDate::default(),
                remarks: None,
                marked_by: "",
                event_id: Uuid::nil(),
                from: 0,
            },
        );
    }

    let mut deltas = Deltas::new();
    let mut order: Vec<(String, String)> = Vec::new();
    // Index 0 stands for "not written by this run".
    let mut provenance = vec![Provenance { source: None, node_id: None, seq: None, clock_synced: None }];
    for (env, p) in run {
        provenance.push(Provenance::of(env));
        let from = provenance.len() - 1;
        for r in &p.student_records {
            let key = (p.attendance_id.clone(), r.student_id.clone());
            let (old, course) = match records.get_mut(&key) {
                None => {
                    records.insert(
                        key.clone(),
                        Decided {
                            existed: false,
                            changed: true,
                            status: r.status,
                            status_at: p.marked_at,
                            course_id: p.course_id.clone(),
                            entry_id: &p.entry_id,
                            class_date: p.class_date,
                            remarks: r.remarks.as_deref(),
                            marked_by: &p.marked_by,
                            event_id: env.event_id,
                            from,
                        },
                    );
                    order.push(key.clone());
                    (None, p.course_id.clone())
                }
                Some(d) if p.marked_at <= d.status_at => continue, // a resend, or older than what we know
                Some(d) => {
                    let old = d.status;
                    if !d.changed {
                        order.push(key.clone());
                    }
                    d.changed = true;
                    d.status = r.status;
                    d.status_at = p.marked_at;
                    d.remarks = r.remarks.as_deref();
                    d.marked_by = &p.marked_by;
                    d.event_id = env.event_id;
                    d.from = from;
                    (Some(old), d.course_id.clone())
                }
            };
            if old == Some(r.status) {
                continue;
            }
            let d = deltas.entry((r.student_id.clone(), course)).or_default();
            d[slot(r.status)] += 1;
            if let Some(old) = old {
                d[slot(old)] -= 1;
            }
        }
    }

    let (inserts, updates): (Vec<&RecordKey>, Vec<&RecordKey>) =
        order.iter().partition(|k| records.get(*k).is_some_and(|d| !d.existed));
    write_records(tx, &records, &provenance, &inserts, true).await?;
    write_records(tx, &records, &provenance, &updates, false).await?;
    write_summaries(tx, deltas).await
}

/// Inserts (`insert`) or updates the decided state of `keys` with one statement.
async fn write_records(
    tx: &Transaction<'_>,
    records: &HashMap<(String, String), Decided<'_>>,
    provenance: &[Provenance],
    keys: &[&(String, String)],
    insert: bool,
) -> Result<(), HandlerError> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut c = Columns::default();
    for key in keys {
        let Some(d) = records.get(*key) else { continue };
        let from = &provenance[d.from];
        c.attendance_id.push(&key.0);
        c.student_id.push(&key.1);
        c.course_id.push(&d.course_id);
        c.entry_id.push(d.entry_id);
        c.class_date.push(d.class_date);
        c.status.push(d.status.as_str());
        c.remarks.push(d.remarks);
        c.marked_by.push(d.marked_by);
        c.marked_at.push(d.status_at);
        c.event_id.push(d.event_id);
        c.source.push(from.source.as_deref());
        c.node_id.push(from.node_id.as_deref());
        c.seq.push(from.seq);
        c.clock_synced.push(from.clock_synced);
    }
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 14] = [
        &c.attendance_id,
        &c.student_id,
        &c.course_id,
        &c.entry_id,
        &c.class_date,
        &c.status,
        &c.remarks,
        &c.marked_by,
        &c.marked_at,
        &c.event_id,
        &c.source,
        &c.node_id,
        &c.seq,
        &c.clock_synced,
    ];
    const ROWS: &str = "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[], $6::text[], $7::text[],                         $8::text[], $9::timestamptz[], $10::uuid[], $11::text[], $12::text[], $13::int8[], $14::bool[])                         AS u(attendance_id, student_id, course_id, entry_id, class_date, status, remarks, marked_by,                              marked_at, event_id, source, source_node_id, source_seq, clock_synced)";
    let written = if insert {
        tx.execute(
            &format!(
                "INSERT INTO attendance_records (attendance_id, student_id, course_id, entry_id, class_date, status,                    remarks, marked_by, marked_at, status_at, event_id, source, source_node_id, source_seq, clock_synced)                  SELECT attendance_id, student_id, course_id, entry_id, class_date, status, remarks, marked_by,                    marked_at, marked_at, event_id, source, source_node_id, source_seq, clock_synced FROM {ROWS}                  ON CONFLICT (attendance_id, student_id) DO NOTHING"
            ),
            &params,
        )
        .await?
    } else {
        tx.execute(
            &format!(
                "UPDATE attendance_records r SET status = u.status, remarks = u.remarks, marked_by = u.marked_by,                    marked_at = u.marked_at, status_at = u.marked_at, event_id = u.event_id, source = u.source,                    source_node_id = u.source_node_id, source_seq = u.source_seq, clock_synced = u.clock_synced,                    updated_at = now()                  FROM {ROWS} WHERE r.attendance_id = u.attendance_id AND r.student_id = u.student_id"
            ),
            &params,
        )
        .await?
    };
    if written != keys.len() as u64 {
        // Another transaction inserted some of them since our SELECT; a fresh attempt sees them.
        return Err(HandlerError::Rejected(format!(
            "{} of {} attendance records were written concurrently",
            keys.len() as u64 - written.min(keys.len() as u64),
            keys.len()
        )));
    }
    Ok(())
}

/// The columns of [`write_records`]' statements.
#[derive(Default)]
struct Columns<'a> {
    attendance_id: Vec<&'a str>,
    student_id: Vec<&'a str>,
    course_id: Vec<&'a str>,
    entry_id: Vec<&'a str>,
    class_date: Vec<NaiveDate>,
    status: Vec<&'a str>,
    remarks: Vec<Option<&'a str>>,
    marked_by: Vec<&'a str>,
    marked_at: Vec<DateTime<Utc>>,
    event_id: Vec<Uuid>,
    source: Vec<Option<&'a str>>,
    node_id: Vec<Option<&'a str>>,
    seq: Vec<Option<i64>>,
    clock_synced: Vec<Option<bool>>,
}

/// Applies the summaries' net changes: rows that lose a count must exist (updated); the others
/// are upserted.
async fn write_summaries(tx: &Transaction<'_>, deltas: Deltas) -> Result<(), HandlerError> {
    let mut grow: [Vec<String>; 2] = Default::default();
    let mut grow_by: [Vec<i32>; 4] = Default::default();
    let mut shift: [Vec<String>; 2] = Default::default();
    let mut shift_by: [Vec<i32>; 4] = Default::default();
    for ((student, course), d) in deltas {
        if d == [0; 4] {
            continue;
        }
        let (keys, by) = if d.iter().any(|x| *x < 0) { (&mut shift, &mut shift_by) } else { (&mut grow, &mut grow_by) };
        keys[0].push(student);
        keys[1].push(course);
        for (column, x) in by.iter_mut().zip(d) {
            column.push(x);
        }
    }
    const DELTAS: &str = "unnest($1::text[], $2::text[], $3::int4[], $4::int4[], $5::int4[], $6::int4[])                           AS d(student_id, course_id, present, late, absent, excused)";
    if !shift[0].is_empty() {
        let updated = tx
            .execute(
                &format!(
                    "UPDATE attendance_summary s SET present = s.present + d.present, late = s.late + d.late,                        absent = s.absent + d.absent, excused = s.excused + d.excused, updated_at = now()                      FROM {DELTAS} WHERE s.student_id = d.student_id AND s.course_id = d.course_id"
                ),
                &[&shift[0], &shift[1], &shift_by[0], &shift_by[1], &shift_by[2], &shift_by[3]],
            )
            .await?;
        if updated != shift[0].len() as u64 {
            return Err(HandlerError::Rejected(
                "an attendance record changes, yet its student has no summary in its course".into(),
            ));
        }
    }
    if !grow[0].is_empty() {
        tx.execute(
            &format!(
                "INSERT INTO attendance_summary AS s (student_id, course_id, present, late, absent, excused)                  SELECT student_id, course_id, present, late, absent, excused FROM {DELTAS}                  ON CONFLICT (student_id, course_id) DO UPDATE SET                    present = s.present + EXCLUDED.present, late = s.late + EXCLUDED.late,                    absent = s.absent + EXCLUDED.absent, excused = s.excused + EXCLUDED.excused, updated_at = now()"
            ),
            &[&grow[0], &grow[1], &grow_by[0], &grow_by[1], &grow_by[2], &grow_by[3]],
        )
        .await?;
    }
    Ok(())
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
