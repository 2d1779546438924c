//! The faculty page at the classroom device: server-rendered HTML, no build step. `GET /` shows
//! the node's clock, the current slot, the open session with every roster student's mark, and the
//! last closed session of the signed-in faculty with a correction form. Its forms POST to
//! `/page/...`, which redirect back to `/` (post/redirect/get) leaving a one-time flash message.
//!
//! Every value put into the HTML goes through [`escape`]. The only script is a nonce'd inline
//! refresh every 15 s that skips while the user is typing; responses carry a strict
//! `Content-Security-Policy`. Every form carries the login's form token (see [`super::login`]).
//!
//! Phones: below 40rem the roster tables turn into one card per student, each value labelled, and
//! the mark buttons wrap into finger-sized targets, so nothing runs off a 320–390 px screen.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, TimeDelta, Utc};
use nimbus_core::event::attendance::AttendanceStatus;
use rusqlite::OptionalExtension;
use serde::Deserialize;

use super::api::{note, owned_session};
use super::error::{ApiForm, AppError};
use super::login::{FORM_TOKEN_FIELD, Flash, PageFaculty, origin_allows};
use super::{AppState, blocking};
use crate::attendance::SessionView;
use crate::clock::Now;
use crate::timetable::TimetableEntry;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "*{box-sizing:border-box}\
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:.5rem 1rem;line-height:1.4}\
h1{font-size:1.5rem;margin:.5rem 0}h2{font-size:1.2rem}\
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ccc;padding:.3rem;text-align:left;vertical-align:top}\
.flash{padding:.5rem;border-radius:.3rem}.ok{background:#e3f6e3}.err{background:#fbe3e3}\
.warn{color:#a00}form.inline{display:inline}label{display:block;margin:.3rem 0}\
header{display:flex;flex-wrap:wrap;gap:.5rem;justify-content:space-between;align-items:center}\
button{margin:.1rem;min-height:2.75rem;min-width:2.75rem;padding:.3rem .8rem;font-size:1rem}\
input,select{font-size:1rem;min-height:2.5rem;max-width:100%}\
.marks{display:flex;flex-wrap:wrap;gap:.25rem;align-items:center}.marks input[name=remarks]{flex:1 1 8rem;min-width:0}\
@media (max-width:40rem){body{padding:.25rem .5rem}\
table.roster thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}\
table.roster,table.roster tbody,table.roster tr,table.roster td{display:block;width:100%}\
table.roster tr{border:1px solid #ccc;border-radius:.4rem;margin:.5rem 0;padding:.3rem}\
table.roster td{border:0;padding:.1rem .2rem}table.roster td[data-label]::before{content:attr(data-label) \": \";font-weight:600}\
.marks button{flex:1 1 4.5rem}}";

const REFRESH: &str = "setInterval(function(){var a=document.activeElement;if(a&&a!==document.body)return;\
var f=document.querySelectorAll('input:not([type=hidden])');for(var i=0;i<f.length;i++)if(f[i].value)return;\
location.replace('/')},15000);";

/// A whole HTML document around `body`; with a nonce, it refreshes itself.
pub(crate) fn page_shell(title: &str, body: &str, nonce: Option<&str>) -> String {
    let script = nonce.map(|n| format!("<script nonce=\"{}\">{REFRESH}</script>", escape(n))).unwrap_or_default();
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · NimbusU Edge</title><style>{STYLE}</style>{script}</head><body>{body}</body></html>",
        escape(title)
    )
}

/// An HTML response with the page's security headers.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    html_with_nonce(status, body, None)
}

fn html_with_nonce(status: StatusCode, body: String, nonce: Option<&str>) -> Response {
    let script_src = nonce.map_or_else(|| "'none'".to_owned(), |n| format!("'nonce-{n}'"));
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src {script_src}; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let mut res = (status, Html(body)).into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: under it Chromium sends `Origin: null` even for our own form posts.
    // `same-origin` still sends nothing to other sites.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    res
}

const STATUSES: [AttendanceStatus; 4] =
    [AttendanceStatus::Present, AttendanceStatus::Late, AttendanceStatus::Absent, AttendanceStatus::Excused];

fn parse_status(s: &str) -> Option<AttendanceStatus> {
    STATUSES.into_iter().find(|st| st.as_str() == s)
}

fn label(s: AttendanceStatus) -> &'static str {
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
    last_ack: Option<DateTime<Utc>>,
}

/// Formats UTC instants in campus local time, using the clock's current offset.
struct Local(TimeDelta);

impl Local {
    fn of(now: &Now) -> Self {
        Local(now.local - now.utc.naive_utc())
    }

    fn hm(&self, t: DateTime<Utc>) -> String {
        (t.naive_utc() + self.0).format("%H:%M").to_string()
    }

