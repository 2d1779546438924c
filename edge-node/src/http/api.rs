//! The JSON API for tooling. Every route but `/api/status`, `/api/login` and `/api/taps` needs a
//! faculty token (`Authorization: Bearer <token>`); only the session's own faculty may close it,
//! mark in it or correct it (403 otherwise). Errors are [`AppError`]s.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use nimbus_core::event::attendance::{AttendanceMarkedPayload, AttendanceStatus, AttendanceUpdatedPayload};
use nimbus_core::ids::CardUid;
use nimbus_core::reader::{CardRead, Feedback, ReaderKind};
use serde::{Deserialize, Serialize};

use super::error::{ApiJson, ApiPath, AppError};
use super::login::ApiFaculty;
use super::{AppState, blocking};
use crate::attendance::{Attendance, SessionView};
use crate::timetable::TimetableEntry;

/// How long `/api/taps` waits for the node's verdict.
pub const TAP_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest remarks or correction reason accepted.
pub const MAX_NOTE_LEN: usize = 500;

/// The node's clocks as `/api/status` shows them.
#[derive(Debug, Serialize)]
pub struct ClockView {
    /// Wall clock, UTC.
    pub utc: DateTime<Utc>,
    /// Campus local time.
    pub local: NaiveDateTime,
    /// Whether the wall clock is believed correct.
    pub synced: bool,
}

/// `GET /api/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// This node's room.
    pub room_id: String,
    /// The class running (or about to start) now.
    pub current_entry: Option<TimetableEntry>,
    /// The open session, summarised: this route needs no login, so it carries no names.
    pub open_session: Option<SessionSummary>,
    /// Events waiting for the cloud.
    pub outbox_backlog: u64,
    /// The node's clocks.
    pub clock: ClockView,
    /// The link to the cloud.
    pub cloud: CloudView,
    /// The version of each cached downlink snapshot (`timetable`, `roster`, `keys`, `manifest`):
    /// what the cloud last sent that the node holds.
    pub snapshots: std::collections::BTreeMap<String, u64>,
}

/// The link to the cloud, for the status page.
#[derive(Debug, Serialize)]
pub struct CloudView {
    /// MQTT session up.
    pub connected: bool,
    /// Highest sequence the cloud acknowledged.
    pub acked_upto: u64,
    /// When the last ack arrived (none since start: null).
    pub last_ack_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why the node cannot connect, while it cannot (a refused certificate or login, …).
    pub last_error: Option<String>,
}

/// An open session without its roster (counts only).
#[derive(Debug, Serialize)]
pub struct SessionSummary {
    /// Session id.
    pub id: String,
    /// Course.
    pub course_id: String,
    /// Course name.
    pub course_name: String,
    /// When it opened.
    pub opened_at: chrono::DateTime<chrono::Utc>,
    /// When it closes by itself.
    pub ends_at: chrono::DateTime<chrono::Utc>,
    /// Students marked so far.
    pub marked: usize,
    /// Students on the roster.
    pub roster: usize,
}

impl From<SessionView> for SessionSummary {
    fn from(v: SessionView) -> Self {
        SessionSummary {
            marked: v.students.iter().filter(|s| s.status.is_some()).count(),
            roster: v.students.len(),
            id: v.id,
            course_id: v.course_id,
            course_name: v.course_name,
            opened_at: v.opened_at,
            ends_at: v.ends_at,
        }
    }
}

pub(crate) async fn status(State(state): State<AppState>) -> Result<Json<Status>, AppError> {
    let att = state.attendance.clone();
    let sync = state.metrics.sync.clone();
    blocking(move || {
        let now = att.now();
        let current_entry = att.current_entry()?;
        let open_session = att.open()?.map(SessionSummary::from);
        let outbox_backlog = att.store().with(|c| crate::outbox::backlog(c))?;
        let snapshots = att.store().with(|c| {
            let mut versions = std::collections::BTreeMap::new();
            for kind in nimbus_sync::topics::SnapshotKind::ALL {
                if let Some(v) = crate::timetable::snapshot_version(c, kind.as_str())? {
                    versions.insert(kind.as_str().to_owned(), v);
                }
            }
            Ok(versions)
        })?;
        Ok(Json(Status {
            room_id: att.rules().room_id.clone(),
            current_entry,
            open_session,
            outbox_backlog,
            clock: ClockView { utc: now.utc, local: now.local, synced: now.synced },
            cloud: CloudView {
                connected: sync.connected(),
                acked_upto: sync.acked_upto(),
                last_ack_at: Some(sync.last_ack_ms())
                    .filter(|ms| *ms > 0)
                    .and_then(chrono::DateTime::from_timestamp_millis),
                last_error: sync.last_error(),
            },
            snapshots,
        }))
    })
    .await
}

