//! Accounts: creating and listing users, profiles, activation and suspension, roles and the
//! permission table. Each command runs in one transaction with its `user.events` event.

use chrono::Utc;
use nimbus_core::event::user::{RoleChangedPayload, UserCreatedPayload, UserStatusChangedPayload, UserUpdatedPayload};
use nimbus_core::event::{ChangeValue, Changes, UserEvent};
use serde_json::json;
use uuid::Uuid;

use super::password;
use super::service::*;
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::listing::{Filter, ListQuery, Page, finish};

impl UserService {
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
        check_email(&mut errors, "email", &new.email);
        let email = normalize_email(&new.email);
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
    pub async fn list_users(&self, f: &UserFilter, query: ListQuery) -> Result<Page<UserView>> {
        let mut errors = Vec::new();
        if let Some(r) = &f.role
            && !ROLES.contains(&r.as_str())
        {
            errors.push(FieldError::new("role", format!("must be one of {}", ROLES.join(", "))));
        }
        if let Some(s) = &f.status
            && !STATUSES.contains(&s.as_str())
        {
            errors.push(FieldError::new("status", format!("must be one of {}", STATUSES.join(", "))));
        }
        if f.q.as_ref().is_some_and(|q| q.contains('\0')) {
            errors.push(FieldError::new("q", "must not contain NUL characters"));
        }
        finish(errors)?;
        let mut filter = Filter::new();
        filter.and("v.role = $?", f.role.clone());
        filter.and("v.status = $?", f.status.clone());
        filter.and(
            "(v.email || ' ' || v.first_name || ' ' || v.last_name) ILIKE $? ESCAPE '\\'",
            f.q.as_ref().map(|q| format!("%{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))),
        );
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
            USER_SORT,
            user_view,
        )
        .await
    }

    /// Changes a user's email and profile (admin) or one's own profile (`own_profile`: never the
    /// email); publishes `USER_UPDATED` (admin) or `PROFILE_UPDATED` (self) with the changed
    /// fields. Nobody changes their own email (409): another administrator does, so a mistyped
    /// address cannot lock the only administrator out.
    pub async fn update_user(&self, actor: &Actor, id: &str, patch: UserPatch, own_profile: bool) -> Result<UserView> {
        let uid = parse_id("user", id)?;
        let mut errors = Vec::new();
        if own_profile && patch.email.is_some() {
            errors.push(FieldError::new("email", "cannot be changed here; ask an administrator"));
        }
        if let Some(e) = &patch.email {
            check_email(&mut errors, "email", e);
        }
        let email = patch.email.as_deref().map(normalize_email);
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
        if email.as_ref().is_some_and(|e| *e != before.email) && actor.user_id.as_deref() == Some(before.id.as_str()) {
            return Err(Error::Conflict {
                message: "You cannot change your own email; another administrator can".into(),
                details: json!({ "field": "email" }),
            });
        }
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
        if !active && actor.user_id.as_deref().and_then(|a| Uuid::parse_str(a).ok()) == Some(uid) {
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
        if actor.user_id.as_deref().and_then(|a| Uuid::parse_str(a).ok()) == Some(uid) {
            return Err(Error::Conflict {
                message: "You cannot change your own role; another administrator can".into(),
                details: json!({ "role": old_name }),
            });
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
}
