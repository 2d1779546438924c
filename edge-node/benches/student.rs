//! Student page benchmark: the node's real LAN server (the `nimbus-edge` binary, in its own
//! process) with 200 students signed in at once, each reloading `GET /student` as fast as the
//! node answers for a fixed time. Prints the page's latency (p50, p90, p99, max), pages/s, the
//! sign-in time, and the node's resident memory (idle, after the sign-ins, peak VmHWM; its own
//! process, so the load generator is not counted).
//!
//!     cargo bench -p nimbus-edge --bench student
//!
//! `BENCH_SECS` (default 10) sets the time, `BENCH_CLIENTS` (default 200) the number of students
//! (each one signed in with their own session and connection). By default every student reloads
//! as soon as the page arrives (a closed loop: the node's capacity, where latency is queueing);
//! `BENCH_INTERVAL_MS=1000` has each reload the page once a second instead (a busy class). The node holds what a busy room
//! does: 200 students enrolled in two courses, 20 cached files, 40 past classes with a mark for
//! every student, and a class running now. Every page render reads the student's courses,
//! material (stat of each file), announcements and attendance from SQLite.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveTime;
use nimbus_core::snapshot::{Enrollment, ManifestItem, ManifestSnapshot, RosterSnapshot, Student, TimetableEntry};
use nimbus_edge::content::cache::{self, Paths};
use nimbus_edge::store::Store;
use nimbus_edge::timetable::{self, TimetableSnapshot};
use sha2::{Digest, Sha256};

mod support;
use support::{env_or, vm_kib};

const ROOM: &str = "bench-room";
const PIN: &str = "246810";
const FILES: usize = 20;
const CLASSES: usize = 40;

