//! Push through Firebase Cloud Messaging's HTTP v1 API:
//! `POST {base}/v1/projects/{project}/messages:send` with an OAuth2 bearer token and
//! `{"message": {"token", "notification": {"title", "body"}, "data"}}`. 200 is accepted; 429 and
//! 5xx are temporary (after `Retry-After`); `UNREGISTERED` (404) and an invalid token (400
//! `INVALID_ARGUMENT` about the token) drop the device; anything else is permanent.
//!
//! The access token is configured as it is (`PUSH_ACCESS_TOKEN`); minting it from a service
//! account is the deployment's job (e.g. a sidecar), not this worker's.

use std::time::Duration;

use nimbus_core::event::notification::Channel as ChannelKind;
use reqwest::StatusCode;
use serde_json::json;

use super::{Channel, Outgoing, SendError, http};
use crate::config::Secret;

/// How to reach FCM.
#[derive(Clone)]
pub struct PushSettings {
    /// `https://fcm.googleapis.com`, or a compatible endpoint.
    pub base_url: String,
    /// The Firebase project id.
    pub project: String,
    /// The OAuth2 access token.
    pub access_token: Secret,
    /// Longest wait for an answer.
    pub timeout: Duration,
}

impl std::fmt::Debug for PushSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSettings")
            .field("base_url", &self.base_url)
            .field("project", &self.project)
            .field("access_token", &"<redacted>")
            .finish()
    }
}

impl PushSettings {
    /// The settings of `config`, when it names FCM.
    pub fn from_config(config: &crate::config::NotificationConfig) -> Option<Self> {
        Some(PushSettings {
            base_url: config.push_api_url.clone()?,
            project: config.push_project.clone()?,
            access_token: config.push_access_token.clone()?,
            timeout: Duration::from_secs(30),
        })
    }
}

/// The push channel.
#[derive(Clone)]
pub struct Push {
    http: reqwest::Client,
    settings: PushSettings,
}

impl Push {
    /// A channel for `settings`.
    pub fn new(settings: PushSettings) -> crate::error::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| crate::error::Error::Config(format!("push client: {e}")))?;
        Ok(Push { http, settings })
    }
}

impl Channel for Push {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Push
    }

    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let s = &self.settings;
        let url = format!("{}/v1/projects/{}/messages:send", s.base_url.trim_end_matches('/'), s.project);
        let body = json!({
            "message": {
                "token": message.address,
                "notification": { "title": message.subject, "body": message.body },
                "data": { "queue_id": message.queue_id.to_string() },
            }
        });
        let answer = self
            .http
            .post(&url)
            .bearer_auth(s.access_token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| http::unreachable("push", &e))?;
        let (status, headers) = (answer.status(), answer.headers().clone());
        let text = answer.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        let error: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let fcm_code = error["error"]["details"]
            .as_array()
            .and_then(|d| d.iter().find_map(|x| x["errorCode"].as_str()))
            .or_else(|| error["error"]["status"].as_str())
            .unwrap_or("");
        let about_token = error["error"]["message"].as_str().is_some_and(|m| m.to_ascii_lowercase().contains("token"));
        if fcm_code == "UNREGISTERED"
            || status == StatusCode::NOT_FOUND
            || (status == StatusCode::BAD_REQUEST && fcm_code == "INVALID_ARGUMENT" && about_token)
        {
            return Err(SendError::InvalidAddress(format!(
                "push: {fcm_code} {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        Err(http::classify("push", status, &headers, &text))
    }
}
