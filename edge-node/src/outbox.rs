//! Events waiting for the cloud. Rows are appended in the same transaction as the state change
//! that caused them, numbered by a sequence that never repeats (SQLite `AUTOINCREMENT`), and
//! deleted only when the cloud acknowledges them.

use nimbus_core::topics::Topic;
use rusqlite::{Connection, params};
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

/// Number of events not yet acknowledged.
pub fn backlog(conn: &Connection) -> Result<u64> {
    Ok(conn.query_row("SELECT count(*) FROM outbox", [], |r| r.get::<_, i64>(0))? as u64)
}

/// Deletes every event up to and including `seq` (the cloud has them safely).
pub fn acknowledge(conn: &Connection, seq: u64) -> Result<usize> {
    Ok(conn.execute("DELETE FROM outbox WHERE seq <= ?1", [seq as i64])?)
}
