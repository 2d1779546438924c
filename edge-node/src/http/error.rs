//! The LAN server's errors: the seed's [`AppError`] (from `nimbus_core::http`) and how this
//! crate's [`Error`] maps onto it.
//!
//! Codes: the seed's `NOT_FOUND` (404), `UNAUTHORIZED` (401), `FORBIDDEN` (403),
//! `VALIDATION_ERROR` (400), and in the same style `CONFLICT` (409, or a more specific code such as
//! `SESSION_CLOSED`), `NO_CLASS_NOW` (409), `NOT_ON_ROSTER` (422), `PAYLOAD_TOO_LARGE` (413),
//! `UNSUPPORTED_MEDIA_TYPE` (415), `METHOD_NOT_ALLOWED` (405), `TOO_MANY_REQUESTS` (429),
//! `INTERNAL` (500) and `SERVICE_UNAVAILABLE` (503).

use axum::http::StatusCode;
pub use nimbus_core::http::{ApiForm, ApiJson, ApiPath, AppError};
use serde_json::json;

use crate::Error;

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        match e {
            Error::NoClassNow => AppError::new(S::CONFLICT, "NO_CLASS_NOW", "No class is scheduled in this room now"),
            Error::NotTheFaculty(who) => {
                AppError::forbidden("Only the class's faculty may do this").with_details(json!({ "user_id": who }))
            }
            Error::SessionAlreadyOpen(id) => {
                AppError::new(S::CONFLICT, "SESSION_ALREADY_OPEN", "A session is already open in this room")
                    .with_details(json!({ "session_id": id }))
            }
            Error::SessionAlreadyHeld { entry_id, class_date } => {
                AppError::new(S::CONFLICT, "SESSION_ALREADY_HELD", "This class already had its session today")
                    .with_details(json!({ "entry_id": entry_id, "class_date": class_date }))
            }
            Error::SessionNotFound(id) => {
                AppError::not_found("Session not found").with_details(json!({ "session_id": id }))
            }
            Error::SessionClosed(id) => {
                AppError::new(S::CONFLICT, "SESSION_CLOSED", "The session is closed; submit a correction instead")
                    .with_details(json!({ "session_id": id }))
            }
            Error::SessionOpen(id) => {
                AppError::new(S::CONFLICT, "SESSION_OPEN", "The session is still open; mark the student instead")
                    .with_details(json!({ "session_id": id }))
            }
            Error::NotOnRoster(student) => {
                AppError::new(S::UNPROCESSABLE_ENTITY, "NOT_ON_ROSTER", "The student is not on this course's roster")
                    .with_details(json!({ "student_id": student }))
            }
            Error::CorrectionWindowClosed(id) => AppError::new(
                S::CONFLICT,
                "CORRECTION_WINDOW_CLOSED",
                "The correction window for this session has closed",
            )
            .with_details(json!({ "session_id": id })),
            Error::NoChange { student_id, status } => {
                AppError::new(S::CONFLICT, "NO_CHANGE", format!("The student is already {}", status.as_str()))
                    .with_details(json!({ "student_id": student_id, "status": status }))
            }
            Error::Unauthenticated(_) => AppError::unauthorized("Invalid or expired token"),
            other @ (Error::Sqlite(_)
            | Error::Download(_)
            | Error::Io(_)
            | Error::Json(_)
            | Error::Config(_)
            | Error::SchemaTooNew { .. }
            | Error::Snapshot(_)) => AppError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_leak_their_detail() {
        let e = AppError::from(Error::Config("secret path /etc/x".into()));
        assert_eq!(
            (e.status(), e.code(), e.message()),
            (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "Internal error")
        );
    }
}