    fn full(&self, t: DateTime<Utc>) -> String {
        (t.naive_utc() + self.0).format("%a %d %b %Y %H:%M").to_string()
    }
}

fn render(who: &PageFaculty, d: &PageData, flash: Option<Flash>) -> String {
    let me = &who.0;
    let local = Local::of(&d.now);
    // Goes into every form; a post without it is refused.
    let token = format!("<input type=\"hidden\" name=\"{FORM_TOKEN_FIELD}\" value=\"{}\">", escape(&me.form_token));
    let mut b = String::new();
    let _ = write!(
        b,
        "<header><h1>Attendance · room {}</h1><div>Signed in as {} ({}) \
         <form class=\"inline\" method=\"post\" action=\"/logout\">{token}<button type=\"submit\">Sign out</button></form>\
         </div></header>",
        escape(&d.room_id),
        escape(&me.name),
        escape(&me.user_id)
    );
    let _ =
        write!(b, "<p>Node time: <strong>{}</strong>", escape(&d.now.local.format("%a %d %b %Y %H:%M").to_string()));
    if !d.now.synced {
        b.push_str(" <span class=\"warn\">(clock not synchronised: times may be wrong)</span>");
    }
    b.push_str("</p>");
    if let Some(f) = flash {
        let _ =
            write!(b, "<p class=\"flash {}\" role=\"status\">{}</p>", if f.ok { "ok" } else { "err" }, escape(&f.text));
    }

    // The current slot.
    b.push_str("<section><h2>Current slot</h2>");
    match &d.entry {
        Some(e) => {
            let _ = write!(
                b,
                "<p><strong>{}</strong> {} · {}–{} · faculty {}</p>",
                escape(&e.course_id),
                escape(&e.course_name),
                e.start_time.format("%H:%M"),
                e.end_time.format("%H:%M"),
                escape(&e.faculty_id)
            );
            if d.open.is_none() {
                if d.entry_held {
                    b.push_str("<p>This class's session was already held today.</p>");
                } else if e.faculty_id == me.user_id {
                    let _ = write!(
                        b,
                        "<form method=\"post\" action=\"/page/open\">{token}<button type=\"submit\">Open session</button></form>"
                    );
                } else {
                    b.push_str("<p>Only the class's faculty can open its session.</p>");
                }
            }
        }
        None => b.push_str("<p>No class is scheduled in this room now.</p>"),
    }
    b.push_str("</section>");

    // The open session.
    if let Some(s) = &d.open {
        let mine = s.faculty_id == me.user_id;
        let _ = write!(
            b,
            "<section><h2>Open session: {} {}</h2><p>{} {}–{}, opened {} by faculty {}.</p>",
            escape(&s.course_id),
            escape(&s.course_name),
            s.class_date,
            local.hm(s.starts_at),
            local.hm(s.ends_at),
            local.hm(s.opened_at),
            escape(&s.faculty_id)
        );
        let count = |st: Option<AttendanceStatus>| s.students.iter().filter(|x| x.status == st).count();
        let _ = write!(
            b,
            "<p>Present {} · Late {} · Absent {} · Excused {} · Not yet marked {}</p>",
            count(Some(AttendanceStatus::Present)),
            count(Some(AttendanceStatus::Late)),
            count(Some(AttendanceStatus::Absent)),
            count(Some(AttendanceStatus::Excused)),
            count(None)
        );
        if mine {
            let _ = write!(
                b,
                "<form method=\"post\" action=\"/page/close\">{token}<input type=\"hidden\" name=\"session_id\" value=\"{}\">\
                 <button type=\"submit\">Close session</button></form>",
                escape(&s.id)
            );
        }
        b.push_str(
            "<table class=\"roster\"><thead><tr><th>Student</th><th>ID</th><th>Status</th><th>Source</th><th>Remarks</th>",
        );
        if mine {
            b.push_str("<th>Mark</th>");
        }
        b.push_str("</tr></thead><tbody>");
        for st in &s.students {
            let _ = write!(
                b,
                "<tr><td><strong>{}</strong></td><td data-label=\"ID\">{}</td><td data-label=\"Status\">{}</td>\
                 <td data-label=\"Source\">{}</td><td data-label=\"Remarks\">{}</td>",
                escape(&st.name),
                escape(&st.student_id),
                st.status.map_or("—", label),
                escape(st.source.as_deref().unwrap_or("")),
                escape(st.remarks.as_deref().unwrap_or(""))
            );
            if mine {
                let _ = write!(
                    b,
                    "<td><form method=\"post\" action=\"/page/mark\" class=\"marks\">{token}\
                     <input type=\"hidden\" name=\"session_id\" value=\"{}\">\
                     <input type=\"hidden\" name=\"student_id\" value=\"{}\">\
                     <input name=\"remarks\" placeholder=\"remarks\" maxlength=\"{}\" aria-label=\"remarks for {}\">",
                    escape(&s.id),
                    escape(&st.student_id),
                    super::api::MAX_NOTE_LEN,
                    escape(&st.name)
                );
                for status in STATUSES {
                    let _ = write!(
                        b,
                        "<button type=\"submit\" name=\"status\" value=\"{}\">{}</button>",
                        status.as_str(),
                        label(status)
                    );
                }
                b.push_str("</form></td>");
            }
            b.push_str("</tr>");
        }
        b.push_str("</tbody></table></section>");
    }

    // The last closed session of this faculty, with corrections.
    if let Some(s) = &d.last_closed {
        let _ = write!(
            b,
            "<section><h2>Last closed session: {} {}</h2><p>{} {}–{}",
            escape(&s.course_id),
            escape(&s.course_name),
            s.class_date,
            local.hm(s.starts_at),
            local.hm(s.ends_at)
        );
        if let Some(closed) = s.closed_at {
            let _ = write!(b, ", closed {}", escape(&local.full(closed)));
        }
        b.push_str(
            ".</p><table class=\"roster\"><thead><tr><th>Student</th><th>ID</th><th>Status</th><th>Remarks</th></tr></thead>\
             <tbody>",
        );
        for st in &s.students {
            let _ = write!(
                b,
                "<tr><td><strong>{}</strong></td><td data-label=\"ID\">{}</td><td data-label=\"Status\">{}</td>\
                 <td data-label=\"Remarks\">{}</td></tr>",
                escape(&st.name),
                escape(&st.student_id),
                st.status.map_or("—", label),
                escape(st.remarks.as_deref().unwrap_or(""))
            );
        }
        b.push_str("</tbody></table>");
        match d.corrections_until {
            Some(until) if until > d.now.utc => {
                let _ = write!(
                    b,
                    "<h3>Correct a mark</h3><p>Corrections are accepted until {}.</p>\
                     <form method=\"post\" action=\"/page/correct\">{token}\
                     <input type=\"hidden\" name=\"session_id\" value=\"{}\">\
                     <label>Student <select name=\"student_id\" required>",
                    escape(&local.full(until)),
                    escape(&s.id)
                );
                for st in &s.students {
                    let _ = write!(
                        b,
                        "<option value=\"{}\">{} ({})</option>",
                        escape(&st.student_id),
                        escape(&st.name),
                        st.status.map_or("—", label)
                    );
                }
                b.push_str("</select></label><label>New status <select name=\"status\" required>");
                for status in STATUSES {
                    let _ = write!(b, "<option value=\"{}\">{}</option>", status.as_str(), label(status));
                }
                let _ = write!(
                    b,
                    "</select></label><label>Reason <input name=\"reason\" maxlength=\"{}\"></label>\
                     <button type=\"submit\">Submit correction</button></form>",
                    super::api::MAX_NOTE_LEN
                );
            }
            _ => b.push_str("<p>The correction window for this session has closed.</p>"),
        }
        b.push_str("</section>");
    }
    render_cloud(&mut b, d, &local);
    b
}

