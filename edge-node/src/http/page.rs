//! The faculty page at the classroom device: server-rendered HTML (maud templates, see
//! [`super::view`]), no build step. `GET /` shows the node's clock, the current slot, the open
//! session with every roster student's mark, and the last closed session of the signed-in faculty
//! with a correction form, and the student page's address with its QR code for the room to scan.
//! Its forms POST to `/page/...`, which redirect back to `/` (post/redirect/get) leaving a
//! one-time flash message.
//!
//! The only script is a nonce'd inline refresh every 15 s that skips while the user is typing;
//! responses carry a strict `Content-Security-Policy`. Every form carries the login's form token
//! (see [`super::login`]).
//!
//! Phones: below 40rem the roster tables turn into one card per student, each value labelled, and
//! the mark buttons wrap into finger-sized targets, so nothing runs off a 320–390 px screen.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, TimeDelta, Utc};
use maud::{Markup, html};
use nimbus_core::event::attendance::AttendanceStatus;
use nimbus_core::snapshot::Announcement;
use rusqlite::OptionalExtension;
use serde::Deserialize;

use super::api::{note, owned_session};
use super::error::{ApiForm, AppError};
use super::login::{FORM_TOKEN_FIELD, Flash, PageFaculty, origin_allows};
use super::view::{Fetches, html_page, layout, qr_svg};
use super::{AppState, blocking};
use crate::attendance::SessionView;
use crate::clock::Now;
use crate::timetable::TimetableEntry;

const STATUSES: [AttendanceStatus; 4] =
    [AttendanceStatus::Present, AttendanceStatus::Late, AttendanceStatus::Absent, AttendanceStatus::Excused];

fn parse_status(s: &str) -> Option<AttendanceStatus> {
    STATUSES.into_iter().find(|st| st.as_str() == s)
}

/// How a status reads on the pages.
pub(crate) fn label(s: AttendanceStatus) -> &'static str {
    match s {
        AttendanceStatus::Present => "Present",
        AttendanceStatus::Late => "Late",
        AttendanceStatus::Absent => "Absent",
        AttendanceStatus::Excused => "Excused",
    }
}

struct PageData {
    now: Now,
    room_id: String,
    entry: Option<TimetableEntry>,
    /// The current entry already had its session today.
    entry_held: bool,
    open: Option<SessionView>,
    last_closed: Option<SessionView>,
    corrections_until: Option<DateTime<Utc>>,
    /// Outbox gauges (backlog, oldest unacked age).
    gauges: crate::metrics::Gauges,
    /// The link to the cloud.
    cloud_connected: bool,
    cloud_error: Option<String>,
    last_ack: Option<DateTime<Utc>>,
    /// The room's current announcements meant for faculty, urgent first.
    announcements: Vec<Announcement>,
}

/// Formats UTC instants in campus local time, using the clock's current offset.
pub(crate) struct Local(TimeDelta);

impl Local {
    pub(crate) fn of(now: &Now) -> Self {
        Local(now.local - now.utc.naive_utc())
    }

    pub(crate) fn hm(&self, t: DateTime<Utc>) -> String {
        (t.naive_utc() + self.0).format("%H:%M").to_string()
    }

    pub(crate) fn full(&self, t: DateTime<Utc>) -> String {
        (t.naive_utc() + self.0).format("%a %d %b %Y %H:%M").to_string()
    }
}

/// The student page's address as the faculty's browser reached the node (its `Host`), which is
/// what phones in the same room reach it by too.
pub(crate) fn student_page_url(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    // A Host header is a name or address and a port: nothing else goes into the QR code.
    let plausible = !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    plausible.then(|| format!("http://{host}/student"))
}

