//! The student page in a real browser (Debian's headless Chromium over WebDriver) against the
//! node's LAN server on a real socket, with a content cache filled from a fake cloud.
//!
//! The room is the demo room (cs101 09:00–09:50, cs102 10:00–10:50 every day); the clock stands on
//! Monday 2026-11-23 10:05, during cs102. Cast: student-1 takes cs101 and cs102, student-2 and
//! student-3 take cs101, student-5 takes only cs102; all sign in with register number
//! `202600<n>` and PIN [`timetable::DEMO_STUDENT_PIN`]. cs101 met at 09:00 (student-1 present,
//! the others absent); cs102 is running (student-1 marked late). Material: `doc-cs101` (cs101),
//! `doc-cs102` (cs102), `doc-ma201` (a course not taught here).

use std::sync::Arc;
use std::time::Duration;

use chrono::{FixedOffset, NaiveDate};
use nimbus_core::event::attendance::AttendanceStatus;
use nimbus_edge::attendance::{Attendance, Rules};
use nimbus_edge::clock::ManualClock;
use nimbus_edge::content::{CacheSettings, ContentCache};
use nimbus_edge::http::{self, AppState};
use nimbus_edge::metrics::Metrics;
use nimbus_edge::store::Store;
use nimbus_edge::testing::{Browser, Screen};
use nimbus_edge::timetable::{self, Enrollment, RosterSnapshot};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::common::{FakeCloud, bytes_of, item, set_manifest, sha256_hex};

const ROOM: &str = "demo-101";
const CS101_LEN: usize = 300 * 1024 + 7;

struct Node {
    base: String,
    store: Store,
    roster: RosterSnapshot,
    cs101: Vec<u8>,
    cs102: Vec<u8>,
    _dir: tempfile::TempDir,
    _cloud: FakeCloud,
    _stop: tokio_util::sync::DropGuard,
}

async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_memory().unwrap();
    let (tt, demo) = timetable::demo(ROOM);
    let enrollments = [("cs101", 1), ("cs101", 2), ("cs101", 3), ("cs102", 1), ("cs102", 5)]
        .iter()
        .map(|(c, s)| Enrollment {
            course_id: (*c).into(),
            student_id: format!("student-{s}"),
            name: format!("Student {s}"),
        })
        .collect();
    let mut students = demo.students.clone();
    students.retain(|s| s.user_id != "student-4");
    for s in &mut students {
        s.name = s.user_id.replace("student-", "Student ");
    }
    let roster = RosterSnapshot { enrollments, students, ..demo };
    let kept = roster.clone();
    store.with(|c| timetable::apply_timetable(c, &tt, 0)).unwrap();
    store.with(|c| timetable::apply_roster(c, &roster, 0)).unwrap();

    let cloud = FakeCloud::start().await;
    let cs101 = bytes_of(CS101_LEN, 11);
    let cs102 = bytes_of(5000, 12);
    let mut a = item(&cloud, "doc-cs101", 1, &cs101, &["cs101"]);
    a.title = "Binary trees <lecture 4>".into();
    let mut b = item(&cloud, "doc-cs102", 1, &cs102, &["cs102"]);
    b.title = "Dynamic programming".into();
    b.mime_type = "video/mp4".into();
    let mut c = item(&cloud, "doc-ma201", 1, &bytes_of(100, 13), &["ma201"]);
    c.title = "Calculus".into();
    set_manifest(&store, 1, vec![a, b, c]);

    let at = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(9, 5, 0).unwrap();
    let clock = ManualClock::at_local(at, FixedOffset::east_opt(19_800).unwrap());
    let cache =
        ContentCache::new(store.clone(), Arc::new(clock.clone()), CacheSettings::new(dir.path(), ROOM)).unwrap();
    assert_eq!(cache.sync_once().await.unwrap().completed.len(), 3);

    // cs101 at 09:00: student-1 present, closed (the others absent); cs102 at 10:00: running.
    let att =
        Attendance::new(store.clone(), Arc::new(clock.clone()), Rules { room_id: ROOM.into(), ..Rules::default() });
    let s = att.open_session("faculty-demo").unwrap();
    att.mark(&s.id, "student-1", AttendanceStatus::Present, None, "faculty-demo").unwrap();
    att.close_session(&s.id, "manual").unwrap();
    clock.advance(Duration::from_secs(3600));
    let s = att.open_session("faculty-demo").unwrap();
    assert_eq!(s.course_id, "cs102");
    att.mark(&s.id, "student-1", AttendanceStatus::Late, None, "faculty-demo").unwrap();

    let (routes, _writer) =
        http::content::ContentRoutes::new(store.clone(), Arc::new(clock.clone()), cache.paths().clone());
    let state = AppState::new(att, Arc::new(Metrics::default()), None).with_content(routes);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(http::run(listener, state, stop.clone()));
    Node { base, store, roster: kept, cs101, cs102, _dir: dir, _cloud: cloud, _stop: stop.drop_guard() }
}

