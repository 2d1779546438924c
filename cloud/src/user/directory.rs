//! What other services may ask the user service about people: how to reach them (e-mail, phone,
//! name), who holds a role, and, for the notification service, the token of a reset link it is
//! about to mail. Reads only, except [`mint_reset_token`].

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::service::{random_token, sha256_hex};
use crate::error::Result;

/// How to reach one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The user id.
    pub user_id: String,
    /// E-mail address (lower-case).
    pub email: String,
    /// Phone number as entered in the profile; empty when none.
    pub phone: String,
    /// First and last name; the e-mail address when the profile has none.
    pub name: String,
    /// The role's name.
    pub role: String,
    /// Whether the account is active (suspended and inactive accounts get nothing but security
    /// mail).
    pub active: bool,
}

/// The contacts of those of `ids` that exist (ids that are not users are left out).
pub async fn contacts(db: &impl GenericClient, ids: &[String]) -> Result<Vec<Contact>> {
    let uuids: Vec<Uuid> = ids.iter().filter_map(|i| Uuid::parse_str(i).ok()).collect();
    let rows = db
        .query(
            "SELECT u.id, u.email, COALESCE(p.phone, ''), COALESCE(NULLIF(trim(p.first_name || ' ' || p.last_name), ''), u.email),
                    r.name, u.status = 'active'
             FROM users u JOIN roles r ON r.id = u.role_id LEFT JOIN user_profiles p ON p.user_id = u.id
             WHERE u.id = ANY($1)",
            &[&uuids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Contact {
            user_id: r.get::<_, Uuid>(0).to_string(),
            email: r.get(1),
            phone: r.get(2),
            name: r.get(3),
            role: r.get(4),
            active: r.get(5),
        })
        .collect())
}

/// The ids of the active users holding one of `roles` (every active user when `roles` is
/// `None`).
pub async fn active_users(db: &impl GenericClient, roles: Option<&[String]>) -> Result<Vec<String>> {
    let rows = match roles {
        Some(roles) => {
            db.query(
                "SELECT u.id FROM users u JOIN roles r ON r.id = u.role_id
                 WHERE u.status = 'active' AND r.name = ANY($1) ORDER BY u.register_no",
                &[&roles],
            )
            .await?
        }
        None => db.query("SELECT id FROM users WHERE status = 'active' ORDER BY register_no", &[]).await?,
    };
    Ok(rows.iter().map(|r| r.get::<_, Uuid>(0).to_string()).collect())
}

/// Every active user with their role's name, as `(id, role)`.
pub async fn active_people(db: &impl GenericClient) -> Result<Vec<(String, String)>> {
    let rows = db
        .query(
            "SELECT u.id, r.name FROM users u JOIN roles r ON r.id = u.role_id WHERE u.status = 'active' ORDER BY u.id",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get::<_, Uuid>(0).to_string(), r.get(1))).collect())
}

/// A reset link's token, minted for the mail that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedReset {
    /// The token (only its hash is kept).
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Mints the token of reset `reset_token_id` (from `PASSWORD_RESET_REQUESTED`) for the e-mail
/// that carries it: a new token replaces any earlier mint, so after a crash between minting and
/// queueing the mail, the mail finally sent carries the only token that works. `None` when the
/// reset was used, expired, superseded by a newer one, or handed to an administrator.
pub async fn mint_reset_token(db: &impl GenericClient, reset_token_id: &str) -> Result<Option<MintedReset>> {
    let Ok(id) = Uuid::parse_str(reset_token_id) else { return Ok(None) };
    let token = random_token()?;
    let row = db
        .query_opt(
            "UPDATE password_reset_tokens SET token_hash = $2
             WHERE id = $1 AND used_at IS NULL AND expires_at > now() AND token_hash NOT LIKE 'admin:%'
             RETURNING expires_at",
            &[&id, &sha256_hex(&token)],
        )
        .await?;
    Ok(row.map(|r| MintedReset { token, expires_at: r.get(0) }))
}