/// The room's data: two courses, `students` students in both,
/// files, past classes with marks.
fn prepare_node(data: &Path, students: usize) {
    std::fs::create_dir_all(data).unwrap();
    let store = Store::open(&data.join("node.db")).unwrap();
    let paths = Paths::create(&data.join("content")).unwrap();
    let slot = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
    // cs101 runs all day, every day (so there is always a class now); cs102 is only enrolled.
    let entries = (1..=7u8)
        .map(|day| TimetableEntry {
            entry_id: format!("cs101-{day}"),
            course_id: "cs101".into(),
            course_name: "Data Structures".into(),
            faculty_id: "faculty-bench".into(),
            room_id: ROOM.into(),
            day_of_week: day,
            start_time: slot(0, 0),
            end_time: slot(23, 59),
            effective_from: None,
            effective_until: None,
        })
        .collect();
    let hash = nimbus_edge::auth::hash_pin(PIN).unwrap();
    let ids: Vec<String> = (0..students).map(|i| format!("student-{i:04}")).collect();
    let roster = RosterSnapshot {
        version: 1,
        cards: vec![],
        faculty: vec![],
        enrollments: ["cs101", "cs102"]
            .iter()
            .flat_map(|c| {
                ids.iter().map(|s| Enrollment { course_id: (*c).into(), student_id: s.clone(), name: s.clone() })
            })
            .collect(),
        students: ids
            .iter()
            .enumerate()
            .map(|(i, s)| Student {
                user_id: s.clone(),
                name: format!("Student {i}"),
                register_number: Some(format!("R{i:04}")),
                email: None,
                pin_hash: Some(hash.clone()),
            })
            .collect(),
    };
    let mut items = Vec::new();
    for i in 0..FILES {
        let bytes = vec![i as u8; 4096 + i];
        let id = format!("bench-{i:02}");
        std::fs::write(paths.file(&id, 1).unwrap(), &bytes).unwrap();
        items.push(ManifestItem {
            content_id: id,
            version: 1,
            title: format!("Lecture {i} notes"),
            file_name: format!("lecture {i}.pdf"),
            mime_type: "application/pdf".into(),
            size_bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
            course_ids: vec![if i % 2 == 0 { "cs101" } else { "cs102" }.into()],
            url: "http://127.0.0.1:9/unreachable".into(),
        });
    }
    let manifest = ManifestSnapshot { version: 1, items: items.clone() };
    store
        .with(|c| {
            timetable::apply_timetable(c, &TimetableSnapshot { version: 1, entries }, 0)?;
            timetable::apply_roster(c, &roster, 0)?;
            timetable::apply_raw(c, "manifest", 1, &serde_json::to_vec(&manifest)?, 0)?;
            cache::reconcile(c, &items, &Default::default(), &paths, 0)?;
            for item in &items {
                let pending = cache::due(c, i64::MAX)?;
                let r = pending.into_iter().find(|r| r.content_id == item.content_id).unwrap();
                let meta = std::fs::metadata(paths.file(&r.content_id, 1).unwrap())?;
                cache::mark_complete(c, &r, cache::mtime_ms(&meta), 0, &paths)?;
            }
            // Past classes (weeks ago), everyone marked.
            let tx = c.transaction()?;
            let day_ms = 86_400_000i64;
            let first = chrono::Utc::now().timestamp_millis() - (CLASSES as i64 + 2) * day_ms;
            for k in 0..CLASSES {
                let (course, starts) = (if k % 2 == 0 { "cs101" } else { "cs102" }, first + k as i64 * day_ms);
                let id = format!("past-{k}");
                let date = chrono::DateTime::from_timestamp_millis(starts).unwrap().date_naive().to_string();
                tx.execute(
                    "INSERT INTO sessions (id, entry_id, course_id, course_name, faculty_id, class_date, starts_ms,
                         ends_ms, opened_ms, opened_by, closed_ms, close_reason)
                     VALUES (?1, ?2, ?3, ?3, 'faculty-bench', ?4, ?5, ?6, ?5, 'faculty-bench', ?6, 'slot_end')",
                    rusqlite::params![id, format!("past-entry-{k}"), course, date, starts, starts + 3_000_000],
                )?;
                for (i, s) in ids.iter().enumerate() {
                    let status = ["present", "late", "absent"][(i + k) % 3];
                    tx.execute(
                        "INSERT INTO marks (session_id, student_id, status, source, marked_ms, marked_by)
                         VALUES (?1, ?2, ?3, 'manual', ?4, 'faculty-bench')",
                        rusqlite::params![id, s, status, starts],
                    )?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .unwrap();
}

fn cookie_value(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|l| l.strip_prefix(&format!("{name}="))?.split(';').next().map(str::to_owned))
}

/// Signs student `i` in through the form, as a browser does; their session cookie.
async fn sign_in(client: &reqwest::Client, base: &str, i: usize) -> String {
    let form = client.get(format!("{base}/student/login")).send().await.unwrap();
    let form_cookie = cookie_value(&form, "nimbus_student_form").expect("form cookie");
    let page = form.text().await.unwrap();
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
    let register = format!("R{i:04}");
    let res = client
        .post(format!("{base}/student/login"))
        .header("cookie", format!("nimbus_student_form={form_cookie}"))
        .form(&[("user_id", register.as_str()), ("pin", PIN), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "sign-in of {register}");
    cookie_value(&res, "nimbus_student").expect("session cookie")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let secs: f64 = env_or("BENCH_SECS", 10.0);
    let clients: usize = env_or("BENCH_CLIENTS", 200);
    let interval_ms: u64 = env_or("BENCH_INTERVAL_MS", 0);
    let dir = tempfile::tempdir_in(".").unwrap();
    prepare_node(&dir.path().join("data"), clients);
    let (node, base) = support::start_node(dir.path(), ROOM);
    let pid = node.0.id();
    let idle_kib = vm_kib(pid, "VmRSS:");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        // Each student: their own connection and session, signed in concurrently.
        let started = Instant::now();
        let mut logins = Vec::new();
        for i in 0..clients {
            let base = base.clone();
            logins.push(tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let cookie = sign_in(&client, &base, i).await;
                (client, cookie)
            }));
        }
        let mut sessions = Vec::new();
        for l in logins {
            sessions.push(l.await.unwrap());
        }
        let sign_in_secs = started.elapsed().as_secs_f64();
        let signed_in_kib = vm_kib(pid, "VmRSS:");

        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (idx, (client, cookie)) in sessions.into_iter().enumerate() {
            let (base, stop) = (base.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let (mut times, mut errors, mut bytes) = (Vec::new(), 0u64, 0usize);
                // Students do not all reload in the same millisecond: spread them over the interval.
                if interval_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(interval_ms * idx as u64 / clients as u64)).await;
                }
                let mut tick = (interval_ms > 0).then(|| {
                    let mut t = tokio::time::interval(Duration::from_millis(interval_ms));
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    t
                });
                while !stop.load(Ordering::Relaxed) {
                    if let Some(t) = tick.as_mut() {
                        t.tick().await;
                    }
                    let t = Instant::now();
                    let res = client
                        .get(format!("{base}/student"))
                        .header("cookie", format!("nimbus_student={cookie}"))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == 200 => match r.text().await {
                            Ok(body) if body.contains("My attendance in this room") => {
                                bytes = body.len();
                                times.push(t.elapsed());
                            }
                            _ => errors += 1,
                        },
                        _ => errors += 1,
                    }
                }
                (times, errors, bytes)
            }));
        }
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, Ordering::Relaxed);
        let (mut all, mut errors, mut page_bytes) = (Vec::new(), 0, 0);
        for t in tasks {
            let (times, e, b) = t.await.unwrap();
            all.extend(times);
            errors += e;
            page_bytes = page_bytes.max(b);
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort();
        let peak_kib = vm_kib(pid, "VmHWM:");
        println!("{clients} students signed in ({sign_in_secs:.1} s for all sign-ins, argon2 checks 2 at a time)");
        if interval_ms > 0 {
            println!("each student reloads every {interval_ms} ms");
        } else {
            println!("each student reloads as soon as the page arrives (closed loop)");
        }
        println!(
            "GET /student ({page_bytes} bytes): {:.1} pages/s over {elapsed:.1} s, {} pages, {errors} errors",
            all.len() as f64 / elapsed,
            all.len()
        );
        println!(
            "latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(percentile(&all, 0.50)),
            ms(percentile(&all, 0.90)),
            ms(percentile(&all, 0.99)),
            ms(all.last().copied().unwrap_or_default())
        );
        println!(
            "node resident memory: idle {:.1} MiB, {clients} signed in {:.1} MiB, peak (VmHWM) {:.1} MiB",
            idle_kib as f64 / 1024.0,
            signed_in_kib as f64 / 1024.0,
            peak_kib as f64 / 1024.0
        );
    });
    drop(node);
}
