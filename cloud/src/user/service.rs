//! The user service's shared parts: [`UserService`] (its database, keys and revocation list),
//! the views and inputs of its commands, and the helpers they share. The commands are in
//! [`super::accounts`] (users, roles, profiles) and [`super::sessions`] (login, tokens,
//! passwords); each runs in one transaction that also enqueues its seed event, stamped by the
//! [`Actor`] with the request's correlation id.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use nimbus_core::event::TopicEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::keys::KeyRing;
use super::revocation::Revocations;
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};

/// The `service_name` of the events this service publishes.
pub const SERVICE: &str = "user-service";
/// How long a password reset token is valid.
pub const RESET_TOKEN_SECS: i64 = 3600;
/// The roles a user may have.
pub const ROLES: [&str; 4] = ["admin", "faculty", "student", "device"];

/// Account locking settings.
#[derive(Debug, Clone)]
pub struct UserSettings {
    /// Failed logins in a row that lock the account.
    pub max_failed_logins: u32,
    /// How long the lock lasts.
    pub lockout: Duration,
}

impl Default for UserSettings {
    fn default() -> Self {
        UserSettings { max_failed_logins: 5, lockout: Duration::from_secs(15 * 60) }
    }
}

/// The user service: its database, the signing keys and the revocation list.
pub struct UserService {
    /// `user_service_db`.
    pub pool: Pool,
    /// Token signing and verification.
    pub keys: KeyRing,
    /// The revocation list.
    pub revocations: Revocations,
    /// Locking settings.
    pub settings: UserSettings,
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: String,
    pub register_no: i64,
    pub email: String,
    pub role: String,
    pub status: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
    pub department: String,
    pub bio: String,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The tokens of a login or refresh.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token is valid.
    pub expires_in: i64,
    /// Seconds the refresh token is valid.
    pub refresh_expires_in: i64,
    pub session_id: String,
    pub user_id: String,
    pub roles: Vec<String>,
}

/// Why a refresh was refused.
#[derive(Debug)]
pub enum RefreshFailure {
    /// The token is not accepted (expired, revoked, reused, unknown session, …): the reason for
    /// the 401's details.
    Rejected(String),
    /// Something else failed.
    Internal(Error),
}

impl<E: Into<Error>> From<E> for RefreshFailure {
    fn from(e: E) -> Self {
        RefreshFailure::Internal(e.into())
    }
}

/// Why a login was refused.
#[derive(Debug)]
pub enum LoginFailure {
    /// Unknown email or wrong password (never says which).
    InvalidCredentials,
    /// Too many failures; locked until then.
    Locked(DateTime<Utc>),
    /// The account is suspended or inactive (only said to someone who knew the password).
    Disabled(String),
    /// Something else failed.
    Internal(Error),
}

impl From<Error> for LoginFailure {
    fn from(e: Error) -> Self {
        LoginFailure::Internal(e)
    }
}

impl From<tokio_postgres::Error> for LoginFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        LoginFailure::Internal(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for LoginFailure {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        LoginFailure::Internal(e.into())
    }
}

/// A new user (admin registration).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    pub password: String,
    pub role: String,
    #[serde(default)]
    pub register_no: Option<i64>,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub department: String,
}

/// Changes to a user (admin) or to one's own profile (only the profile fields).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub bio: Option<String>,
}

/// Filters of the user list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserFilter {
    /// Only this role.
    pub role: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Text in the email or name.
    pub q: Option<String>,
    /// Rows wanted (1..=200).
    pub limit: Option<i64>,
    /// Rows skipped.
    pub offset: Option<i64>,
    /// `email`, `register_no`, `created_at`, `last_name` (prefix `-` for descending).
    pub sort: Option<String>,
}

/// A role with its permissions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoleView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
}

pub(super) const USER_COLUMNS: &str =
    "u.id::text, u.register_no, u.email, r.name, u.status, coalesce(p.first_name, ''),
    coalesce(p.last_name, ''), coalesce(p.phone, ''), coalesce(p.department, ''), coalesce(p.bio, ''),
    u.locked_until, u.last_login_at, u.created_at, u.updated_at";
pub(super) const USER_FROM: &str =
    "users u JOIN roles r ON r.id = u.role_id LEFT JOIN user_profiles p ON p.user_id = u.id";

pub(super) fn user_view(r: &tokio_postgres::Row) -> UserView {
    UserView {
        id: r.get(0),
        register_no: r.get(1),
        email: r.get(2),
        role: r.get(3),
        status: r.get(4),
        first_name: r.get(5),
        last_name: r.get(6),
        phone: r.get(7),
        department: r.get(8),
        bio: r.get(9),
        locked_until: r.get(10),
        last_login_at: r.get(11),
        created_at: r.get(12),
        updated_at: r.get(13),
    }
}

/// The normalised form of an email address (trimmed, lower-case).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Pushes an error when `email` is not a plausible address: one `@`, a dotted domain, no spaces,
/// quotes, angle brackets or control characters.
pub(super) fn check_email(errors: &mut Vec<FieldError>, field: &str, email: &str) {
    let ok = email.len() <= 254
        && email.split('@').count() == 2
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control() || "<>\"'`;(),\\[]".contains(c));
    if !ok {
        errors.push(FieldError::new(field, "is not a valid email address"));
    }
}

/// Pushes an error when optional free text is too long or holds control characters. Other text
/// (including markup) is stored verbatim: it only ever travels as JSON strings and SQL parameters.
pub(super) fn check_text(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
    } else if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        errors.push(FieldError::new(field, "must not contain control characters"));
    }
}

pub(super) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub(super) fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::Config(format!("no randomness for a token: {e}")))?;
    Ok(hex::encode(bytes))
}

pub(super) fn parse_id(what: &'static str, id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| Error::NotFound { what, id: id.to_owned() })
}

pub(super) async fn publish<E: TopicEvent>(tx: &Transaction<'_>, actor: &Actor, event: E) -> Result<()> {
    crate::outbox::publish(tx, SERVICE, actor, event).await
}

pub(super) async fn log_activity(
    tx: &Transaction<'_>,
    user: Option<Uuid>,
    action: &str,
    actor: &Actor,
    details: Value,
) -> Result<()> {
    tx.execute(
        "INSERT INTO user_activity_logs (user_id, action, ip_address, correlation_id, details)
         VALUES ($1, $2, $3, $4, $5)",
        &[&user, &action, &actor.client_ip, &actor.correlation_id, &details],
    )
    .await?;
    Ok(())
}
