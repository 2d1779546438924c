//! # HTTP plumbing every service's routes share (a low floor: it imports no service and no role)
//!
//! - the seed's [`AppError`] (from `nimbus_core::http`) and the one mapping of the crate's
//!   [`Error`] onto it (`From<Error> for AppError`), so the same error answers the same status
//!   on every route and handlers just use `?`;
//! - [`Caller`] (who is calling, set by the gateway's authentication) and [`RequestContext`]
//!   (correlation id, client address), both in every request's extensions;
//! - [`routes`]: the route table ([`ApiRoutes`], [`Access`], [`RouteSpec`]): every route declared
//!   once with the access it needs;
//! - [`extract`]: request extractors ([`Listing`], [`Params`], [`Acting`]) whose rejections are
//!   `AppError`s; [`body`]: [`body::ObjectJson`], a JSON body that must be an object;
//! - [`schema`] and [`fields`]: a field's check and its description in the OpenAPI document from
//!   one place (enumerations from the validators' tables, exact text, time and date patterns);
//! - [`state`]: [`ServicesState`], the pools of the service databases the routes share;
//! - [`ratelimit`]: the Redis rate limiter; [`metrics`]: the one metrics registry of a process;
//!   [`probe`]: `/health`, `/health/ready` and `/metrics` for every role.

use std::collections::BTreeSet;

pub mod body;
pub mod extract;
pub mod fields;
pub mod metrics;
pub mod probe;
pub mod ratelimit;
pub mod routes;
pub mod schema;
pub mod state;

use axum::http::StatusCode;
pub use nimbus_core::http::{ApiForm, ApiJson, ApiPath, AppError};
use serde_json::json;

use crate::actor::Actor;
use crate::error::Error;
pub use extract::{Acting, Listing, Params};
pub use routes::{Access, ApiRoutes, AuthFailure, RouteSpec};
pub use state::ServicesState;

/// The access token a [`Caller`] came with, beside it in the request: a long-lived connection
/// (the live socket) re-checks it for revocation and expiry.
#[derive(Clone)]
pub struct Bearer(pub String);

/// Who is calling: set by the authentication middleware from a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user id (token `sub`).
    pub user_id: String,
    /// The user's roles (`admin`, `faculty`, `student`, `device`).
    pub roles: Vec<String>,
    /// The permissions of those roles, from the `role_permissions` table (`course:write`, …).
    pub permissions: BTreeSet<String>,
    /// The login session the token belongs to.
    pub session_id: String,
    /// The token id.
    pub token_id: String,
}

impl Caller {
    /// `Ok` when the caller holds `permission`, else 403 `FORBIDDEN` naming it.
    pub fn require(&self, permission: &str) -> Result<(), AppError> {
        if self.permissions.contains(permission) {
            Ok(())
        } else {
            Err(AppError::forbidden("You do not have permission for this action")
                .with_details(json!({ "required_permission": permission })))
        }
    }

    /// The caller acting within `ctx`, for the commands' events (`correlation_id`, actor).
    pub fn actor(&self, ctx: &RequestContext) -> Actor {
        Actor {
            user_id: Some(self.user_id.clone()),
            correlation_id: Some(ctx.correlation_id.clone()),
            client_ip: ctx.client_ip.clone(),
        }
    }

    /// Whether the caller has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Per-request context, present on every request (authenticated or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The `X-Correlation-ID` the client sent, or a new UUID; echoed in the response and carried
    /// into events as `correlation_id`.
    pub correlation_id: String,
    /// The client's address, for rate limiting and activity logs.
    pub client_ip: Option<String>,
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        match e {
            Error::Validation(fields) => {
                AppError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Validation failed")
                    .with_details(json!({ "fields": fields }))
            }
            Error::Unprocessable(fields) => {
                AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR", "The fields break a rule together")
                    .with_details(json!({ "fields": fields }))
            }
            Error::NotFound { what, id } => {
                AppError::not_found(format!("{what} not found")).with_details(json!({ "resource": what, "id": id }))
            }
            Error::Conflict { message, details } => AppError::conflict("CONFLICT", message).with_details(details),
            Error::Unauthenticated(why) => {
                tracing::debug!(%why, "unauthenticated request");
                AppError::unauthorized("Authentication required")
            }
            Error::Forbidden(why) => AppError::forbidden("Access denied").with_details(json!({ "reason": why })),
            Error::TooLarge { limit } => AppError::payload_too_large(Some(limit)),
            Error::UnsupportedMedia { declared, detected } => AppError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "The file's type is not allowed or does not match its content",
            )
            .with_details(json!({ "declared": declared, "detected": detected })),
            e @ Error::Store { .. } => {
                tracing::error!(error = %e, "content store failed");
                AppError::unavailable("The content store is unavailable")
            }
            other => AppError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldError;

    #[test]
    fn domain_errors_map_to_the_seed_codes_and_statuses() {
        let v = AppError::from(Error::Validation(vec![FieldError::new("email", "is not an email address")]));
        assert_eq!((v.status(), v.code()), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"));
        let n = AppError::from(Error::NotFound { what: "course", id: "x".into() });
        assert_eq!((n.status(), n.code()), (StatusCode::NOT_FOUND, "NOT_FOUND"));
        let c = AppError::from(Error::Conflict { message: "room booked".into(), details: json!({}) });
        assert_eq!(c.status(), StatusCode::CONFLICT);
        let i = AppError::from(Error::Config("secret".into()));
        assert_eq!((i.status(), i.message()), (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"));
    }

    #[test]
    fn a_caller_without_the_permission_is_forbidden() {
        let caller = Caller {
            user_id: "u".into(),
            roles: vec!["student".into()],
            permissions: ["content:read".to_owned()].into(),
            session_id: "s".into(),
            token_id: "t".into(),
        };
        assert!(caller.require("content:read").is_ok());
        assert_eq!(caller.require("user:write").unwrap_err().status(), StatusCode::FORBIDDEN);
    }
}
