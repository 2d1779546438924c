//! Time as the node knows it. A Raspberry Pi has no real-time clock: after a power cut its wall
//! clock may be wrong until NTP syncs. Every tap therefore records the wall time, a monotonic
//! boot-relative reading and the boot id, plus whether the wall clock was synchronised, so the
//! cloud can detect and correct events captured with a wrong clock.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, TimeDelta, Utc};

/// One reading of every clock the node has.
#[derive(Debug, Clone)]
pub struct Now {
    /// Wall clock, UTC.
    pub utc: DateTime<Utc>,
    /// Wall clock in campus local time (timetables are written in it).
    pub local: NaiveDateTime,
    /// Milliseconds since boot, including suspend; never jumps.
    pub mono_ms: u64,
    /// Identifies this boot; `mono_ms` is only comparable within one boot.
    pub boot_id: Arc<str>,
    /// Whether the wall clock is believed correct (NTP synchronised and after the build date).
    pub synced: bool,
}

impl Now {
    /// Wall time in Unix milliseconds.
    pub fn wall_ms(&self) -> i64 {
        self.utc.timestamp_millis()
    }
}

/// A source of [`Now`]; the system clock in production, a manual one in tests.
pub trait Clock: Send + Sync {
    /// Reads the clocks.
    fn now(&self) -> Now;
}

/// The machine's clocks: `CLOCK_REALTIME`, `CLOCK_BOOTTIME`, the kernel's boot id and its NTP
/// synchronisation state.
pub struct SystemClock {
    boot_id: Arc<str>,
}

/// Wall times before this are certainly wrong (a Pi that booted without network or RTC).
const EARLIEST_PLAUSIBLE_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

impl SystemClock {
    /// Reads the boot id once.
    pub fn new() -> Self {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| format!("pid-{}-{}", std::process::id(), Utc::now().timestamp_millis()));
        SystemClock { boot_id: boot_id.into() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

fn boottime_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes into the timespec we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

fn kernel_says_synced() -> bool {
    // SAFETY: adjtimex with modes = 0 only reads the kernel's time state into `tx`.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    // -1: the call itself was refused (seccomp, ProtectClock): the state is unknown, not good.
    state >= 0 && state != libc::TIME_ERROR
}

impl Clock for SystemClock {
    fn now(&self) -> Now {
        let utc = Utc::now();
        Now {
            utc,
            local: utc.with_timezone(&Local).naive_local(),
            mono_ms: boottime_ms(),
            boot_id: self.boot_id.clone(),
            synced: utc.timestamp_millis() >= EARLIEST_PLAUSIBLE_MS && kernel_says_synced(),
        }
    }
}

/// A clock tests move by hand, in a fixed campus offset.
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<(DateTime<Utc>, u64, bool)>>,
    offset: FixedOffset,
    boot_id: Arc<str>,
}

impl ManualClock {
    /// Starts at `local` campus time in `offset`.
    pub fn at_local(local: NaiveDateTime, offset: FixedOffset) -> Self {
        let utc = (local - TimeDelta::seconds(offset.local_minus_utc() as i64)).and_utc();
        ManualClock { inner: Arc::new(Mutex::new((utc, 1_000, true))), offset, boot_id: "test-boot".into() }
    }

    /// Moves every clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += TimeDelta::from_std(by).unwrap_or(TimeDelta::zero());
        g.1 += by.as_millis() as u64;
    }

    /// Sets the wall clock only (an NTP step); the monotonic clock does not move.
    pub fn set_wall_local(&self, local: NaiveDateTime) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = (local - TimeDelta::seconds(self.offset.local_minus_utc() as i64)).and_utc();
    }

    /// Marks the wall clock as (un)synchronised.
    pub fn set_synced(&self, synced: bool) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).2 = synced;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Now {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Now {
            utc: g.0,
            local: g.0.with_timezone(&self.offset).naive_local(),
            mono_ms: g.1,
            boot_id: self.boot_id.clone(),
            synced: g.2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_reads_a_boot_id_and_a_moving_monotonic_clock() {
        let c = SystemClock::new();
        let a = c.now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = c.now();
        assert!(!a.boot_id.is_empty());
        assert!(b.mono_ms >= a.mono_ms + 4, "{} -> {}", a.mono_ms, b.mono_ms);
    }

    #[test]
    fn manual_clock_keeps_local_time_in_its_offset() {
        let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(9, 0, 0).unwrap();
        let c = ManualClock::at_local(start, FixedOffset::east_opt(5 * 3600 + 1800).unwrap());
        assert_eq!(c.now().local, start);
        assert_eq!(c.now().utc.to_rfc3339(), "2026-11-23T03:30:00+00:00");
        c.advance(std::time::Duration::from_secs(90));
        assert_eq!(c.now().local, start + TimeDelta::seconds(90));
        assert_eq!(c.now().mono_ms, 91_000);
    }
}
