//! The user service's commands. Each runs in one transaction that also enqueues its seed event
//! (so a change is never made without being announced), stamped by the [`Actor`] with the
//! request's correlation id.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use nimbus_core::event::auth::{
    AccountLockedPayload, LoginFailedPayload, LoginSuccessPayload, LogoutPayload, PasswordChangedPayload,
    PasswordResetRequestedPayload, SessionPayload, TokenRefreshedPayload,
};
use nimbus_core::event::user::{RoleChangedPayload, UserCreatedPayload, UserStatusChangedPayload, UserUpdatedPayload};
use nimbus_core::event::{AuthEvent, ChangeValue, Changes, TopicEvent, UserEvent};
use nimbus_core::token::{ACCESS_TOKEN_SECS, Claims, ISSUER, REFRESH_TOKEN_SECS, TokenType};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::keys::KeyRing;
use super::password;
use super::revocation::Revocations;
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::listing::{Filter, ListQuery, Page, finish};

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

const USER_COLUMNS: &str = "u.id::text, u.register_no, u.email, r.name, u.status, coalesce(p.first_name, ''),
    coalesce(p.last_name, ''), coalesce(p.phone, ''), coalesce(p.department, ''), coalesce(p.bio, ''),
    u.locked_until, u.last_login_at, u.created_at, u.updated_at";
const USER_FROM: &str = "users u JOIN roles r ON r.id = u.role_id LEFT JOIN user_profiles p ON p.user_id = u.id";

fn user_view(r: &tokio_postgres::Row) -> UserView {
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
fn check_email(errors: &mut Vec<FieldError>, field: &str, email: &str) {
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
fn check_text(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
    } else if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        errors.push(FieldError::new(field, "must not contain control characters"));
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::Config(format!("no randomness for a token: {e}")))?;
    Ok(hex::encode(bytes))
}

