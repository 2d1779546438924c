//! Wires the node together: store, attendance, the reader, the tap loop, the auto-close job and
//! the LAN server, all stopped by one cancellation token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveTime, TimeDelta, Timelike};
use nimbus_core::reader::Feedback;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

use crate::attendance::Attendance;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ReaderKind};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::reader::simulated::SimulatedReader;
use crate::reader::{CardReader, TapRequest};
use crate::store::Store;
use crate::{http, timetable};

/// How often the auto-close job looks for sessions whose slot has ended.
const CLOSE_DUE_CRON: &str = "*/15 * * * * *";

/// Where a running node listens (printed on its `ready` line for operators and tests).
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    /// The LAN server.
    pub http: SocketAddr,
    /// The simulated reader's socket, when the reader is simulated.
    pub reader: Option<SocketAddr>,
}

/// Runs the node until `shutdown` is cancelled. With `simulate`, the demo timetable and rosters
/// are loaded (plus a class running right now, so a faculty tap has something to open).
pub async fn run(config: Config, simulate: bool, shutdown: CancellationToken) -> Result<()> {
    let store = Store::open(&config.database_path())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    if simulate {
        load_demo(&store, &config.room_id, clock.as_ref())?;
    }
    let attendance = Attendance::new(store.clone(), clock.clone(), config.rules());
    let leftovers = {
        let a = attendance.clone();
        tokio::task::spawn_blocking(move || a.interpret_leftovers()).await.map_err(join_error)??
    };
    if leftovers > 0 {
        tracing::warn!(leftovers, "interpreted taps stored before the last crash");
    }
    let metrics = Arc::new(Metrics::default());
    let (taps_tx, taps_rx) = mpsc::channel::<TapRequest>(64);

    let http_listener = TcpListener::bind(config.http.bind).await?;
    let mut endpoints = Endpoints { http: http_listener.local_addr()?, reader: None };
    let reader: Box<dyn CardReader> = match config.reader.kind {
        ReaderKind::Simulated => {
            let listener = TcpListener::bind(config.reader.simulated_bind).await?;
            endpoints.reader = Some(listener.local_addr()?);
            Box::new(SimulatedReader::listen(listener))
        }
        other => hardware_reader(other, &config)?,
    };

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(tap_loop(attendance.clone(), metrics.clone(), taps_rx));
    let reader_shutdown = shutdown.clone();
    let reader_taps = taps_tx.clone();
    tasks.spawn(async move {
        if let Err(e) = reader.run(reader_taps, reader_shutdown).await {
            tracing::error!(error = %e, "card reader stopped");
        }
    });
    if let Some(script) = config.reader.script.clone() {
        let (t, s) = (taps_tx.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = Box::new(SimulatedReader::script(script)).run(t, s).await {
                tracing::error!(error = %e, "tap script stopped");
            }
        });
    }
    let scheduler = start_auto_close(attendance.clone(), metrics.clone()).await?;
    if config.cloud.enabled {
        let (s, c, st, sd) = (store.clone(), clock.clone(), metrics.sync.clone(), shutdown.clone());
        let settings = config.sync_settings();
        tasks.spawn(async move {
            if let Err(e) = crate::sync::run(s, c, settings, st, sd).await {
                tracing::error!(error = %e, "cloud sync stopped");
            }
        });
    }
    tasks.spawn(housekeeping(
        store.clone(),
        config.cloud.outbox_budget_mb * 1024 * 1024,
        config.cloud.disk_warn_free_mb * 1024 * 1024,
        shutdown.clone(),
    ));
    let mut state = http::AppState::new(attendance, metrics, simulate.then(|| taps_tx.clone()));
    drop(taps_tx);
    if config.content.enabled {
        let cache = crate::content::ContentCache::new(store.clone(), clock.clone(), config.content_settings())?;
        let (routes, writer) = http::content::ContentRoutes::new(store.clone(), clock.clone(), cache.paths().clone());
        state = state.with_content(routes);
        // The access-event writer ends once the server (holding the routes) has stopped.
        tasks.spawn(async move {
            let _ = writer.await;
        });
        tasks.spawn(cache.run(shutdown.clone()));
    }
    let advertiser = if config.discovery.enabled {
        let (node, room, port) = (config.node_id.clone(), config.room_id.clone(), endpoints.http.port());
        let also_http = config.discovery.advertise_http;
        match crate::discovery::Advertiser::start(&node, &room, port, also_http) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(error = %e, "mDNS advertisement failed; the node is reachable by address only");
                None
            }
        }
    } else {
        None
    };
    let http_shutdown = shutdown.clone();
    tasks.spawn(async move {
        if let Err(e) = http::run(http_listener, state, http_shutdown).await {
            tracing::error!(error = %e, "LAN server stopped");
        }
    });

    tracing::info!(node = %config.node_id, room = %config.room_id, http = %endpoints.http, "node running");
    println!(
        "nimbus-edge ready http={} reader={}",
        endpoints.http,
        endpoints.reader.map_or("hardware".to_owned(), |a| a.to_string())
    );

    crate::notify::notify("READY=1");
    if let Some(every) = crate::notify::watchdog_interval() {
        let (store, sd) = (store.clone(), shutdown.clone());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = sd.cancelled() => return,
                    _ = tick.tick() => {}
                }
                // Ping only while the runtime and the store answer; a wedged SQLite gets a restart.
                let probe = store.run(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?));
                match tokio::time::timeout(every, probe).await {
                    Ok(Ok(_)) => {
                        crate::notify::notify("WATCHDOG=1");
                    }
                    _ => tracing::warn!("store did not answer; withholding the watchdog ping"),
                }
            }
        });
    }

    shutdown.cancelled().await;
    crate::notify::notify("STOPPING=1");
    tracing::info!("shutting down");
    if let Some(a) = advertiser {
        let _ = tokio::task::spawn_blocking(move || a.stop()).await;
    }
    let mut scheduler = scheduler;
    if let Err(e) = scheduler.shutdown().await {
        tracing::warn!(error = %e, "auto-close scheduler did not stop cleanly");
    }
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain).await.is_err() {
        tracing::warn!("tasks did not finish within 10 s; exiting anyway");
    }
    Ok(())
}

