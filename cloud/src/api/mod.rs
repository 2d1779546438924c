//! # The admin REST API (`nimbus-cloud api`, the seed's API Gateway on 8080)
//!
//! Every answer that is not a success is the seed's [`AppError`] JSON. Authentication middleware
//! validates the bearer token and puts a [`Caller`] into the request's extensions; every handler
//! states the permission it needs with [`Caller::require`], so RBAC is checked on every route.
//! A [`RequestContext`] (correlation id, client address) is in the extensions of every request
//! and is carried into the `correlation_id` of every event the request causes.

use std::collections::BTreeSet;

pub mod auth;
pub mod gateway;
pub mod health;
pub mod metrics;
pub mod ratelimit;
pub mod routes;
pub mod services;
pub mod users;

use axum::http::StatusCode;
pub use nimbus_core::http::{ApiForm, ApiJson, ApiPath, AppError};
use serde_json::json;

use crate::actor::Actor;
use crate::error::Error;
pub use gateway::{ApiState, app, openapi, run};
pub use routes::{Access, ApiRoutes, AuthFailure, RouteSpec};

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
            Error::NotFound { what, id } => {
                AppError::not_found(format!("{what} not found")).with_details(json!({ "resource": what, "id": id }))
            }
            Error::Conflict { message, details } => AppError::conflict("CONFLICT", message).with_details(details),
            Error::Unauthenticated(why) => {
                tracing::debug!(%why, "unauthenticated request");
                AppError::unauthorized("Authentication required")
            }
            Error::Forbidden(why) => AppError::forbidden("Access denied").with_details(json!({ "reason": why })),
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
