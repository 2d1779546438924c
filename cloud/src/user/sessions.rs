//! Sessions: login with account locking, token pairs and their rotation (reuse revokes the
//! session), logout, password change and reset. Each command runs in one transaction with its
//! `auth.events` event.

use chrono::{DateTime, Utc};
use nimbus_core::event::AuthEvent;
use nimbus_core::event::auth::{
    AccountLockedPayload, LoginFailedPayload, LoginSuccessPayload, LogoutPayload, PasswordChangedPayload,
    PasswordResetRequestedPayload, SessionPayload, TokenRefreshedPayload,
};
use nimbus_core::token::{ACCESS_TOKEN_SECS, Claims, ISSUER, REFRESH_TOKEN_SECS, TokenType};
use serde_json::json;
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::password;
use super::service::*;
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::listing::finish;

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
        finish(errors)?;
        if current == new {
            crate::listing::finish_rules(vec![FieldError::new(
                "new_password",
                "must differ from the current password",
            )])?;
        }
        let client = self.pool.get().await?;
        let row = client
            .query_opt("SELECT password_hash FROM users WHERE id = $1", &[&uid])
            .await?
            .ok_or_else(|| Error::NotFound { what: "user", id: user_id.to_owned() })?;
        drop(client);
        if !password::verify(current.to_owned(), row.get(0)).await {
            // The caller failed to prove who they are: 403, not a field error of the request.
            return Err(Error::Forbidden("current_password is not correct".into()));
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

    /// Starts a password reset for the active account with `email` (nothing when there is none,
    /// so the answer does not reveal which emails exist) and publishes `PASSWORD_RESET_REQUESTED`
    /// (with the reset's id only). With `hand_over` (an administrator asked) the token is
    /// returned once; otherwise the notification service mints one and mails the link. Only a
    /// token's SHA-256 is ever stored.
    pub async fn request_reset(&self, actor: &Actor, email: &str, hand_over: bool) -> Result<Option<String>> {
        let mut errors = Vec::new();
        check_email(&mut errors, "email", email);
        finish(errors)?;
        let email = normalize_email(email);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx.query_opt("SELECT id FROM users WHERE email = $1 AND status = 'active'", &[&email]).await?
        else {
            return Ok(None);
        };
        let uid: Uuid = row.get(0);
        // A token handed to an administrator is stored as `admin:<hash>` (the notification service
        // leaves it alone); otherwise the row waits as `pending:<random>`, which no token hashes
        // to, until the notification service mints the token it mails ([`super::directory`]).
        let token = random_token()?;
        let token_hash = if hand_over { format!("admin:{}", sha256_hex(&token)) } else { format!("pending:{token}") };
        let now = Utc::now();
        let expires = now + chrono::Duration::seconds(RESET_TOKEN_SECS);
        // Only the newest token is usable.
        tx.execute("UPDATE password_reset_tokens SET used_at = now() WHERE user_id = $1 AND used_at IS NULL", &[&uid])
            .await?;
        let id: Uuid = tx
            .query_one(
                "INSERT INTO password_reset_tokens (user_id, token_hash, expires_at) VALUES ($1, $2, $3) RETURNING id",
                &[&uid, &token_hash, &expires],
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
        Ok(hand_over.then_some(token))
    }

    /// Sets a new password with a reset token (once, before it expires); revokes every session.
    /// Publishes `PASSWORD_RESET_COMPLETED`.
    pub async fn confirm_reset(&self, actor: &Actor, token: &str, new: &str) -> Result<()> {
        let mut errors = Vec::new();
        password::check_policy(&mut errors, "new_password", new);
        finish(errors)?;
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT t.id, t.user_id FROM password_reset_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.token_hash IN ($1, 'admin:' || $1) AND t.used_at IS NULL AND t.expires_at > now() AND u.status = 'active'",
                &[&sha256_hex(token.trim())],
            )
            .await?;
        drop(client);
        let Some(row) = row else {
            // A well-formed request naming no usable reset: 422, like any reference to a row
            // that does not exist.
            return Err(Error::Unprocessable(vec![FieldError::new("token", "is invalid, used or expired")]));
        };
        self.set_password(actor, row.get(1), new, Some(row.get(0))).await
    }

    /// Marks every open session of `uid` revoked; returns their ids.
    pub(super) async fn revoke_sessions(&self, tx: &Transaction<'_>, uid: Uuid, reason: &str) -> Result<Vec<Uuid>> {
        let rows = tx
            .query(
                "UPDATE active_sessions SET revoked_at = now(), revoked_reason = $2
                 WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
                &[&uid, &reason],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(super) async fn revoke_in_redis(&self, uid: Uuid, sessions: &[Uuid]) -> Result<()> {
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
