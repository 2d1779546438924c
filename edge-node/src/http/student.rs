//! The student page: what a student in the room opens on their phone (the faculty page shows its
//! address as a QR code). Server-rendered with the same layout and stylesheet as the faculty page
//! ([`super::view`]), no script, usable from 320 px and with a screen reader (landmarks, headings,
//! labelled values, a table with a caption).
//!
//! | route | answer |
//! |---|---|
//! | `GET /student/login`, `POST /student/login`, `POST /student/logout` | sign-in with register number or e-mail + classroom PIN (see [`super::login`]) |
//! | `GET /student` | the page; redirect to `/student/login` without a student session |
//! | `GET /student/content/{content_id}` | a cached file of one of the student's courses, with `Range`/`If-Range`/`ETag` so a download resumes on flaky Wi-Fi; 401 without a session, 403 for another course's file |
//!
//! The page shows, for the signed-in student only:
//! - the class running in this room now, if it is one of theirs;
//! - announcements for them from the node's `announcements` snapshot (the section is left out
//!   when there is none, see [`nimbus_core::snapshot::AnnouncementsSnapshot`]);
//! - the cached material of their courses (enrollments in the roster snapshot decide), the
//!   course running now first, then today's courses in this room, then the rest; with type and
//!   size, each a plain download link;
//! - their own attendance in this room's classes (the node's sessions and marks).
//!
//! Nothing on it comes from the cloud at request time: it all works with the uplink down.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};
use nimbus_core::event::attendance::AttendanceStatus;
use nimbus_core::snapshot::Announcement;
use rusqlite::{Connection, OptionalExtension};

use super::content::{ContentView, items_for, serve_to};
use super::error::{ApiForm, ApiPath, AppError};
use super::login::{
    Audience, FORM_TOKEN_FIELD, LoginForm, LogoutForm, SignedIn, login_form_for, login_submit_for, logout_for,
    named_cookie,
};
use super::page::{Local, label};
use super::view::{Fetches, html_page, human_size, kind_of, layout};
use super::{AppState, blocking};
use crate::clock::Now;
use crate::timetable;

/// Most attendance rows shown (newest first).
pub const ATTENDANCE_ROWS: usize = 200;

/// The student page's viewer, from the `nimbus_student` cookie; a redirect to the student sign-in
/// otherwise. A faculty login is not one: the two audiences have separate stores.
#[derive(Debug, Clone)]
pub struct PageStudent(pub SignedIn);

fn student_of(parts: &Parts, state: &AppState) -> Option<SignedIn> {
    named_cookie(&parts.headers, Audience::Student.cookie())
        .and_then(|token| state.students.lookup(token, Instant::now()))
}

#[axum::async_trait]
impl FromRequestParts<AppState> for PageStudent {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        student_of(parts, state).map(PageStudent).ok_or_else(|| Redirect::to("/student/login").into_response())
    }
}

/// A download's student: like [`PageStudent`], but a 401 instead of a redirect (a download
/// manager resuming a file must not save the sign-in page as its bytes).
#[derive(Debug, Clone)]
pub struct StudentCaller(pub SignedIn);

#[axum::async_trait]
impl FromRequestParts<AppState> for StudentCaller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        student_of(parts, state)
            .map(StudentCaller)
            .ok_or_else(|| AppError::unauthorized("Sign in on the student page first"))
    }
}

/// `GET /student/login`.
pub(crate) async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    login_form_for(Audience::Student, &state, &headers).await
}

/// `POST /student/login`.
pub(crate) async fn login_submit(
    State(state): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    ApiForm(form): ApiForm<LoginForm>,
) -> Result<Response, AppError> {
    login_submit_for(Audience::Student, &state, &headers, peer, form).await
}

/// `POST /student/logout`.
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<ApiForm<LogoutForm>, AppError>,
) -> Result<Response, AppError> {
    logout_for(Audience::Student, &state, &headers, form).await
}

