//! The route table: every API route is declared once, with the access it needs, through
//! [`ApiRoutes`]. The declaration both registers the handler with axum and records a
//! [`RouteSpec`], so RBAC cannot be forgotten on a route (the access check is a layer on the route
//! itself, not a call the handler must remember), the authorization test can walk every route
//! with every role, and CI can compare the OpenAPI document with the routes that really exist.
//!
//! Authentication is separate: the gateway's authentication middleware runs before routing and
//! puts a [`Caller`] (valid token) or an [`AuthFailure`] (a token was sent but is invalid,
//! expired, revoked, …) into the request's extensions; it never rejects by itself. The layer of
//! each route then decides: no caller → 401, caller without the permission → 403.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use serde_json::json;

use super::{AppError, Caller};

/// What a route demands of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, no token (login, health, the OpenAPI document).
    Public,
    /// Any valid access token, whatever its roles (own profile, logout).
    Authenticated,
    /// A valid access token whose roles grant this permission (`course:write`, …).
    Permission(&'static str),
    /// A classroom node authenticating itself with its registry credentials (HTTP Basic); the
    /// handler checks them, the bearer-token layer does not apply.
    Node,
}

/// Why a sent token was not accepted; the authentication middleware stores it so the 401 can say
/// so (`expired`, `revoked`, `bad signature`, …) without the route knowing about tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure(pub String);

/// One declared route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The HTTP method.
    pub method: Method,
    /// The axum path (`/api/v1/courses/:id`).
    pub path: &'static str,
    /// What the route demands.
    pub access: Access,
}

impl RouteSpec {
    /// The path in OpenAPI form (`/api/v1/courses/{id}`).
    pub fn openapi_path(&self) -> String {
        self.path
            .split('/')
            .map(|seg| match seg.strip_prefix(':').or_else(|| seg.strip_prefix('*')) {
                Some(name) => format!("{{{name}}}"),
                None => seg.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// A router plus the specs of its routes; domain modules build one each and the gateway merges
/// them.
pub struct ApiRoutes<S = ()> {
    router: Router<S>,
    specs: Vec<RouteSpec>,
}

impl<S: Clone + Send + Sync + 'static> Default for ApiRoutes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> ApiRoutes<S> {
    /// No routes yet.
    pub fn new() -> Self {
        ApiRoutes { router: Router::new(), specs: Vec::new() }
    }

    /// Declares `method path` with `access`, served by `handler` (e.g. `get(list_rooms)`; only
    /// `method` of it is routed). Several methods on one path are several declarations.
    pub fn route(mut self, method: Method, path: &'static str, access: Access, handler: MethodRouter<S>) -> Self {
        let handler = match access {
            Access::Public | Access::Node => handler,
            Access::Authenticated | Access::Permission(_) => {
                handler.route_layer(middleware::from_fn_with_state(access, check_access))
            }
        };
        self.router = self.router.route(path, handler);
        self.specs.push(RouteSpec { method, path, access });
        self
    }

    /// Adds all of `other`'s routes.
    pub fn merge(mut self, other: ApiRoutes<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.specs.extend(other.specs);
        self
    }

    /// Supplies the state, so routers of different states can be merged.
    pub fn with_state<S2: Clone + Send + Sync + 'static>(self, state: S) -> ApiRoutes<S2> {
        ApiRoutes { router: self.router.with_state(state), specs: self.specs }
    }

    /// The declared routes.
    pub fn specs(&self) -> &[RouteSpec] {
        &self.specs
    }

    /// Splits into the axum router and the specs.
    pub fn into_parts(self) -> (Router<S>, Vec<RouteSpec>) {
        (self.router, self.specs)
    }
}

/// The per-route access layer: 401 without a valid token (saying why when a token was sent),
/// 403 naming the missing permission.
async fn check_access(State(access): State<Access>, request: Request, next: Next) -> Response {
    let Some(caller) = request.extensions().get::<Caller>() else {
        let mut err = AppError::unauthorized("Authentication required");
        if let Some(AuthFailure(why)) = request.extensions().get::<AuthFailure>() {
            err = err.with_details(json!({ "reason": why }));
        }
        return err.into_response();
    };
    if let Access::Permission(permission) = access
        && let Err(e) = caller.require(permission)
    {
        return e.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    use super::*;

    fn caller(permissions: &[&str]) -> Caller {
        Caller {
            user_id: "u1".into(),
            roles: vec!["faculty".into()],
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            session_id: "s".into(),
            token_id: "t".into(),
        }
    }

    fn table() -> ApiRoutes {
        ApiRoutes::new()
            .route(Method::GET, "/open", Access::Public, get(|| async { "open" }))
            .route(Method::GET, "/things/:id", Access::Permission("thing:read"), get(|| async { "read" }))
            .route(Method::POST, "/things/:id", Access::Permission("thing:write"), post(|| async { "written" }))
    }

    async fn status(caller: Option<Caller>, method: Method, uri: &str) -> StatusCode {
        let mut req = axum::http::Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
        if let Some(c) = caller {
            req.extensions_mut().insert(c);
        }
        table().into_parts().0.oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn each_method_of_a_path_demands_its_own_permission() {
        assert_eq!(status(None, Method::GET, "/open").await, StatusCode::OK);
        assert_eq!(status(None, Method::GET, "/things/1").await, StatusCode::UNAUTHORIZED);
        let reader = caller(&["thing:read"]);
        assert_eq!(status(Some(reader.clone()), Method::GET, "/things/1").await, StatusCode::OK);
        assert_eq!(status(Some(reader), Method::POST, "/things/1").await, StatusCode::FORBIDDEN);
        assert_eq!(status(Some(caller(&["thing:write"])), Method::POST, "/things/1").await, StatusCode::OK);
    }

    #[test]
    fn specs_record_every_declaration_with_openapi_paths() {
        let specs = table().into_parts().1;
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[1].openapi_path(), "/things/{id}");
        assert_eq!(specs[2].access, Access::Permission("thing:write"));
    }
}