/// Records taps one at a time, in arrival order, and answers each reader.
async fn tap_loop(attendance: Attendance, metrics: Arc<Metrics>, mut taps: mpsc::Receiver<TapRequest>) {
    while let Some(TapRequest { read, reply }) = taps.recv().await {
        let a = attendance.clone();
        let feedback = match tokio::task::spawn_blocking(move || a.record_tap(read)).await {
            Ok(Ok(tap)) => {
                metrics.tap(&tap.outcome);
                tracing::info!(card = %read.uid, tap = tap.id, outcome = ?tap.outcome, "tap");
                tap.outcome.feedback()
            }
            Ok(Err(e)) => {
                metrics.tap_error();
                tracing::error!(card = %read.uid, error = %e, "tap not recorded");
                Feedback::Error
            }
            Err(e) => {
                metrics.tap_error();
                tracing::error!(card = %read.uid, error = %e, "tap task failed");
                Feedback::Error
            }
        };
        // The reader may have gone away (client disconnected); the tap is stored either way.
        let _ = reply.send(feedback);
    }
}

/// Every minute: keeps the outbox under its budget (dropping telemetry, never attendance) and
/// warns while the data filesystem is short of space, before SQLite runs out of it.
async fn housekeeping(store: Store, budget_bytes: u64, warn_free_bytes: u64, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let result = store
            .run(move |c| {
                let evicted = crate::outbox::enforce_budget(c, budget_bytes)?;
                Ok((evicted, crate::metrics::disk_free_bytes(c)))
            })
            .await;
        match result {
            Ok((_, Some(free))) if free < warn_free_bytes => {
                tracing::warn!(free_mb = free / 1024 / 1024, "the data disk is nearly full; attendance keeps priority")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "housekeeping failed"),
        }
    }
}

