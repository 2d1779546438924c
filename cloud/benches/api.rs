//! Admin API load run: N concurrent HTTP clients against `nimbus_cloud::api::run` on a real
//! port (127.0.0.1:0) over real PostgreSQL, Redis and Kafka, printing requests per second and
//! p50/p99 latency per scenario. Scenarios today: login (argon2 verify, session row, two outbox
//! events, token signing) and the user list (token verification, Redis revocation check and
//! rate limit, a paged query) and the attendance report of one course (12,000 of 240,000 records
//! aggregated per student) as JSON and as CSV. Add a scenario by calling [`load`] with another
//! request closure.
//!
//!     cargo bench -p nimbus-cloud --bench api
//!     API_BENCH_CLIENTS=32 API_BENCH_SECS=20 cargo bench -p nimbus-cloud --bench api

// The integration tests' support; this bench uses only the test API's configuration.
#[path = "../tests/integration/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::api::{ADMIN_EMAIL, ADMIN_PASSWORD, USER_PASSWORD, test_config};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// What one scenario measured.
pub struct Stats {
    /// Requests answered as expected.
    pub ok: usize,
    /// Requests answered otherwise (or not at all).
    pub errors: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency of every request, sorted.
    pub latencies: Vec<Duration>,
}

impl Stats {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len()) - 1;
        self.latencies[i]
    }

    /// One line: name, clients, req/s, p50, p99, errors.
    pub fn print(&self, name: &str, clients: usize) {
        println!(
            "{name:<12} clients={clients:<3} requests={:<7} {:>8.1} req/s  p50={:>7.1} ms  p99={:>7.1} ms  errors={}",
            self.ok + self.errors,
            self.ok as f64 / self.elapsed.as_secs_f64(),
            self.percentile(0.50).as_secs_f64() * 1000.0,
            self.percentile(0.99).as_secs_f64() * 1000.0,
            self.errors
        );
    }
}

/// Runs `clients` concurrent clients for `duration`; client `i` sends `request(http, i)` in a
/// loop, which answers whether the response was the expected one.
pub async fn load<F, Fut>(clients: usize, duration: Duration, request: F) -> Stats
where
    F: Fn(reqwest::Client, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (request, http) = (request.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors, mut latencies) = (0, 0, Vec::new());
            while Instant::now() < deadline {
                let t = Instant::now();
                if request(http.clone(), i).await {
                    ok += 1
                } else {
                    errors += 1
                }
                latencies.push(t.elapsed());
            }
            (ok, errors, latencies)
        }));
    }
    let mut stats = Stats { ok: 0, errors: 0, elapsed: Duration::ZERO, latencies: Vec::new() };
    for t in tasks {
        let (ok, errors, latencies) = t.await.unwrap();
        stats.ok += ok;
        stats.errors += errors;
        stats.latencies.extend(latencies);
    }
    stats.elapsed = started.elapsed();
    stats.latencies.sort();
    stats
}

async fn post_json(http: &reqwest::Client, url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = http.post(url).header("content-type", "application/json").body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json_text().await)
        }
        Err(_) => (0, Value::Null),
    }
}

trait JsonText {
    async fn json_text(self) -> Value;
}

impl JsonText for reqwest::Response {
    async fn json_text(self) -> Value {
        self.text().await.ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null)
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(run());
}

