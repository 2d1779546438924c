//! The faculty page and its login, driven through `tower::ServiceExt::oneshot` on the real router
//! over an in-memory store with the demo timetable (room `demo-101`, Monday 2026-11-23 09:05,
//! cs101; faculty `faculty-demo` with PIN 1234).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::{FixedOffset, NaiveDate};
use nimbus_edge::attendance::{Attendance, Rules};
use nimbus_edge::clock::ManualClock;
use nimbus_edge::http::{AppState, app};
use nimbus_edge::metrics::Metrics;
use nimbus_edge::store::Store;
use nimbus_edge::timetable;
use tower::ServiceExt as _;

const ROOM: &str = "demo-101";
const EVIL: &str = "<script>alert('x')</script> & \"Bobby\"";

struct Node {
    att: Attendance,
    app: Router,
}

fn node() -> Node {
    let store = Store::open_in_memory().unwrap();
    let (tt, roster) = timetable::demo(ROOM);
    store.with(|c| timetable::apply_timetable(c, &tt, 0)).unwrap();
    store.with(|c| timetable::apply_roster(c, &roster, 0)).unwrap();
    let at = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(9, 5, 0).unwrap();
    let clock = ManualClock::at_local(at, FixedOffset::east_opt(19_800).unwrap());
    let rules = Rules { room_id: ROOM.into(), ..Rules::default() };
    let att = Attendance::new(store, Arc::new(clock), rules);
    let app = app(AppState::new(att.clone(), Arc::new(Metrics::default()), None));
    Node { att, app }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    Answer { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

fn get(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(Method::GET).uri(uri);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

fn post_form(uri: &str, cookie: Option<&str>, form: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::HOST, "node.local:8080")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(form.to_owned())).unwrap()
}

/// The value of the first `name="csrf"` hidden field of a page.
fn form_token(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no form token in {page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The `name=value` of the `Set-Cookie` for `name`.
fn set_cookie(a: &Answer, name: &str) -> String {
    a.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|pair| pair.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set: {:?}", a.headers))
}

/// A browser's sign-in: the form's token and cookie from `GET /login`, then the post.
async fn sign_in_as(app: &Router, sign_in_name: &str, pin: &str) -> Answer {
    let form = send(app, get("/login", None)).await;
    let (token, form_cookie) = (form_token(&form.body), set_cookie(&form, "nimbus_form"));
    send(app, post_form("/login", Some(&form_cookie), &format!("user_id={sign_in_name}&pin={pin}&csrf={token}"))).await
}

/// A signed-in page: the `Cookie` header value to send back and the page's form token.
struct Login {
    cookie: String,
    csrf: String,
}

/// Signs in through the form as the demo faculty.
async fn sign_in(app: &Router) -> Login {
    let a = sign_in_as(app, "faculty-demo", "1234").await;
    assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/"), "{}", a.body);
    let cookie = set_cookie(&a, "nimbus_session");
    let page = send(app, get("/", Some(&cookie))).await;
    Login { csrf: form_token(&page.body), cookie }
}

/// Follows a post/redirect/get of a page form (its token added): the POST must redirect to
/// `/`, whose page is returned.
async fn post_and_follow(app: &Router, login: &Login, uri: &str, form: &str) -> String {
    let form = if form.is_empty() { format!("csrf={}", login.csrf) } else { format!("{form}&csrf={}", login.csrf) };
    let a = send(app, post_form(uri, Some(&login.cookie), &form)).await;
    assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/"), "{uri}: {}", a.body);
    let page = send(app, get("/", Some(&login.cookie))).await;
    assert_eq!(page.status, StatusCode::OK);
    page.body
}

#[tokio::test]
async fn the_page_requires_a_login() {
    let n = node();
    let a = send(&n.app, get("/", None)).await;
    assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/login"));
    let a = send(&n.app, get("/", Some("nimbus_session=0123abcd"))).await;
    assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/login"), "a garbage cookie is no login");
    let a = send(&n.app, post_form("/page/open", None, "")).await;
    assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/login"));
    assert!(n.att.open().unwrap().is_none());
}

#[tokio::test]
async fn the_login_form_signs_in_with_a_hardened_cookie() {
    let n = node();
    let a = send(&n.app, get("/login", None)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(a.body.contains("name=\"user_id\"") && a.body.contains("name=\"pin\""));

    let a = sign_in_as(&n.app, "faculty-demo", "1234").await;
    assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/"));
    let set = a
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("nimbus_session="))
        .unwrap();
    let (pair, attrs) = set.split_once(';').unwrap();
    let token = pair.strip_prefix("nimbus_session=").unwrap();
    assert_eq!(token.len(), 64);
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attrs.split(';').any(|a| a.trim() == attr), "{set} lacks {attr}");
    }
    let page = send(&n.app, get("/", Some(pair))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Dr. Demo"));
    // Signed in already: the form sends you home.
    assert_eq!(send(&n.app, get("/login", Some(pair))).await.location(), "/");
}

#[tokio::test]
async fn a_failed_login_shows_the_form_again_with_a_generic_message() {
    let n = node();
    let wrong_pin = sign_in_as(&n.app, "faculty-demo", "9999").await;
    let unknown = sign_in_as(&n.app, "someone", "1234").await;
    for a in [&wrong_pin, &unknown] {
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert!(
            !a.headers.get_all(header::SET_COOKIE).iter().any(|v| v.to_str().unwrap().starts_with("nimbus_session"))
        );
        assert!(a.body.contains("Staff ID or PIN is incorrect."), "{}", a.body);
        assert!(a.body.contains("action=\"/login\""));
    }
    // The typed id is kept, escaped.
    let a = sign_in_as(&n.app, "%3Cb%3Ex", "1").await;
    assert!(a.body.contains("value=\"&lt;b&gt;x\"") && !a.body.contains("<b>x"), "{}", a.body);
}

#[tokio::test]
async fn the_page_renders_the_roster_with_every_value_escaped() {
    let n = node();
    n.att
        .store()
        .with(|c| {
            c.execute("INSERT INTO roster (course_id, student_id, name) VALUES ('cs101', 'student-x', ?1)", [EVIL])?;
            Ok(())
        })
        .unwrap();
    n.att.open_session("faculty-demo").unwrap();
    let login = sign_in(&n.app).await;
    let a = send(&n.app, get("/", Some(&login.cookie))).await;
    assert_eq!(a.status, StatusCode::OK);
    let csp = a.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'nonce-"), "{csp}");
    assert!(csp.contains("style-src 'self'") && !csp.contains("unsafe-inline"), "no inline style: {csp}");
    let page = &a.body;
    // maud's escaping: `'` needs none in text and double-quoted attributes.
    assert!(page.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; &quot;Bobby&quot;"), "{page}");
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(page.contains("<h2>Cloud link</h2>") && page.contains("event(s) waiting"), "{page}");
    assert!(page.contains("nothing acknowledged since start"), "{page}");
    for i in 1..=5 {
        assert!(page.contains(&format!("student {i}")), "{page}");
    }
    assert!(page.contains("cs101") && page.contains("Data Structures"));
    assert!(page.contains("Close session"));
}

#[tokio::test]
async fn the_page_opens_marks_closes_and_corrects_with_flash_messages() {
    let n = node();
    let login = sign_in(&n.app).await;

    let page = send(&n.app, get("/", Some(&login.cookie))).await.body;
    assert!(page.contains("action=\"/page/open\"") && page.contains("09:00–09:50"), "{page}");

    let page = post_and_follow(&n.app, &login, "/page/open", "").await;
    assert!(page.contains("Session opened for cs101 Data Structures."), "{page}");
    let id = n.att.open().unwrap().unwrap().id;
    // The flash shows once.
    let again = send(&n.app, get("/", Some(&login.cookie))).await.body;
    assert!(!again.contains("Session opened for"));

    let page = post_and_follow(
        &n.app,
        &login,
        "/page/mark",
        &format!("session_id={id}&student_id=student-4&status=excused&remarks=sports+%3Cteam%3E"),
    )
    .await;
    assert!(page.contains("student-4 marked excused."), "{page}");
    assert!(page.contains("sports &lt;team&gt;"), "{page}");

    let page =
        post_and_follow(&n.app, &login, "/page/mark", &format!("session_id={id}&student_id=nobody&status=late")).await;
    assert!(page.contains("class=\"flash err\"") && page.contains("not on this course"), "{page}");

    let page = post_and_follow(&n.app, &login, "/page/close", &format!("session_id={id}")).await;
    assert!(page.contains("Session closed: 0 of 5 present, 4 absent."), "{page}");
    assert!(page.contains("Last closed session: cs101") && page.contains("action=\"/page/correct\""), "{page}");
    assert!(n.att.open().unwrap().is_none());
    assert!(page.contains("already held today") && !page.contains("action=\"/page/open\""), "{page}");

    let page = post_and_follow(&n.app, &login, "/page/close", &format!("session_id={id}")).await;
    assert!(page.contains("class=\"flash err\"") && page.contains("The session is closed"), "{page}");

    let page = post_and_follow(
        &n.app,
        &login,
        "/page/correct",
        &format!("session_id={id}&student_id=student-2&status=present&reason=late+bus"),
    )
    .await;
    assert!(page.contains("Corrected student-2: absent → present."), "{page}");
    let s2 = n.att.session_view(&id).unwrap().students.into_iter().find(|s| s.student_id == "student-2").unwrap();
    assert_eq!(s2.remarks.as_deref(), Some("late bus"));
}

#[tokio::test]
async fn a_form_post_needs_the_logins_form_token_and_no_foreign_origin() {
    let n = node();
    let login = sign_in(&n.app).await;
    let with_token = format!("csrf={}", login.csrf);
    // The right token from another origin.
    let mut req = post_form("/page/open", Some(&login.cookie), &with_token);
    req.headers_mut().insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    let a = send(&n.app, req).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // Another port of the same host, as a browser reports it.
    let mut req = post_form("/page/open", Some(&login.cookie), &with_token);
    req.headers_mut().insert("sec-fetch-site", "same-site".parse().unwrap());
    assert_eq!(send(&n.app, req).await.status, StatusCode::FORBIDDEN);
    // Same origin, but no token, or another login's token.
    let mut req = post_form("/page/open", Some(&login.cookie), "");
    req.headers_mut().insert(header::ORIGIN, "http://node.local:8080".parse().unwrap());
    assert_eq!(send(&n.app, req).await.status, StatusCode::FORBIDDEN);
    let other = sign_in(&n.app).await;
    let req = post_form("/page/open", Some(&login.cookie), &format!("csrf={}", other.csrf));
    assert_eq!(send(&n.app, req).await.status, StatusCode::FORBIDDEN);
    assert!(n.att.open().unwrap().is_none());
    // What Chromium sends for our own form under a withholding referrer policy: `Origin: null`,
    // with the token. Accepted.
    let mut req = post_form("/page/open", Some(&login.cookie), &with_token);
    req.headers_mut().insert(header::ORIGIN, "null".parse().unwrap());
    req.headers_mut().insert("sec-fetch-site", "same-origin".parse().unwrap());
    assert_eq!(send(&n.app, req).await.status, StatusCode::SEE_OTHER);
    assert!(n.att.open().unwrap().is_some());
}

#[tokio::test]
async fn the_sign_in_form_needs_its_own_cookie_and_token() {
    let n = node();
    let form = send(&n.app, get("/login", None)).await;
    let token = form_token(&form.body);
    let set = form.headers[header::SET_COOKIE].to_str().unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/login"] {
        assert!(set.split(';').any(|a| a.trim() == attr), "{set} lacks {attr}");
    }
    assert_eq!(form.headers[header::REFERRER_POLICY], "same-origin");
    for (cookie, body) in [
        (None, format!("user_id=faculty-demo&pin=1234&csrf={token}")),
        (Some("nimbus_form=forged".to_owned()), format!("user_id=faculty-demo&pin=1234&csrf={token}")),
        (Some(format!("nimbus_form={token}")), "user_id=faculty-demo&pin=1234".to_owned()),
    ] {
        let a = send(&n.app, post_form("/login", cookie.as_deref(), &body)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{cookie:?} {body}");
        assert!(a.body.contains("Please sign in again"), "{}", a.body);
        assert!(
            !a.headers.get_all(header::SET_COOKIE).iter().any(|v| v.to_str().unwrap().starts_with("nimbus_session"))
        );
        // A fresh form comes with it.
        assert_ne!(form_token(&a.body), token);
    }
}

#[tokio::test]
async fn faculty_sign_in_with_their_staff_number_or_email_too() {
    let n = node();
    for name in ["100001", "Demo%40Campus.Local", "faculty-demo"] {
        let a = sign_in_as(&n.app, name, "1234").await;
        assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/"), "{name}: {}", a.body);
        let page = send(&n.app, get("/", Some(&set_cookie(&a, "nimbus_session")))).await;
        assert!(page.body.contains("Signed in as Dr. Demo (faculty-demo)"), "{}", page.body);
    }
    assert_eq!(sign_in_as(&n.app, "100001", "9999").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logging_out_ends_the_login_but_not_from_a_forged_form() {
    let n = node();
    let login = sign_in(&n.app).await;
    let a = send(&n.app, post_form("/logout", Some(&login.cookie), "")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(send(&n.app, get("/", Some(&login.cookie))).await.status, StatusCode::OK);
    let a = send(&n.app, post_form("/logout", Some(&login.cookie), &format!("csrf={}", login.csrf))).await;
    assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/login"));
    assert!(a.headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(send(&n.app, get("/", Some(&login.cookie))).await.location(), "/login");
}
