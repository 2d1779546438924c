//! Attendance sessions: the node's core job.
//!
//! A tap is first appended to `taps` in its own transaction (durable before anything else
//! happens), then interpreted in a second one: the faculty card opens the session of the
//! timetable entry running in this room; students' taps mark them present, or late after a
//! threshold; repeated taps are duplicates; unknown cards are quarantined; a student's tap before
//! the session opens is kept and attached when it opens within the grace period. Closing a
//! session (by hand or at the slot's end) writes the seed's `ATTENDANCE_MARKED` to the outbox in
//! the same transaction; corrections within a window write `ATTENDANCE_UPDATED`. A tap whose
//! interpretation did not finish (crash between the two transactions) is interpreted at start.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use nimbus_core::event::attendance::{
    AttendanceMarkedPayload, AttendanceStatus, AttendanceUpdatedPayload, StudentAttendance,
};
use nimbus_core::reader::{CardRead, Feedback, ReaderKind};
use nimbus_core::topics::Topic;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::clock::{Clock, Now};
use crate::error::{Error, Result};
use crate::outbox::{self, Priority};
use crate::store::Store;
use crate::timetable::{self, TimetableEntry};

/// The `action` of the analytics event sent for a tap of an unknown card (the cloud quarantines
/// the card for an admin to map).
pub const UNKNOWN_CARD_ACTION: &str = "UNKNOWN_CARD";

/// The rules of a session, from the config.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The room this node is in.
    pub room_id: String,
    /// After this long past the slot's start, a student is late.
    pub late_after: Duration,
    /// How long before the slot's start the faculty may open it.
    pub early_open: Duration,
    /// Students' taps up to this long before the session opens are attached to it.
    pub grace: Duration,
    /// How long after closing a session corrections are accepted.
    pub correction_window: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            room_id: "room-1".into(),
            late_after: Duration::from_secs(10 * 60),
            early_open: Duration::from_secs(10 * 60),
            grace: Duration::from_secs(15 * 60),
            correction_window: Duration::from_secs(72 * 3600),
        }
    }
}

/// What a tap meant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TapOutcome {
    /// A student was marked present or late.
    Marked {
        /// The student.
        student_id: String,
        /// Present or late.
        status: AttendanceStatus,
        /// The session.
        session_id: String,
    },
    /// The student was already marked in this session.
    Duplicate {
        /// The student.
        student_id: String,
    },
    /// The faculty card opened a session.
    SessionOpened {
        /// The new session.
        session_id: String,
        /// Its course.
        course_id: String,
    },
    /// The faculty card was tapped while a session is open.
    FacultyRepeat,
    /// A faculty card with no class of theirs to open now.
    NoClassNow,
    /// The card is not known; it is quarantined for an admin.
    UnknownCard,
    /// A known student who is not on the open session's roster.
    NotOnRoster {
        /// The student.
        user_id: String,
    },
    /// A student's tap with no session open yet; kept for the grace period.
    Pending {
        /// The student.
        user_id: String,
    },
}

impl TapOutcome {
    /// What the reader shows.
    pub fn feedback(&self) -> Feedback {
        match self {
            TapOutcome::Marked { .. } | TapOutcome::SessionOpened { .. } | TapOutcome::Pending { .. } => {
                Feedback::Accepted
            }
            TapOutcome::Duplicate { .. } | TapOutcome::FacultyRepeat => Feedback::Duplicate,
            TapOutcome::UnknownCard | TapOutcome::NotOnRoster { .. } => Feedback::UnknownCard,
            TapOutcome::NoClassNow => Feedback::Error,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            TapOutcome::Marked { status: AttendanceStatus::Late, .. } => "late",
            TapOutcome::Marked { .. } => "accepted",
            TapOutcome::Duplicate { .. } => "duplicate",
            TapOutcome::SessionOpened { .. } => "faculty_open",
            TapOutcome::FacultyRepeat => "faculty_repeat",
            TapOutcome::NoClassNow => "no_class",
            TapOutcome::UnknownCard => "unknown_card",
            TapOutcome::NotOnRoster { .. } => "not_on_roster",
            TapOutcome::Pending { .. } => "pending",
        }
    }

    fn session_id(&self) -> Option<&str> {
        match self {
            TapOutcome::Marked { session_id, .. } | TapOutcome::SessionOpened { session_id, .. } => Some(session_id),
            _ => None,
        }
    }
}

