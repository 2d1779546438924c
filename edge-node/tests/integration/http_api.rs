//! The LAN server's JSON API, health and metrics, driven through `tower::ServiceExt::oneshot` on the
//! real router over a real (in-memory) store with the demo timetable: room `demo-101`, Monday
//! 2026-11-23, cs101 09:00-09:50, faculty `faculty-demo` (PIN 1234), students student-1..5.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::{FixedOffset, NaiveDate, NaiveDateTime};
use nimbus_core::reader::{CardRead, Feedback, ReaderKind};
use nimbus_edge::attendance::{Attendance, Rules};
use nimbus_edge::clock::ManualClock;
use nimbus_edge::http::{AppState, BODY_LIMIT, app};
use nimbus_edge::metrics::Metrics;
use nimbus_edge::reader::TapRequest;
use nimbus_edge::store::Store;
use nimbus_edge::{auth, timetable};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::ServiceExt as _;

const ROOM: &str = "demo-101";

fn monday(h: u32, m: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(h, m, 0).unwrap()
}

struct Node {
    clock: ManualClock,
    att: Attendance,
    app: Router,
}

fn attendance_at(h: u32, m: u32) -> (ManualClock, Attendance) {
    let store = Store::open_in_memory().unwrap();
    let (tt, roster) = timetable::demo(ROOM);
    store.with(|c| timetable::apply_timetable(c, &tt, 0)).unwrap();
    store.with(|c| timetable::apply_roster(c, &roster, 0)).unwrap();
    let clock = ManualClock::at_local(monday(h, m), FixedOffset::east_opt(19_800).unwrap());
    let rules = Rules { room_id: ROOM.into(), ..Rules::default() };
    let att = Attendance::new(store, Arc::new(clock.clone()), rules);
    (clock, att)
}

/// A node at 09:05 on the demo Monday, during cs101.
fn node() -> Node {
    node_with(|att| AppState::new(att, Arc::new(Metrics::default()), None))
}

fn node_with(state: impl FnOnce(Attendance) -> AppState) -> Node {
    let (clock, att) = attendance_at(9, 5);
    let app = app(state(att.clone()));
    Node { clock, att, app }
}

