//! The faculty page in a real browser: Debian's headless Chromium driven over WebDriver against
//! the node's LAN server on a real socket (the demo timetable and roster in memory, the clock on
//! Monday 2026-11-23 09:05 during cs101; faculty `faculty-demo`, staff number 100001, PIN 1234).
//! Forms are filled in and buttons clicked, so the headers are whatever Chromium sends.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{FixedOffset, NaiveDate};
use nimbus_core::event::attendance::AttendanceStatus;
use nimbus_edge::attendance::{Attendance, Rules};
use nimbus_edge::clock::ManualClock;
use nimbus_edge::http::{AppState, run};
use nimbus_edge::metrics::Metrics;
use nimbus_edge::store::Store;
use nimbus_edge::testing::{Browser, Screen, lan_ipv4};
use nimbus_edge::timetable;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const ROOM: &str = "demo-101";

/// A node serving its LAN page on every address of this machine, on a free port.
struct Node {
    att: Attendance,
    port: u16,
    stop: CancellationToken,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn node() -> Node {
    let store = Store::open_in_memory().unwrap();
    let (tt, roster) = timetable::demo(ROOM);
    store.with(|c| timetable::apply_timetable(c, &tt, 0)).unwrap();
    store.with(|c| timetable::apply_roster(c, &roster, 0)).unwrap();
    let at = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(9, 5, 0).unwrap();
    let clock = ManualClock::at_local(at, FixedOffset::east_opt(19_800).unwrap());
    let att = Attendance::new(store, Arc::new(clock), Rules { room_id: ROOM.into(), ..Rules::default() });
    let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let state = AppState::new(att.clone(), Arc::new(Metrics::default()), None);
    tokio::spawn(run(listener, state, stop.clone()));
    Node { att, port, stop }
}

/// Signs in through the form as a person would, with the staff number.
async fn sign_in(b: &Browser, base: &str) {
    b.goto(&format!("{base}/login")).await;
    b.fill("input[name=user_id]", "100001").await;
    b.fill("input[name=pin]", "1234").await;
    b.submit("form[action='/login'] button[type=submit]").await;
    let text = b.text().await;
    assert!(text.contains("Signed in as Dr. Demo"), "{base}: {text}");
}

/// The row form that marks `student`.
fn row(student: &str) -> String {
    format!("form.marks:has(input[name=student_id][value='{student}'])")
}

async fn faculty_marks_a_class(base: &str, n: &Node) {
    let b = Browser::start(Screen::Desktop { width: 1280, height: 900 }).await;
    sign_in(&b, base).await;

    b.submit("form[action='/page/open'] button").await;
    let text = b.text().await;
    assert!(text.contains("Session opened for cs101 Data Structures."), "{base}: {text}");
    let id = n.att.open().unwrap().expect("a session is open").id;

    b.fill(&format!("{} input[name=remarks]", row("student-4")), "sports team").await;
    b.submit(&format!("{} button[value=excused]", row("student-4"))).await;
    assert!(b.text().await.contains("student-4 marked excused."), "{base}");
    b.submit(&format!("{} button[value=late]", row("student-1"))).await;
    assert!(b.text().await.contains("student-1 marked late."), "{base}");
    b.screenshot_for_docs("faculty-desktop").await;

    b.submit("form[action='/page/close'] button").await;
    let text = b.text().await;
    // Late counts as present.
    assert!(text.contains("Session closed: 1 of 5 present, 3 absent."), "{base}: {text}");
    assert!(n.att.open().unwrap().is_none());

    b.click("form[action='/page/correct'] select[name=student_id] option[value='student-2']").await;
    b.click("form[action='/page/correct'] select[name=status] option[value='present']").await;
    b.fill("form[action='/page/correct'] input[name=reason]", "late bus").await;
    b.submit("form[action='/page/correct'] button[type=submit]").await;
    assert!(b.text().await.contains("Corrected student-2: absent → present."), "{base}");

    let view = n.att.session_view(&id).unwrap();
    let status = |s: &str| view.students.iter().find(|x| x.student_id == s).and_then(|x| x.status);
    assert_eq!(status("student-1"), Some(AttendanceStatus::Late));
    assert_eq!(status("student-2"), Some(AttendanceStatus::Present));
    assert_eq!(status("student-4"), Some(AttendanceStatus::Excused));

    b.submit("form[action='/logout'] button").await;
    assert!(b.url().await.ends_with("/login"), "{}", b.url().await);
    b.goto(&format!("{base}/")).await;
    assert!(b.url().await.ends_with("/login"), "signed out for good");
}

#[tokio::test]
async fn faculty_sign_in_open_mark_close_correct_and_sign_out_in_chromium() {
    let n = node().await;
    // Loopback is a secure context: Chromium sends `Sec-Fetch-Site` and `Origin`.
    faculty_marks_a_class(&format!("http://127.0.0.1:{}", n.port), &n).await;
}

#[tokio::test]
async fn the_page_works_from_a_lan_address_where_chromium_sends_no_fetch_metadata() {
    let Some(ip) = lan_ipv4() else {
        assert!(std::env::var_os("CI").is_none(), "CI machines have a LAN address");
        eprintln!("no non-loopback IPv4 address here; the LAN case is not exercised");
        return;
    };
    let n = node().await;
    faculty_marks_a_class(&format!("http://{ip}:{}", n.port), &n).await;
}

/// A hostile page on `addr` whose forms post to the node at `target`.
async fn hostile_site(target: &str) -> (SocketAddr, CancellationToken) {
    let page = format!(
        "<!DOCTYPE html><html><body>\
         <form id=open method=post action=\"{target}/page/open\"><input name=csrf value=guessed><button>open</button></form>\
         <form id=logout method=post action=\"{target}/logout\"><button>logout</button></form>\
         <form id=login method=post action=\"{target}/login\"><input name=user_id value=100001>\
         <input name=pin value=1234><input name=csrf value=guessed><button>login</button></form>\
         </body></html>"
    );
    let app = axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(page) }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(s.cancelled_owned()).await });
    (addr, stop)
}

