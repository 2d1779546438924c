//! # The user service (`user_service_db`)
//!
//! Identities, roles and permissions, profiles, login sessions with rotating refresh tokens,
//! password changes and reset tokens, account locking, activation and suspension. Every change
//! is written with its seed event (`user.events`, `auth.events`) into the database's
//! `event_outbox` in the same transaction ([`crate::outbox`]); the API process relays it. Tables:
//! `users`, `roles`, `permissions`, `role_permissions`, `user_profiles`, `active_sessions`,
//! `password_reset_tokens`, `user_activity_logs`, `signing_keys`, `classroom_pins`,
//! `event_outbox`. It consumes no topic; its HTTP routes are [`routes`].
//!
//! - [`classroom_pin`]: faculty and student PINs for the classroom nodes' pages, and the sign-in credentials
//!   the downlink delivers in roster snapshots.
//! - [`keys`]: the Ed25519 token signing keys, rotation, and the public [`key_set`] the downlink
//!   sends to classroom nodes.
//! - [`revocation`]: the revocation list in Redis.
//! - [`password`]: argon2 hashing and the password policy.
//! - [`routes`]: authentication, users, roles, the caller's own profile and PIN, token keys.
//! - [`permissions`]: the role → permissions table the gateway authorises with.
//! - [`service`]: [`UserService`], the views and inputs of its commands.
//! - [`accounts`]: users, profiles, activation and suspension, roles.
//! - [`sessions`]: login, tokens and their rotation, logout, passwords.

pub mod accounts;
pub mod classroom_pin;
pub mod directory;
pub mod keys;
pub mod password;
pub mod permissions;
pub mod revocation;
pub mod routes;
pub mod service;
pub mod sessions;

pub use classroom_pin::{ClassroomCredential, classroom_credentials, student_credentials};
pub use keys::KeyRing;
pub use revocation::Revocations;
pub use service::{LoginFailure, TokenPair, UserService, UserSettings, UserView};

/// The public token keys (active and recently retired), for the downlink's `keys` snapshot.
pub async fn key_set(pool: &deadpool_postgres::Pool) -> crate::error::Result<nimbus_core::snapshot::KeysSnapshot> {
    keys::key_set(pool).await
}