async fn sign_in(b: &Browser, base: &str, who: &str, pin: &str) -> String {
    b.goto(&format!("{base}/student")).await;
    assert!(b.url().await.ends_with("/student/login"), "the page needs a sign-in: {}", b.url().await);
    b.fill("input[name=user_id]", who).await;
    b.fill("input[name=pin]", pin).await;
    b.submit("form[action='/student/login'] button[type=submit]").await;
    b.text().await
}

/// Fetches `path` from within the page (the student's cookie goes along, as with a click) and
/// returns its status, length, SHA-256 and `Content-Type`.
async fn fetch(b: &Browser, path: &str, range: Option<&str>) -> Value {
    b.script_async(
        "var done = arguments[arguments.length - 1];\
         var h = arguments[1] ? { Range: arguments[1] } : {};\
         fetch(arguments[0], { headers: h, credentials: 'same-origin' }).then(function (r) {\
           return r.arrayBuffer().then(function (buf) {\
             return crypto.subtle.digest('SHA-256', buf).then(function (d) {\
               var hex = Array.from(new Uint8Array(d)).map(function (x) { return x.toString(16).padStart(2, '0'); }).join('');\
               done({ status: r.status, len: buf.byteLength, sha: hex, type: r.headers.get('content-type') });\
             });\
           });\
         }).catch(function (e) { done({ error: String(e) }); });",
        json!([path, range]),
    )
    .await
}