/// The link to the cloud: whether it is up and how much is waiting, so faculty can see that
/// attendance taken offline is still on its way.
fn render_cloud(b: &mut String, d: &PageData, local: &Local) {
    let g = &d.gauges;
    let _ = write!(
        b,
        "<section><h2>Cloud link</h2><p>{} · {} event(s) waiting",
        if d.cloud_connected { "connected" } else { "<span class=\"warn\">offline</span>" },
        g.outbox_backlog
    );
    if g.outbox_backlog > 0 {
        let _ = write!(b, ", oldest {:.0} min old", g.outbox_oldest_age_seconds / 60.0);
    }
    match d.last_ack {
        Some(t) => {
            let _ = write!(b, " · last acknowledged {}", escape(&local.full(t)));
        }
        None => b.push_str(" · nothing acknowledged since start"),
    }
    b.push_str("</p></section>");
}

/// `GET /`.
pub(crate) async fn index(State(state): State<AppState>, who: PageFaculty) -> Result<Response, AppError> {
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
        Ok(PageData {
            gauges,
            cloud_connected: sync.connected(),
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
    let body = render(&who, &data, flash);
    Ok(html_with_nonce(StatusCode::OK, page_shell(&title, &body, Some(&nonce)), Some(&nonce)))
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
    fn escaping_covers_every_html_metacharacter() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn statuses_parse_from_their_seed_spelling_only() {
        assert_eq!(parse_status("excused"), Some(AttendanceStatus::Excused));
        assert_eq!(parse_status("Excused"), None);
        assert_eq!(parse_status(""), None);
    }
}