fn render(who: &PageFaculty, d: &PageData, flash: Option<Flash>, student_url: Option<&str>) -> Markup {
    let me = &who.0;
    let local = Local::of(&d.now);
    // Goes into every form; a post without it is refused.
    let token = html! { input type="hidden" name=(FORM_TOKEN_FIELD) value=(me.form_token); };
    let count = |s: &SessionView, st: Option<AttendanceStatus>| s.students.iter().filter(|x| x.status == st).count();
    html! {
        header {
            h1 { "Attendance · room " (d.room_id) }
            div {
                "Signed in as " (me.name) " (" (me.user_id) ") "
                form.inline method="post" action="/logout" { (token) button type="submit" { "Sign out" } }
            }
        }
        p {
            "Node time: " strong { (d.now.local.format("%a %d %b %Y %H:%M")) }
            @if !d.now.synced { " " span.warn { "(clock not synchronised: times may be wrong)" } }
        }
        @if let Some(f) = flash {
            p.flash.(if f.ok { "ok" } else { "err" }) role="status" { (f.text) }
        }
        (render_announcements(&d.announcements, &local))
        section {
            h2 { "Current slot" }
            @match &d.entry {
                Some(e) => {
                    p {
                        strong { (e.course_id) } " " (e.course_name) " · " (e.start_time.format("%H:%M")) "–"
                        (e.end_time.format("%H:%M")) " · faculty " (e.faculty_id)
                    }
                    @if d.open.is_none() {
                        @if d.entry_held {
                            p { "This class's session was already held today." }
                        } @else if e.faculty_id == me.user_id {
                            form method="post" action="/page/open" { (token) button type="submit" { "Open session" } }
                        } @else {
                            p { "Only the class's faculty can open its session." }
                        }
                    }
                }
                None => p { "No class is scheduled in this room now." },
            }
        }
        @if let Some(s) = &d.open {
            @let mine = s.faculty_id == me.user_id;
            section {
                h2 { "Open session: " (s.course_id) " " (s.course_name) }
                p {
                    (s.class_date) " " (local.hm(s.starts_at)) "–" (local.hm(s.ends_at)) ", opened "
                    (local.hm(s.opened_at)) " by faculty " (s.faculty_id) "."
                }
                p {
                    "Present " (count(s, Some(AttendanceStatus::Present)))
                    " · Late " (count(s, Some(AttendanceStatus::Late)))
                    " · Absent " (count(s, Some(AttendanceStatus::Absent)))
                    " · Excused " (count(s, Some(AttendanceStatus::Excused)))
                    " · Not yet marked " (count(s, None))
                }
                @if mine {
                    form method="post" action="/page/close" {
                        (token)
                        input type="hidden" name="session_id" value=(s.id);
                        button type="submit" { "Close session" }
                    }
                }
                table.roster {
                    thead { tr {
                        th { "Student" } th { "ID" } th { "Status" } th { "Source" } th { "Remarks" }
                        @if mine { th { "Mark" } }
                    } }
                    tbody {
                        @for st in &s.students {
                            tr {
                                td { strong { (st.name) } }
                                td data-label="ID" { (st.student_id) }
                                td data-label="Status" { (st.status.map_or("—", label)) }
                                td data-label="Source" { (st.source.as_deref().unwrap_or("")) }
                                td data-label="Remarks" { (st.remarks.as_deref().unwrap_or("")) }
                                @if mine {
                                    td {
                                        form.marks method="post" action="/page/mark" {
                                            (token)
                                            input type="hidden" name="session_id" value=(s.id);
                                            input type="hidden" name="student_id" value=(st.student_id);
                                            input name="remarks" placeholder="remarks" maxlength=(super::api::MAX_NOTE_LEN)
                                                aria-label={ "remarks for " (st.name) };
                                            @for status in STATUSES {
                                                button type="submit" name="status" value=(status.as_str()) { (label(status)) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(s) = &d.last_closed {
            section {
                h2 { "Last closed session: " (s.course_id) " " (s.course_name) }
                p {
                    (s.class_date) " " (local.hm(s.starts_at)) "–" (local.hm(s.ends_at))
                    @if let Some(closed) = s.closed_at { ", closed " (local.full(closed)) }
                    "."
                }
                table.roster {
                    thead { tr { th { "Student" } th { "ID" } th { "Status" } th { "Remarks" } } }
                    tbody {
                        @for st in &s.students {
                            tr {
                                td { strong { (st.name) } }
                                td data-label="ID" { (st.student_id) }
                                td data-label="Status" { (st.status.map_or("—", label)) }
                                td data-label="Remarks" { (st.remarks.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
                @match d.corrections_until {
                    Some(until) if until > d.now.utc => {
                        h3 { "Correct a mark" }
                        p { "Corrections are accepted until " (local.full(until)) "." }
                        form method="post" action="/page/correct" {
                            (token)
                            input type="hidden" name="session_id" value=(s.id);
                            label {
                                "Student "
                                select name="student_id" required {
                                    @for st in &s.students {
                                        option value=(st.student_id) {
                                            (st.name) " (" (st.status.map_or("—", label)) ")"
                                        }
                                    }
                                }
                            }
                            label {
                                "New status "
                                select name="status" required {
                                    @for status in STATUSES { option value=(status.as_str()) { (label(status)) } }
                                }
                            }
                            label { "Reason " input name="reason" maxlength=(super::api::MAX_NOTE_LEN); }
                            button type="submit" { "Submit correction" }
                        }
                    }
                    _ => p { "The correction window for this session has closed." },
                }
            }
        }
        (render_student_link(student_url))
        (render_cloud(d, &local))
    }
}

/// Where students find their page: a link and a QR code of its address to show the room.
/// Urgent announcements first, each in an alert box; the rest as a list below them.
fn render_announcements(items: &[Announcement], local: &Local) -> Markup {
    let (urgent, rest): (Vec<&Announcement>, Vec<&Announcement>) = items.iter().partition(|a| a.priority == "urgent");
    html! {
        @for a in &urgent {
            section.urgent role="alert" aria-label="Urgent announcement" {
                h2 { "Urgent: " (a.title) }
                p { (a.body) }
                p.muted { "Published " (local.full(a.published_at))
                    @if let Some(e) = a.expires_at { " · until " (local.full(e)) } }
            }
        }
        @if !rest.is_empty() {
            section aria-labelledby="announcements" {
                h2 #announcements { "Announcements" }
                @for a in &rest {
                    article.announcement.(a.priority) {
                        h3 { (a.title) }
                        p { (a.body) }
                        p.muted { (local.full(a.published_at))
                            @if let Some(e) = a.expires_at { " · until " (local.full(e)) } }
                    }
                }
            }
        }
    }
}

fn render_student_link(student_url: Option<&str>) -> Markup {
    html! {
        section {
            h2 { "Student page" }
            @match student_url {
                Some(url) => {
                    p {
                        "Students open " a href="/student" { (url) }
                        " on a phone or laptop on the classroom network, or scan:"
                    }
                    @if let Some(svg) = qr_svg(url, &format!("QR code of the student page address, {url}")) {
                        (svg)
                    }
                }
                None => p { "Students open " a href="/student" { "the student page" } " (/student) on this node." },
            }
        }
    }
}

/// The link to the cloud: whether it is up and how much is waiting, so faculty can see that
/// attendance taken offline is still on its way.
fn render_cloud(d: &PageData, local: &Local) -> Markup {
    let g = &d.gauges;
    html! {
        section {
            h2 { "Cloud link" }
            p {
                @if d.cloud_connected { "connected" } @else { span.warn { "offline" } }
                " · " (g.outbox_backlog) " event(s) waiting"
                @if g.outbox_backlog > 0 { ", oldest " (format!("{:.0}", g.outbox_oldest_age_seconds / 60.0)) " min old" }
                @match d.last_ack {
                    Some(t) => { " · last acknowledged " (local.full(t)) }
                    None => " · nothing acknowledged since start",
                }
            }
            @if let (false, Some(why)) = (d.cloud_connected, &d.cloud_error) {
                p.warn { "Cannot connect: " (why) }
            }
        }
    }
}

/// `GET /`.
pub(crate) async fn index(
    State(state): State<AppState>,
    who: PageFaculty,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let att = state.attendance.clone();
    let sync = state.metrics.sync.clone();
    let user_id = who.0.user_id.clone();
    let data = blocking(move || {
        let now = att.now();
        let entry = att.current_entry()?;
        let open = att.open()?;
        let entry_held = match &entry {
            Some(e) => att.store().with(|c| {
                Ok(c.query_row(
                    "SELECT 1 FROM sessions WHERE entry_id = ?1 AND class_date = ?2",
                    [&e.entry_id, &now.local.date().to_string()],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
            })?,
            None => false,
        };
        let last_id: Option<String> = att.store().with(|c| {
            Ok(c.query_row(
                "SELECT id FROM sessions WHERE closed_ms IS NOT NULL AND faculty_id = ?1
                 ORDER BY closed_ms DESC LIMIT 1",
                [&user_id],
                |r| r.get(0),
            )
            .optional()?)
        })?;
        let last_closed = last_id.map(|id| att.session_view(&id)).transpose()?;
        let window = TimeDelta::from_std(att.rules().correction_window).unwrap_or(TimeDelta::MAX);
        let corrections_until =
            last_closed.as_ref().and_then(|s| s.closed_at).and_then(|c| c.checked_add_signed(window));
        let gauges = att.store().with(|c| crate::metrics::gauges(c, now.wall_ms()))?;
        let mut announcements = att.store().with(|c| crate::announcements::current(c, &now))?;
        announcements.retain(|a| a.for_role("faculty"));
        Ok(PageData {
            announcements,
            gauges,
            cloud_connected: sync.connected(),
            cloud_error: sync.last_error(),
            last_ack: Some(sync.last_ack_ms()).filter(|ms| *ms > 0).and_then(DateTime::from_timestamp_millis),
            now,
            room_id: att.rules().room_id.clone(),
            entry,
            entry_held,
            open,
            last_closed,
            corrections_until,
        })
    })
    .await?;
    let flash = state.logins.take_flash(&who.0.token);
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let title = format!("Room {}", data.room_id);
    let body = render(&who, &data, flash, student_page_url(&headers).as_deref());
    Ok(html_page(StatusCode::OK, layout(&title, Some(&nonce), body), Some(&nonce), Fetches::None))
}

/// Leaves the outcome as a flash and goes back to `/`.
fn back(state: &AppState, who: &PageFaculty, outcome: Result<String, AppError>) -> Response {
    let flash = match outcome {
        Ok(text) => Flash { ok: true, text },
        Err(e) => Flash { ok: false, text: e.message().to_owned() },
    };
    state.logins.set_flash(&who.0.token, flash);
    Redirect::to("/").into_response()
}

/// A page form: the login's form token beside the action's own fields.
#[derive(Debug, Deserialize)]
pub(crate) struct Guarded<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: T,
}

/// `POST /page/open` form: nothing but the token.
#[derive(Debug, Deserialize)]
pub(crate) struct OpenForm {}

/// `POST /page/open`.
pub(crate) async fn open(
    State(state): State<AppState>,
    who: PageFaculty,
    headers: HeaderMap,
    form: Result<ApiForm<Guarded<OpenForm>>, AppError>,
) -> Response {
    form_action(state, who, &headers, form, |st, user_id, OpenForm {}| {
        let s = st.attendance.open_session(user_id)?;
        Ok(format!("Session opened for {} {}.", s.course_id, s.course_name))
    })
    .await
}

/// `POST /page/close` form.
#[derive(Debug, Deserialize)]
pub(crate) struct CloseForm {
    session_id: String,
}

/// The shape every form action of the page shares: refuse posts without the login's form token
/// or from another origin, turn a malformed form into a flash message, run `action` on the
/// blocking pool as the signed-in faculty, and redirect back to the page with its outcome.
async fn form_action<T: Send + 'static>(
    state: AppState,
    who: PageFaculty,
    headers: &HeaderMap,
    form: Result<ApiForm<Guarded<T>>, AppError>,
    action: impl FnOnce(&AppState, &str, T) -> Result<String, AppError> + Send + 'static,
) -> Response {
    let refused = || AppError::forbidden("Cross-origin form submission refused").into_response();
    if !origin_allows(headers) {
        return refused();
    }
    let Guarded { csrf, form } = match form {
        Ok(ApiForm(f)) => f,
        // Nothing is changed by a form that does not parse; its token cannot be read either.
        Err(e) => return back(&state, &who, Err(e)),
    };
    if !who.0.form_token_matches(&csrf) {
        tracing::info!(user_id = who.0.user_id, "page form without the login's form token refused");
        return refused();
    }
    let (st, user_id) = (state.clone(), who.0.user_id.clone());
    let outcome = blocking(move || action(&st, &user_id, form)).await;
    back(&state, &who, outcome)
}

/// `POST /page/close`.
pub(crate) async fn close(
    State(state): State<AppState>,
    who: PageFaculty,
    headers: HeaderMap,
    form: Result<ApiForm<Guarded<CloseForm>>, AppError>,
) -> Response {
    form_action(state, who, &headers, form, |st, user_id, form| {
        owned_session(&st.attendance, &form.session_id, user_id)?;
        let p = st.attendance.close_session(&form.session_id, "manual")?;
        st.metrics.sessions_closed(1);
        Ok(format!(
            "Session closed: {} of {} present, {} absent. Attendance will be sent to the cloud.",
            p.present_count, p.total_students, p.absent_count
        ))
    })
    .await
}

/// `POST /page/mark` and `/page/correct` form.
#[derive(Debug, Deserialize)]
pub(crate) struct MarkForm {
    session_id: String,
    student_id: String,
    status: String,
    #[serde(default)]
    remarks: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

fn status_field(s: &str) -> Result<AttendanceStatus, AppError> {
    parse_status(s).ok_or_else(|| AppError::invalid_field("status", "must be present, late, absent or excused"))
}

/// `POST /page/mark`.
pub(crate) async fn mark(
    State(state): State<AppState>,
    who: PageFaculty,
    headers: HeaderMap,
    form: Result<ApiForm<Guarded<MarkForm>>, AppError>,
) -> Response {
    form_action(state, who, &headers, form, |st, user_id, form| {
        let status = status_field(&form.status)?;
        let remarks = note("remarks", form.remarks.as_deref())?;
        owned_session(&st.attendance, &form.session_id, user_id)?;
        st.attendance.mark(&form.session_id, &form.student_id, status, remarks, user_id)?;
        Ok(format!("{} marked {}.", form.student_id, status.as_str()))
    })
    .await
}

/// `POST /page/correct`.
pub(crate) async fn correct(
    State(state): State<AppState>,
    who: PageFaculty,
    headers: HeaderMap,
    form: Result<ApiForm<Guarded<MarkForm>>, AppError>,
) -> Response {
    form_action(state, who, &headers, form, |st, user_id, form| {
        let status = status_field(&form.status)?;
        let reason = note("reason", form.reason.as_deref())?;
        owned_session(&st.attendance, &form.session_id, user_id)?;
        let p = st.attendance.correct(&form.session_id, &form.student_id, status, reason, user_id)?;
        Ok(format!(
            "Corrected {}: {} → {}. The correction will be sent to the cloud.",
            p.student_id,
            p.old_status.as_str(),
            p.new_status.as_str()
        ))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_student_page_address_comes_from_a_plausible_host_only() {
        let mut h = HeaderMap::new();
        assert_eq!(student_page_url(&h), None);
        h.insert(header::HOST, axum::http::HeaderValue::from_static("10.0.0.5:8480"));
        assert_eq!(student_page_url(&h).as_deref(), Some("http://10.0.0.5:8480/student"));
        h.insert(header::HOST, axum::http::HeaderValue::from_static("[fe80::1]:8480"));
        assert_eq!(student_page_url(&h).as_deref(), Some("http://[fe80::1]:8480/student"));
        h.insert(header::HOST, axum::http::HeaderValue::from_static("evil\"><script>"));
        assert_eq!(student_page_url(&h), None);
    }

    #[test]
    fn statuses_parse_from_their_seed_spelling_only() {
        assert_eq!(parse_status("excused"), Some(AttendanceStatus::Excused));
        assert_eq!(parse_status("Excused"), None);
        assert_eq!(parse_status(""), None);
    }
}
