//! `user.events`: user lifecycle (seed section 1). Keyed by `user_id`.

use serde::{Deserialize, Serialize};

use super::{Changes, EventError, Timestamp, topic_events};
use crate::topics::Topic;

topic_events! {
    /// An event on `user.events`.
    pub enum UserEvent on Topic::UserEvents {
        /// A user account was created.
        UserCreated(UserCreatedPayload) = "USER_CREATED",
        /// User fields changed.
        UserUpdated(UserUpdatedPayload) = "USER_UPDATED",
        /// A user was deleted or deactivated.
        UserDeleted(UserDeletedPayload) = "USER_DELETED",
        /// An account was (re)activated.
        UserActivated(UserStatusChangedPayload) = "USER_ACTIVATED",
        /// An account was suspended.
        UserSuspended(UserStatusChangedPayload) = "USER_SUSPENDED",
        /// Profile fields changed (same shape as `USER_UPDATED`).
        ProfileUpdated(UserUpdatedPayload) = "PROFILE_UPDATED",
        /// A role was granted.
        RoleAssigned(RoleChangedPayload) = "ROLE_ASSIGNED",
        /// A role was taken away.
        RoleRevoked(RoleChangedPayload) = "ROLE_REVOKED",
    }
}

impl UserEvent {
    fn key(&self) -> Option<&str> {
        Some(match self {
            UserEvent::UserCreated(p) => &p.user_id,
            UserEvent::UserUpdated(p) | UserEvent::ProfileUpdated(p) => &p.user_id,
            UserEvent::UserDeleted(p) => &p.user_id,
            UserEvent::UserActivated(p) | UserEvent::UserSuspended(p) => &p.user_id,
            UserEvent::RoleAssigned(p) | UserEvent::RoleRevoked(p) => &p.user_id,
        })
    }

    fn check(&self) -> Result<(), EventError> {
        Ok(())
    }

    /// Whether the event changes whether the person is active: `Some((user_id, None))` when they
    /// are active again, `Some((user_id, Some(status)))` when they no longer are (`suspended`,
    /// `deleted`, `inactive` or `pending`; unknown words count as `inactive`), `None` when the
    /// event says nothing about it. Services that keep their own list of inactive people share
    /// this one reading.
    pub fn activity(&self) -> Option<(&str, Option<&'static str>)> {
        match self {
            UserEvent::UserSuspended(p) => Some((&p.user_id, Some("suspended"))),
            UserEvent::UserDeleted(p) => Some((&p.user_id, Some("deleted"))),
            UserEvent::UserActivated(p) => Some((&p.user_id, None)),
            UserEvent::UserUpdated(p) | UserEvent::ProfileUpdated(p) => {
                let status = p.changes.get("status")?.new_value.as_str()?.to_ascii_lowercase();
                Some((&p.user_id, (status != "active").then(|| inactive_word(&status))))
            }
            _ => None,
        }
    }
}

/// The few inactive status words there are, as `'static`.
fn inactive_word(s: &str) -> &'static str {
    match s {
        "suspended" => "suspended",
        "deleted" => "deleted",
        "pending" => "pending",
        _ => "inactive",
    }
}

/// Seed `UserCreatedPayload`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserCreatedPayload {
    pub user_id: String,
    pub register_no: i64,
    pub email: String,
    pub role_id: String,
    pub role_name: String,
    pub status: String,
    pub created_by: String,
    pub requires_approval: bool,
}

/// Seed `UserUpdatedPayload`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserUpdatedPayload {
    pub user_id: String,
    pub changes: Changes,
    pub updated_by: String,
    pub updated_at: Timestamp,
}

/// Seed `UserDeletedPayload`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserDeletedPayload {
    pub user_id: String,
    pub email: String,
    pub deleted_by: String,
    pub deleted_at: Timestamp,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub reason: Option<String>,
    pub is_soft_delete: bool,
}

/// Ours (the seed names `USER_ACTIVATED`/`USER_SUSPENDED` without a schema).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserStatusChangedPayload {
    pub user_id: String,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub email: Option<String>,
    /// The status after the change (`active`, `suspended`).
    pub status: String,
    pub changed_by: String,
    pub changed_at: Timestamp,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub reason: Option<String>,
}

/// Ours (the seed names `ROLE_ASSIGNED`/`ROLE_REVOKED` without a schema).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RoleChangedPayload {
    pub user_id: String,
    pub role_id: String,
    pub role_name: String,
    pub changed_by: String,
    pub changed_at: Timestamp,
}