#[tokio::test]
async fn a_student_signs_in_on_a_320_px_phone_sees_their_material_and_attendance_and_downloads() {
    let n = node().await;
    let b = Browser::start(Screen::Phone { width: 320, height: 700 }).await;
    b.goto(&format!("{}/student/login", n.base)).await;
    b.screenshot_for_docs("student-phone-login").await;
    let text = sign_in(&b, &n.base, "2026001", timetable::DEMO_STUDENT_PIN).await;
    assert!(text.contains("Signed in as Student 1"), "{text}");
    assert!(text.contains("Now in this room: cs102 Algorithms"), "{text}");

    // Exactly their courses' material: the class running now first, then today's; type and size.
    let titles = b
        .script(
            "return Array.from(document.querySelectorAll('ul.materials a.download')).map(a => a.textContent.trim())",
            json!([]),
        )
        .await;
    assert_eq!(titles, json!(["Dynamic programming", "Binary trees <lecture 4>"]), "escaped, ordered: {text}");
    assert!(text.contains("Video (MP4) · 5.0 kB") && text.contains("PDF · 307.2 kB"), "{text}");
    assert!(!text.contains("Calculus"), "{text}");

    // Their attendance: present in cs101, late in the running cs102.
    assert!(text.contains("cs101 Data Structures: 1 present, 0 late, 0 absent (1 class)"), "{text}");
    assert!(text.contains("cs102 Algorithms: 0 present, 1 late, 0 absent (1 class)"), "{text}");
    assert_eq!(b.count("td.present").await, 1);
    assert_eq!(b.count("td.late").await, 1);

    // Nothing runs off a 320 px screen; the download links are finger-sized.
    let layout = b
        .script(
            "var w = window.innerWidth, bad = [];\
             document.querySelectorAll('a.download, button').forEach(function (x) {\
               var r = x.getBoundingClientRect();\
               if (r.left < 0 || r.right > w + 0.5 || r.height < 44) bad.push(x.textContent + ' ' + JSON.stringify(r));\
             });\
             return { scroll: document.documentElement.scrollWidth, width: w, bad: bad };",
            json!([]),
        )
        .await;
    assert_eq!(layout["width"], 320, "{layout}");
    assert!(layout["scroll"].as_u64() <= layout["width"].as_u64(), "horizontal overflow: {layout}");
    assert_eq!(layout["bad"], json!([]), "{layout}");
    b.screenshot_for_docs("student-phone").await;

    // The download, bytes verified; and its tail, as a resumed download asks for it.
    let href = b.script("return document.querySelector('a.download[download]').getAttribute('href')", json!([])).await;
    assert_eq!(href, "/student/content/doc-cs102");
    let got = fetch(&b, "/student/content/doc-cs101", None).await;
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(
        (got["len"].as_u64(), got["sha"].as_str()),
        (Some(CS101_LEN as u64), Some(sha256_hex(&n.cs101).as_str()))
    );
    assert_eq!(got["type"], "application/pdf");
    let tail = fetch(&b, "/student/content/doc-cs101", Some("bytes=100000-")).await;
    assert_eq!(tail["status"], 206, "{tail}");
    assert_eq!(tail["sha"].as_str(), Some(sha256_hex(&n.cs101[100_000..]).as_str()));
    let got = fetch(&b, "/student/content/doc-cs102", None).await;
    assert_eq!(got["sha"].as_str(), Some(sha256_hex(&n.cs102).as_str()), "{got}");
    // A course they are not in.
    assert_eq!(fetch(&b, "/student/content/doc-ma201", None).await["status"], 403);

    // Signing out ends it: the page and the files need a new sign-in.
    b.submit("form[action='/student/logout'] button").await;
    assert!(b.url().await.ends_with("/student/login"), "{}", b.url().await);
    // (The sign-in page allows no fetch: open the file's address instead.)
    b.goto(&format!("{}/student/content/doc-cs101", n.base)).await;
    assert!(b.text().await.contains("Sign in on the student page first"), "{}", b.text().await);
}

#[tokio::test]
async fn a_student_of_another_course_sees_nothing_of_it() {
    let n = node().await;
    let b = Browser::start(Screen::Phone { width: 390, height: 844 }).await;
    // By e-mail, in any case.
    let text = sign_in(&b, &n.base, "STUDENT-5@campus.local", timetable::DEMO_STUDENT_PIN).await;
    assert!(text.contains("Signed in as Student 5"), "{text}");
    assert!(text.contains("Dynamic programming"), "their cs102 material: {text}");
    for other in ["Binary trees", "Calculus", "Data Structures", "cs101"] {
        assert!(!text.contains(other), "{other} shown to a cs102-only student: {text}");
    }
    assert!(text.contains("Not marked yet (class in progress)"), "{text}");
    assert_eq!(fetch(&b, "/student/content/doc-cs101", None).await["status"], 403);

    // student-3 takes only cs101: absent at 09:00, nothing of cs102.
    let b = Browser::start(Screen::Desktop { width: 1280, height: 900 }).await;
    let text = sign_in(&b, &n.base, "2026003", timetable::DEMO_STUDENT_PIN).await;
    assert!(text.contains("cs101 Data Structures: 0 present, 0 late, 1 absent (1 class)"), "{text}");
    assert!(!text.contains("Now in this room") && !text.contains("Dynamic programming"), "{text}");
    assert_eq!(b.count("td.absent").await, 1);
    b.screenshot_for_docs("student-desktop").await;
}