async fn run() {
    let clients: usize = std::env::var("API_BENCH_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let secs: u64 = std::env::var("API_BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let (config, dbs) = test_config().await;
    let attendance_url = config.database_url_for("attendance_service_db");
    let course_url = config.database_url_for("course_service_db");
    let timetable_url = config.database_url_for("timetable_service_db");
    let announcement_url = config.database_url_for("announcement_service_db");
    let user_url = config.database_url_for("user_service_db");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let server = tokio::spawn(nimbus_cloud::api::run(config, listener, stop.clone()));
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let login_url = format!("{base}/api/v1/auth/login");
    let (status, admin) =
        post_json(&http, &login_url, None, json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    assert_eq!(status, 200, "admin login: {admin}");
    let admin = admin["access_token"].as_str().unwrap().to_owned();
    let mut emails = Vec::new();
    for i in 0..clients {
        let email = format!("bench{i}@campus.test");
        let (status, body) = post_json(
            &http,
            &format!("{base}/api/v1/users"),
            Some(&admin),
            json!({ "email": email, "password": USER_PASSWORD, "role": "student", "first_name": format!("Bench {i}") }),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        emails.push(email);
    }
    println!("admin API load run: {clients} clients, {secs} s per scenario, server on {base}");

    let emails_0 = emails[0].clone();
    let emails = Arc::new(emails);
    let url = login_url.clone();
    let stats = load(clients, Duration::from_secs(secs), move |http, i| {
        let (url, email) = (url.clone(), emails[i].clone());
        async move { post_json(&http, &url, None, json!({ "email": email, "password": USER_PASSWORD })).await.0 == 200 }
    })
    .await;
    stats.print("login", clients);

    let url = format!("{base}/api/v1/users?limit=50");
    let token = admin.clone();
    let stats = load(clients, Duration::from_secs(secs), move |http, _| {
        let (url, token) = (url.clone(), token.clone());
        async move { http.get(&url).bearer_auth(&token).send().await.is_ok_and(|r| r.status().as_u16() == 200) }
    })
    .await;
    stats.print("user list", clients);

    // Attendance reports over a term's records: 20 courses × 200 students × 60 class days
    // (240,000 rows); the report reads one course's 12,000 and aggregates them per student.
    let pool = nimbus_cloud::db::pool(&attendance_url, 2).unwrap();
    pool.get()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO attendance_records (attendance_id, student_id, course_id, entry_id, class_date, status,
                 marked_by, marked_at, status_at, event_id)
             SELECT 'c' || c || '-d' || d, 's' || s, 'course-' || c, 'e', DATE '2026-09-01' + d,
                    (ARRAY['present', 'present', 'present', 'late', 'absent', 'excused'])[1 + (s + d) % 6],
                    'fac', now(), now(), gen_random_uuid()
             FROM generate_series(1, 20) c, generate_series(1, 200) s, generate_series(0, 59) d;
             ANALYZE attendance_records;",
        )
        .await
        .unwrap();
    pool.close();
    for (name, query) in [("attendance report (JSON)", ""), ("attendance report (CSV)", "&format=csv")] {
        let url = format!("{base}/api/v1/reports/attendance/courses/course-7?from=2026-09-01&to=2026-10-31{query}");
        let token = admin.clone();
        let stats = load(clients, Duration::from_secs(secs), move |http, _| {
            let (url, token) = (url.clone(), token.clone());
            async move {
                match http.get(&url).bearer_auth(&token).send().await {
                    Ok(r) if r.status().as_u16() == 200 => r.bytes().await.is_ok_and(|b| b.len() > 1000),
                    _ => false,
                }
            }
        })
        .await;
        stats.print(name, clients);
    }

    // A student's announcements: enrolled in 50 of 500 courses, 10,000 published announcements
    // in the database, targeted every way (courses, departments, roles, everyone, named users,
    // rooms); the page is the caller's first 50, urgent first, with read marks.
    let (status, me) =
        post_json(&http, &login_url, None, json!({ "email": emails_0, "password": USER_PASSWORD })).await;
    assert_eq!(status, 200, "{me}");
    let student_token = me["access_token"].as_str().unwrap().to_owned();
    let me: Value =
        http.get(format!("{base}/api/v1/me")).bearer_auth(&student_token).send().await.unwrap().json_text().await;
    let student = me["id"].as_str().unwrap().to_owned();
    let visible = seed_announcements([&user_url, &course_url, &timetable_url, &announcement_url], &student).await;
    let url = format!("{base}/api/v1/me/announcements?limit=50");
    let stats = load(clients, Duration::from_secs(secs), move |http, _| {
        let (url, token) = (url.clone(), student_token.clone());
        async move {
            match http.get(&url).bearer_auth(&token).send().await {
                Ok(r) if r.status().as_u16() == 200 => r.json_text().await["total"].as_i64() == Some(visible),
                _ => false,
            }
        }
    })
    .await;
    stats.print("my announcements", clients);

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
    for db in dbs {
        db.drop_now().await;
    }
}

/// 500 courses in 10 departments, the student in 50 of them (5 rooms' worth of timetable), and
/// 10,000 published announcements; returns how many reach the student.
async fn seed_announcements([user_url, course_url, timetable_url, announcement_url]: [&str; 4], student: &str) -> i64 {
    // Two connections: the seeding holds one while the profile below asks for another.
    let courses = nimbus_cloud::db::pool(course_url, 2).unwrap();
    let c = courses.get().await.unwrap();
    c.batch_execute(
        "INSERT INTO departments (id, code, name)
           SELECT ('00000000-0000-0000-0000-' || lpad(d::text, 12, '0'))::uuid, 'BD' || d, 'D' || d FROM generate_series(1, 10) d;
         INSERT INTO programs (id, department_id, code, name)
           SELECT ('00000000-0000-0000-0001-' || lpad(d::text, 12, '0'))::uuid,
                  ('00000000-0000-0000-0000-' || lpad(d::text, 12, '0'))::uuid, 'BP' || d, 'P' || d FROM generate_series(1, 10) d;
         INSERT INTO subjects (id, department_id, code, name)
           SELECT ('00000000-0000-0000-0002-' || lpad(d::text, 12, '0'))::uuid,
                  ('00000000-0000-0000-0000-' || lpad(d::text, 12, '0'))::uuid, 'BS' || d, 'S' || d FROM generate_series(1, 10) d;
         INSERT INTO courses (id, course_code, course_name, subject_id, department_id, program_id, semester, academic_year,
                              max_students, created_by)
           SELECT ('00000000-0000-0000-0003-' || lpad(n::text, 12, '0'))::uuid, 'BC' || n, 'Course ' || n,
                  ('00000000-0000-0000-0002-' || lpad((1 + n % 10)::text, 12, '0'))::uuid,
                  ('00000000-0000-0000-0000-' || lpad((1 + n % 10)::text, 12, '0'))::uuid,
                  ('00000000-0000-0000-0001-' || lpad((1 + n % 10)::text, 12, '0'))::uuid, 1 + n % 8, 2026, 500, 'bench'
           FROM generate_series(1, 500) n;",
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO students (user_id, program_id) VALUES ($1, '00000000-0000-0000-0001-000000000001')
         ON CONFLICT (user_id) DO UPDATE SET program_id = EXCLUDED.program_id, is_active = true",
        &[&student],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO course_enrollments (course_id, student_id, status, enrolled_by)
         SELECT ('00000000-0000-0000-0003-' || lpad(n::text, 12, '0'))::uuid, $1, 'enrolled', 'admin'
         FROM generate_series(10, 500, 10) n",
        &[&student],
    )
    .await
    .unwrap();
    let timetable = nimbus_cloud::db::pool(timetable_url, 2).unwrap();
    timetable
        .get()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO rooms (id, room_number, building, capacity, room_type)
               SELECT ('00000000-0000-0000-0004-' || lpad(r::text, 12, '0'))::uuid, 'BR-' || r, 'B', 60, 'lecture'
               FROM generate_series(1, 10) r;
             INSERT INTO timetables (id, name, semester_id, department_id, status, created_by)
               VALUES ('00000000-0000-0000-0005-000000000001', 'T', 's', 'd', 'published', 'bench');
             INSERT INTO timetable_entries (timetable_id, course_id, course_name, faculty_id, room_id, day_of_week,
                                            start_time, end_time, created_by)
               SELECT '00000000-0000-0000-0005-000000000001', '00000000-0000-0000-0003-' || lpad(n::text, 12, '0'), 'C',
                      'f', ('00000000-0000-0000-0004-' || lpad((1 + n % 10)::text, 12, '0'))::uuid, 1 + n % 5,
                      make_time(8 + (n / 10) % 10, 0, 0), make_time(9 + (n / 10) % 10, 0, 0), 'bench'
               FROM generate_series(1, 500) n;",
        )
        .await
        .unwrap();
    let pool = nimbus_cloud::db::pool(announcement_url, 1).unwrap();
    let a = pool.get().await.unwrap();
    // Announcement n targets: n % 8 = 0 everyone; 1 a role; 2 a department; 3 three courses;
    // 4 a course and students; 5 a room; 6 a semester of a program; 7 two named people.
    a.batch_execute(
        "INSERT INTO announcements (id, title, content, announcement_type, priority, target_audience, has_filter, status,
                                    created_by, published_at)
           SELECT ('00000000-0000-0000-0006-' || lpad(n::text, 12, '0'))::uuid, 'Announcement ' || n,
                  repeat('Text of the announcement. ', 8), 'general',
                  (ARRAY['low', 'normal', 'normal', 'high', 'urgent'])[1 + n % 5], 'mixed', n % 8 <> 7, 'published',
                  'bench', now() - make_interval(secs => n)
           FROM generate_series(1, 10000) n;
         INSERT INTO announcement_targets (announcement_id, target_type, target_id)
           SELECT ('00000000-0000-0000-0006-' || lpad(n::text, 12, '0'))::uuid, t.kind, t.value
           FROM generate_series(1, 10000) n,
           LATERAL (VALUES
             (n % 8 = 0, 'everyone', ''),
             (n % 8 = 1, 'role', (ARRAY['student', 'faculty', 'admin'])[1 + n % 3]),
             (n % 8 = 2, 'department', '00000000-0000-0000-0000-' || lpad((1 + n % 10)::text, 12, '0')),
             (n % 8 = 3, 'course', '00000000-0000-0000-0003-' || lpad((1 + n % 500)::text, 12, '0')),
             (n % 8 = 3, 'course', '00000000-0000-0000-0003-' || lpad((1 + (n + 7) % 500)::text, 12, '0')),
             (n % 8 = 3, 'course', '00000000-0000-0000-0003-' || lpad((1 + (n + 13) % 500)::text, 12, '0')),
             (n % 8 = 4, 'course', '00000000-0000-0000-0003-' || lpad((1 + n % 500)::text, 12, '0')),
             (n % 8 = 4, 'role', 'student'),
             (n % 8 = 5, 'room', 'BR-' || (1 + n % 10)),
             (n % 8 = 6, 'program', '00000000-0000-0000-0001-' || lpad((1 + n % 10)::text, 12, '0')),
             (n % 8 = 6, 'semester', (1 + n % 8)::text),
             (n % 8 = 7, 'user', gen_random_uuid()::text),
             (n % 8 = 7, 'user', gen_random_uuid()::text)
           ) AS t(applies, kind, value)
           WHERE t.applies;
         ANALYZE announcements; ANALYZE announcement_targets;",
    )
    .await
    .unwrap();
    // What reaches the student, counted by the rule itself over the same rows.
    let me = nimbus_cloud::announcement::audience::Directory {
        users: nimbus_cloud::db::pool(user_url, 1).unwrap(),
        courses: courses.clone(),
        timetable: timetable.clone(),
    }
    .profile(student, &["student".to_owned()])
    .await
    .unwrap();
    let rows = a
        .query(
            "SELECT array_agg(t.target_type), array_agg(t.target_id) FROM announcement_targets t GROUP BY t.announcement_id",
            &[],
        )
        .await
        .unwrap();
    let visible = rows
        .iter()
        .filter(|r| {
            let (kinds, ids): (Vec<String>, Vec<String>) = (r.get(0), r.get(1));
            nimbus_cloud::announcement::targets::Targets::from_rows(
                kinds.iter().map(String::as_str).zip(ids.iter().map(String::as_str)),
            )
            .reaches(&me)
        })
        .count() as i64;
    println!("announcements: 10000 in the database, {visible} reach the student (50 of 500 courses)");
    visible
}