/// Adds a second faculty member (PIN 5678) who teaches nothing in this room.
fn add_faculty_two(att: &Attendance) {
    let hash = auth::hash_pin("5678").unwrap();
    att.store()
        .with(|c| {
            c.execute("INSERT INTO faculty (user_id, name, pin_hash) VALUES ('faculty-two', 'Dr. Two', ?1)", [hash])?;
            Ok(())
        })
        .unwrap();
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the seed's AppError shape and returns it.
    fn app_error(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert!(
            self.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/json"),
            "{:?}",
            self.headers
        );
        let v = self.json();
        assert_eq!(v["code"], code, "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v
    }
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap().to_vec();
    Answer { status, headers, body }
}

fn req(method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    match body {
        Some(v) => b.header(header::CONTENT_TYPE, "application/json").body(Body::from(v.to_string())).unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

fn raw(method: Method, uri: &str, token: Option<&str>, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, content_type);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(body.into()).unwrap()
}

async fn login(app: &Router, user_id: &str, pin: &str) -> String {
    let a = send(app, req(Method::POST, "/api/login", None, Some(json!({ "user_id": user_id, "pin": pin })))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    a.json()["token"].as_str().unwrap().to_owned()
}

async fn open_session(n: &Node, token: &str) -> Value {
    let a = send(&n.app, req(Method::POST, "/api/sessions", Some(token), None)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    a.json()
}

#[tokio::test]
async fn health_answers_ok() {
    let n = node();
    let a = send(&n.app, req(Method::GET, "/health", None, None)).await;
    assert_eq!((a.status, a.json()), (StatusCode::OK, json!({ "status": "ok" })));
}

#[tokio::test]
async fn readiness_probes_the_database() {
    let n = node();
    let a = send(&n.app, req(Method::GET, "/health/ready", None, None)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json(), json!({ "status": "ready", "checks": { "database": "ok" } }));
}

#[tokio::test]
async fn readiness_is_503_when_the_database_does_not_answer() {
    let n = node();
    // Hold the store's only connection until the probe has given up on it.
    let store = n.att.store().clone();
    let hold = crate::common::StoreHold::take(store);
    let a = send(&n.app, req(Method::GET, "/health/ready", None, None)).await;
    let held = hold.release();
    let v = a.app_error(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE");
    assert_eq!(v["details"]["checks"]["database"], "timeout");
    held.join().unwrap();
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_outbox_backlog() {
    let n = node();
    let a = send(&n.app, req(Method::GET, "/metrics", None, None)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    assert!(a.text().contains("nimbus_edge_outbox_backlog 0\n"), "{}", a.text());
}

#[tokio::test]
async fn login_returns_a_bearer_token_with_its_expiry() {
    let n = node();
    let a =
        send(&n.app, req(Method::POST, "/api/login", None, Some(json!({ "user_id": "faculty-demo", "pin": "1234" }))))
            .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    let token = v["token"].as_str().unwrap();
    assert_eq!(token.len(), 64, "256 bits in hex");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    // 8 hours after the node's clock (09:05 at UTC+05:30 = 03:35Z).
    assert_eq!(v["expires_at"], "2026-11-23T11:35:00Z");
    let s = send(&n.app, req(Method::GET, "/api/sessions/nope", Some(token), None)).await;
    assert_eq!(s.status, StatusCode::NOT_FOUND, "the token is accepted");
}

#[tokio::test]
async fn a_wrong_pin_and_an_unknown_id_fail_alike_with_401() {
    let n = node();
    let wrong_pin =
        send(&n.app, req(Method::POST, "/api/login", None, Some(json!({ "user_id": "faculty-demo", "pin": "0000" }))))
            .await;
    let unknown =
        send(&n.app, req(Method::POST, "/api/login", None, Some(json!({ "user_id": "nobody", "pin": "1234" })))).await;
    let v = wrong_pin.app_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert_eq!(unknown.app_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED"), v, "never says which was wrong");
}

#[tokio::test]
async fn five_failed_logins_lock_the_id_out_with_429_but_not_other_ids() {
    let n = node();
    add_faculty_two(&n.att);
    let attempt = |pin: &'static str| {
        req(Method::POST, "/api/login", None, Some(json!({ "user_id": "faculty-demo", "pin": pin })))
    };
    for _ in 0..5 {
        send(&n.app, attempt("9999")).await.app_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    // Even the right PIN is refused now.
    let a = send(&n.app, attempt("1234")).await;
    let v = a.app_error(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS");
    let retry: u64 = a.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((290..=300).contains(&retry), "{retry}");
    assert_eq!(v["details"]["retry_after_seconds"], retry);
    // The page's form shares the throttle.
    let form = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, "nimbus_form=f0f0")
        .body(Body::from("user_id=faculty-demo&pin=1234&csrf=f0f0"))
        .unwrap();
    assert_eq!(send(&n.app, form).await.status, StatusCode::TOO_MANY_REQUESTS);
    // Another faculty member is not affected.
    login(&n.app, "faculty-two", "5678").await;
}

#[tokio::test]
async fn api_routes_need_a_valid_token() {
    let n = node_with(|att| {
        AppState::new(att, Arc::new(Metrics::default()), None).with_login_ttl(Duration::from_millis(300))
    });
    for (method, uri) in [
        (Method::POST, "/api/sessions"),
        (Method::GET, "/api/sessions/x"),
        (Method::POST, "/api/sessions/x/close"),
        (Method::POST, "/api/logout"),
    ] {
        let a = send(&n.app, req(method.clone(), uri, None, None)).await;
        a.app_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        assert_eq!(a.headers[header::WWW_AUTHENTICATE], "Bearer", "{method} {uri}");
    }
    let mark = json!({ "status": "present" });
    let a = send(&n.app, req(Method::PUT, "/api/sessions/x/marks/student-1", Some("garbage"), Some(mark))).await;
    a.app_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let a = send(&n.app, raw(Method::GET, "/api/sessions/x", None, "text/plain", "")).await;
    a.app_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");

    // An expired token.
    let token = login(&n.app, "faculty-demo", "1234").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    send(&n.app, req(Method::GET, "/api/sessions/x", Some(&token), None))
        .await
        .app_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");

    // A token after logout.
    let token = login(&n.app, "faculty-demo", "1234").await;
    assert_eq!(send(&n.app, req(Method::POST, "/api/logout", Some(&token), None)).await.status, StatusCode::NO_CONTENT);
    send(&n.app, req(Method::GET, "/api/sessions/x", Some(&token), None))
        .await
        .app_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

#[tokio::test]
async fn open_mark_close_and_correct_a_session() {
    let n = node();
    let token = login(&n.app, "faculty-demo", "1234").await;
    let t = Some(token.as_str());

    let view = open_session(&n, &token).await;
    assert_eq!((view["course_id"].as_str(), view["faculty_id"].as_str()), (Some("cs101"), Some("faculty-demo")));
    assert_eq!(view["students"].as_array().unwrap().len(), 5);
    let id = view["id"].as_str().unwrap().to_owned();

    // A student taps; the faculty excuses another and marks a third late by hand.
    n.att.record_tap(CardRead { uid: "5A000001".parse().unwrap(), reader: ReaderKind::Simulated }).unwrap();
    let uri = format!("/api/sessions/{id}/marks/student-4");
    let a =
        send(&n.app, req(Method::PUT, &uri, t, Some(json!({ "status": "excused", "remarks": "sports team" })))).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    assert!(a.body.is_empty());
    let uri = format!("/api/sessions/{id}/marks/student-2");
    assert_eq!(
        send(&n.app, req(Method::PUT, &uri, t, Some(json!({ "status": "late" })))).await.status,
        StatusCode::NO_CONTENT
    );

    let got = send(&n.app, req(Method::GET, &format!("/api/sessions/{id}"), t, None)).await.json();
    let s4 = got["students"].as_array().unwrap().iter().find(|s| s["student_id"] == "student-4").unwrap();
    assert_eq!(
        (&s4["status"], &s4["source"], &s4["remarks"]),
        (&json!("excused"), &json!("manual"), &json!("sports team"))
    );

    // Close: the ATTENDANCE_MARKED payload comes back.
    n.clock.advance(Duration::from_secs(20 * 60));
    let a = send(&n.app, req(Method::POST, &format!("/api/sessions/{id}/close"), t, None)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let p = a.json();
    assert_eq!(p["attendance_id"], id.as_str());
    assert_eq!((p["course_id"].as_str(), p["marked_by"].as_str()), (Some("cs101"), Some("faculty-demo")));
    assert_eq!(
        (p["total_students"].as_u64(), p["present_count"].as_u64(), p["absent_count"].as_u64()),
        (Some(5), Some(2), Some(2))
    );
    let statuses: Vec<(&str, &str)> = p["student_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["student_id"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("student-1", "present"),
            ("student-2", "late"),
            ("student-3", "absent"),
            ("student-4", "excused"),
            ("student-5", "absent")
        ]
    );

    // Closing again, or marking now, conflicts.
    send(&n.app, req(Method::POST, &format!("/api/sessions/{id}/close"), t, None))
        .await
        .app_error(StatusCode::CONFLICT, "SESSION_CLOSED");
    let uri = format!("/api/sessions/{id}/marks/student-3");
    send(&n.app, req(Method::PUT, &uri, t, Some(json!({ "status": "present" }))))
        .await
        .app_error(StatusCode::CONFLICT, "SESSION_CLOSED");

    // A correction within the window → 201 + ATTENDANCE_UPDATED.
    let body = json!({ "student_id": "student-3", "status": "excused", "reason": "medical certificate" });
    let a = send(&n.app, req(Method::POST, &format!("/api/sessions/{id}/corrections"), t, Some(body.clone()))).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let u = a.json();
    assert_eq!((u["attendance_id"].as_str(), u["student_id"].as_str()), (Some(id.as_str()), Some("student-3")));
    assert_eq!((u["old_status"].as_str(), u["new_status"].as_str()), (Some("absent"), Some("excused")));
    assert_eq!((u["reason"].as_str(), u["corrected_by"].as_str()), (Some("medical certificate"), Some("faculty-demo")));
    send(&n.app, req(Method::POST, &format!("/api/sessions/{id}/corrections"), t, Some(body)))
        .await
        .app_error(StatusCode::CONFLICT, "NO_CHANGE");

    // Both events wait in the outbox.
    let status = send(&n.app, req(Method::GET, "/api/status", None, None)).await.json();
    assert_eq!(status["outbox_backlog"], 2);
    let m = send(&n.app, req(Method::GET, "/metrics", None, None)).await.text();
    assert!(m.contains("nimbus_edge_outbox_backlog 2\n") && m.contains("nimbus_edge_sessions_closed_total 1\n"), "{m}");
}

#[tokio::test]
async fn marking_rules_are_enforced_while_open() {
    let n = node();
    let token = login(&n.app, "faculty-demo", "1234").await;
    let t = Some(token.as_str());
    let id = open_session(&n, &token).await["id"].as_str().unwrap().to_owned();

    let a = send(
        &n.app,
        req(Method::PUT, &format!("/api/sessions/{id}/marks/stranger"), t, Some(json!({ "status": "present" }))),
    )
    .await;
    let v = a.app_error(StatusCode::UNPROCESSABLE_ENTITY, "NOT_ON_ROSTER");
    assert_eq!(v["details"]["student_id"], "stranger");

    let body = json!({ "student_id": "student-1", "status": "excused" });
    send(&n.app, req(Method::POST, &format!("/api/sessions/{id}/corrections"), t, Some(body)))
        .await
        .app_error(StatusCode::CONFLICT, "SESSION_OPEN");

    send(&n.app, req(Method::POST, "/api/sessions", t, None))
        .await
        .app_error(StatusCode::CONFLICT, "SESSION_ALREADY_OPEN");

    let long = "x".repeat(501);
    let a = send(
        &n.app,
        req(
            Method::PUT,
            &format!("/api/sessions/{id}/marks/student-1"),
            t,
            Some(json!({ "status": "present", "remarks": long })),
        ),
    )
    .await;
    assert_eq!(a.app_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR")["details"]["field"], "remarks");
}

#[tokio::test]
async fn another_faculty_member_gets_403() {
    let n = node();
    add_faculty_two(&n.att);
    let demo = login(&n.app, "faculty-demo", "1234").await;
    let two = login(&n.app, "faculty-two", "5678").await;
    let t = Some(two.as_str());

    // They do not teach the class running now.
    send(&n.app, req(Method::POST, "/api/sessions", t, None)).await.app_error(StatusCode::FORBIDDEN, "FORBIDDEN");

    let id = open_session(&n, &demo).await["id"].as_str().unwrap().to_owned();
    // They may look, but not change anything.
    assert_eq!(send(&n.app, req(Method::GET, &format!("/api/sessions/{id}"), t, None)).await.status, StatusCode::OK);
    send(&n.app, req(Method::POST, &format!("/api/sessions/{id}/close"), t, None))
        .await
        .app_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    send(
        &n.app,
        req(Method::PUT, &format!("/api/sessions/{id}/marks/student-1"), t, Some(json!({ "status": "absent" }))),
    )
    .await
    .app_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    let closed = send(&n.app, req(Method::POST, &format!("/api/sessions/{id}/close"), Some(&demo), None)).await;
    assert_eq!(closed.status, StatusCode::OK, "the session's own faculty may close it");
    let body = json!({ "student_id": "student-1", "status": "excused" });
    send(&n.app, req(Method::POST, &format!("/api/sessions/{id}/corrections"), t, Some(body)))
        .await
        .app_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    let view = n.att.session_view(&id).unwrap();
    assert!(view.students.iter().all(|s| s.status == Some(nimbus_core::event::attendance::AttendanceStatus::Absent)));
}

#[tokio::test]
async fn opening_with_no_class_now_is_409() {
    let n = node();
    n.clock.set_wall_local(monday(12, 0));
    let token = login(&n.app, "faculty-demo", "1234").await;
    let a = send(&n.app, req(Method::POST, "/api/sessions", Some(&token), None)).await;
    a.app_error(StatusCode::CONFLICT, "NO_CLASS_NOW");
}

#[tokio::test]
async fn an_unknown_session_and_an_unknown_route_are_404_json() {
    let n = node();
    let token = login(&n.app, "faculty-demo", "1234").await;
    let a = send(&n.app, req(Method::GET, "/api/sessions/no-such-session", Some(&token), None)).await;
    assert_eq!(a.app_error(StatusCode::NOT_FOUND, "NOT_FOUND")["details"]["session_id"], "no-such-session");
    send(&n.app, req(Method::POST, "/api/sessions/no-such-session/close", Some(&token), None))
        .await
        .app_error(StatusCode::NOT_FOUND, "NOT_FOUND");
    let a = send(&n.app, req(Method::GET, "/api/nothing/here", None, None)).await;
    assert_eq!(a.app_error(StatusCode::NOT_FOUND, "NOT_FOUND")["details"]["path"], "/api/nothing/here");
}

#[tokio::test]
async fn a_wrong_method_is_405_json() {
    let n = node();
    let a = send(&n.app, req(Method::DELETE, "/api/sessions", None, None)).await;
    a.app_error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    assert_eq!(a.headers[header::ALLOW], "POST");
    send(&n.app, req(Method::POST, "/health", None, None))
        .await
        .app_error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_problem() {
    let n = node();
    let token = login(&n.app, "faculty-demo", "1234").await;
    let t = Some(token.as_str());
    let id = open_session(&n, &token).await["id"].as_str().unwrap().to_owned();
    let uri = format!("/api/sessions/{id}/marks/student-1");

    let a = send(&n.app, raw(Method::PUT, &uri, t, "application/json", "{\"status\": ")).await;
    let v = a.app_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert!(v["details"]["problem"].as_str().unwrap().contains("EOF"), "{v}");

    let a = send(&n.app, req(Method::PUT, &uri, t, Some(json!({ "status": "sleeping" })))).await;
    let v = a.app_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(v["details"]["field"], "status", "{v}");
    assert!(v["details"]["problem"].as_str().unwrap().contains("unknown variant"), "{v}");

    let a = send(&n.app, req(Method::PUT, &uri, t, Some(json!({ "remarks": "no status" })))).await;
    assert_eq!(a.app_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR")["details"]["field"], "status");

    let a = send(&n.app, req(Method::POST, "/api/login", None, Some(json!({ "user_id": 7, "pin": "1234" })))).await;
    assert_eq!(a.app_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR")["details"]["field"], "user_id");

    let a = send(&n.app, raw(Method::PUT, &uri, t, "text/plain", "{\"status\":\"present\"}")).await;
    a.app_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE");
    let a = send(
        &n.app,
        Request::put(&uri).header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty()).unwrap(),
    )
    .await;
    a.app_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE");
}

#[tokio::test]
async fn an_oversized_body_is_413_with_our_shape() {
    let n = node();
    let huge = json!({ "user_id": "x".repeat(BODY_LIMIT), "pin": "1234" }).to_string();
    let a = send(&n.app, raw(Method::POST, "/api/login", None, "application/json", huge.clone())).await;
    a.app_error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");

    // Also on an authenticated route with a valid body shape.
    let token = login(&n.app, "faculty-demo", "1234").await;
    let big = json!({ "student_id": "student-1", "status": "excused", "reason": "y".repeat(BODY_LIMIT) });
    let a = send(&n.app, req(Method::POST, "/api/sessions/x/corrections", Some(&token), Some(big))).await;
    a.app_error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn status_shows_the_slot_the_open_session_the_backlog_and_the_clock() {
    let n = node();
    let v = send(&n.app, req(Method::GET, "/api/status", None, None)).await.json();
    assert_eq!(v["room_id"], ROOM);
    assert_eq!(v["current_entry"]["course_id"], "cs101");
    assert_eq!(v["open_session"], Value::Null);
    assert_eq!(v["outbox_backlog"], 0);
    assert_eq!(v["clock"], json!({ "utc": "2026-11-23T03:35:00Z", "local": "2026-11-23T09:05:00", "synced": true }));
    let token = login(&n.app, "faculty-demo", "1234").await;
    let id = open_session(&n, &token).await["id"].clone();
    let v = send(&n.app, req(Method::GET, "/api/status", None, None)).await.json();
    assert_eq!(v["open_session"]["id"], id);
    assert_eq!((v["open_session"]["marked"].as_u64(), v["open_session"]["roster"].as_u64()), (Some(0), Some(5)));
    assert!(v["open_session"].get("students").is_none(), "no names without a login: {v}");
}

#[tokio::test]
async fn taps_are_404_without_simulate_mode() {
    let n = node();
    let a = send(&n.app, req(Method::POST, "/api/taps", None, Some(json!({ "card_uid": "04A1B2C3" })))).await;
    a.app_error(StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn a_simulated_tap_returns_the_nodes_feedback() {
    let (tx, mut rx) = mpsc::channel::<TapRequest>(4);
    // A fake node: answers Duplicate for the expected card from the simulated reader.
    tokio::spawn(async move {
        while let Some(TapRequest { read, reply }) = rx.recv().await {
            let ok = read.reader == ReaderKind::Simulated && read.uid.to_string() == "04A1B2C3";
            let _ = reply.send(if ok { Feedback::Duplicate } else { Feedback::Error });
        }
    });
    let n = node_with(|att| AppState::new(att, Arc::new(Metrics::default()), Some(tx)));
    let a = send(&n.app, req(Method::POST, "/api/taps", None, Some(json!({ "card_uid": "04:a1:b2:c3" })))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json(), json!({ "feedback": "duplicate" }));

    let a = send(&n.app, req(Method::POST, "/api/taps", None, Some(json!({ "card_uid": "not-hex" })))).await;
    let v = a.app_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(v["details"]["field"], "card_uid");
    let a = send(&n.app, req(Method::POST, "/api/taps", None, Some(json!({ "uid": "04A1B2C3" })))).await;
    assert_eq!(a.app_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR")["details"]["field"], "card_uid");
}

#[tokio::test]
async fn a_simulated_tap_is_503_when_the_node_stops_listening() {
    let (tx, rx) = mpsc::channel::<TapRequest>(4);
    drop(rx);
    let n = node_with(|att| AppState::new(att, Arc::new(Metrics::default()), Some(tx)));
    let a = send(&n.app, req(Method::POST, "/api/taps", None, Some(json!({ "card_uid": "04A1B2C3" })))).await;
    a.app_error(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE");
}