#[tokio::test]
async fn ten_wrong_credentials_from_one_browser_are_throttled() {
    let n = node().await;
    let b = Browser::start(Screen::Phone { width: 390, height: 844 }).await;
    // Ten guesses spread over the class (and a name that does not exist): no one person reaches
    // their own limit of five, but the address does.
    for i in 0..10 {
        let who = if i == 9 { "2026999".to_owned() } else { format!("202600{}", [1, 2, 3, 5][i % 4]) };
        let text = sign_in(&b, &n.base, &who, "000000").await;
        assert!(text.contains("Register number or PIN is incorrect."), "guess {i}: {text}");
    }
    let text = sign_in(&b, &n.base, "2026002", timetable::DEMO_STUDENT_PIN).await;
    assert!(text.contains("Too many failed attempts. Try again in 5 minute(s)."), "even the right PIN: {text}");
    assert!(!text.contains("Signed in as"), "{text}");
}

#[tokio::test]
async fn the_student_pages_have_no_serious_accessibility_violations() {
    let n = node().await;
    for screen in [Screen::Phone { width: 320, height: 700 }, Screen::Desktop { width: 1280, height: 900 }] {
        let b = Browser::start(screen).await;
        b.goto(&format!("{}/student/login", n.base)).await;
        assert_eq!(b.accessibility_violations().await, Vec::<String>::new(), "student sign-in, {screen:?}");
        let text = sign_in(&b, &n.base, "2026001", timetable::DEMO_STUDENT_PIN).await;
        assert!(text.contains("Signed in as"), "{text}");
        assert_eq!(b.accessibility_violations().await, Vec::<String>::new(), "student page, {screen:?}");
    }
}

#[tokio::test]
async fn the_faculty_page_links_to_the_student_page_with_a_qr_code() {
    let n = node().await;
    let b = Browser::start(Screen::Desktop { width: 1280, height: 900 }).await;
    b.goto(&format!("{}/login", n.base)).await;
    b.fill("input[name=user_id]", "100001").await;
    b.fill("input[name=pin]", "1234").await;
    b.submit("form[action='/login'] button[type=submit]").await;
    let text = b.text().await;
    assert!(text.contains(&format!("Students open {}/student", n.base)), "{text}");
    let qr = b
        .script(
            "var s = document.querySelector('svg.qr'); var r = s.getBoundingClientRect();\
             return { label: s.getAttribute('aria-label'), w: r.width, paths: s.querySelectorAll('path').length };",
            json!([]),
        )
        .await;
    assert_eq!(qr["label"], format!("QR code of the student page address, {}/student", n.base), "{qr}");
    assert!(qr["w"].as_f64() >= Some(100.0) && qr["paths"] == 1, "{qr}");
    // The stylesheet loaded under its hashed name (the CSP allows only the node's own).
    let bg = b.script("return getComputedStyle(document.querySelector('.qr')).display", json!([])).await;
    assert_eq!(bg, "block", "the stylesheet applies");
    b.script("document.querySelector('svg.qr').scrollIntoView()", json!([])).await;
    b.screenshot_for_docs("faculty-student-qr").await;
    // The link leads to the student sign-in: a faculty login is not a student one.
    b.submit("a[href='/student']").await;
    assert!(b.url().await.ends_with("/student/login"), "{}", b.url().await);
}

/// The `name=value` of `Set-Cookie` `name` in `res`, with the whole header line.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<(String, String)> {
    res.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|line| {
        let value = line.strip_prefix(&format!("{name}="))?.split(';').next()?.to_owned();
        Some((value, line.to_owned()))
    })
}

