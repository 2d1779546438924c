//! Counters the node exposes on `/metrics` (Prometheus text format). Plain atomics: the node
//! has a handful of series and no dependency is worth pulling in for them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::attendance::TapOutcome;

const OUTCOMES: [&str; 9] = [
    "accepted",
    "late",
    "duplicate",
    "faculty_open",
    "faculty_repeat",
    "no_class",
    "unknown_card",
    "not_on_roster",
    "pending",
];

/// The node's counters.
#[derive(Debug)]
pub struct Metrics {
    /// The link to the cloud, updated by the sync task.
    pub sync: std::sync::Arc<crate::sync::SyncStatus>,
    started: Instant,
    taps: [AtomicU64; OUTCOMES.len()],
    tap_errors: AtomicU64,
    sessions_closed: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            sync: Default::default(),
            started: Instant::now(),
            taps: Default::default(),
            tap_errors: AtomicU64::new(0),
            sessions_closed: AtomicU64::new(0),
        }
    }
}

/// Gauges read from the database when `/metrics` is scraped.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Events not yet acknowledged by the cloud.
    pub outbox_backlog: u64,
    /// Age of the oldest unacknowledged event, seconds.
    pub outbox_oldest_age_seconds: f64,
    /// Distinct unknown cards in quarantine.
    pub unknown_cards: u64,
    /// 1 when a session is open.
    pub session_open: bool,
    /// Telemetry rows dropped under disk pressure, ever.
    pub outbox_evicted_total: u64,
    /// Free bytes on the data directory's filesystem, when known.
    pub disk_free_bytes: Option<u64>,
}

impl Metrics {
    /// Counts an interpreted tap.
    pub fn tap(&self, outcome: &TapOutcome) {
        let code = match outcome {
            TapOutcome::Marked { status, .. } if status.as_str() == "late" => "late",
            TapOutcome::Marked { .. } => "accepted",
            TapOutcome::Duplicate { .. } => "duplicate",
            TapOutcome::SessionOpened { .. } => "faculty_open",
            TapOutcome::FacultyRepeat => "faculty_repeat",
            TapOutcome::NoClassNow => "no_class",
            TapOutcome::UnknownCard => "unknown_card",
            TapOutcome::NotOnRoster { .. } => "not_on_roster",
            TapOutcome::Pending { .. } => "pending",
        };
        if let Some(i) = OUTCOMES.iter().position(|o| *o == code) {
            self.taps[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a tap that could not be recorded or interpreted.
    pub fn tap_error(&self) {
        self.tap_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts closed sessions.
    pub fn sessions_closed(&self, n: u64) {
        self.sessions_closed.fetch_add(n, Ordering::Relaxed);
    }

    /// Taps counted with `outcome` so far.
    pub fn taps_with(&self, outcome: &str) -> u64 {
        OUTCOMES.iter().position(|o| *o == outcome).map_or(0, |i| self.taps[i].load(Ordering::Relaxed))
    }

    /// The Prometheus text exposition.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP nimbus_edge_taps_total Card taps by interpretation.\n# TYPE nimbus_edge_taps_total counter\n",
        );
        for (i, o) in OUTCOMES.iter().enumerate() {
            writeln!(out, "nimbus_edge_taps_total{{outcome=\"{o}\"}} {}", self.taps[i].load(Ordering::Relaxed)).ok();
        }
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}").ok();
        };
        metric(
            "nimbus_edge_tap_errors_total",
            "counter",
            "Taps that could not be stored or interpreted.",
            self.tap_errors.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "nimbus_edge_sessions_closed_total",
            "counter",
            "Attendance sessions closed.",
            self.sessions_closed.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "nimbus_edge_outbox_backlog",
            "gauge",
            "Events not yet acknowledged by the cloud.",
            g.outbox_backlog.to_string(),
        );
        metric(
            "nimbus_edge_outbox_oldest_age_seconds",
            "gauge",
            "Age of the oldest unacknowledged event.",
            format!("{:.3}", g.outbox_oldest_age_seconds),
        );
        metric(
            "nimbus_edge_unknown_cards",
            "gauge",
            "Distinct unknown cards awaiting an admin.",
            g.unknown_cards.to_string(),
        );
        metric(
            "nimbus_edge_session_open",
            "gauge",
            "1 while an attendance session is open.",
            u8::from(g.session_open).to_string(),
        );
        metric(
            "nimbus_edge_uptime_seconds",
            "gauge",
            "Seconds since the daemon started.",
            format!("{:.3}", self.started.elapsed().as_secs_f64()),
        );
        out
    }
}

/// Reads the gauges from the database.
pub fn gauges(conn: &rusqlite::Connection, now_ms: i64) -> crate::Result<Gauges> {
    let (backlog, oldest): (i64, Option<i64>) =
        conn.query_row("SELECT count(*), min(wall_ms) FROM outbox", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let unknown: i64 = conn.query_row("SELECT count(*) FROM unknown_cards", [], |r| r.get(0))?;
    let open: i64 = conn.query_row("SELECT count(*) FROM sessions WHERE closed_ms IS NULL", [], |r| r.get(0))?;
    Ok(Gauges {
        outbox_evicted_total: crate::outbox::evicted_total(conn)?,
        disk_free_bytes: disk_free_bytes(conn),
        outbox_backlog: backlog as u64,
        outbox_oldest_age_seconds: oldest.map_or(0.0, |o| (now_ms - o).max(0) as f64 / 1000.0),
        unknown_cards: unknown as u64,
        session_open: open > 0,
    })
}

/// Free bytes on the filesystem holding the database (None for in-memory databases).
pub fn disk_free_bytes(conn: &rusqlite::Connection) -> Option<u64> {
    let file: String =
        conn.query_row("SELECT file FROM pragma_database_list WHERE name = 'main'", [], |r| r.get(0)).ok()?;
    let dir = std::path::Path::new(&file).parent()?;
    let c_dir = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes only into the struct we pass; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_dir.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_in_prometheus_text() {
        let m = Metrics::default();
        m.tap(&TapOutcome::UnknownCard);
        m.tap(&TapOutcome::UnknownCard);
        m.tap_error();
        let text = m.render(&Gauges { outbox_backlog: 3, session_open: true, ..Default::default() });
        assert!(text.contains("nimbus_edge_taps_total{outcome=\"unknown_card\"} 2\n"));
        assert!(text.contains("nimbus_edge_tap_errors_total 1\n"));
        assert!(text.contains("nimbus_edge_outbox_backlog 3\n"));
        assert!(text.contains("nimbus_edge_session_open 1\n"));
        assert_eq!(m.taps_with("unknown_card"), 2);
    }
}
