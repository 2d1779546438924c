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
#[schema(example = json!({ "email": "a.rao@campus.test", "password": "a-long-password-1", "role": "faculty", "first_name": "Asha", "last_name": "Rao", "department": "Physics" }))]
pub struct NewUser {
    /// Stored lower-case; unique (else 409).
    #[schema(schema_with = email_schema)]
    pub email: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    #[schema(schema_with = role_schema)]
    pub role: String,
    /// Unique (else 409); the next free number when absent.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub register_no: Option<i64>,
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub first_name: String,
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub last_name: String,
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub phone: String,
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub department: String,
}

/// Changes to a user (admin); absent (or null) fields stay. An administrator cannot change their
/// own email here (409; another administrator can).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// Stored lower-case; unique (else 409).
    #[serde(default)]
    #[schema(schema_with = maybe_email_schema)]
    pub email: Option<String>,
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub first_name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub last_name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub phone: Option<String>,
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub department: Option<String>,
    #[serde(default)]
    #[schema(max_length = 2000, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub bio: Option<String>,
}

/// Changes to one's own profile (not the email: an administrator changes that); absent (or
/// null) fields stay.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub first_name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub last_name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub phone: Option<String>,
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub department: Option<String>,
    #[serde(default)]
    #[schema(max_length = 2000, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub bio: Option<String>,
}

impl From<ProfilePatch> for UserPatch {
    fn from(p: ProfilePatch) -> Self {
        UserPatch {
            email: None,
            first_name: p.first_name,
            last_name: p.last_name,
            phone: p.phone,
            department: p.department,
            bio: p.bio,
        }
    }
}

/// Filters of the user list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserFilter {
    /// Only this role.
    #[param(schema_with = role_schema)]
    pub role: Option<String>,
    /// Only this status.
    #[param(schema_with = status_schema)]
    pub status: Option<String>,
    /// Text in the email or name (no NUL characters).
    #[param(pattern = r"^[^\x00]*$")]
    pub q: Option<String>,
}

/// The fields the user list sorts by.
pub const USER_SORT: &[(&str, &str)] = &[
    ("email", "v.email"),
    ("register_no", "v.register_no"),
    ("created_at", "v.created_at"),
    ("last_name", "v.last_name"),
];

impl crate::listing::Sorted for UserFilter {
    const SORT: &'static [(&'static str, &'static str)] = USER_SORT;
}

/// The statuses of an account.
pub const STATUSES: [&str; 3] = ["active", "inactive", "suspended"];

pub(super) fn role_schema() -> utoipa::openapi::Object {
    crate::http::schema::one_of(&ROLES)
}

fn status_schema() -> utoipa::openapi::Object {
    crate::http::schema::one_of(&STATUSES)
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

/// Longest email address accepted, in characters.
pub const MAX_EMAIL: usize = 254;

/// What the API takes as an email address, exactly what [`check_email`] accepts: a local part
/// without `@`, control characters, Unicode `White_Space` (spelt out: `\s` differs between regex
/// dialects), quotes, angle brackets or `` ;(),\[] ``; then `@` and a dotted ASCII domain that
/// neither starts nor ends with a dot.
pub const EMAIL_PATTERN: &str = r#"^[^@<>"'`;(),\\\[\]\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+@[A-Za-z0-9-][A-Za-z0-9.-]*\.[A-Za-z0-9.-]*[A-Za-z0-9-]$"#;

fn email_object(nullable: bool) -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let kind = if nullable { SchemaType::from_iter([Type::String, Type::Null]) } else { SchemaType::new(Type::String) };
    ObjectBuilder::new()
        .schema_type(kind)
        .min_length(Some(5))
        .max_length(Some(MAX_EMAIL))
        .pattern(Some(EMAIL_PATTERN))
        .examples([serde_json::json!("a.rao@campus.test")])
        .build()
}

/// The schema of an email field ([`EMAIL_PATTERN`]).
pub(super) fn email_schema() -> utoipa::openapi::Object {
    email_object(false)
}

/// The schema of an optional email field.
pub(super) fn maybe_email_schema() -> utoipa::openapi::Object {
    email_object(true)
}

/// Pushes an error when `email` is not an address of [`EMAIL_PATTERN`] of at most
/// [`MAX_EMAIL`] characters (checked as given, before it is lower-cased).
pub(super) fn check_email(errors: &mut Vec<FieldError>, field: &str, email: &str) {
    let local_char = |c: char| !(c == '@' || c.is_control() || c.is_whitespace() || "<>\"'`;(),\\[]".contains(c));
    let ok = email.chars().count() <= MAX_EMAIL
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.chars().all(local_char)
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        });
    if !ok {
        errors.push(FieldError::new(field, "is not a valid email address"));
    }
}

/// Pushes an error when optional free text is too long or holds control characters other than
/// tab and newline: the document's `^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$` with `maxLength`. Other
/// text (including markup) is stored verbatim: it only ever travels as JSON strings and SQL
/// parameters.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn email_ok(s: &str) -> bool {
        let mut e = Vec::new();
        check_email(&mut e, "email", s);
        e.is_empty()
    }

    fn text_ok(s: &str) -> bool {
        let mut e = Vec::new();
        check_text(&mut e, "bio", s, 20);
        e.is_empty()
    }

    #[test]
    fn emails_are_exactly_the_documented_pattern() {
        // Cross-checked against EMAIL_PATTERN with Python's `re` on 40 000 generated strings.
        for ok in
            ["a@b.co", "A.Rao+x@Campus-1.test", "é😀@a.b", "a..b@x.y.z", "a@b..c", &format!("{}@b.co", "a".repeat(249))]
        {
            assert!(email_ok(ok), "{ok:?}");
        }
        for bad in [
            "",
            "a@b",
            "@b.co",
            "a@.b.co",
            "a@b.co.",
            "a@@b.co",
            "a b@c.de",
            " a@b.co",
            "a\u{a0}@b.co",
            "a\u{3000}@b.co",
            "a\u{0}@b.co",
            "a\u{85}@b.co",
            "a<b@c.de",
            "a;b@c.de",
            "a\\b@c.de",
            "a[b@c.de",
            "a@b_c.de",
            "a@bé.de",
            &format!("{}@b.co", "a".repeat(250)),
        ] {
            assert!(!email_ok(bad), "{bad:?}");
        }
        assert!(EMAIL_PATTERN.starts_with('^') && EMAIL_PATTERN.ends_with('$'));
    }

    #[test]
    fn free_text_refuses_control_characters_but_tab_and_newline() {
        for ok in ["", "O'Brien <b>", "line\nline\ttab", "\u{a0}\u{200b}"] {
            assert!(text_ok(ok), "{ok:?}");
        }
        for bad in ["a\u{0}b", "\r", "\u{1c}", "\u{7f}", "\u{9f}", "x".repeat(21).as_str()] {
            assert!(!text_ok(bad), "{bad:?}");
        }
    }
}
