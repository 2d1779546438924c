//! `announcement-service-group` over `user.events`: who is no longer active. A suspended,
//! deactivated or deleted person leaves every audience (the fan-out and the read statistics
//! count only active people); reactivated, they are back. Their read marks are kept, so the
//! statistics are the same again when they return.

use nimbus_core::event::AnyEvent;
use nimbus_core::event::user::UserEvent;
use tokio_postgres::Transaction;

use crate::consumer::{Handler, HandlerError, Origin};

/// The announcement service's [`Handler`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AnnouncementHandler;

impl Handler for AnnouncementHandler {
    async fn handle(&self, tx: &Transaction<'_>, event: &AnyEvent, _origin: &Origin<'_>) -> Result<(), HandlerError> {
        let AnyEvent::User(env) = event else { return Ok(()) };
        let change = match &env.event {
            UserEvent::UserSuspended(p) => Some((p.user_id.as_str(), Some("suspended"))),
            UserEvent::UserDeleted(p) => Some((p.user_id.as_str(), Some("deleted"))),
            UserEvent::UserActivated(p) => Some((p.user_id.as_str(), None)),
            UserEvent::UserUpdated(p) | UserEvent::ProfileUpdated(p) => {
                p.changes.get("status").and_then(|c| c.new_value.as_str()).map(|s| {
                    let s = s.to_ascii_lowercase();
                    (p.user_id.as_str(), if s == "active" { None } else { Some(status_word(&s)) })
                })
            }
            _ => None,
        };
        let Some((user, status)) = change else { return Ok(()) };
        if user.trim().is_empty() {
            return Err(HandlerError::Invalid("user event without user_id".into()));
        }
        match status {
            Some(s) => {
                tx.execute(
                    "INSERT INTO inactive_users (user_id, status) VALUES ($1, $2)
                     ON CONFLICT (user_id) DO UPDATE SET status = EXCLUDED.status",
                    &[&user, &s],
                )
                .await?
            }
            None => tx.execute("DELETE FROM inactive_users WHERE user_id = $1", &[&user]).await?,
        };
        Ok(())
    }
}

/// The few status words there are, as `'static` (unknown ones are stored as `inactive`).
fn status_word(s: &str) -> &'static str {
    match s {
        "suspended" => "suspended",
        "deleted" => "deleted",
        "inactive" | "deactivated" => "inactive",
        "pending" => "pending",
        _ => "inactive",
    }
}