/// A recorded tap and its meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tap {
    /// Row id in `taps`.
    pub id: i64,
    /// What it meant.
    #[serde(flatten)]
    pub outcome: TapOutcome,
}

/// A session as the page and API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    /// Session id (also the event's `attendance_id`).
    pub id: String,
    /// Timetable entry.
    pub entry_id: String,
    /// Course.
    pub course_id: String,
    /// Course name.
    pub course_name: String,
    /// Faculty teaching.
    pub faculty_id: String,
    /// Date of the class.
    pub class_date: NaiveDate,
    /// Slot start.
    pub starts_at: DateTime<Utc>,
    /// Slot end (auto-close).
    pub ends_at: DateTime<Utc>,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Every student on the roster with their mark so far (absent if none yet).
    pub students: Vec<StudentView>,
}

/// One roster line of a session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudentView {
    /// Student id.
    pub student_id: String,
    /// Name.
    pub name: String,
    /// Mark, if any.
    pub status: Option<AttendanceStatus>,
    /// How it was marked (`tap`, `grace`, `manual`).
    pub source: Option<String>,
    /// Remarks.
    pub remarks: Option<String>,
}

/// The attendance service of one node.
#[derive(Clone)]
pub struct Attendance {
    store: Store,
    clock: Arc<dyn Clock>,
    rules: Rules,
}

fn ms_to_utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn status_from_str(s: &str) -> AttendanceStatus {
    match s {
        "absent" => AttendanceStatus::Absent,
        "late" => AttendanceStatus::Late,
        "excused" => AttendanceStatus::Excused,
        _ => AttendanceStatus::Present,
    }
}

fn td(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

struct SessionRow {
    id: String,
    entry_id: String,
    course_id: String,
    course_name: String,
    faculty_id: String,
    class_date: String,
    starts_ms: i64,
    ends_ms: i64,
    opened_ms: i64,
    closed_ms: Option<i64>,
}

const SESSION_COLUMNS: &str =
    "id, entry_id, course_id, course_name, faculty_id, class_date, starts_ms, ends_ms, opened_ms, closed_ms";

fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        entry_id: r.get(1)?,
        course_id: r.get(2)?,
        course_name: r.get(3)?,
        faculty_id: r.get(4)?,
        class_date: r.get(5)?,
        starts_ms: r.get(6)?,
        ends_ms: r.get(7)?,
        opened_ms: r.get(8)?,
        closed_ms: r.get(9)?,
    })
}

