//! SMS through a Twilio-style REST API: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`
//! with HTTP basic auth (account SID and auth token) and a form body (`To`, `From`, `Body`).
//! 201 is accepted; 429 and 5xx are temporary; Twilio's error codes for numbers that cannot
//! receive SMS (21211 invalid, 21614 not a mobile number, 21610 unsubscribed) drop the address.

use std::time::Duration;

use nimbus_core::event::notification::Channel as ChannelKind;
use reqwest::StatusCode;

use super::{Channel, Outgoing, SendError, http};
use crate::config::Secret;

/// Error codes that mean the number itself cannot be reached.
const INVALID_NUMBER_CODES: &[i64] = &[21211, 21214, 21610, 21614];

/// How to reach the SMS provider.
#[derive(Clone)]
pub struct SmsSettings {
    /// `https://api.twilio.com`, or a compatible endpoint.
    pub base_url: String,
    /// The account SID (basic-auth user).
    pub account_sid: String,
    /// The auth token (basic-auth password).
    pub auth_token: Secret,
    /// The sending number or messaging service.
    pub from: String,
    /// Longest wait for an answer.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsSettings")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

impl SmsSettings {
    /// The settings of `config`, when it names an SMS API.
    pub fn from_config(config: &crate::config::NotificationConfig) -> Option<Self> {
        Some(SmsSettings {
            base_url: config.sms_api_url.clone()?,
            account_sid: config.sms_account_sid.clone()?,
            auth_token: config.sms_auth_token.clone()?,
            from: config.sms_from.clone()?,
            timeout: Duration::from_secs(30),
        })
    }
}

/// The SMS channel.
#[derive(Clone)]
pub struct Sms {
    http: reqwest::Client,
    settings: SmsSettings,
}

impl Sms {
    /// A channel for `settings`.
    pub fn new(settings: SmsSettings) -> crate::error::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| crate::error::Error::Config(format!("SMS client: {e}")))?;
        Ok(Sms { http, settings })
    }
}

impl Channel for Sms {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let s = &self.settings;
        let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", s.base_url.trim_end_matches('/'), s.account_sid);
        let text = if message.subject.is_empty() {
            message.body.clone()
        } else {
            format!("{}: {}", message.subject, message.body)
        };
        let answer = self
            .http
            .post(&url)
            .basic_auth(&s.account_sid, Some(s.auth_token.expose()))
            .form(&[("To", message.address.as_str()), ("From", s.from.as_str()), ("Body", text.as_str())])
            .send()
            .await
            .map_err(|e| http::unreachable("sms", &e))?;
        let (status, headers) = (answer.status(), answer.headers().clone());
        let body = answer.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND {
            let code = serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["code"].as_i64());
            if code.is_some_and(|c| INVALID_NUMBER_CODES.contains(&c)) {
                return Err(SendError::InvalidAddress(format!(
                    "sms: {} ({})",
                    message.address,
                    body.chars().take(200).collect::<String>()
                )));
            }
        }
        Err(http::classify("sms", status, &headers, &body))
    }
}