async fn start_auto_close(attendance: Attendance, metrics: Arc<Metrics>) -> Result<JobScheduler> {
    let sched_err = |e: tokio_cron_scheduler::JobSchedulerError| Error::Io(std::io::Error::other(e.to_string()));
    let scheduler = JobScheduler::new().await.map_err(sched_err)?;
    let job = Job::new_async(CLOSE_DUE_CRON, move |_, _| {
        let a = attendance.clone();
        let m = metrics.clone();
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || a.close_due()).await {
                Ok(Ok(closed)) if !closed.is_empty() => m.sessions_closed(closed.len() as u64),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "auto-close failed; will retry"),
                Err(e) => tracing::error!(error = %e, "auto-close task failed"),
            }
        })
    })
    .map_err(sched_err)?;
    scheduler.add(job).await.map_err(sched_err)?;
    scheduler.start().await.map_err(sched_err)?;
    Ok(scheduler)
}

/// Loads the demo snapshots, adding a class that runs from a few minutes ago for an hour.
fn load_demo(store: &Store, room_id: &str, clock: &dyn Clock) -> Result<()> {
    let now = clock.now();
    let (mut tt, roster) = timetable::demo(room_id);
    let (start, end) = live_slot(now.local.time());
    if end > start {
        let mut live = tt.entries[0].clone();
        live.entry_id = format!("demo-live-{}", now.local.format("%Y%m%d%H%M"));
        live.day_of_week = chrono::Datelike::weekday(&now.local.date()).number_from_monday() as u8;
        live.start_time = start;
        live.end_time = end;
        live.effective_from = Some(now.local.date());
        live.effective_until = Some(now.local.date());
        // Fixed demo slots that overlap the live one would shadow it.
        tt.entries.retain(|e| e.day_of_week != live.day_of_week || e.end_time <= start || e.start_time >= end);
        tt.entries.push(live);
    }
    // Newer than any earlier demo run, so the live slot is current.
    tt.version = now.utc.timestamp() as u64;
    store.with(|c| {
        timetable::apply_timetable(c, &tt, now.wall_ms())?;
        timetable::apply_roster(c, &roster, now.wall_ms())?;
        Ok(())
    })
}

/// The demo's "class running now": from 5 minutes ago for an hour, kept within today (a slot
/// that wrapped past midnight would end before it starts and never be running).
fn live_slot(now: NaiveTime) -> (NaiveTime, NaiveTime) {
    let now = now.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(now);
    let start =
        if now >= NaiveTime::MIN + TimeDelta::minutes(5) { now - TimeDelta::minutes(5) } else { NaiveTime::MIN };
    let last = NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN);
    let end = if now + TimeDelta::minutes(55) > now { now + TimeDelta::minutes(55) } else { last };
    (start, end.min(last))
}

#[cfg(not(feature = "rpi"))]
fn hardware_reader(kind: ReaderKind, _config: &Config) -> Result<Box<dyn CardReader>> {
    Err(Error::Config(format!("reader.kind = {kind:?} needs a build with feature `rpi`")))
}

#[cfg(feature = "rpi")]
fn hardware_reader(_kind: ReaderKind, config: &Config) -> Result<Box<dyn CardReader>> {
    Ok(config.rpi_reader()?.into_reader())
}

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Io(std::io::Error::other(format!("task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn the_demo_class_runs_now_at_any_time_of_day_including_around_midnight() {
        for now in
            [t(0, 0), t(0, 2), t(9, 30), t(22, 59), t(23, 5), t(23, 59), NaiveTime::from_hms_opt(23, 59, 59).unwrap()]
        {
            let (start, end) = live_slot(now);
            assert!(
                start <= now && now < end || (now >= end && end == t(23, 59) + TimeDelta::seconds(59)),
                "{now}: {start}-{end}"
            );
            assert!(end > start, "{now}: {start}-{end}");
        }
        assert_eq!(live_slot(t(9, 30)), (t(9, 25), t(10, 25)));
        assert_eq!(live_slot(t(23, 5)), (t(23, 0), NaiveTime::from_hms_opt(23, 59, 59).unwrap()));
    }
}
