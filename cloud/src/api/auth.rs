//! Authentication: the middleware that turns a bearer access token into a [`Caller`] (or an
//! [`AuthFailure`] saying why the token was not accepted), with `Caller::permissions` from the
//! user service's role → permissions table ([`crate::user::permissions::PermissionCache`]). It
//! never rejects a request itself; the route table's access layer does (public routes ignore
//! both).

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use axum::middleware::Next;
use axum::response::Response;
use nimbus_core::token::TokenType;

use super::state::ApiState;
use crate::http::{AuthFailure, Bearer, Caller};

/// The WebSocket subprotocol that carries an access token (`bearer.<token>`).
pub const SUBPROTOCOL_PREFIX: &str = "bearer.";

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

impl crate::communication::live::Tokens for ApiState {
    fn still_valid<'a>(
        &'a self,
        token: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<(), String>> + Send + 'a>> {
        Box::pin(async move { self.caller(token).await.map(|_| ()) })
    }
}

/// Inserts a [`Caller`] (and its [`Bearer`]) for a valid bearer access token — from the
/// `Authorization` header or a WebSocket's `bearer.<token>` subprotocol — an [`AuthFailure`] for any other
/// `Authorization` header that claims to be a bearer token; leaves other requests alone.
pub async fn authenticate(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    let header = request.headers().get(AUTHORIZATION).map(|v| v.to_str().map(str::to_owned));
    // A browser's WebSocket cannot send headers: it offers `bearer.<token>` as a subprotocol.
    let header = header.or_else(|| {
        let offered = request.headers().get(SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
        offered.split(',').find_map(|p| p.trim().strip_prefix(SUBPROTOCOL_PREFIX)).map(|t| Ok(format!("Bearer {t}")))
    });
    match header {
        None => {}
        Some(Err(_)) => {
            request.extensions_mut().insert(AuthFailure("malformed authorization header".into()));
        }
        Some(Ok(value)) => match bearer(&value) {
            Some(token) => match state.caller(token).await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    request.extensions_mut().insert(Bearer(token.to_owned()));
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
}
