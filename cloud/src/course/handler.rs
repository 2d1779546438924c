//! The course service's consumer (`course-service-group` reads `user.events`): keeps the
//! `students` and `faculties` profiles in step with the user service.
//!
//! - `USER_CREATED` of a student or faculty member creates the profile (idempotent upsert; the
//!   seed payload has no name, so the name stays empty until an update brings one and rosters
//!   fall back to the e-mail).
//! - `USER_UPDATED` / `PROFILE_UPDATED` update whichever profiles exist from the changed fields
//!   (`email`, `name`/`full_name`, `first_name` + `last_name`, `register_no`, `status`); a change
//!   of `role_name` moves the person: the old profile is deactivated, the new one upserted.
//! - `ROLE_ASSIGNED` of student/faculty upserts that profile; `ROLE_REVOKED` deactivates it.
//! - `USER_SUSPENDED` / `USER_DELETED` deactivate every profile; `USER_ACTIVATED` reactivates
//!   the existing ones.

use nimbus_core::event::user::UserEvent;
use nimbus_core::event::{AnyEvent, Changes};
use tokio_postgres::Transaction;

use super::profiles::{self, ProfileFields, ProfileKind};
use crate::consumer::{Handler, HandlerError, Origin};

/// The course service's [`Handler`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CourseHandler;

impl Handler for CourseHandler {
    async fn handle(&self, tx: &Transaction<'_>, event: &AnyEvent, _origin: &Origin<'_>) -> Result<(), HandlerError> {
        let AnyEvent::User(env) = event else { return Ok(()) };
        apply(tx, &env.event).await.map_err(|e| match e {
            crate::error::Error::Db(db) => HandlerError::Db(db),
            other => HandlerError::Rejected(other.to_string()),
        })
    }
}

fn active(status: &str) -> bool {
    status.eq_ignore_ascii_case("active")
}

fn text(changes: &Changes, key: &str) -> Option<String> {
    changes.get(key).and_then(|c| c.new_value.as_str()).map(str::to_owned)
}

fn fields_of(changes: &Changes) -> ProfileFields {
    let name = text(changes, "name").or_else(|| text(changes, "full_name")).or_else(|| {
        match (text(changes, "first_name"), text(changes, "last_name")) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(f), None) => Some(f),
            (None, Some(l)) => Some(l),
            (None, None) => None,
        }
    });
    ProfileFields {
        register_no: changes.get("register_no").and_then(|c| c.new_value.as_i64()),
        email: text(changes, "email"),
        name,
        is_active: text(changes, "status").map(|s| active(&s)),
    }
}

async fn apply(tx: &Transaction<'_>, event: &UserEvent) -> crate::error::Result<()> {
    match event {
        UserEvent::UserCreated(p) => {
            if let Some(kind) = ProfileKind::of_role(&p.role_name) {
                let f = ProfileFields {
                    register_no: Some(p.register_no),
                    email: Some(p.email.clone()),
                    name: None,
                    is_active: Some(active(&p.status)),
                };
                profiles::upsert(tx, kind, &p.user_id, &f).await?;
            }
        }
        UserEvent::UserUpdated(p) | UserEvent::ProfileUpdated(p) => {
            let f = fields_of(&p.changes);
            if let Some(change) = p.changes.get("role_name") {
                let old = change.old_value.as_str().and_then(ProfileKind::of_role);
                let new = change.new_value.as_str().and_then(ProfileKind::of_role);
                if old != new {
                    if let Some(o) = old {
                        profiles::deactivate(tx, &p.user_id, Some(o)).await?;
                    }
                    if let Some(n) = new {
                        let f = ProfileFields { is_active: Some(f.is_active.unwrap_or(true)), ..f.clone() };
                        profiles::upsert(tx, n, &p.user_id, &f).await?;
                    }
                }
            }
            if f != ProfileFields::default() {
                profiles::update_existing(tx, &p.user_id, &f).await?;
            }
        }
        UserEvent::RoleAssigned(p) => {
            if let Some(kind) = ProfileKind::of_role(&p.role_name) {
                let f = ProfileFields { is_active: Some(true), ..ProfileFields::default() };
                profiles::upsert(tx, kind, &p.user_id, &f).await?;
            }
        }
        UserEvent::RoleRevoked(p) => {
            if let Some(kind) = ProfileKind::of_role(&p.role_name) {
                profiles::deactivate(tx, &p.user_id, Some(kind)).await?;
            }
        }
        UserEvent::UserSuspended(p) => profiles::deactivate(tx, &p.user_id, None).await?,
        UserEvent::UserDeleted(p) => profiles::deactivate(tx, &p.user_id, None).await?,
        UserEvent::UserActivated(p) => {
            let f = ProfileFields { is_active: Some(true), ..ProfileFields::default() };
            profiles::update_existing(tx, &p.user_id, &f).await?;
        }
    }
    Ok(())
}
