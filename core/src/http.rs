//! The seed's `AppError` (`{"code", "message", "details"?}`) for axum servers, with the HTTP
//! status kept beside it, and extractors whose rejections are `AppError`s so even a malformed body
//! gets this shape. The classroom node's LAN server and the cloud's admin API both answer with it;
//! each crate maps its own error enum onto it.
//!
//! Codes: the seed's `NOT_FOUND` (404), `UNAUTHORIZED` (401), `FORBIDDEN` (403),
//! `VALIDATION_ERROR` (400), and in the same style `CONFLICT` (409, or a more specific code such as
//! `SESSION_CLOSED`), `NO_CLASS_NOW` (409), `NOT_ON_ROSTER` (422), `PAYLOAD_TOO_LARGE` (413),
//! `UNSUPPORTED_MEDIA_TYPE` (415), `METHOD_NOT_ALLOWED` (405), `TOO_MANY_REQUESTS` (429),
//! `INTERNAL` (500) and `SERVICE_UNAVAILABLE` (503).

use std::error::Error as _;
use std::fmt;

use axum::Json;
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An error answer: status, machine-readable code, human message and optional details.
#[derive(Debug, Clone)]
pub struct AppError {
    status: StatusCode,
    code: &'static str,
    message: String,
    // Boxed: an error travels in every handler's `Result`, and `Value`'s size grows with
    // serde_json features other crates enable.
    details: Option<Box<Value>>,
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Value>,
}

impl AppError {
    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AppError { status, code, message: message.into(), details: None, retry_after: None }
    }

    /// Adds details (any JSON).
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 401 `UNAUTHORIZED`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    /// 403 `FORBIDDEN`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// 400 `VALIDATION_ERROR` about one field.
    pub fn invalid_field(field: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", format!("{field}: {problem}"))
            .with_details(json!({ "field": field, "problem": problem }))
    }

    /// 413 `PAYLOAD_TOO_LARGE`; `limit_bytes` when the server knows its limit.
    pub fn payload_too_large(limit_bytes: Option<u64>) -> Self {
        let e = Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "Request body is too large");
        match limit_bytes {
            Some(limit) => e.with_details(json!({ "limit_bytes": limit })),
            None => e,
        }
    }

    /// 409 `CONFLICT` (or a more specific code).
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 405 `METHOD_NOT_ALLOWED`.
    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "Method not allowed for this resource")
    }

    /// 429 `TOO_MANY_REQUESTS` with a `Retry-After`.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS", "Too many requests; try again later")
            .with_details(json!({ "retry_after_seconds": retry_after_secs }));
        e.retry_after = Some(retry_after_secs);
        e
    }

    /// 500 `INTERNAL`; the detail goes to the log, never to the client.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error while serving a request");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "Internal error")
    }

    /// 503 `SERVICE_UNAVAILABLE`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = Body { code: self.code, message: &self.message, details: self.details.as_deref() };
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// Splits a deserializer's message into the field it names (if any) and the problem.
fn field_and_problem(text: &str) -> (Option<String>, String) {
    // serde_path_to_error prefixes the path: "status: unknown variant `x`, expected ...".
    if let Some((path, rest)) = text.split_once(": ") {
        if !path.is_empty() && !path.contains(char::is_whitespace) {
            return (Some(path.to_owned()), rest.to_owned());
        }
    }
    // Missing and unknown fields are reported at the parent: "missing field `status` at ...".
    for marker in ["missing field `", "unknown field `"] {
        if let Some(start) = text.find(marker) {
            let name = &text[start + marker.len()..];
            if let Some(end) = name.find('`') {
                return (Some(name[..end].to_owned()), text.to_owned());
            }
        }
    }
    (None, text.to_owned())
}

fn body_error(status: StatusCode, what: &str, text: Option<String>) -> AppError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return AppError::payload_too_large(None);
    }
    if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return AppError::new(
            status,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("Expected a request with Content-Type: {what}"),
        );
    }
    let text = text.unwrap_or_else(|| "unreadable request body".into());
    let (field, problem) = field_and_problem(&text);
    let message = match &field {
        Some(f) => format!("Invalid request body: field `{f}`"),
        None => "Invalid request body".to_owned(),
    };
    let mut details = json!({ "problem": problem });
    if let Some(f) = field {
        details["field"] = Value::String(f);
    }
    AppError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message).with_details(details)
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        let text = r.source().map(|s| s.to_string());
        body_error(r.status(), "application/json", text)
    }
}

impl From<FormRejection> for AppError {
    fn from(r: FormRejection) -> Self {
        let text = r.source().map(|s| s.to_string());
        body_error(r.status(), "application/x-www-form-urlencoded", text)
    }
}

impl From<PathRejection> for AppError {
    fn from(r: PathRejection) -> Self {
        AppError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Invalid path parameter")
            .with_details(json!({ "problem": r.body_text() }))
    }
}

/// `axum::Json` whose rejection is an [`AppError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

#[axum::async_trait]
impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        Ok(ApiJson(Json::<T>::from_request(req, state).await?.0))
    }
}

/// `axum::Form` whose rejection is an [`AppError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiForm<T>(pub T);

#[axum::async_trait]
impl<T, S> FromRequest<S> for ApiForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        Ok(ApiForm(axum::Form::<T>::from_request(req, state).await?.0))
    }
}

/// `axum::extract::Path` whose rejection is an [`AppError`].
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

#[axum::async_trait]
impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        Ok(ApiPath(axum::extract::Path::<T>::from_request_parts(parts, state).await?.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deserializer_message_names_its_field() {
        assert_eq!(
            field_and_problem("status: unknown variant `x`, expected `present`"),
            (Some("status".into()), "unknown variant `x`, expected `present`".into())
        );
        let (field, _) = field_and_problem("missing field `student_id` at line 1 column 2");
        assert_eq!(field.as_deref(), Some("student_id"));
        assert_eq!(field_and_problem("expected value at line 1 column 1").0, None);
    }
}
