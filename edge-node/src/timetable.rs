//! The offline cache of this room's timetable and the course rosters. Both arrive as versioned
//! snapshots (downlink from the cloud, or the demo data of `--simulate`); a snapshot replaces the
//! cached one atomically and only if its version is newer, so a node can run for days on the
//! last one it received.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};

pub use nimbus_core::snapshot::{
    Card, Enrollment, Faculty, Role, RosterSnapshot, Student, TimetableEntry, TimetableSnapshot,
};

/// The cached version of snapshot `kind`, if any.
pub fn snapshot_version(conn: &Connection, kind: &str) -> Result<Option<u64>> {
    Ok(conn
        .query_row("SELECT version FROM snapshots WHERE kind = ?1", [kind], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|v| v as u64))
}

fn newer(conn: &Connection, kind: &str, version: u64) -> Result<bool> {
    Ok(snapshot_version(conn, kind)?.is_none_or(|current| version > current))
}

fn record_version(conn: &Connection, kind: &str, version: u64, now_ms: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO snapshots (kind, version, applied_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (kind) DO UPDATE SET version = excluded.version, applied_ms = excluded.applied_ms",
        params![kind, version as i64, now_ms],
    )?;
    Ok(())
}

/// Replaces the cached timetable if `snap` is newer. Returns whether it was applied.
pub fn apply_timetable(conn: &mut Connection, snap: &TimetableSnapshot, now_ms: i64) -> Result<bool> {
    for e in &snap.entries {
        if !(1..=7).contains(&e.day_of_week) || e.end_time <= e.start_time {
            return Err(Error::Snapshot(format!("entry {} has an invalid slot", e.entry_id)));
        }
    }
    let tx = conn.transaction()?;
    if !newer(&tx, "timetable", snap.version)? {
        return Ok(false);
    }
    tx.execute("DELETE FROM timetable_entries", [])?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO timetable_entries (entry_id, course_id, course_name, faculty_id, room_id, day_of_week,
                 start_time, end_time, effective_from, effective_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for e in &snap.entries {
            insert.execute(params![
                e.entry_id,
                e.course_id,
                e.course_name,
                e.faculty_id,
                e.room_id,
                e.day_of_week,
                e.start_time.format("%H:%M:%S").to_string(),
                e.end_time.format("%H:%M:%S").to_string(),
                e.effective_from.map(|d| d.to_string()),
                e.effective_until.map(|d| d.to_string()),
            ])?;
        }
    }
    record_version(&tx, "timetable", snap.version, now_ms)?;
    tx.commit()?;
    Ok(true)
}

/// Replaces the cached rosters if `snap` is newer. Returns whether it was applied.
pub fn apply_roster(conn: &mut Connection, snap: &RosterSnapshot, now_ms: i64) -> Result<bool> {
    let tx = conn.transaction()?;
    if !newer(&tx, "roster", snap.version)? {
        return Ok(false);
    }
    tx.execute_batch("DELETE FROM cards; DELETE FROM faculty; DELETE FROM roster; DELETE FROM students;")?;
    for c in &snap.cards {
        let uid: nimbus_core::ids::CardUid =
            c.card_uid.parse().map_err(|e| Error::Snapshot(format!("card of {}: {e}", c.user_id)))?;
        tx.execute(
            "INSERT INTO cards (card_uid, user_id, role, name) VALUES (?1, ?2, ?3, ?4)",
            params![uid.to_string(), c.user_id, c.role.as_str(), c.name],
        )?;
    }
    for f in &snap.faculty {
        tx.execute(
            "INSERT INTO faculty (user_id, name, pin_hash, staff_number, email) VALUES (?1, ?2, ?3, ?4, lower(?5))",
            params![f.user_id, f.name, f.pin_hash, f.staff_number, f.email],
        )?;
    }
    for e in &snap.enrollments {
        tx.execute(
            "INSERT OR IGNORE INTO roster (course_id, student_id, name) VALUES (?1, ?2, ?3)",
            params![e.course_id, e.student_id, e.name],
        )?;
    }
    for s in &snap.students {
        tx.execute(
            "INSERT OR REPLACE INTO students (user_id, name, register_number, email, pin_hash)
             VALUES (?1, ?2, ?3, lower(?4), ?5)",
            params![s.user_id, s.name, s.register_number, s.email, s.pin_hash],
        )?;
    }
    record_version(&tx, "roster", snap.version, now_ms)?;
    tx.commit()?;
    Ok(true)
}

