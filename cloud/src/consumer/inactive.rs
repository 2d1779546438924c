//! A service's own list of people who are not active (`inactive_users`), kept from
//! `user.events`: the announcement and communication services both need to know, within their
//! own database, who is suspended, deactivated or deleted.

use nimbus_core::event::AnyEvent;
use tokio_postgres::Transaction;

use super::HandlerError;

/// Applies `event` to the `inactive_users` table (`user_id`, `status`) of the service's
/// database when it changes whether someone is active; other events change nothing. Replaying
/// it changes nothing more.
pub async fn track(tx: &Transaction<'_>, event: &AnyEvent) -> Result<(), HandlerError> {
    let AnyEvent::User(env) = event else { return Ok(()) };
    let Some((user, status)) = env.event.activity() else { return Ok(()) };
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