/// `POST /api/sessions`: opens the current slot's session as the caller → 201.
pub(crate) async fn open_session(
    State(state): State<AppState>,
    ApiFaculty(who): ApiFaculty,
) -> Result<Response, AppError> {
    let att = state.attendance.clone();
    let view = blocking(move || Ok(att.open_session(&who.user_id)?)).await?;
    let mut res = (StatusCode::CREATED, Json(&view)).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/api/sessions/{}", view.id)) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(res)
}

/// `GET /api/sessions/{id}`.
pub(crate) async fn get_session(
    State(state): State<AppState>,
    ApiFaculty(_): ApiFaculty,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionView>, AppError> {
    let att = state.attendance.clone();
    blocking(move || Ok(Json(att.session_view(&id)?))).await
}

/// The session, if it exists and `user_id` teaches it: 404 / 403 otherwise.
pub(crate) fn owned_session(att: &Attendance, id: &str, user_id: &str) -> Result<SessionView, AppError> {
    let view = att.session_view(id)?;
    if view.faculty_id != user_id {
        return Err(AppError::forbidden("Only the session's faculty may change it")
            .with_details(serde_json::json!({ "session_id": id })));
    }
    Ok(view)
}

/// Checks an optional free-text note.
pub(crate) fn note<'a>(field: &str, text: Option<&'a str>) -> Result<Option<&'a str>, AppError> {
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    if text.is_some_and(|t| t.chars().count() > MAX_NOTE_LEN) {
        return Err(AppError::invalid_field(field, format!("at most {MAX_NOTE_LEN} characters")));
    }
    Ok(text)
}

/// `POST /api/sessions/{id}/close` → the `ATTENDANCE_MARKED` payload.
pub(crate) async fn close_session(
    State(state): State<AppState>,
    ApiFaculty(who): ApiFaculty,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AttendanceMarkedPayload>, AppError> {
    let att = state.attendance.clone();
    let payload = blocking(move || {
        owned_session(&att, &id, &who.user_id)?;
        Ok(att.close_session(&id, "manual")?)
    })
    .await?;
    state.metrics.sessions_closed(1);
    Ok(Json(payload))
}

/// `PUT /api/sessions/{id}/marks/{student_id}` body.
#[derive(Debug, Deserialize)]
pub(crate) struct MarkBody {
    status: AttendanceStatus,
    #[serde(default)]
    remarks: Option<String>,
}

/// `PUT /api/sessions/{id}/marks/{student_id}` → 204.
pub(crate) async fn mark(
    State(state): State<AppState>,
    ApiFaculty(who): ApiFaculty,
    ApiPath((id, student_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<MarkBody>,
) -> Result<StatusCode, AppError> {
    let att = state.attendance.clone();
    blocking(move || {
        let remarks = note("remarks", body.remarks.as_deref())?;
        owned_session(&att, &id, &who.user_id)?;
        Ok(att.mark(&id, &student_id, body.status, remarks, &who.user_id)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/sessions/{id}/corrections` body.
#[derive(Debug, Deserialize)]
pub(crate) struct CorrectionBody {
    student_id: String,
    status: AttendanceStatus,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/sessions/{id}/corrections` → 201 + the `ATTENDANCE_UPDATED` payload.
pub(crate) async fn correct(
    State(state): State<AppState>,
    ApiFaculty(who): ApiFaculty,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CorrectionBody>,
) -> Result<(StatusCode, Json<AttendanceUpdatedPayload>), AppError> {
    let att = state.attendance.clone();
    let payload = blocking(move || {
        if body.student_id.trim().is_empty() {
            return Err(AppError::invalid_field("student_id", "must not be empty"));
        }
        let reason = note("reason", body.reason.as_deref())?;
        owned_session(&att, &id, &who.user_id)?;
        Ok(att.correct(&id, body.student_id.trim(), body.status, reason, &who.user_id)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(payload)))
}

/// `POST /api/taps` body.
#[derive(Debug, Deserialize)]
pub(crate) struct TapBody {
    card_uid: String,
}

/// `POST /api/taps` answer.
#[derive(Debug, Serialize)]
pub(crate) struct TapAnswer {
    feedback: Feedback,
}

/// `POST /api/taps` (simulate mode only): a tap from the simulated reader, answered with the
/// reader feedback once it is durable.
pub(crate) async fn tap(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TapBody>,
) -> Result<Json<TapAnswer>, AppError> {
    let Some(taps) = state.sim_taps.as_ref() else {
        return Err(AppError::not_found("Resource not found"));
    };
    let uid: CardUid =
        body.card_uid.parse().map_err(|e| AppError::invalid_field("card_uid", format!("not a card UID: {e}")))?;
    let read = CardRead { uid, reader: ReaderKind::Simulated };
    match tokio::time::timeout(TAP_TIMEOUT, crate::reader::submit_tap(taps, read)).await {
        Ok(Ok(feedback)) => Ok(Json(TapAnswer { feedback })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "simulated tap refused");
            Err(AppError::unavailable("The node is not accepting taps"))
        }
        Err(_) => Err(AppError::unavailable("The node did not answer the tap in time")),
    }
}
