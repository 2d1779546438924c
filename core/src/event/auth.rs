//! `auth.events`: authentication (seed section 2). Keyed by `user_id`, or by `email` for a failed
//! login, where no user may exist.

use serde::{Deserialize, Serialize};

use super::{EventError, Timestamp, topic_events};
use crate::topics::Topic;

topic_events! {
    /// An event on `auth.events`.
    pub enum AuthEvent on Topic::AuthEvents {
        /// Credentials accepted; a session began.
        LoginSuccess(LoginSuccessPayload) = "LOGIN_SUCCESS",
        /// Credentials rejected.
        LoginFailed(LoginFailedPayload) = "LOGIN_FAILED",
        /// A session was ended by the user or by expiry.
        Logout(LogoutPayload) = "LOGOUT",
        /// A reset token was issued.
        PasswordResetRequested(PasswordResetRequestedPayload) = "PASSWORD_RESET_REQUESTED",
        /// A reset token was used.
        PasswordResetCompleted(PasswordChangedPayload) = "PASSWORD_RESET_COMPLETED",
        /// The user changed their password.
        PasswordChanged(PasswordChangedPayload) = "PASSWORD_CHANGED",
        /// A session was created.
        SessionCreated(SessionPayload) = "SESSION_CREATED",
        /// A session timed out.
        SessionExpired(SessionPayload) = "SESSION_EXPIRED",
        /// An access token was renewed with a refresh token.
        TokenRefreshed(TokenRefreshedPayload) = "TOKEN_REFRESHED",
        /// Too many failures; the account is locked.
        AccountLocked(AccountLockedPayload) = "ACCOUNT_LOCKED",
    }
}

impl AuthEvent {
    fn key(&self) -> Option<&str> {
        Some(match self {
            AuthEvent::LoginSuccess(p) => &p.user_id,
            AuthEvent::LoginFailed(p) => &p.email,
            AuthEvent::Logout(p) => &p.user_id,
            AuthEvent::PasswordResetRequested(p) => &p.user_id,
            AuthEvent::PasswordResetCompleted(p) | AuthEvent::PasswordChanged(p) => &p.user_id,
            AuthEvent::SessionCreated(p) | AuthEvent::SessionExpired(p) => &p.user_id,
            AuthEvent::TokenRefreshed(p) => &p.user_id,
            AuthEvent::AccountLocked(p) => &p.user_id,
        })
    }

    fn check(&self) -> Result<(), EventError> {
        Ok(())
    }
}

/// Seed `LoginSuccessPayload`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LoginSuccessPayload {
    pub user_id: String,
    pub email: String,
    pub role_name: String,
    pub session_id: String,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub ip_address: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub user_agent: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub device_type: Option<String>,
    pub login_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Seed `LoginFailedPayload`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LoginFailedPayload {
    pub email: String,
    pub failure_reason: String,
    pub attempt_count: u32,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub ip_address: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub user_agent: Option<String>,
    pub is_account_locked: bool,
    pub attempted_at: Timestamp,
}

/// Ours: a session ended.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LogoutPayload {
    pub user_id: String,
    pub session_id: String,
    /// `manual` or `expired`.
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub reason: Option<String>,
    pub logged_out_at: Timestamp,
}

/// Ours: a reset token was issued. Carries the token's id, never the token.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PasswordResetRequestedPayload {
    pub user_id: String,
    pub email: String,
    pub reset_token_id: String,
    pub requested_at: Timestamp,
    pub expires_at: Timestamp,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub ip_address: Option<String>,
}

/// Ours: a password was changed or reset.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PasswordChangedPayload {
    pub user_id: String,
    pub email: String,
    pub changed_at: Timestamp,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub ip_address: Option<String>,
}

/// Ours: a session was created or expired.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SessionPayload {
    pub user_id: String,
    pub session_id: String,
    pub occurred_at: Timestamp,
    pub expires_at: Timestamp,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub ip_address: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub device_type: Option<String>,
}

/// Ours: an access token was renewed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TokenRefreshedPayload {
    pub user_id: String,
    pub session_id: String,
    pub refreshed_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Ours: an account was locked after failed logins.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccountLockedPayload {
    pub user_id: String,
    pub email: String,
    pub failed_attempts: u32,
    pub locked_at: Timestamp,
    #[serde(default)]
    pub locked_until: Option<Timestamp>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub ip_address: Option<String>,
}
