//! Authentication: the middleware that turns a bearer access token into a [`Caller`] (or an
//! [`AuthFailure`] saying why the token was not accepted) and the in-memory role → permissions
//! table it fills `Caller::permissions` from. It never rejects a request itself; the route
//! table's access layer does (public routes ignore both).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use nimbus_core::token::TokenType;
use tokio_util::sync::CancellationToken;

use super::gateway::ApiState;
use super::{AuthFailure, Caller};
use crate::error::Result;
use crate::user::UserService;

/// Role name → permission names, from `role_permissions`; re-read periodically.
#[derive(Default)]
pub struct PermissionCache {
    table: RwLock<HashMap<String, BTreeSet<String>>>,
}

impl PermissionCache {
    /// Reads the table from the user service's database.
    pub async fn refresh(&self, users: &UserService) -> Result<()> {
        let mut table: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (role, permission) in users.role_permissions().await? {
            table.entry(role).or_default().insert(permission);
        }
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = table;
        Ok(())
    }

    /// The union of the permissions of `roles`.
    pub fn permissions(&self, roles: &[String]) -> BTreeSet<String> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        roles.iter().filter_map(|r| table.get(r)).flatten().cloned().collect()
    }

    /// Re-reads the table, and the signing keys (another instance may have rotated them), every
    /// `every` until `shutdown`.
    pub async fn keep_fresh(self: Arc<Self>, users: Arc<UserService>, every: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.refresh(&users).await {
                tracing::warn!(error = %e, "cannot re-read role permissions; keeping the previous table");
            }
            if let Err(e) = users.keys.reload().await {
                tracing::warn!(error = %e, "cannot re-read the signing keys; keeping the previous ones");
            }
        }
    }
}

/// The token of an `Authorization: Bearer …` header value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

impl ApiState {
    /// The caller behind an access token, or why the token is not accepted.
    pub async fn caller(&self, token: &str) -> std::result::Result<Caller, String> {
        let claims = self.users.keys.verify(token, TokenType::Access).await?;
        match self.users.revocations.check(&claims).await {
            Ok(None) => {}
            Ok(Some(why)) => return Err(why.to_owned()),
            Err(e) => {
                tracing::error!(error = %e, "revocation list unavailable; refusing the token");
                return Err("revocation list unavailable".into());
            }
        }
        Ok(Caller {
            permissions: self.permissions.permissions(&claims.roles),
            user_id: claims.sub,
            roles: claims.roles,
            session_id: claims.sid,
            token_id: claims.jti,
        })
    }
}

/// Inserts a [`Caller`] for a valid bearer access token, an [`AuthFailure`] for any other
/// `Authorization` header that claims to be a bearer token; leaves other requests alone.
pub async fn authenticate(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    let header = request.headers().get(AUTHORIZATION).map(|v| v.to_str().map(str::to_owned));
    match header {
        None => {}
        Some(Err(_)) => {
            request.extensions_mut().insert(AuthFailure("malformed authorization header".into()));
        }
        Some(Ok(value)) => match bearer(&value) {
            Some(token) => match state.caller(token).await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                }
                Err(why) => {
                    request.extensions_mut().insert(AuthFailure(why));
                }
            },
            // Another scheme (a node's Basic credentials on an Access::Node route).
            None => {
                request.extensions_mut().insert(AuthFailure("not a bearer token".into()));
            }
        },
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bearer_headers_carry_a_token() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic dXNlcjpwdw=="), None);
        assert_eq!(bearer("Bearer "), None);
    }

    #[test]
    fn permissions_are_the_union_of_the_roles() {
        let cache = PermissionCache::default();
        cache.table.write().unwrap().insert("student".into(), ["course:read".to_owned()].into());
        cache.table.write().unwrap().insert("device".into(), ["content:sync".to_owned()].into());
        let p = cache.permissions(&["student".into(), "device".into(), "ghost".into()]);
        assert_eq!(p.into_iter().collect::<Vec<_>>(), ["content:sync", "course:read"]);
    }
}