/// Stores a snapshot kept verbatim (signing keys, content manifest) if it is newer.
pub fn apply_raw(conn: &mut Connection, kind: &str, version: u64, body: &[u8], now_ms: i64) -> Result<bool> {
    let tx = conn.transaction()?;
    if !newer(&tx, kind, version)? {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO sync_state (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![format!("snapshot:{kind}"), String::from_utf8_lossy(body)],
    )?;
    record_version(&tx, kind, version, now_ms)?;
    tx.commit()?;
    Ok(true)
}

/// A snapshot kept verbatim, if one was received.
pub fn raw_snapshot(conn: &Connection, kind: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM sync_state WHERE key = ?1", [format!("snapshot:{kind}")], |r| r.get(0))
        .optional()?)
}

fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TimetableEntry> {
    let time = |i: usize| -> rusqlite::Result<NaiveTime> {
        let s: String = r.get(i)?;
        NaiveTime::parse_from_str(&s, "%H:%M:%S")
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
    };
    let date = |i: usize| -> rusqlite::Result<Option<NaiveDate>> {
        let s: Option<String> = r.get(i)?;
        s.map(|s| {
            s.parse()
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
        })
        .transpose()
    };
    Ok(TimetableEntry {
        entry_id: r.get(0)?,
        course_id: r.get(1)?,
        course_name: r.get(2)?,
        faculty_id: r.get(3)?,
        room_id: r.get(4)?,
        day_of_week: r.get(5)?,
        start_time: time(6)?,
        end_time: time(7)?,
        effective_from: date(8)?,
        effective_until: date(9)?,
    })
}

const ENTRY_COLUMNS: &str = "entry_id, course_id, course_name, faculty_id, room_id, day_of_week, start_time, \
                             end_time, effective_from, effective_until";