/// `GET /student/content/{content_id}`.
pub(crate) async fn download(
    State(state): State<AppState>,
    StudentCaller(who): StudentCaller,
    ApiPath(content_id): ApiPath<String>,
    peer: Option<ConnectInfo<SocketAddr>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let routes = super::content::routes(&state)?.clone();
    let (store, w) = (state.attendance.store().clone(), who.clone());
    if !blocking(move || Ok(store.with(|c| still_signed_in(c, &w))?)).await? {
        state.students.remove(&who.token);
        return Err(AppError::unauthorized("Sign in on the student page first"));
    }
    serve_to(&routes, who.user_id, content_id, peer, method, &headers).await
}

/// Whether a student's session still stands: they are still in this node's roster with the PIN
/// hash they signed in with. A PIN reset or cleared in the cloud, a suspension or the end of their
/// last enrollment here ends their sessions with the next roster snapshot.
fn still_signed_in(c: &Connection, who: &SignedIn) -> crate::Result<bool> {
    let hash: Option<Option<String>> = c
        .prepare_cached("SELECT pin_hash FROM students WHERE user_id = ?1")?
        .query_row([&who.user_id], |r| r.get(0))
        .optional()?;
    Ok(hash.flatten().as_deref() == Some(&*who.credential))
}

/// One class of the student's, as the node recorded it.
struct ClassRow {
    class_date: String,
    course_id: String,
    course_name: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    open: bool,
    status: Option<AttendanceStatus>,
}

struct StudentData {
    now: Now,
    room_id: String,
    /// Course id → name, for the courses of this room the student is enrolled in.
    courses: Vec<(String, String)>,
    /// The class running now, if it is one of theirs: (course id, name, start, end).
    now_class: Option<(String, String, String, String)>,
    /// Their courses taught in this room today, in start order.
    today: Vec<String>,
    classes: Vec<ClassRow>,
    announcements: Vec<Announcement>,
}

fn parse_status(s: &str) -> Option<AttendanceStatus> {
    [AttendanceStatus::Present, AttendanceStatus::Late, AttendanceStatus::Absent, AttendanceStatus::Excused]
        .into_iter()
        .find(|st| st.as_str() == s)
}

