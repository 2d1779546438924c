//! Events waiting for the cloud. Rows are appended in the same transaction as the state change
//! that caused them, numbered by a sequence that never repeats (SQLite `AUTOINCREMENT`), and
//! deleted only when the cloud acknowledges them.

use nimbus_core::topics::Topic;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::clock::Now;
use crate::error::Result;

/// How important an event is when disk runs short: attendance is never dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Attendance and corrections: never evicted.
    Critical = 0,
    /// Telemetry such as content access logs: may be dropped oldest-first under disk pressure.
    Telemetry = 1,
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Position in the node's stream.
    pub seq: u64,
    /// The seed event type (`ATTENDANCE_MARKED`, …).
    pub event_type: String,
    /// The seed topic it goes to.
    pub topic: String,
    /// Eviction class.
    pub priority: i64,
    /// The seed payload.
    pub payload: serde_json::Value,
    /// Wall clock when it was written.
    pub wall_ms: i64,
    /// Whether that wall clock was trusted.
    pub clock_synced: bool,
    /// The boot it was written in.
    pub boot_id: String,
}

/// Appends an event; call inside the transaction that makes the change it reports.
pub fn append(
    conn: &Connection,
    event_type: &str,
    topic: Topic,
    priority: Priority,
    payload: &impl Serialize,
    now: &Now,
) -> Result<u64> {
    conn.execute(
        "INSERT INTO outbox (event_type, topic, priority, payload, wall_ms, clock_synced, boot_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            event_type,
            topic.name(),
            priority as i64,
            serde_json::to_string(payload)?,
            now.wall_ms(),
            now.synced,
            &*now.boot_id
        ],
    )?;
    Ok(conn.last_insert_rowid() as u64)
}