#[tokio::test]
async fn forms_on_another_origin_cannot_act_for_a_signed_in_faculty() {
    let n = node().await;
    let base = format!("http://127.0.0.1:{}", n.port);
    let b = Browser::start(Screen::Desktop { width: 1024, height: 768 }).await;
    sign_in(&b, &base).await;
    let (evil, _stop) = hostile_site(&base).await;

    // Another port of the same host is the same site: the browser sends the login cookie along.
    // And `localhost` is another site altogether: it does not.
    for (site, cookie_sent) in
        [(format!("http://127.0.0.1:{}", evil.port()), true), (format!("http://localhost:{}", evil.port()), false)]
    {
        b.goto(&format!("{site}/")).await;
        b.submit("#open button").await;
        let text = b.text().await;
        if cookie_sent {
            assert!(text.contains("Cross-origin form submission refused"), "{site}: {text}");
        } else {
            assert!(b.url().await.ends_with("/login"), "{site}: no login without the cookie: {text}");
        }
        assert!(n.att.open().unwrap().is_none(), "{site} opened a session");

        b.goto(&format!("{site}/")).await;
        b.submit("#logout button").await;
        b.goto(&format!("{base}/")).await;
        assert!(b.text().await.contains("Signed in as Dr. Demo"), "{site} signed the faculty out");

        // Signing the victim in (as someone else, in real life) is refused too.
        b.goto(&format!("{site}/")).await;
        b.submit("#login button").await;
        let text = b.text().await;
        assert!(
            text.contains("Cross-origin form submission refused") || text.contains("Please sign in again"),
            "{site}: {text}"
        );
    }
    // The real page still works in the same browser.
    b.goto(&format!("{base}/")).await;
    b.submit("form[action='/page/open'] button").await;
    assert!(b.text().await.contains("Session opened"), "{}", b.text().await);
}

#[tokio::test]
async fn a_faculty_member_marks_on_a_390_px_phone() {
    let n = node().await;
    let base = format!("http://127.0.0.1:{}", n.port);
    let b = Browser::start(Screen::Phone { width: 390, height: 844 }).await;
    b.goto(&format!("{base}/login")).await;
    let width = b.script("return window.innerWidth", json!([])).await;
    assert_eq!(width, 390, "the phone's viewport");
    b.screenshot_for_docs("faculty-phone-login").await;
    sign_in(&b, &base).await;
    b.submit("form[action='/page/open'] button").await;
    assert!(b.text().await.contains("Session opened"));

    // Nothing runs off the screen, and every mark button is whole, on screen and finger-sized.
    let layout = b
        .script(
            "var w = window.innerWidth, bad = [];\
             document.querySelectorAll('button[name=status]').forEach(function (x) {\
               var r = x.getBoundingClientRect();\
               if (r.left < 0 || r.right > w + 0.5 || r.height < 44 || r.width < 44) bad.push(x.value + ' ' + JSON.stringify(r));\
             });\
             return { scroll: document.documentElement.scrollWidth, width: w,\
                      buttons: document.querySelectorAll('button[name=status]').length, bad: bad };",
            json!([]),
        )
        .await;
    assert!(layout["scroll"].as_u64() <= layout["width"].as_u64(), "horizontal overflow: {layout}");
    assert_eq!(layout["buttons"], 20, "4 marks x 5 students: {layout}");
    assert_eq!(layout["bad"], json!([]), "{layout}");

    b.submit(&format!("{} button[value=late]", row("student-5"))).await;
    assert!(b.text().await.contains("student-5 marked late."));
    b.screenshot_for_docs("faculty-phone").await;
    let id = n.att.open().unwrap().unwrap().id;
    let view = n.att.session_view(&id).unwrap();
    let s5 = view.students.iter().find(|x| x.student_id == "student-5").unwrap();
    assert_eq!(s5.status, Some(AttendanceStatus::Late));
}

#[tokio::test]
async fn the_faculty_pages_have_no_serious_accessibility_violations() {
    let n = node().await;
    let base = format!("http://127.0.0.1:{}", n.port);
    for screen in [Screen::Desktop { width: 1280, height: 900 }, Screen::Phone { width: 390, height: 844 }] {
        let b = Browser::start(screen).await;
        b.goto(&format!("{base}/login")).await;
        assert_eq!(b.accessibility_violations().await, Vec::<String>::new(), "sign-in page, {screen:?}");
        sign_in(&b, &base).await;
        if n.att.open().unwrap().is_none() {
            b.submit("form[action='/page/open'] button").await;
        }
        assert!(b.text().await.contains("Open session"), "{}", b.text().await);
        assert_eq!(b.accessibility_violations().await, Vec::<String>::new(), "marking page, {screen:?}");
    }
}