/// The student's own classes in this room, newest first: every session of a course they are
/// enrolled in, with their mark if they have one.
fn classes_of(c: &Connection, student_id: &str) -> crate::Result<Vec<ClassRow>> {
    let mut stmt = c.prepare_cached(
        "SELECT s.class_date, s.course_id, s.course_name, s.starts_ms, s.ends_ms, s.closed_ms IS NULL, m.status
         FROM sessions s
         JOIN roster r ON r.course_id = s.course_id AND r.student_id = ?1
         LEFT JOIN marks m ON m.session_id = s.id AND m.student_id = ?1
         ORDER BY s.starts_ms DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![student_id, ATTENDANCE_ROWS as i64], |r| {
        let status: Option<String> = r.get(6)?;
        Ok(ClassRow {
            class_date: r.get(0)?,
            course_id: r.get(1)?,
            course_name: r.get(2)?,
            starts_at: DateTime::from_timestamp_millis(r.get(3)?).unwrap_or_default(),
            ends_at: DateTime::from_timestamp_millis(r.get(4)?).unwrap_or_default(),
            open: r.get(5)?,
            status: status.as_deref().and_then(parse_status),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The current announcements of the node's `announcements` snapshot that target this student.
fn announcements_for(
    c: &Connection,
    now: &Now,
    student_id: &str,
    courses: &[String],
) -> crate::Result<Vec<Announcement>> {
    Ok(crate::announcements::current(c, now)?.into_iter().filter(|a| a.targets(student_id, courses)).collect())
}

/// The page's data, or `None` when the session no longer stands ([`still_signed_in`]).
fn gather(state: &AppState, who: &SignedIn) -> Result<Option<StudentData>, AppError> {
    let att = &state.attendance;
    let student_id = who.user_id.as_str();
    if !att.store().with(|c| still_signed_in(c, who))? {
        return Ok(None);
    }
    let now = att.now();
    let room_id = att.rules().room_id.clone();
    let entry = att.current_entry()?;
    let today: NaiveDate = now.local.date();
    Ok(att.store().with(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT r.course_id, COALESCE((SELECT course_name FROM timetable_entries t WHERE t.course_id = r.course_id
                                           LIMIT 1), r.course_id)
             FROM roster r WHERE r.student_id = ?1 ORDER BY r.course_id",
        )?;
        let courses: Vec<(String, String)> =
            stmt.query_map([student_id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        let mine = |course: &str| courses.iter().any(|(id, _)| id == course);
        let now_class = entry.filter(|e| mine(&e.course_id)).map(|e| {
            (
                e.course_id,
                e.course_name,
                e.start_time.format("%H:%M").to_string(),
                e.end_time.format("%H:%M").to_string(),
            )
        });
        let mut today_courses = Vec::new();
        for e in timetable::entries(c)? {
            if e.room_id == room_id
                && e.applies_on(today)
                && mine(&e.course_id)
                && !today_courses.contains(&e.course_id)
            {
                today_courses.push(e.course_id);
            }
        }
        let classes = classes_of(c, student_id)?;
        let ids: Vec<String> = courses.iter().map(|(id, _)| id.clone()).collect();
        let announcements = announcements_for(c, &now, student_id, &ids)?;
        Ok(Some(StudentData { now, room_id, courses, now_class, today: today_courses, classes, announcements }))
    })?)
}

/// Where an item sorts: the course running now first, then today's, then the rest.
fn rank(item: &ContentView, d: &StudentData) -> usize {
    let in_course = |c: &str| item.course_ids.iter().any(|x| x == c);
    if d.now_class.as_ref().is_some_and(|(c, ..)| in_course(c)) {
        return 0;
    }
    d.today.iter().position(|c| in_course(c)).map_or(usize::MAX, |i| i + 1)
}

/// `GET /student`.
pub(crate) async fn index(State(state): State<AppState>, PageStudent(who): PageStudent) -> Result<Response, AppError> {
    let (st, w) = (state.clone(), who.clone());
    let Some(data) = blocking(move || gather(&st, &w)).await? else {
        tracing::info!(user_id = who.user_id, "student session ended: PIN or enrollment changed");
        state.students.remove(&who.token);
        return Ok(Redirect::to("/student/login").into_response());
    };
    let materials = match &state.content {
        Some(routes) => {
            let mut items = items_for(routes, who.user_id.clone()).await?;
            items.sort_by_cached_key(|i| (rank(i, &data), i.title.to_lowercase()));
            Some(items)
        }
        None => None,
    };
    let title = format!("Room {} · my classes", data.room_id);
    let body = render(&who, &data, materials.as_deref());
    // `connect-src 'self'`: a page script may fetch from the node (no script of ours does; the
    // browser tests verify a download's bytes this way).
    Ok(html_page(StatusCode::OK, layout(&title, None, body), None, Fetches::SameOrigin))
}

fn status_class(s: Option<AttendanceStatus>) -> &'static str {
    match s {
        Some(AttendanceStatus::Present) => "present",
        Some(AttendanceStatus::Late) => "late",
        Some(AttendanceStatus::Absent) => "absent",
        _ => "",
    }
}

fn render(who: &SignedIn, d: &StudentData, materials: Option<&[ContentView]>) -> Markup {
    let local = Local::of(&d.now);
    let names: HashMap<&str, &str> = d.courses.iter().map(|(id, n)| (id.as_str(), n.as_str())).collect();
    let course_label = |id: &str| match names.get(id) {
        Some(name) if *name != id => format!("{id} {name}"),
        _ => id.to_owned(),
    };
    html! {
        header {
            h1 { "Room " (d.room_id) }
            div {
                "Signed in as " (who.name) " "
                form.inline method="post" action="/student/logout" {
                    input type="hidden" name=(FORM_TOKEN_FIELD) value=(who.form_token);
                    button type="submit" { "Sign out" }
                }
            }
        }
        @if let Some((id, name, start, end)) = &d.now_class {
            p.flash.ok { "Now in this room: " strong { (id) " " (name) } ", " (start) "–" (end) "." }
        }
        @if !d.announcements.is_empty() {
            section aria-labelledby="announcements" {
                h2 #announcements { "Announcements" }
                @for a in &d.announcements {
                    article.announcement {
                        h3 { (a.title) }
                        p.muted { (local.full(a.published_at)) }
                        p { (a.body) }
                    }
                }
            }
        }
        section aria-labelledby="materials" {
            h2 #materials { "Course material" }
            @match materials {
                None => p { "This node does not serve course material." },
                Some([]) => p { "No material of your courses is on this node yet." },
                Some(items) => {
                    ul.materials {
                        @for i in items {
                            li {
                                a.download href={ "/student/content/" (i.content_id) } download=(i.file_name) {
                                    (i.title)
                                }
                                br;
                                span.muted {
                                    @if d.now_class.as_ref().is_some_and(|(c, ..)| i.course_ids.contains(c)) {
                                        span.badge { "Now" } " "
                                    } @else if d.today.iter().any(|c| i.course_ids.contains(c)) {
                                        span.badge { "Today" } " "
                                    }
                                    (kind_of(&i.mime_type)) " · " (human_size(i.size_bytes)) " · "
                                    (i.course_ids.iter().filter(|c| names.contains_key(c.as_str()))
                                        .map(|c| course_label(c)).collect::<Vec<_>>().join(", "))
                                }
                            }
                        }
                    }
                    p.muted { "Downloads resume where they stopped if the Wi-Fi drops." }
                }
            }
        }
        section aria-labelledby="attendance" {
            h2 #attendance { "My attendance in this room" }
            @if d.classes.is_empty() {
                p { "No class of yours has been held in this room yet." }
            } @else {
                ul {
                    @for (id, _) in &d.courses {
                        @let of = |st: AttendanceStatus| d.classes.iter().filter(|c| c.course_id == *id && c.status == Some(st)).count();
                        @let held = d.classes.iter().filter(|c| c.course_id == *id).count();
                        @if held > 0 {
                            li {
                                strong { (course_label(id)) } ": " (of(AttendanceStatus::Present)) " present, "
                                (of(AttendanceStatus::Late)) " late, " (of(AttendanceStatus::Absent)) " absent"
                                @if of(AttendanceStatus::Excused) > 0 { ", " (of(AttendanceStatus::Excused)) " excused" }
                                " (" (held) " class" @if held != 1 { "es" } ")"
                            }
                        }
                    }
                }
                table.roster {
                    caption { "Each class, newest first" }
                    thead { tr { th { "Date" } th { "Course" } th { "Time" } th { "Status" } } }
                    tbody {
                        @for c in &d.classes {
                            tr {
                                td { strong { (c.class_date) } }
                                td data-label="Course" { (c.course_id) " " (c.course_name) }
                                td data-label="Time" { (local.hm(c.starts_at)) "–" (local.hm(c.ends_at)) }
                                td data-label="Status" class=(status_class(c.status)) {
                                    @match (c.status, c.open) {
                                        (Some(s), _) => (label(s)),
                                        (None, true) => "Not marked yet (class in progress)",
                                        (None, false) => "—",
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        p { a href="/login" { "Faculty sign-in" } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, courses: &[&str]) -> ContentView {
        ContentView {
            content_id: id.into(),
            version: 1,
            title: id.into(),
            file_name: format!("{id}.pdf"),
            mime_type: "application/pdf".into(),
            size_bytes: 1,
            sha256: String::new(),
            course_ids: courses.iter().map(|c| (*c).to_owned()).collect(),
            url: String::new(),
        }
    }

    #[test]
    fn material_of_the_class_running_now_comes_first_then_todays() {
        let now = crate::clock::ManualClock::at_local(
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(9, 5, 0).unwrap(),
            chrono::FixedOffset::east_opt(0).unwrap(),
        );
        let d = StudentData {
            now: crate::clock::Clock::now(&now),
            room_id: "r".into(),
            courses: vec![],
            now_class: Some(("cs102".into(), "Algorithms".into(), "09:00".into(), "09:50".into())),
            today: vec!["cs102".into(), "cs101".into()],
            classes: vec![],
            announcements: vec![],
        };
        let mut items = [item("a", &["cs999"]), item("b", &["cs101"]), item("c", &["cs102"])];
        items.sort_by_key(|i| rank(i, &d));
        let order: Vec<&str> = items.iter().map(|i| i.content_id.as_str()).collect();
        assert_eq!(order, ["c", "b", "a"]);
    }
}