/// Every cached entry, in weekday and start order.
pub fn entries(conn: &Connection) -> Result<Vec<TimetableEntry>> {
    let mut stmt =
        conn.prepare(&format!("SELECT {ENTRY_COLUMNS} FROM timetable_entries ORDER BY day_of_week, start_time"))?;
    let rows = stmt.query_map([], entry_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The entry whose slot contains `at`, or that starts within `early` after it (a faculty member
/// may open a session a little before the bell).
pub fn entry_at(
    conn: &Connection,
    room_id: &str,
    at: NaiveDateTime,
    early: TimeDelta,
) -> Result<Option<TimetableEntry>> {
    let date = at.date();
    Ok(entries(conn)?.into_iter().filter(|e| e.room_id == room_id && e.applies_on(date)).find(|e| {
        let start = date.and_time(e.start_time);
        let end = date.and_time(e.end_time);
        at >= start - early && at < end
    }))
}

/// The demo students' classroom PIN (`--simulate` only).
pub const DEMO_STUDENT_PIN: &str = "246810";
/// argon2id hash of [`DEMO_STUDENT_PIN`], made once: hashing at start would cost the demo node
/// 19 MiB of argon2 memory that glibc keeps resident afterwards.
pub const DEMO_STUDENT_PIN_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$NSy0o6S2TBe8YhGh2+mNow$v1tp74Z0CsXErwcYlZACcO9t7Hl+/SFEM762Zh/Y84I";
/// argon2id hash of the demo faculty's PIN `1234`.
pub const DEMO_FACULTY_PIN_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$QNXRoWHzSVOhBrgA+vVKmQ$hEf+DbUHDJ5w7sbCrr3q8XwC+6ndz/5/kZ1IZ+0Vaok";

/// Demo data for `--simulate`: today and every weekday, room `demo-101`, three slots, one
/// faculty member (PIN `1234`) and five students (cards `5A000001`…`5A000005`, register numbers
/// `2026001`…`2026005`, student PIN [`DEMO_STUDENT_PIN`]); card `FACA0001` is the faculty card.
pub fn demo(room_id: &str) -> (TimetableSnapshot, RosterSnapshot) {
    let slot = |h: u32, m: u32| NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN);
    let mut entries = Vec::new();
    for day in 1..=7u8 {
        for (i, (start, end, course)) in [
            (slot(9, 0), slot(9, 50), "cs101"),
            (slot(10, 0), slot(10, 50), "cs102"),
            (slot(13, 0), slot(14, 30), "cs101"),
        ]
        .into_iter()
        .enumerate()
        {
            entries.push(TimetableEntry {
                entry_id: format!("demo-{day}-{i}"),
                course_id: course.into(),
                course_name: if course == "cs101" { "Data Structures" } else { "Algorithms" }.into(),
                faculty_id: "faculty-demo".into(),
                room_id: room_id.into(),
                day_of_week: day,
                start_time: start,
                end_time: end,
                effective_from: None,
                effective_until: None,
            });
        }
    }
    let students: Vec<(String, String)> = (1..=5).map(|i| (format!("student-{i}"), format!("5A00000{i}"))).collect();
    let mut cards: Vec<Card> = students
        .iter()
        .map(|(id, uid)| Card {
            card_uid: uid.clone(),
            user_id: id.clone(),
            role: Role::Student,
            name: id.replace('-', " "),
        })
        .collect();
    cards.push(Card {
        card_uid: "FACA0001".into(),
        user_id: "faculty-demo".into(),
        role: Role::Faculty,
        name: "Dr. Demo".into(),
    });
    let enrollments = ["cs101", "cs102"]
        .iter()
        .flat_map(|c| {
            students.iter().map(move |(id, _)| Enrollment {
                course_id: (*c).into(),
                student_id: id.clone(),
                name: id.replace('-', " "),
            })
        })
        .collect();
    // One hash for all five; each still signs in as themself.
    let student_pin = Some(DEMO_STUDENT_PIN_HASH.to_owned());
    let students_signing_in = students
        .iter()
        .enumerate()
        .map(|(i, (id, _))| Student {
            user_id: id.clone(),
            name: id.replace('-', " "),
            register_number: Some(format!("202600{}", i + 1)),
            email: Some(format!("{id}@campus.local")),
            pin_hash: student_pin.clone(),
        })
        .collect();
    let faculty = vec![Faculty {
        user_id: "faculty-demo".into(),
        name: "Dr. Demo".into(),
        pin_hash: Some(DEMO_FACULTY_PIN_HASH.to_owned()),
        staff_number: Some("100001".into()),
        email: Some("demo@campus.local".into()),
    }];
    let roster = RosterSnapshot { version: 1, cards, faculty, enrollments, students: students_signing_in };
    (TimetableSnapshot { version: 1, entries }, roster)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn at(d: u32, h: u32, m: u32) -> NaiveDateTime {
        // 2026-11-23 is a Monday.
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap().and_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn a_newer_snapshot_replaces_the_cache_and_an_older_one_is_ignored() {
        let store = Store::open_in_memory().unwrap();
        let (mut tt, _) = demo("r1");
        store
            .with(|c| {
                assert!(apply_timetable(c, &tt, 0)?);
                assert_eq!(entries(c)?.len(), 21);
                tt.version = 1;
                tt.entries.truncate(1);
                assert!(!apply_timetable(c, &tt, 0)?, "same version is ignored");
                assert_eq!(entries(c)?.len(), 21);
                tt.version = 2;
                assert!(apply_timetable(c, &tt, 0)?);
                assert_eq!(entries(c)?.len(), 1);
                assert_eq!(snapshot_version(c, "timetable")?, Some(2));
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn a_snapshot_with_a_bad_entry_leaves_the_old_one_in_force() {
        let store = Store::open_in_memory().unwrap();
        let (mut tt, _) = demo("r1");
        store.with(|c| apply_timetable(c, &tt, 0)).unwrap();
        tt.version = 5;
        tt.entries[3].end_time = tt.entries[3].start_time;
        assert!(matches!(store.with(|c| apply_timetable(c, &tt, 0)), Err(Error::Snapshot(_))));
        store
            .with(|c| {
                assert_eq!(snapshot_version(c, "timetable")?, Some(1));
                assert_eq!(entries(c)?.len(), 21);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn the_running_entry_is_found_including_shortly_before_its_start() {
        let store = Store::open_in_memory().unwrap();
        store.with(|c| apply_timetable(c, &demo("r1").0, 0)).unwrap();
        let early = TimeDelta::minutes(10);
        store
            .with(|c| {
                assert_eq!(entry_at(c, "r1", at(23, 9, 20), early)?.unwrap().entry_id, "demo-1-0");
                assert_eq!(entry_at(c, "r1", at(23, 8, 52), early)?.unwrap().entry_id, "demo-1-0");
                assert!(entry_at(c, "r1", at(23, 8, 45), early)?.is_none());
                assert_eq!(entry_at(c, "r1", at(23, 9, 55), early)?.unwrap().entry_id, "demo-1-1");
                assert!(entry_at(c, "r1", at(23, 11, 0), early)?.is_none());
                assert!(entry_at(c, "other-room", at(23, 9, 20), early)?.is_none());
                assert_eq!(entry_at(c, "r1", at(24, 13, 5), early)?.unwrap().entry_id, "demo-2-2");
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn roster_cards_are_normalised_and_bad_uids_rejected() {
        let store = Store::open_in_memory().unwrap();
        let (_, mut roster) = demo("r1");
        roster.cards[0].card_uid = "5a:00:00:01".into();
        store.with(|c| apply_roster(c, &roster, 0)).unwrap();
        let n: i64 = store
            .with(|c| Ok(c.query_row("SELECT count(*) FROM cards WHERE card_uid = '5A000001'", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(n, 1);
        roster.version = 2;
        roster.cards[1].card_uid = "nope".into();
        assert!(matches!(store.with(|c| apply_roster(c, &roster, 0)), Err(Error::Snapshot(_))));
    }
}