fn open_session(c: &Connection) -> Result<Option<SessionRow>> {
    Ok(c.query_row(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE closed_ms IS NULL"), [], session_from_row)
        .optional()?)
}

fn session(c: &Connection, id: &str) -> Result<SessionRow> {
    c.query_row(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"), [id], session_from_row)
        .optional()?
        .ok_or_else(|| Error::SessionNotFound(id.into()))
}

fn on_roster(c: &Connection, course_id: &str, student_id: &str) -> Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM roster WHERE course_id = ?1 AND student_id = ?2",
        [course_id, student_id],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

fn current_mark(c: &Connection, session_id: &str, student_id: &str) -> Result<Option<AttendanceStatus>> {
    Ok(c.query_row(
        "SELECT status FROM marks WHERE session_id = ?1 AND student_id = ?2",
        [session_id, student_id],
        |r| r.get::<_, String>(0),
    )
    .optional()?
    .map(|s| status_from_str(&s)))
}

impl Attendance {
    /// The service over `store`, reading time from `clock`.
    pub fn new(store: Store, clock: Arc<dyn Clock>, rules: Rules) -> Self {
        Attendance { store, clock, rules }
    }

    /// The store it writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Reads the clock.
    pub fn now(&self) -> Now {
        self.clock.now()
    }

    /// Wall milliseconds of a campus-local time, using the clock's current offset.
    fn local_to_ms(now: &Now, local: NaiveDateTime) -> i64 {
        let offset = now.local - now.utc.naive_utc();
        (local - offset).and_utc().timestamp_millis()
    }

    fn ms_to_local(now: &Now, ms: i64) -> NaiveDateTime {
        let offset = now.local - now.utc.naive_utc();
        ms_to_utc(ms).naive_utc() + offset
    }

    /// Records a tap durably, then interprets it. The returned outcome's [`TapOutcome::feedback`]
    /// is what the reader shows; when this returns `Err`, the tap may still have been stored (and
    /// is interpreted at the next start), but the user should tap again.
    pub fn record_tap(&self, read: CardRead) -> Result<Tap> {
        let now = self.clock.now();
        let id = self.store.with(|c| {
            c.execute(
                "INSERT INTO taps (card_uid, reader, wall_ms, mono_ms, boot_id, clock_synced)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    read.uid.to_string(),
                    reader_name(read.reader),
                    now.wall_ms(),
                    now.mono_ms as i64,
                    &*now.boot_id,
                    now.synced
                ],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        let outcome = self.interpret(id)?;
        Ok(Tap { id, outcome })
    }

    /// Interprets every tap that was stored but not interpreted (a crash between the two steps).
    pub fn interpret_leftovers(&self) -> Result<usize> {
        let ids: Vec<i64> = self.store.with(|c| {
            let mut stmt = c.prepare("SELECT id FROM taps WHERE outcome IS NULL ORDER BY id")?;
            let ids = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            Ok(ids)
        })?;
        for id in &ids {
            self.interpret(*id)?;
        }
        Ok(ids.len())
    }

    fn interpret(&self, tap_id: i64) -> Result<TapOutcome> {
        let now = self.clock.now();
        self.store.with(|c| {
            let tx = c.transaction()?;
            let (uid, wall_ms, done): (String, i64, Option<String>) =
                tx.query_row("SELECT card_uid, wall_ms, outcome FROM taps WHERE id = ?1", [tap_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            if let Some(done) = done {
                // Interpreted before (e.g. attached by a session opening meanwhile).
                return Ok(match done.as_str() {
                    "unknown_card" => TapOutcome::UnknownCard,
                    _ => TapOutcome::FacultyRepeat,
                });
            }
            let outcome = self.interpret_in(&tx, tap_id, &uid, wall_ms, &now)?;
            tx.execute(
                "UPDATE taps SET outcome = ?1, session_id = ?2, interpreted_ms = ?3 WHERE id = ?4",
                params![outcome.code(), outcome.session_id(), now.wall_ms(), tap_id],
            )?;
            tx.commit()?;
            Ok(outcome)
        })
    }

    fn interpret_in(&self, c: &Connection, tap_id: i64, uid: &str, wall_ms: i64, now: &Now) -> Result<TapOutcome> {
        let card: Option<(String, String)> = c
            .query_row("SELECT user_id, role FROM cards WHERE card_uid = ?1", [uid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((user_id, role)) = card else {
            c.execute(
                "INSERT INTO unknown_cards (card_uid, first_seen_ms, last_seen_ms, tap_count) VALUES (?1, ?2, ?2, 1)
                 ON CONFLICT (card_uid) DO UPDATE SET last_seen_ms = excluded.last_seen_ms, tap_count = tap_count + 1",
                params![uid, wall_ms],
            )?;
            // Tell the cloud, where an admin maps the card to its holder (it arrives back in the
            // roster). Telemetry: under disk pressure the local quarantine table still has it.
            let payload = nimbus_core::event::analytics::AnalyticsPayload {
                event_name: "unknown_card_tapped".into(),
                category: "edge_reader".into(),
                action: UNKNOWN_CARD_ACTION.into(),
                label: Some(uid.to_owned()),
                device_type: Some("edge_node".into()),
                ..Default::default()
            };
            outbox::append(c, "USER_ACTION", Topic::AnalyticsEvents, Priority::Telemetry, &payload, now)?;
            return Ok(TapOutcome::UnknownCard);
        };
        if role == "faculty" {
            if open_session(c)?.is_some() {
                return Ok(TapOutcome::FacultyRepeat);
            }
            return match self.open_in(c, &user_id, Self::ms_to_local(now, wall_ms), now) {
                Ok(s) => Ok(TapOutcome::SessionOpened { session_id: s.id, course_id: s.course_id }),
                Err(Error::NoClassNow | Error::NotTheFaculty(_) | Error::SessionAlreadyHeld { .. }) => {
                    Ok(TapOutcome::NoClassNow)
                }
                Err(e) => Err(e),
            };
        }
        let Some(s) = open_session(c)? else {
            return Ok(TapOutcome::Pending { user_id });
        };
        if !on_roster(c, &s.course_id, &user_id)? {
            return Ok(TapOutcome::NotOnRoster { user_id });
        }
        if current_mark(c, &s.id, &user_id)?.is_some() {
            return Ok(TapOutcome::Duplicate { student_id: user_id });
        }
        let status = self.status_for(&s, wall_ms);
        c.execute(
            "INSERT INTO marks (session_id, student_id, status, source, tap_id, marked_ms, marked_by)
             VALUES (?1, ?2, ?3, 'tap', ?4, ?5, ?2)",
            params![s.id, user_id, status.as_str(), tap_id, wall_ms],
        )?;
        Ok(TapOutcome::Marked { student_id: user_id, status, session_id: s.id })
    }

    fn status_for(&self, s: &SessionRow, tap_ms: i64) -> AttendanceStatus {
        if tap_ms > s.starts_ms + self.rules.late_after.as_millis() as i64 {
            AttendanceStatus::Late
        } else {
            AttendanceStatus::Present
        }
    }

    /// Opens the session of the class running now, on behalf of faculty `by` (the page).
    pub fn open_session(&self, by: &str) -> Result<SessionView> {
        let now = self.clock.now();
        let id = self.store.with(|c| {
            let tx = c.transaction()?;
            if let Some(open) = open_session(&tx)? {
                return Err(Error::SessionAlreadyOpen(open.id));
            }
            let s = self.open_in(&tx, by, now.local, &now)?;
            tx.commit()?;
            Ok(s.id)
        })?;
        self.session_view(&id)
    }

    fn open_in(&self, c: &Connection, by: &str, at: NaiveDateTime, now: &Now) -> Result<SessionRow> {
        let entry: TimetableEntry =
            timetable::entry_at(c, &self.rules.room_id, at, td(self.rules.early_open))?.ok_or(Error::NoClassNow)?;
        if entry.faculty_id != by {
            return Err(Error::NotTheFaculty(by.into()));
        }
        let date = at.date();
        let held: bool = c
            .query_row(
                "SELECT 1 FROM sessions WHERE entry_id = ?1 AND class_date = ?2",
                params![entry.entry_id, date.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if held {
            return Err(Error::SessionAlreadyHeld { entry_id: entry.entry_id, class_date: date.to_string() });
        }
        let s = SessionRow {
            id: uuid::Uuid::new_v4().to_string(),
            entry_id: entry.entry_id,
            course_id: entry.course_id,
            course_name: entry.course_name,
            faculty_id: entry.faculty_id,
            class_date: date.to_string(),
            starts_ms: Self::local_to_ms(now, date.and_time(entry.start_time)),
            ends_ms: Self::local_to_ms(now, date.and_time(entry.end_time)),
            opened_ms: now.wall_ms(),
            closed_ms: None,
        };
        c.execute(
            "INSERT INTO sessions (id, entry_id, course_id, course_name, faculty_id, class_date, starts_ms, ends_ms,
                 opened_ms, opened_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                s.id,
                s.entry_id,
                s.course_id,
                s.course_name,
                s.faculty_id,
                s.class_date,
                s.starts_ms,
                s.ends_ms,
                s.opened_ms,
                by
            ],
        )?;
        self.attach_pending(c, &s)?;
        Ok(s)
    }

    /// Students who tapped shortly before the session opened are marked from their tap.
    fn attach_pending(&self, c: &Connection, s: &SessionRow) -> Result<()> {
        let since = s.opened_ms - self.rules.grace.as_millis() as i64;
        let pending: Vec<(i64, i64, String)> = {
            let mut stmt = c.prepare(
                "SELECT t.id, t.wall_ms, k.user_id FROM taps t JOIN cards k ON k.card_uid = t.card_uid
                 WHERE t.outcome = 'pending' AND t.wall_ms >= ?1 AND k.role = 'student' ORDER BY t.id",
            )?;
            stmt.query_map([since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?
        };
        for (tap_id, wall_ms, student) in pending {
            let outcome = if !on_roster(c, &s.course_id, &student)? {
                "not_on_roster"
            } else if current_mark(c, &s.id, &student)?.is_some() {
                "duplicate"
            } else {
                c.execute(
                    "INSERT INTO marks (session_id, student_id, status, source, tap_id, marked_ms, marked_by)
                     VALUES (?1, ?2, ?3, 'grace', ?4, ?5, ?2)",
                    params![s.id, student, self.status_for(s, wall_ms).as_str(), tap_id, wall_ms],
                )?;
                "attached"
            };
            c.execute("UPDATE taps SET outcome = ?1, session_id = ?2 WHERE id = ?3", params![outcome, s.id, tap_id])?;
        }
        Ok(())
    }

    /// Marks (or re-marks) a student by hand while the session is open.
    pub fn mark(
        &self,
        session_id: &str,
        student_id: &str,
        status: AttendanceStatus,
        remarks: Option<&str>,
        by: &str,
    ) -> Result<()> {
        let now = self.clock.now();
        self.store.with(|c| {
            let tx = c.transaction()?;
            let s = session(&tx, session_id)?;
            if s.closed_ms.is_some() {
                return Err(Error::SessionClosed(s.id));
            }
            if !on_roster(&tx, &s.course_id, student_id)? {
                return Err(Error::NotOnRoster(student_id.into()));
            }
            tx.execute(
                "INSERT INTO marks (session_id, student_id, status, source, marked_ms, marked_by, remarks)
                 VALUES (?1, ?2, ?3, 'manual', ?4, ?5, ?6)
                 ON CONFLICT (session_id, student_id) DO UPDATE SET status = excluded.status, source = 'manual',
                     marked_ms = excluded.marked_ms, marked_by = excluded.marked_by, remarks = excluded.remarks",
                params![session_id, student_id, status.as_str(), now.wall_ms(), by, remarks],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Closes a session and writes its `ATTENDANCE_MARKED` to the outbox, atomically.
    pub fn close_session(&self, session_id: &str, reason: &str) -> Result<AttendanceMarkedPayload> {
        let now = self.clock.now();
        self.store.with(|c| {
            let tx = c.transaction()?;
            let payload = self.close_in(&tx, session_id, reason, &now)?;
            tx.commit()?;
            Ok(payload)
        })
    }

    /// Closes every open session whose slot has ended; returns their ids.
    pub fn close_due(&self) -> Result<Vec<String>> {
        let now = self.clock.now();
        self.store.with(|c| {
            let tx = c.transaction()?;
            let due: Vec<String> = {
                let mut stmt = tx.prepare("SELECT id FROM sessions WHERE closed_ms IS NULL AND ends_ms <= ?1")?;
                stmt.query_map([now.wall_ms()], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
            };
            for id in &due {
                self.close_in(&tx, id, "slot_end", &now)?;
            }
            tx.commit()?;
            Ok(due)
        })
    }

    fn close_in(&self, c: &Connection, session_id: &str, reason: &str, now: &Now) -> Result<AttendanceMarkedPayload> {
        let s = session(c, session_id)?;
        if s.closed_ms.is_some() {
            return Err(Error::SessionClosed(s.id));
        }
        // Everyone on the roster without a mark is absent.
        c.execute(
            "INSERT INTO marks (session_id, student_id, status, source, marked_ms, marked_by)
             SELECT ?1, r.student_id, 'absent', 'close', ?2, ?3 FROM roster r
             WHERE r.course_id = ?4 AND NOT EXISTS
                 (SELECT 1 FROM marks m WHERE m.session_id = ?1 AND m.student_id = r.student_id)",
            params![s.id, now.wall_ms(), s.faculty_id, s.course_id],
        )?;
        let student_records: Vec<StudentAttendance> = {
            let mut stmt =
                c.prepare("SELECT student_id, status, remarks FROM marks WHERE session_id = ?1 ORDER BY student_id")?;
            stmt.query_map([&s.id], |r| {
                Ok(StudentAttendance {
                    student_id: r.get(0)?,
                    status: status_from_str(&r.get::<_, String>(1)?),
                    remarks: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        let mut payload = AttendanceMarkedPayload {
            attendance_id: s.id.clone(),
            entry_id: s.entry_id.clone(),
            course_id: s.course_id.clone(),
            course_name: s.course_name.clone(),
            class_date: s.class_date.parse().map_err(|e| Error::Snapshot(format!("class_date: {e}")))?,
            marked_by: s.faculty_id.clone(),
            marked_at: now.utc,
            student_records,
            ..Default::default()
        };
        payload.recount();
        outbox::append(c, "ATTENDANCE_MARKED", Topic::AttendanceEvents, Priority::Critical, &payload, now)?;
        c.execute(
            "UPDATE sessions SET closed_ms = ?1, close_reason = ?2 WHERE id = ?3",
            params![now.wall_ms(), reason, s.id],
        )?;
        tracing::info!(session = %s.id, course = %s.course_id, reason, present = payload.present_count,
            absent = payload.absent_count, "session closed");
        Ok(payload)
    }

    /// Corrects a student's mark after the session closed, within the correction window, and
    /// writes `ATTENDANCE_UPDATED` to the outbox.
    pub fn correct(
        &self,
        session_id: &str,
        student_id: &str,
        new_status: AttendanceStatus,
        reason: Option<&str>,
        by: &str,
    ) -> Result<AttendanceUpdatedPayload> {
        let now = self.clock.now();
        self.store.with(|c| {
            let tx = c.transaction()?;
            let s = session(&tx, session_id)?;
            let Some(closed_ms) = s.closed_ms else {
                return Err(Error::SessionOpen(s.id));
            };
            if now.wall_ms() - closed_ms > self.rules.correction_window.as_millis() as i64 {
                return Err(Error::CorrectionWindowClosed(s.id));
            }
            let old_status =
                current_mark(&tx, &s.id, student_id)?.ok_or_else(|| Error::NotOnRoster(student_id.into()))?;
            if old_status == new_status {
                return Err(Error::NoChange { student_id: student_id.into(), status: new_status });
            }
            let payload = AttendanceUpdatedPayload {
                attendance_id: s.id.clone(),
                correction_id: uuid::Uuid::new_v4().to_string(),
                entry_id: s.entry_id.clone(),
                course_id: s.course_id.clone(),
                class_date: s.class_date.parse().map_err(|e| Error::Snapshot(format!("class_date: {e}")))?,
                student_id: student_id.into(),
                old_status,
                new_status,
                reason: reason.map(str::to_owned),
                corrected_by: by.into(),
                corrected_at: now.utc,
            };
            tx.execute(
                "UPDATE marks SET status = ?1, source = 'manual', marked_ms = ?2, marked_by = ?3, remarks = ?4
                 WHERE session_id = ?5 AND student_id = ?6",
                params![new_status.as_str(), now.wall_ms(), by, reason, s.id, student_id],
            )?;
            tx.execute(
                "INSERT INTO corrections (id, session_id, student_id, old_status, new_status, reason, corrected_by,
                     corrected_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    payload.correction_id,
                    s.id,
                    student_id,
                    old_status.as_str(),
                    new_status.as_str(),
                    reason,
                    by,
                    now.wall_ms()
                ],
            )?;
            outbox::append(&tx, "ATTENDANCE_UPDATED", Topic::AttendanceEvents, Priority::Critical, &payload, &now)?;
            tx.commit()?;
            Ok(payload)
        })
    }

    /// The open session, if any.
    pub fn open(&self) -> Result<Option<SessionView>> {
        let id = self.store.with(|c| Ok(open_session(c)?.map(|s| s.id)))?;
        id.map(|id| self.session_view(&id)).transpose()
    }

    /// The class running now (or about to start) in this room.
    pub fn current_entry(&self) -> Result<Option<TimetableEntry>> {
        let now = self.clock.now();
        self.store.with(|c| timetable::entry_at(c, &self.rules.room_id, now.local, td(self.rules.early_open)))
    }

    /// A session with its roster and marks.
    pub fn session_view(&self, id: &str) -> Result<SessionView> {
        self.store.with(|c| {
            let s = session(c, id)?;
            let mut stmt = c.prepare(
                "SELECT r.student_id, r.name, m.status, m.source, m.remarks FROM roster r
                 LEFT JOIN marks m ON m.session_id = ?1 AND m.student_id = r.student_id
                 WHERE r.course_id = ?2 ORDER BY r.name",
            )?;
            let students = stmt
                .query_map([&s.id, &s.course_id], |r| {
                    Ok(StudentView {
                        student_id: r.get(0)?,
                        name: r.get(1)?,
                        status: r.get::<_, Option<String>>(2)?.map(|v| status_from_str(&v)),
                        source: r.get(3)?,
                        remarks: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(SessionView {
                id: s.id,
                entry_id: s.entry_id,
                course_id: s.course_id,
                course_name: s.course_name,
                faculty_id: s.faculty_id,
                class_date: s.class_date.parse().unwrap_or_default(),
                starts_at: ms_to_utc(s.starts_ms),
                ends_at: ms_to_utc(s.ends_ms),
                opened_at: ms_to_utc(s.opened_ms),
                closed_at: s.closed_ms.map(ms_to_utc),
                students,
            })
        })
    }
}

fn reader_name(kind: ReaderKind) -> &'static str {
    match kind {
        ReaderKind::Mfrc522 => "mfrc522",
        ReaderKind::Wiegand26 => "wiegand26",
        ReaderKind::Wiegand34 => "wiegand34",
        ReaderKind::Simulated => "simulated",
    }
}