fn parse_id(what: &'static str, id: &str) -> Result<Uuid> {
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

impl UserService {
    /// The tokens of a new or refreshed session.
    fn issue(&self, user: Uuid, role: &str, session: Uuid, refresh_jti: Uuid, now: i64) -> Result<TokenPair> {
        let roles = vec![role.to_owned()];
        let claims = |typ, jti: String, life| Claims {
            sub: user.to_string(),
            roles: roles.clone(),
            iss: ISSUER.to_owned(),
            iat: now,
            exp: now + life,
            jti,
            sid: session.to_string(),
            typ,
        };
        let access = self.keys.sign(&claims(TokenType::Access, Uuid::new_v4().to_string(), ACCESS_TOKEN_SECS))?;
        let refresh = self.keys.sign(&claims(TokenType::Refresh, refresh_jti.to_string(), REFRESH_TOKEN_SECS))?;
        Ok(TokenPair {
            access_token: access,
            refresh_token: refresh,
            token_type: "Bearer".into(),
            expires_in: ACCESS_TOKEN_SECS,
            refresh_expires_in: REFRESH_TOKEN_SECS,
            session_id: session.to_string(),
            user_id: user.to_string(),
            roles,
        })
    }

    /// Creates the bootstrap administrator when no user has `email`; an existing account is left
    /// as it is (its password is not reset).
    pub async fn ensure_admin(&self, email: &str, password: &str) -> Result<bool> {
        let client = self.pool.get().await?;
        let exists = client.query_opt("SELECT 1 FROM users WHERE email = $1", &[&normalize_email(email)]).await?;
        drop(client);
        if exists.is_some() {
            return Ok(false);
        }
        let new = NewUser {
            email: email.to_owned(),
            password: password.to_owned(),
            role: "admin".into(),
            register_no: None,
            first_name: "Administrator".into(),
            last_name: String::new(),
            phone: String::new(),
            department: String::new(),
        };
        match self.create_user(&Actor::system(), new).await {
            Ok(_) => Ok(true),
            // Another instance created it at the same moment.
            Err(Error::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Registers a user (admins only); publishes `USER_CREATED`.
    pub async fn create_user(&self, actor: &Actor, new: NewUser) -> Result<UserView> {
        let mut errors = Vec::new();
        let email = normalize_email(&new.email);
        if email.is_empty() {
            errors.push(FieldError::new("email", "is required"));
        } else {
            check_email(&mut errors, "email", &email);
        }
        password::check_policy(&mut errors, "password", &new.password);
        if !ROLES.contains(&new.role.as_str()) {
            errors.push(FieldError::new("role", format!("must be one of {}", ROLES.join(", "))));
        }
        if new.register_no.is_some_and(|n| n <= 0) {
            errors.push(FieldError::new("register_no", "must be a positive number"));
        }
        for (field, value) in [
            ("first_name", &new.first_name),
            ("last_name", &new.last_name),
            ("phone", &new.phone),
            ("department", &new.department),
        ] {
            check_text(&mut errors, field, value, 100);
        }
        finish(errors)?;
        let hash = password::hash(new.password.clone()).await?;
        let created_by = actor.user_id.as_deref().and_then(|u| Uuid::parse_str(u).ok());

        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let role_id: Uuid = tx.query_one("SELECT id FROM roles WHERE name = $1", &[&new.role]).await?.get(0);
        let row = tx
            .query_one(
                "INSERT INTO users (email, password_hash, role_id, created_by, register_no)
                 VALUES ($1, $2, $3, $4, coalesce($5, nextval('users_register_no_seq')))
                 RETURNING id, register_no",
                &[&email, &hash, &role_id, &created_by, &new.register_no],
            )
            .await
            .map_err(|e| match crate::listing::unique_violation(&e) {
                Some(c) if c.contains("register_no") => Error::Conflict {
                    message: "A user with this register number exists".into(),
                    details: json!({ "field": "register_no" }),
                },
                Some(_) => Error::Conflict {
                    message: "A user with this email exists".into(),
                    details: json!({ "field": "email" }),
                },
                None => e.into(),
            })?;
        let (id, register_no): (Uuid, i64) = (row.get(0), row.get(1));
        tx.execute(
            "INSERT INTO user_profiles (user_id, first_name, last_name, phone, department) VALUES ($1, $2, $3, $4, $5)",
            &[&id, &new.first_name, &new.last_name, &new.phone, &new.department],
        )
        .await?;
        publish(
            &tx,
            actor,
            UserEvent::UserCreated(UserCreatedPayload {
                user_id: id.to_string(),
                register_no,
                email: email.clone(),
                role_id: role_id.to_string(),
                role_name: new.role.clone(),
                status: "active".into(),
                created_by: actor.id(),
                requires_approval: false,
            }),
        )
        .await?;
        log_activity(&tx, Some(id), "USER_CREATED", actor, json!({ "role": new.role })).await?;
        tx.commit().await?;
        self.get_user(&id.to_string()).await
    }

    /// One user.
    pub async fn get_user(&self, id: &str) -> Result<UserView> {
        let uid = parse_id("user", id)?;
        let client = self.pool.get().await?;
        let row = client
            .query_opt(&format!("SELECT {USER_COLUMNS} FROM {USER_FROM} WHERE u.id = $1"), &[&uid])
            .await?
            .ok_or_else(|| Error::NotFound { what: "user", id: id.to_owned() })?;
        Ok(user_view(&row))
    }

    /// A page of users, filtered and sorted.
    pub async fn list_users(&self, f: &UserFilter) -> Result<Page<UserView>> {
        let mut errors = Vec::new();
        if let Some(r) = &f.role
            && !ROLES.contains(&r.as_str())
        {
            errors.push(FieldError::new("role", format!("must be one of {}", ROLES.join(", "))));
        }
        if let Some(s) = &f.status
            && !["active", "inactive", "suspended"].contains(&s.as_str())
        {
            errors.push(FieldError::new("status", "must be active, inactive or suspended"));
        }
        finish(errors)?;
        let mut filter = Filter::new();
        filter.and("v.role = $?", f.role.clone());
        filter.and("v.status = $?", f.status.clone());
        filter.and(
            "(v.email || ' ' || v.first_name || ' ' || v.last_name) ILIKE $? ESCAPE '\\'",
            f.q.as_ref().map(|q| format!("%{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))),
        );
        let query = ListQuery { limit: f.limit, offset: f.offset, sort: f.sort.clone() };
        let from = format!(
            "(SELECT u.id, u.register_no, u.email, r.name AS role, u.status, coalesce(p.first_name, '') AS first_name,
                     coalesce(p.last_name, '') AS last_name, coalesce(p.phone, '') AS phone,
                     coalesce(p.department, '') AS department, coalesce(p.bio, '') AS bio, u.locked_until,
                     u.last_login_at, u.created_at, u.updated_at FROM {USER_FROM}) v"
        );
        let client = self.pool.get().await?;
        crate::listing::page(
            &client,
            "v.id::text, v.register_no, v.email, v.role, v.status, v.first_name, v.last_name, v.phone, v.department,
             v.bio, v.locked_until, v.last_login_at, v.created_at, v.updated_at",
            &from,
            &filter,
            &query,
            &[
                ("email", "v.email"),
                ("register_no", "v.register_no"),
                ("created_at", "v.created_at"),
                ("last_name", "v.last_name"),
            ],
            user_view,
        )
        .await
    }

    /// Changes a user's email and profile (admin) or one's own profile; publishes
    /// `USER_UPDATED` (admin) or `PROFILE_UPDATED` (self) with the changed fields.
    pub async fn update_user(&self, actor: &Actor, id: &str, patch: UserPatch, own_profile: bool) -> Result<UserView> {
        let uid = parse_id("user", id)?;
        let mut errors = Vec::new();
        if own_profile && patch.email.is_some() {
            errors.push(FieldError::new("email", "cannot be changed here; ask an administrator"));
        }
        let email = patch.email.as_deref().map(normalize_email);
        if let Some(e) = &email {
            check_email(&mut errors, "email", e);
        }
        for (field, value, max) in [
            ("first_name", &patch.first_name, 100),
            ("last_name", &patch.last_name, 100),
            ("phone", &patch.phone, 100),
            ("department", &patch.department, 100),
            ("bio", &patch.bio, 2000),
        ] {
            if let Some(v) = value {
                check_text(&mut errors, field, v, max);
            }
        }
        finish(errors)?;
        let before = self.get_user(id).await?;
        let mut changes = Changes::new();
        let mut change = |field: &str, old: &str, new: &Option<String>| {
            if let Some(n) = new
                && n != old
            {
                changes.insert(field.to_owned(), ChangeValue { old_value: json!(old), new_value: json!(n) });
            }
        };
        change("email", &before.email, &email);
        change("first_name", &before.first_name, &patch.first_name);
        change("last_name", &before.last_name, &patch.last_name);
        change("phone", &before.phone, &patch.phone);
        change("department", &before.department, &patch.department);
        change("bio", &before.bio, &patch.bio);
        if changes.is_empty() {
            return Ok(before);
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if let Some(e) = &email {
            tx.execute("UPDATE users SET email = $2, updated_at = now() WHERE id = $1", &[&uid, e]).await.map_err(
                |e| match crate::listing::unique_violation(&e) {
                    Some(_) => Error::Conflict {
                        message: "A user with this email exists".into(),
                        details: json!({ "field": "email" }),
                    },
                    None => e.into(),
                },
            )?;
        }
        tx.execute(
            "UPDATE user_profiles SET first_name = coalesce($2, first_name), last_name = coalesce($3, last_name),
                 phone = coalesce($4, phone), department = coalesce($5, department), bio = coalesce($6, bio),
                 updated_at = now()
             WHERE user_id = $1",
            &[&uid, &patch.first_name, &patch.last_name, &patch.phone, &patch.department, &patch.bio],
        )
        .await?;
        tx.execute("UPDATE users SET updated_at = now() WHERE id = $1", &[&uid]).await?;
        let payload = UserUpdatedPayload {
            user_id: uid.to_string(),
            changes: changes.clone(),
            updated_by: actor.id(),
            updated_at: Utc::now(),
        };
        let event = if own_profile { UserEvent::ProfileUpdated(payload) } else { UserEvent::UserUpdated(payload) };
        publish(&tx, actor, event).await?;
        let fields: Vec<&String> = changes.keys().collect();
        log_activity(
            &tx,
            Some(uid),
            if own_profile { "PROFILE_UPDATED" } else { "USER_UPDATED" },
            actor,
            json!({ "fields": fields }),
        )
        .await?;
        tx.commit().await?;
        self.get_user(id).await
    }

    /// Sets a user's status to `active` (clearing any lock) or `suspended` (revoking every
    /// session at once); publishes `USER_ACTIVATED` / `USER_SUSPENDED`.
    pub async fn set_status(&self, actor: &Actor, id: &str, active: bool, reason: Option<String>) -> Result<UserView> {
        let uid = parse_id("user", id)?;
        if let Some(r) = &reason {
            let mut errors = Vec::new();
            check_text(&mut errors, "reason", r, 500);
            finish(errors)?;
        }
        if !active && actor.user_id.as_deref() == Some(id) {
            return Err(Error::Conflict { message: "You cannot suspend yourself".into(), details: json!({}) });
        }
        let status = if active { "active" } else { "suspended" };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "UPDATE users SET status = $2, updated_at = now(),
                     failed_login_attempts = CASE WHEN $2 = 'active' THEN 0 ELSE failed_login_attempts END,
                     locked_until = CASE WHEN $2 = 'active' THEN NULL ELSE locked_until END
                 WHERE id = $1 RETURNING email",
                &[&uid, &status],
            )
            .await?
            .ok_or_else(|| Error::NotFound { what: "user", id: id.to_owned() })?;
        let email: String = row.get(0);
        let sessions = if active { Vec::new() } else { self.revoke_sessions(&tx, uid, "suspended").await? };
        let payload = UserStatusChangedPayload {
            user_id: uid.to_string(),
            email: Some(email),
            status: status.into(),
            changed_by: actor.id(),
            changed_at: Utc::now(),
            reason: reason.clone(),
        };
        let event = if active { UserEvent::UserActivated(payload) } else { UserEvent::UserSuspended(payload) };
        publish(&tx, actor, event).await?;
        log_activity(
            &tx,
            Some(uid),
            if active { "USER_ACTIVATED" } else { "USER_SUSPENDED" },
            actor,
            json!({ "reason": reason }),
        )
        .await?;
        if !active {
            self.revoke_in_redis(uid, &sessions).await?;
        }
        tx.commit().await?;
        self.get_user(id).await
    }

    /// Gives a user another role; publishes `ROLE_REVOKED` (the old) and `ROLE_ASSIGNED` (the
    /// new). The user's tokens are revoked, so the new role applies from their next login.
    pub async fn assign_role(&self, actor: &Actor, id: &str, role: &str) -> Result<UserView> {
        let uid = parse_id("user", id)?;
        if !ROLES.contains(&role) {
            return Err(Error::Validation(vec![FieldError::new(
                "role",
                format!("must be one of {}", ROLES.join(", ")),
            )]));
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let old = tx
            .query_opt(
                "SELECT r.id, r.name FROM users u JOIN roles r ON r.id = u.role_id WHERE u.id = $1 FOR UPDATE OF u",
                &[&uid],
            )
            .await?
            .ok_or_else(|| Error::NotFound { what: "user", id: id.to_owned() })?;
        let (old_id, old_name): (Uuid, String) = (old.get(0), old.get(1));
        if old_name == role {
            drop(tx);
            return self.get_user(id).await;
        }
        let new_id: Uuid = tx.query_one("SELECT id FROM roles WHERE name = $1", &[&role]).await?.get(0);
        tx.execute("UPDATE users SET role_id = $2, updated_at = now() WHERE id = $1", &[&uid, &new_id]).await?;
        let now = Utc::now();
        let payload = |role_id: Uuid, role_name: &str| RoleChangedPayload {
            user_id: uid.to_string(),
            role_id: role_id.to_string(),
            role_name: role_name.to_owned(),
            changed_by: actor.id(),
            changed_at: now,
        };
        publish(&tx, actor, UserEvent::RoleRevoked(payload(old_id, &old_name))).await?;
        publish(&tx, actor, UserEvent::RoleAssigned(payload(new_id, role))).await?;
        log_activity(&tx, Some(uid), "ROLE_ASSIGNED", actor, json!({ "from": old_name, "to": role })).await?;
        let sessions = self.revoke_sessions(&tx, uid, "role_changed").await?;
        self.revoke_in_redis(uid, &sessions).await?;
        tx.commit().await?;
        self.get_user(id).await
    }

    /// Every role with its permissions.
    pub async fn roles(&self) -> Result<Vec<RoleView>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT r.id::text, r.name, r.description,
                        coalesce(array_agg(p.name ORDER BY p.name) FILTER (WHERE p.name IS NOT NULL), '{}')
                 FROM roles r LEFT JOIN role_permissions rp ON rp.role_id = r.id
                 LEFT JOIN permissions p ON p.id = rp.permission_id
                 GROUP BY r.id ORDER BY r.name",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| RoleView { id: r.get(0), name: r.get(1), description: r.get(2), permissions: r.get(3) })
            .collect())
    }

    /// The role → permissions table.
    pub async fn role_permissions(&self) -> Result<Vec<(String, String)>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT r.name, p.name FROM role_permissions rp JOIN roles r ON r.id = rp.role_id
                 JOIN permissions p ON p.id = rp.permission_id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Checks email and password and starts a session. Every outcome is recorded and published
    /// (`LOGIN_SUCCESS` + `SESSION_CREATED`, or `LOGIN_FAILED`, plus `ACCOUNT_LOCKED` when this
    /// failure locks the account).
    pub async fn login(
        &self,
        actor: &Actor,
        email: &str,
        password: &str,
        user_agent: Option<String>,
    ) -> std::result::Result<TokenPair, LoginFailure> {
        let email = normalize_email(email);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "SELECT u.id, u.password_hash, u.status, u.failed_login_attempts, u.locked_until, r.name
                 FROM users u JOIN roles r ON r.id = u.role_id WHERE u.email = $1 FOR UPDATE OF u",
                &[&email],
            )
            .await?;
        let now = Utc::now();
        let failed = |reason: &str, attempts: u32, locked: bool| {
            AuthEvent::LoginFailed(LoginFailedPayload {
                email: email.clone(),
                failure_reason: reason.to_owned(),
                attempt_count: attempts,
                ip_address: actor.client_ip.clone(),
                user_agent: user_agent.clone(),
                is_account_locked: locked,
                attempted_at: now,
            })
        };
        let Some(row) = row else {
            // Same work as a wrong password, so timing does not tell whether the account exists.
            password::verify(password.to_owned(), password::DUMMY_HASH.to_owned()).await;
            publish(&tx, actor, failed("invalid_credentials", 1, false)).await?;
            log_activity(&tx, None, "LOGIN_FAILED", actor, json!({ "reason": "unknown_email" })).await?;
            tx.commit().await?;
            return Err(LoginFailure::InvalidCredentials);
        };
        let (uid, hash, status, attempts, locked_until, role): (
            Uuid,
            String,
            String,
            i32,
            Option<DateTime<Utc>>,
            String,
        ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
        if let Some(until) = locked_until.filter(|u| *u > now) {
            publish(&tx, actor, failed("account_locked", attempts.max(0) as u32, true)).await?;
            log_activity(&tx, Some(uid), "LOGIN_FAILED", actor, json!({ "reason": "account_locked" })).await?;
            tx.commit().await?;
            return Err(LoginFailure::Locked(until));
        }
        // A lock that has run out starts the count afresh.
        let attempts = if locked_until.is_some() { 0 } else { attempts.max(0) as u32 };
        if !password::verify(password.to_owned(), hash).await {
            let attempts = attempts + 1;
            let lock = attempts >= self.settings.max_failed_logins;
            let until = lock.then(|| now + chrono::Duration::from_std(self.settings.lockout).unwrap_or_default());
            tx.execute(
                "UPDATE users SET failed_login_attempts = $2, locked_until = $3 WHERE id = $1",
                &[&uid, &(attempts as i32), &until],
            )
            .await?;
            publish(&tx, actor, failed("invalid_credentials", attempts, lock)).await?;
            log_activity(
                &tx,
                Some(uid),
                "LOGIN_FAILED",
                actor,
                json!({ "reason": "invalid_credentials", "attempts": attempts }),
            )
            .await?;
            if let Some(until) = until {
                publish(
                    &tx,
                    actor,
                    AuthEvent::AccountLocked(AccountLockedPayload {
                        user_id: uid.to_string(),
                        email: email.clone(),
                        failed_attempts: attempts,
                        locked_at: now,
                        locked_until: Some(until),
                        ip_address: actor.client_ip.clone(),
                    }),
                )
                .await?;
                log_activity(&tx, Some(uid), "ACCOUNT_LOCKED", actor, json!({ "until": until })).await?;
            }
            tx.commit().await?;
            return Err(match until {
                Some(until) => LoginFailure::Locked(until),
                None => LoginFailure::InvalidCredentials,
            });
        }
        if status != "active" {
            publish(&tx, actor, failed(&format!("account_{status}"), attempts, false)).await?;
            log_activity(&tx, Some(uid), "LOGIN_FAILED", actor, json!({ "reason": status })).await?;
            tx.commit().await?;
            return Err(LoginFailure::Disabled(status));
        }
        let session = Uuid::new_v4();
        let refresh_jti = Uuid::new_v4();
        let expires = now + chrono::Duration::seconds(REFRESH_TOKEN_SECS);
        tx.execute(
            "UPDATE users SET failed_login_attempts = 0, locked_until = NULL, last_login_at = $2 WHERE id = $1",
            &[&uid, &now],
        )
        .await?;
        tx.execute(
            "INSERT INTO active_sessions (id, user_id, refresh_jti, ip_address, user_agent, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&session, &uid, &refresh_jti, &actor.client_ip, &user_agent, &expires],
        )
        .await?;
        let tokens = self.issue(uid, &role, session, refresh_jti, now.timestamp())?;
        publish(
            &tx,
            actor,
            AuthEvent::LoginSuccess(LoginSuccessPayload {
                user_id: uid.to_string(),
                email: email.clone(),
                role_name: role.clone(),
                session_id: session.to_string(),
                ip_address: actor.client_ip.clone(),
                user_agent: user_agent.clone(),
                device_type: None,
                login_at: now,
                expires_at: now + chrono::Duration::seconds(ACCESS_TOKEN_SECS),
            }),
        )
        .await?;
        publish(
            &tx,
            actor,
            AuthEvent::SessionCreated(SessionPayload {
                user_id: uid.to_string(),
                session_id: session.to_string(),
                occurred_at: now,
                expires_at: expires,
                ip_address: actor.client_ip.clone(),
                device_type: None,
            }),
        )
        .await?;
        log_activity(&tx, Some(uid), "LOGIN_SUCCESS", actor, json!({ "session_id": session })).await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// Exchanges a refresh token for a new pair (rotation). Presenting a refresh token that was
    /// already exchanged is reuse: the whole session is revoked. The error is the 401's reason.
    pub async fn refresh(&self, actor: &Actor, refresh_token: &str) -> std::result::Result<TokenPair, RefreshFailure> {
        let claims = self.keys.verify(refresh_token, TokenType::Refresh).await.map_err(RefreshFailure::Rejected)?;
        match self.revocations.check(&claims).await {
            Ok(Some(why)) => return Err(RefreshFailure::Rejected(why.to_owned())),
            Ok(None) => {}
            Err(e) => return Err(RefreshFailure::Internal(e)),
        }
        let (Ok(sid), Ok(uid), Ok(jti)) =
            (Uuid::parse_str(&claims.sid), Uuid::parse_str(&claims.sub), Uuid::parse_str(&claims.jti))
        else {
            return Err(RefreshFailure::Rejected("invalid token".to_owned()));
        };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT s.refresh_jti, s.revoked_at IS NOT NULL, u.status, r.name
                 FROM active_sessions s JOIN users u ON u.id = s.user_id JOIN roles r ON r.id = u.role_id
                 WHERE s.id = $1 AND s.user_id = $2 FOR UPDATE OF s",
                &[&sid, &uid],
            )
            .await?
        else {
            return Err(RefreshFailure::Rejected("unknown session".to_owned()));
        };
        let (current, revoked, status, role): (Uuid, bool, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if revoked {
            return Err(RefreshFailure::Rejected("session revoked".to_owned()));
        }
        let now = Utc::now();
        if current != jti {
            // Reuse of a rotated refresh token: someone else may hold the session.
            end_session(&tx, actor, uid, sid, "refresh_token_reuse", now).await?;
            log_activity(&tx, Some(uid), "REFRESH_TOKEN_REUSE", actor, json!({ "session_id": sid })).await?;
            self.revocations.revoke_session(&sid.to_string()).await?;
            tx.commit().await?;
            return Err(RefreshFailure::Rejected("refresh token reuse; session revoked".to_owned()));
        }
        if status != "active" {
            return Err(RefreshFailure::Rejected(format!("account {status}")));
        }
        let next = Uuid::new_v4();
        tx.execute(
            "UPDATE active_sessions SET refresh_jti = $2, last_refreshed_at = now(),
                 expires_at = now() + make_interval(secs => $3)
             WHERE id = $1",
            &[&sid, &next, &(REFRESH_TOKEN_SECS as f64)],
        )
        .await?;
        let tokens = self.issue(uid, &role, sid, next, now.timestamp())?;
        publish(
            &tx,
            actor,
            AuthEvent::TokenRefreshed(TokenRefreshedPayload {
                user_id: uid.to_string(),
                session_id: sid.to_string(),
                refreshed_at: now,
                expires_at: now + chrono::Duration::seconds(ACCESS_TOKEN_SECS),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// Ends the caller's session: its tokens are revoked at once; publishes `LOGOUT`.
    pub async fn logout(&self, actor: &Actor, user_id: &str, session_id: &str, token_id: &str) -> Result<()> {
        let uid = parse_id("user", user_id)?;
        let sid = parse_id("session", session_id)?;
        self.revocations.revoke_session(session_id).await?;
        self.revocations.revoke_token(token_id).await?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        end_session(&tx, actor, uid, sid, "manual", Utc::now()).await?;
        log_activity(&tx, Some(uid), "LOGOUT", actor, json!({ "session_id": sid })).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes the caller's password after checking the current one; every session of the user
    /// is revoked (log in again). Publishes `PASSWORD_CHANGED`.
    pub async fn change_password(&self, actor: &Actor, user_id: &str, current: &str, new: &str) -> Result<()> {
        let uid = parse_id("user", user_id)?;
        let mut errors = Vec::new();
        if current.is_empty() {
            errors.push(FieldError::new("current_password", "is required"));
        }
        password::check_policy(&mut errors, "new_password", new);
        if current == new {
            errors.push(FieldError::new("new_password", "must differ from the current password"));
        }
        finish(errors)?;
        let client = self.pool.get().await?;
        let row = client
            .query_opt("SELECT password_hash FROM users WHERE id = $1", &[&uid])
            .await?
            .ok_or_else(|| Error::NotFound { what: "user", id: user_id.to_owned() })?;
        drop(client);
        if !password::verify(current.to_owned(), row.get(0)).await {
            return Err(Error::Validation(vec![FieldError::new("current_password", "is not correct")]));
        }
        self.set_password(actor, uid, new, None).await
    }

    async fn set_password(&self, actor: &Actor, uid: Uuid, new: &str, reset_token: Option<Uuid>) -> Result<()> {
        let hash = password::hash(new.to_owned()).await?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let email: String = tx
            .query_one(
                "UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now(),
                     failed_login_attempts = 0, locked_until = NULL
                 WHERE id = $1 RETURNING email",
                &[&uid, &hash],
            )
            .await?
            .get(0);
        if let Some(t) = reset_token {
            tx.execute("UPDATE password_reset_tokens SET used_at = now() WHERE id = $1", &[&t]).await?;
        }
        let sessions = self.revoke_sessions(&tx, uid, "password_changed").await?;
        let payload = PasswordChangedPayload {
            user_id: uid.to_string(),
            email,
            changed_at: Utc::now(),
            ip_address: actor.client_ip.clone(),
        };
        let event = if reset_token.is_some() {
            AuthEvent::PasswordResetCompleted(payload)
        } else {
            AuthEvent::PasswordChanged(payload)
        };
        publish(&tx, actor, event).await?;
        log_activity(
            &tx,
            Some(uid),
            if reset_token.is_some() { "PASSWORD_RESET" } else { "PASSWORD_CHANGED" },
            actor,
            json!({}),
        )
        .await?;
        self.revoke_in_redis(uid, &sessions).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Issues a reset token for the active account with `email` (nothing when there is none, so
    /// the answer does not reveal which emails exist). Only the token's SHA-256 is stored; the
    /// token is returned once. Publishes `PASSWORD_RESET_REQUESTED` (with the token's id only).
    pub async fn request_reset(&self, actor: &Actor, email: &str) -> Result<Option<String>> {
        let email = normalize_email(email);
        let mut errors = Vec::new();
        check_email(&mut errors, "email", &email);
        finish(errors)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx.query_opt("SELECT id FROM users WHERE email = $1 AND status = 'active'", &[&email]).await?
        else {
            return Ok(None);
        };
        let uid: Uuid = row.get(0);
        let token = random_token()?;
        let now = Utc::now();
        let expires = now + chrono::Duration::seconds(RESET_TOKEN_SECS);
        // Only the newest token is usable.
        tx.execute("UPDATE password_reset_tokens SET used_at = now() WHERE user_id = $1 AND used_at IS NULL", &[&uid])
            .await?;
        let id: Uuid = tx
            .query_one(
                "INSERT INTO password_reset_tokens (user_id, token_hash, expires_at) VALUES ($1, $2, $3) RETURNING id",
                &[&uid, &sha256_hex(&token), &expires],
            )
            .await?
            .get(0);
        publish(
            &tx,
            actor,
            AuthEvent::PasswordResetRequested(PasswordResetRequestedPayload {
                user_id: uid.to_string(),
                email,
                reset_token_id: id.to_string(),
                requested_at: now,
                expires_at: expires,
                ip_address: actor.client_ip.clone(),
            }),
        )
        .await?;
        log_activity(&tx, Some(uid), "PASSWORD_RESET_REQUESTED", actor, json!({ "reset_token_id": id })).await?;
        tx.commit().await?;
        Ok(Some(token))
    }

    /// Sets a new password with a reset token (once, before it expires); revokes every session.
    /// Publishes `PASSWORD_RESET_COMPLETED`.
    pub async fn confirm_reset(&self, actor: &Actor, token: &str, new: &str) -> Result<()> {
        let mut errors = Vec::new();
        if token.trim().is_empty() {
            errors.push(FieldError::new("token", "is required"));
        }
        password::check_policy(&mut errors, "new_password", new);
        finish(errors)?;
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT t.id, t.user_id FROM password_reset_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > now() AND u.status = 'active'",
                &[&sha256_hex(token.trim())],
            )
            .await?;
        drop(client);
        let Some(row) = row else {
            return Err(Error::Validation(vec![FieldError::new("token", "is invalid, used or expired")]));
        };
        self.set_password(actor, row.get(1), new, Some(row.get(0))).await
    }

    /// Marks every open session of `uid` revoked; returns their ids.
    async fn revoke_sessions(&self, tx: &Transaction<'_>, uid: Uuid, reason: &str) -> Result<Vec<Uuid>> {
        let rows = tx
            .query(
                "UPDATE active_sessions SET revoked_at = now(), revoked_reason = $2
                 WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
                &[&uid, &reason],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn revoke_in_redis(&self, uid: Uuid, sessions: &[Uuid]) -> Result<()> {
        for s in sessions {
            self.revocations.revoke_session(&s.to_string()).await?;
        }
        self.revocations.revoke_user_before(&uid.to_string(), Utc::now().timestamp()).await
    }
}

/// Revokes one session (if still open) and announces it as `LOGOUT` with `reason`, in `tx`. The
/// revoked reason recorded is `logout` for a manual logout, else the reason itself.
async fn end_session(
    tx: &Transaction<'_>,
    actor: &Actor,
    uid: Uuid,
    sid: Uuid,
    reason: &str,
    at: chrono::DateTime<Utc>,
) -> Result<()> {
    let recorded = if reason == "manual" { "logout" } else { reason };
    tx.execute(
        "UPDATE active_sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL",
        &[&sid, &recorded],
    )
    .await?;
    publish(
        tx,
        actor,
        AuthEvent::Logout(LogoutPayload {
            user_id: uid.to_string(),
            session_id: sid.to_string(),
            reason: Some(reason.into()),
            logged_out_at: at,
        }),
    )
    .await
}
