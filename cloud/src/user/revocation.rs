//! The revocation list in Redis, checked on every request: a token id (logout), a session
//! (logout, refresh-token reuse, suspension) or everything a user was issued before a moment
//! (suspension, password change). Entries expire when the tokens they cover would have, so the
//! list stays small. Keys carry a configurable prefix so deployments and tests can share Redis.

use nimbus_core::token::{ACCESS_TOKEN_SECS, Claims, REFRESH_TOKEN_SECS};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::error::{Error, Result};

/// Redis client for revocations (cheap to clone; reconnects by itself).
#[derive(Clone)]
pub struct Revocations {
    conn: ConnectionManager,
    prefix: String,
}

fn redis_error(e: redis::RedisError) -> Error {
    Error::Redis(e)
}

impl Revocations {
    /// Revocations over `conn`, every key starting with `prefix`.
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Revocations { conn, prefix: prefix.into() }
    }

    fn jti_key(&self, jti: &str) -> String {
        format!("{}revoked:jti:{jti}", self.prefix)
    }

    fn sid_key(&self, sid: &str) -> String {
        format!("{}revoked:sid:{sid}", self.prefix)
    }

    fn user_key(&self, user: &str) -> String {
        format!("{}revoked:user:{user}", self.prefix)
    }

    /// Revokes one access token until it would have expired.
    pub async fn revoke_token(&self, jti: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: () = c.set_ex(self.jti_key(jti), 1, ACCESS_TOKEN_SECS as u64).await.map_err(redis_error)?;
        Ok(())
    }

    /// Revokes every token of a session.
    pub async fn revoke_session(&self, sid: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: () = c.set_ex(self.sid_key(sid), 1, REFRESH_TOKEN_SECS as u64).await.map_err(redis_error)?;
        Ok(())
    }

    /// Revokes every token of `user` issued in an earlier second than `now_secs`.
    pub async fn revoke_user_before(&self, user: &str, now_secs: i64) -> Result<()> {
        let mut c = self.conn.clone();
        let _: () = c.set_ex(self.user_key(user), now_secs, REFRESH_TOKEN_SECS as u64).await.map_err(redis_error)?;
        Ok(())
    }

    /// Why `claims` are revoked, or `None` when they are not. An unreachable Redis is an error
    /// (the caller fails closed).
    pub async fn check(&self, claims: &Claims) -> Result<Option<&'static str>> {
        let mut c = self.conn.clone();
        let (jti, sid, before): (Option<i64>, Option<i64>, Option<i64>) = redis::cmd("MGET")
            .arg(self.jti_key(&claims.jti))
            .arg(self.sid_key(&claims.sid))
            .arg(self.user_key(&claims.sub))
            .query_async(&mut c)
            .await
            .map_err(redis_error)?;
        Ok(if jti.is_some() {
            Some("token revoked")
        } else if sid.is_some() {
            Some("session revoked")
        } else if before.is_some_and(|b| claims.iat < b) {
            Some("token revoked")
        } else {
            None
        })
    }

    /// `PING`, for readiness.
    pub async fn ping(&self) -> Result<()> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await.map_err(redis_error)?;
        Ok(())
    }
}