#[tokio::test]
async fn student_and_faculty_sessions_never_open_each_others_routes() {
    let n = node().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let base = &n.base;

    // A student signs in through the form (its token paired with the form cookie).
    let form = http.get(format!("{base}/student/login")).send().await.unwrap();
    let (form_cookie, line) = set_cookie(&form, "nimbus_student_form").expect("form cookie");
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Strict") && line.contains("Path=/student/login"),
        "{line}"
    );
    let page = form.text().await.unwrap();
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
    let post = |cookie: Option<String>, pin: &str| {
        let mut req = http.post(format!("{base}/student/login")).form(&[
            ("user_id", "2026002"),
            ("pin", pin),
            ("csrf", csrf.as_str()),
        ]);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };
    let res = post(None, timetable::DEMO_STUDENT_PIN).await.unwrap();
    assert_eq!(res.status(), 403, "no form cookie, no sign-in");
    let res = post(Some(format!("nimbus_student_form={form_cookie}")), timetable::DEMO_STUDENT_PIN).await.unwrap();
    assert_eq!(res.status(), 303);
    let (student, line) = set_cookie(&res, "nimbus_student").expect("session cookie");
    assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict") && line.contains("Path=/student;"), "{line}");
    let get = |path: &str, cookie: String| http.get(format!("{base}{path}")).header("cookie", cookie).send();
    assert_eq!(get("/student", format!("nimbus_student={student}")).await.unwrap().status(), 200);

    // The student's token opens no faculty route, as a cookie or as a bearer token.
    let res = get("/", format!("nimbus_session={student}")).await.unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["location"].to_str().unwrap()), (303, "/login"));
    let res = http.get(format!("{base}/api/sessions/x")).bearer_auth(&student).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = http.post(format!("{base}/api/sessions")).bearer_auth(&student).send().await.unwrap();
    assert_eq!(res.status(), 401);

    // A faculty token opens no student route.
    let api_login = |user: &str, pin: &str| {
        http.post(format!("{base}/api/login"))
            .header("content-type", "application/json")
            .body(json!({ "user_id": user, "pin": pin }).to_string())
            .send()
    };
    let res = api_login("100001", "1234").await.unwrap();
    let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    let faculty = body["token"].as_str().unwrap().to_owned();
    assert_eq!(get("/", format!("nimbus_session={faculty}")).await.unwrap().status(), 200);
    let res = get("/student", format!("nimbus_student={faculty}")).await.unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["location"].to_str().unwrap()), (303, "/student/login"));
    assert_eq!(get("/student/content/doc-cs101", format!("nimbus_student={faculty}")).await.unwrap().status(), 401);
    assert_eq!(get("/student/content/doc-cs101", format!("nimbus_session={faculty}")).await.unwrap().status(), 401);

    // A student's PIN is not a faculty PIN, and the stylesheet is served under its hashed name.
    assert_eq!(api_login("2026002", timetable::DEMO_STUDENT_PIN).await.unwrap().status(), 401);
    let css = page.split("rel=\"stylesheet\" href=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
    assert!(css.starts_with("/static/app.") && css.ends_with(".css"), "{css}");
    let res = http.get(format!("{base}{css}")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(res.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(http.get(format!("{base}/static/app.0000000000000000.css")).send().await.unwrap().status(), 404);
    let res = http.get(format!("{base}/student/login")).send().await.unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("style-src 'self'") && csp.contains("script-src 'none'") && !csp.contains("unsafe"), "{csp}");
}

#[tokio::test]
async fn a_pin_reset_in_the_cloud_ends_the_students_sessions_with_the_next_roster() {
    let n = node().await;
    let b = Browser::start(Screen::Phone { width: 390, height: 844 }).await;
    let text = sign_in(&b, &n.base, "2026002", timetable::DEMO_STUDENT_PIN).await;
    assert!(text.contains("Signed in as Student 2"), "{text}");
    assert_eq!(fetch(&b, "/student/content/doc-cs101", None).await["status"], 200);

    // The phone was stolen: the admin resets the PIN; the next roster snapshot brings the new hash.
    let mut roster = n.roster.clone();
    roster.version += 1;
    for s in roster.students.iter_mut().filter(|s| s.user_id == "student-2") {
        s.pin_hash = Some(nimbus_edge::auth::hash_pin("731902").unwrap());
    }
    n.store.with(|c| timetable::apply_roster(c, &roster, 0)).unwrap();
    assert_eq!(fetch(&b, "/student/content/doc-cs101", None).await["status"], 401, "the session is over");
    b.goto(&format!("{}/student", n.base)).await;
    assert!(b.url().await.ends_with("/student/login"), "{}", b.url().await);
    let text = sign_in(&b, &n.base, "2026002", timetable::DEMO_STUDENT_PIN).await;
    assert!(text.contains("Register number or PIN is incorrect."), "the old PIN: {text}");
    let text = sign_in(&b, &n.base, "2026002", "731902").await;
    assert!(text.contains("Signed in as Student 2"), "the new PIN: {text}");
}
