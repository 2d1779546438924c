//! What the SMS and push providers' HTTP answers mean for the queue: the shared part of
//! [`super::sms`] and [`super::push`].

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::SendError;

/// Seconds of a `Retry-After: <seconds>` header (the HTTP-date form is not used by these
/// providers and reads as absent).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A request that never got an answer.
pub fn unreachable(provider: &str, e: &reqwest::Error) -> SendError {
    SendError::Unavailable(format!("{provider}: {}", crate::consumer::error_summary(e)))
}

/// The provider's answer for anything but success and the provider-specific address errors:
/// 429 and 5xx are temporary (after `Retry-After` when given), everything else is permanent.
pub fn classify(provider: &str, status: StatusCode, headers: &HeaderMap, body: &str) -> SendError {
    let reason = format!("{provider}: HTTP {}: {}", status.as_u16(), body.chars().take(300).collect::<String>());
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        SendError::Transient { reason, retry_after: retry_after(headers) }
    } else {
        SendError::Permanent(reason)
    }
}