/// Up to `limit` events from the oldest.
pub fn pending(conn: &Connection, limit: usize) -> Result<Vec<OutboxEvent>> {
    let mut stmt = conn.prepare(
        "SELECT seq, event_type, topic, priority, payload, wall_ms, clock_synced, boot_id
         FROM outbox ORDER BY seq LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        let payload: String = r.get(4)?;
        Ok(OutboxEvent {
            seq: r.get::<_, i64>(0)? as u64,
            event_type: r.get(1)?,
            topic: r.get(2)?,
            priority: r.get(3)?,
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
            wall_ms: r.get(5)?,
            clock_synced: r.get(6)?,
            boot_id: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Up to `max` events with `seq >= from_seq`, in seq order, as the sync protocol sends them.
pub fn pending_from(conn: &Connection, from_seq: u64, max: usize) -> Result<Vec<nimbus_sync::frame::EdgeEvent>> {
    let mut stmt = conn.prepare(
        "SELECT seq, event_type, topic, priority, payload, wall_ms, clock_synced, boot_id
         FROM outbox WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![from_seq as i64, max as i64], |r| {
        Ok(nimbus_sync::frame::EdgeEvent {
            seq: r.get::<_, i64>(0)? as u64,
            event_type: r.get(1)?,
            topic: r.get(2)?,
            priority: r.get::<_, i64>(3)?.clamp(0, 255) as u8,
            payload_json: r.get(4)?,
            wall_ms: r.get(5)?,
            clock_synced: r.get(6)?,
            boot_id: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The highest seq the cloud has acknowledged (0 before the first ack). Survives restarts, so the
/// sender resumes after it.
pub fn acked_upto(conn: &Connection) -> Result<u64> {
    Ok(conn
        .query_row("SELECT value FROM sync_state WHERE key = 'acked_upto'", [], |r| r.get::<_, String>(0))
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Event type of a telemetry row dropped under disk pressure. The row stays (as a tombstone with
/// an empty payload) because the stream must stay contiguous; the cloud skips it.
pub const EVICTED: &str = "EVICTED";

/// Keeps the outbox's payload bytes under `budget`: turns the oldest evictable (telemetry) rows
/// into tombstones until it fits. Attendance is never touched. Returns how many were evicted.
pub fn enforce_budget(conn: &mut Connection, budget: u64) -> Result<u64> {
    let tx = conn.transaction()?;
    let mut used: i64 = tx.query_row("SELECT coalesce(sum(length(payload)), 0) FROM outbox", [], |r| r.get(0))?;
    let mut evicted = 0u64;
    if used as u64 > budget {
        let victims: Vec<(i64, i64)> = {
            let mut stmt = tx.prepare(
                "SELECT seq, length(payload) FROM outbox WHERE priority > 0 AND event_type != ?1 ORDER BY seq",
            )?;
            stmt.query_map([EVICTED], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?
        };
        for (seq, len) in victims {
            if used as u64 <= budget {
                break;
            }
            tx.execute("UPDATE outbox SET event_type = ?1, payload = '{}' WHERE seq = ?2", params![EVICTED, seq])?;
            used -= len - 2;
            evicted += 1;
        }
        if evicted > 0 {
            tx.execute(
                "INSERT INTO sync_state (key, value) VALUES ('evicted_total', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ?1 AS TEXT)",
                [evicted as i64],
            )?;
            tracing::warn!(evicted, budget, "outbox over its disk budget: dropped the oldest telemetry");
        }
    }
    tx.commit()?;
    Ok(evicted)
}

/// Telemetry rows dropped under disk pressure since the node was installed.
pub fn evicted_total(conn: &Connection) -> Result<u64> {
    Ok(conn
        .query_row("SELECT value FROM sync_state WHERE key = 'evicted_total'", [], |r| r.get::<_, String>(0))
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Number of events not yet acknowledged.
pub fn backlog(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row("SELECT count(*) FROM outbox", [], |r| r.get::<_, i64>(0))? as u64)
}

/// The cloud has every event up to and including `seq` safely: deletes them and records the
/// new acknowledged mark, in one transaction (a crash cannot leave one without the other).
pub fn acknowledge(conn: &mut Connection, seq: u64) -> Result<usize> {
    let tx = conn.transaction()?;
    let n = tx.execute("DELETE FROM outbox WHERE seq <= ?1", [seq as i64])?;
    tx.execute(
        "INSERT INTO sync_state (key, value) VALUES ('acked_upto', ?1)
         ON CONFLICT (key) DO UPDATE SET value = CAST(max(CAST(value AS INTEGER), ?1) AS TEXT)",
        [seq as i64],
    )?;
    tx.commit()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::store::Store;

    fn now() -> Now {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(9, 0, 0).unwrap();
        ManualClock::at_local(t, chrono::FixedOffset::east_opt(0).unwrap()).now()
    }

    #[test]
    fn acknowledging_deletes_and_persists_the_mark_which_never_goes_back() {
        let store = Store::open_in_memory().unwrap();
        store
            .with(|c| {
                for i in 0..5 {
                    append(c, "ATTENDANCE_MARKED", Topic::AttendanceEvents, Priority::Critical, &i, &now())?;
                }
                assert_eq!(acked_upto(c)?, 0);
                assert_eq!(pending_from(c, 1, 10)?.len(), 5);
                assert_eq!(acknowledge(c, 3)?, 3);
                assert_eq!(acked_upto(c)?, 3);
                acknowledge(c, 2)?;
                assert_eq!(acked_upto(c)?, 3, "a stale ack does not rewind");
                let rest = pending_from(c, 4, 10)?;
                assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
                assert_eq!(rest[0].payload_json, "3");
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn over_budget_only_telemetry_becomes_tombstones_oldest_first() {
        let store = Store::open_in_memory().unwrap();
        store
            .with(|c| {
                let big = "x".repeat(1000);
                append(c, "CONTENT_ACCESSED", Topic::ContentEvents, Priority::Telemetry, &big, &now())?;
                append(c, "ATTENDANCE_MARKED", Topic::AttendanceEvents, Priority::Critical, &big, &now())?;
                append(c, "CONTENT_ACCESSED", Topic::ContentEvents, Priority::Telemetry, &big, &now())?;
                append(c, "CONTENT_ACCESSED", Topic::ContentEvents, Priority::Telemetry, &big, &now())?;
                assert_eq!(enforce_budget(c, 10_000)?, 0);
                assert_eq!(enforce_budget(c, 2_500)?, 2);
                let rows = pending_from(c, 1, 10)?;
                let types: Vec<&str> = rows.iter().map(|e| e.event_type.as_str()).collect();
                assert_eq!(types, [EVICTED, "ATTENDANCE_MARKED", EVICTED, "CONTENT_ACCESSED"]);
                assert_eq!(rows.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4], "no holes");
                assert_eq!(enforce_budget(c, 0)?, 1, "attendance stays even when nothing else fits");
                assert_eq!(pending_from(c, 2, 1)?[0].event_type, "ATTENDANCE_MARKED");
                assert_eq!(evicted_total(c)?, 3);
                Ok(())
            })
            .unwrap();
    }
}
