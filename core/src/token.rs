//! The claims of the user tokens the cloud issues (EdDSA-signed JWTs whose header names the
//! signing key's `kid`). Classroom nodes verify them offline with the keys of
//! [`crate::snapshot::KeysSnapshot`], so both ends share this one definition.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// Access tokens live one hour (seed).
pub const ACCESS_TOKEN_SECS: i64 = 3600;
/// Refresh tokens live seven days (seed).
pub const REFRESH_TOKEN_SECS: i64 = 7 * 24 * 3600;
/// The `iss` of every token the cloud issues.
pub const ISSUER: &str = "nimbus-cloud";

/// What a token is for; a refresh token is never accepted where an access token is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// Presented on every request; one hour.
    Access,
    /// Exchanged for a new access token; seven days.
    Refresh,
}

/// The claims of an access or refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id (a UUID).
    pub sub: String,
    /// The user's roles (`admin`, `faculty`, `student`, `device`).
    pub roles: Vec<String>,
    /// Issuer: [`ISSUER`].
    pub iss: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// The token id, the key of the revocation list.
    pub jti: String,
    /// The session the token belongs to (logout revokes the whole session).
    pub sid: String,
    /// Access or refresh.
    pub typ: TokenType,
}

impl Claims {
    /// Whether the holder has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}
