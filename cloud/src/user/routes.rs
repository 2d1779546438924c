//! The user service's routes: authentication (`/api/v1/auth/*`), users and roles, the caller's
//! own profile (`/api/v1/me`) and the token keys (`/api/v1/keys`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::service::{NewUser, ProfilePatch, RefreshFailure, RoleView, UserFilter, UserPatch};
use super::{LoginFailure, TokenPair, UserService, UserView};
use crate::actor::Actor;
use crate::error::{Error, FieldError};
use crate::http::body::ObjectJson;
use crate::http::metrics::ApiMetrics;
use crate::http::ratelimit::RateLimiter;
use crate::http::{Access, ApiJson, ApiPath, ApiRoutes, AppError, Caller, Listing, RequestContext};
use crate::listing::Page;

/// What the user routes need: the service, the rate limiter (logins, reset requests) and the
/// login counters of `/metrics`.
#[derive(Clone)]
pub struct UserApi {
    /// The user service.
    pub users: Arc<UserService>,
    /// Rate limits.
    pub limiter: RateLimiter,
    /// The API's counters.
    pub metrics: Arc<ApiMetrics>,
}

/// The user service's route table.
pub fn routes() -> ApiRoutes<UserApi> {
    ApiRoutes::new()
        .route(Method::POST, "/api/v1/auth/login", Access::Public, post(login))
        .route(Method::POST, "/api/v1/auth/logout", Access::Authenticated, post(logout))
        .route(Method::POST, "/api/v1/auth/refresh", Access::Public, post(refresh))
        .route(Method::POST, "/api/v1/auth/password", Access::Authenticated, post(change_password))
        .route(Method::POST, "/api/v1/auth/password-reset", Access::Public, post(request_reset))
        .route(Method::POST, "/api/v1/auth/password-reset/confirm", Access::Public, post(confirm_reset))
        .route(Method::GET, "/api/v1/users", Access::Permission("user:read"), get(list_users))
        .route(Method::POST, "/api/v1/users", Access::Permission("user:write"), post(create_user))
        .route(Method::GET, "/api/v1/users/:id", Access::Permission("user:read"), get(get_user))
        .route(Method::PATCH, "/api/v1/users/:id", Access::Permission("user:write"), patch(update_user))
        .route(Method::POST, "/api/v1/users/:id/activate", Access::Permission("user:write"), post(activate))
        .route(Method::POST, "/api/v1/users/:id/suspend", Access::Permission("user:write"), post(suspend))
        .route(Method::POST, "/api/v1/users/:id/roles", Access::Permission("role:write"), post(assign_role))
        .route(Method::GET, "/api/v1/me", Access::Authenticated, get(me))
        .route(Method::PATCH, "/api/v1/me", Access::Authenticated, patch(update_me))
        .route(Method::PUT, "/api/v1/me/classroom-pin", Access::Authenticated, put(set_own_classroom_pin))
        .route(
            Method::PUT,
            "/api/v1/users/:id/classroom-pin",
            Access::Permission("user:write"),
            put(reset_classroom_pin),
        )
        .route(
            Method::DELETE,
            "/api/v1/users/:id/classroom-pin",
            Access::Permission("user:write"),
            delete(clear_classroom_pin),
        )
        .route(Method::GET, "/api/v1/roles", Access::Permission("user:read"), get(roles))
        .route(Method::GET, "/api/v1/keys", Access::Public, get(keys))
        .route(Method::POST, "/api/v1/keys/rotate", Access::Permission("role:write"), post(rotate_keys))
}

/// The user routes' part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(
            login,
            logout,
            refresh,
            change_password,
            request_reset,
            confirm_reset,
            list_users,
            create_user,
            get_user,
            update_user,
            activate,
            suspend,
            assign_role,
            me,
            update_me,
            set_own_classroom_pin,
            reset_classroom_pin,
            clear_classroom_pin,
            roles,
            keys,
            rotate_keys
        ),
        components(schemas(
            TokenPair,
            UserView,
            RoleView,
            NewUser,
            UserPatch,
            ProfilePatch,
            ResetAccepted,
            LoginRequest,
            RefreshRequest,
            PasswordChange,
            ResetRequest,
            ResetConfirm,
            SuspendRequest,
            RoleRequest,
            OwnClassroomPin,
            ClassroomPin
        ))
    )]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}

fn actor(ctx: &RequestContext, caller: Option<&Caller>) -> Actor {
    match caller {
        Some(c) => c.actor(ctx),
        None => {
            Actor { user_id: None, correlation_id: Some(ctx.correlation_id.clone()), client_ip: ctx.client_ip.clone() }
        }
    }
}

fn invalid(errors: Vec<FieldError>) -> Result<(), AppError> {
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors).into()) }
}

/// Email and password.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "email": "nobody@example.invalid", "password": "not-a-password" }))]
pub struct LoginRequest {
    /// Compared trimmed and lower-cased; no NUL characters.
    #[schema(pattern = r"^[^\x00]*$")]
    pub email: String,
    #[schema(min_length = 1, max_length = 128)]
    pub password: String,
}

/// Logs in: a token pair, or 401 (unknown email or wrong password), 423 `ACCOUNT_LOCKED`, 403
/// (suspended), 429 (too many attempts from this address).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest, responses((status = 200, description = "A new session's tokens", body = TokenPair), (status = 401, description = "Unknown email or wrong password"), (status = 403, description = "The account is suspended or inactive"), (status = 423, description = "Too many failed logins: locked for a while (`ACCOUNT_LOCKED`, details say until when)"), (status = 429, description = "Too many attempts from this address")))]
async fn login(
    State(state): State<UserApi>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    ObjectJson(body): ObjectJson<LoginRequest>,
) -> Result<Json<TokenPair>, AppError> {
    state.limiter.hit("login", ctx.client_ip.as_deref().unwrap_or("unknown"), state.limiter.login).await?;
    let mut errors = Vec::new();
    if body.email.contains('\0') {
        errors.push(FieldError::new("email", "must not contain NUL characters"));
    }
    if body.password.is_empty() {
        errors.push(FieldError::new("password", "is required"));
    } else if body.password.chars().count() > crate::user::password::MAX_LEN {
        errors.push(FieldError::new("password", "is too long"));
    }
    invalid(errors)?;
    let user_agent =
        headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect());
    let result = state.users.login(&actor(&ctx, None), &body.email, &body.password, user_agent).await;
    let counter = if result.is_ok() { &state.metrics.logins_ok } else { &state.metrics.logins_failed };
    counter.fetch_add(1, Ordering::Relaxed);
    match result {
        Ok(tokens) => Ok(Json(tokens)),
        Err(LoginFailure::InvalidCredentials) => Err(AppError::unauthorized("Invalid email or password")),
        Err(LoginFailure::Locked(until)) => Err(AppError::new(
            StatusCode::LOCKED,
            "ACCOUNT_LOCKED",
            "Too many failed logins; the account is locked for a while",
        )
        .with_details(json!({ "locked_until": until }))),
        Err(LoginFailure::Disabled(status)) => {
            Err(AppError::forbidden("This account is not active").with_details(json!({ "status": status })))
        }
        Err(LoginFailure::Internal(e)) => Err(e.into()),
    }
}

/// Ends the caller's session; its tokens stop working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204, description = "Logged out")))]
async fn logout(
    State(state): State<UserApi>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
) -> Result<StatusCode, AppError> {
    state.users.logout(&caller.actor(&ctx), &caller.user_id, &caller.session_id, &caller.token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A refresh token.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// From the login or the last refresh.
    pub refresh_token: String,
}

/// Exchanges a refresh token for a new pair; the old refresh token is spent (presenting it again
/// revokes the session).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest, responses((status = 200, description = "The new tokens", body = TokenPair), (status = 401, description = "The refresh token is invalid, expired, revoked or spent")))]
async fn refresh(
    State(state): State<UserApi>,
    Extension(ctx): Extension<RequestContext>,
    ObjectJson(body): ObjectJson<RefreshRequest>,
) -> Result<Json<TokenPair>, AppError> {
    match state.users.refresh(&actor(&ctx, None), body.refresh_token.trim()).await {
        Ok(tokens) => Ok(Json(tokens)),
        Err(RefreshFailure::Rejected(why)) => {
            Err(AppError::unauthorized("Invalid refresh token").with_details(json!({ "reason": why })))
        }
        Err(RefreshFailure::Internal(e)) => Err(e.into()),
    }
}

/// The current and the new password.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "current_password": "a-long-password-1", "new_password": "another-password-2" }))]
pub struct PasswordChange {
    #[schema(min_length = 1)]
    pub current_password: String,
    /// 8 to 128 characters, not the current password (422).
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

/// Changes the caller's password; every session ends (log in again).
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = PasswordChange, responses((status = 204, description = "Changed; every session of the user ended"), (status = 403, description = "`current_password` is not the caller's password"), (status = 422, description = "The new password is the current one")))]
async fn change_password(
    State(state): State<UserApi>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ObjectJson(body): ObjectJson<PasswordChange>,
) -> Result<StatusCode, AppError> {
    state
        .users
        .change_password(&caller.actor(&ctx), &caller.user_id, &body.current_password, &body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's password and their new classroom PIN.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "current_password": "a-long-password-1", "pin": "402913" }))]
pub struct OwnClassroomPin {
    #[schema(min_length = 1)]
    pub current_password: String,
    /// 6 to 12 digits, not one digit repeated or a straight run (422).
    #[schema(schema_with = super::classroom_pin::pin_schema)]
    pub pin: String,
}

/// Sets the caller's classroom PIN, which they sign in with at the classroom nodes of the rooms
/// they teach or attend a course in (delivered with the next roster snapshot). Faculty and
/// students only (409 otherwise).
#[utoipa::path(put, path = "/api/v1/me/classroom-pin", tag = "users", request_body = OwnClassroomPin, responses((status = 204, description = "Set"), (status = 403, description = "`current_password` is not the caller's password"), (status = 409, description = "The caller is neither faculty nor a student"), (status = 422, description = "The PIN is too easy to guess")))]
async fn set_own_classroom_pin(
    State(state): State<UserApi>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ObjectJson(body): ObjectJson<OwnClassroomPin>,
) -> Result<StatusCode, AppError> {
    state.users.set_own_classroom_pin(&caller.actor(&ctx), &caller.user_id, &body.current_password, &body.pin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A faculty member's or student's new classroom PIN.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "pin": "583920" }))]
pub struct ClassroomPin {
    /// 6 to 12 digits, not one digit repeated or a straight run (422).
    #[schema(schema_with = super::classroom_pin::pin_schema)]
    pub pin: String,
}

/// Sets (resets) a faculty member's or student's classroom PIN, e.g. one they forgot.
#[utoipa::path(put, path = "/api/v1/users/{id}/classroom-pin", tag = "users", params(("id" = Uuid, Path, description = "User id")), request_body = ClassroomPin, responses((status = 204, description = "Set"), (status = 404, description = "No such user"), (status = 409, description = "The user is neither faculty nor a student"), (status = 422, description = "The PIN is too easy to guess")))]
async fn reset_classroom_pin(
    State(state): State<UserApi>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<String>,
    ObjectJson(body): ObjectJson<ClassroomPin>,
) -> Result<StatusCode, AppError> {
    state.users.reset_classroom_pin(&caller.actor(&ctx), &id, Some(&body.pin)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Clears a faculty member's or student's classroom PIN: the nodes refuse them from their next roster snapshot
/// until a new one is set.
#[utoipa::path(delete, path = "/api/v1/users/{id}/classroom-pin", tag = "users", params(("id" = Uuid, Path, description = "User id")), responses((status = 204, description = "Cleared"), (status = 404, description = "No such user"), (status = 409, description = "The user is neither faculty nor a student")))]
async fn clear_classroom_pin(
    State(state): State<UserApi>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, AppError> {
    state.users.reset_classroom_pin(&caller.actor(&ctx), &id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The account's email.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "email": "a.rao@campus.test" }))]
pub struct ResetRequest {
    #[schema(schema_with = super::service::email_schema)]
    pub email: String,
}

/// The answer to a reset request.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ResetAccepted {
    /// Always `accepted`.
    pub status: String,
    /// Only for an administrator (`user:write`) asking for an active account: the token to hand
    /// over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_token: Option<String>,
}

/// Requests a password reset. Always 202, whether the email exists or not. The user receives an
/// e-mail with a reset link (the notification service); an administrator (`user:write`) instead
/// gets the token in the answer to hand over, and no e-mail is sent.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", request_body = ResetRequest, responses((status = 202, description = "Accepted (whether the account exists or not)", body = ResetAccepted)))]
async fn request_reset(
    State(state): State<UserApi>,
    Extension(ctx): Extension<RequestContext>,
    caller: Option<Extension<Caller>>,
    ObjectJson(body): ObjectJson<ResetRequest>,
) -> Result<Response, AppError> {
    state.limiter.hit("login", ctx.client_ip.as_deref().unwrap_or("unknown"), state.limiter.login).await?;
    let caller = caller.map(|Extension(c)| c);
    let admin = caller.as_ref().is_some_and(|c| c.require("user:write").is_ok());
    let token = state.users.request_reset(&actor(&ctx, caller.as_ref()), &body.email, admin).await?;
    Ok((StatusCode::ACCEPTED, Json(ResetAccepted { status: "accepted".into(), reset_token: token })).into_response())
}

/// A reset token and the new password.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "token": "5f2c0d1e9a7b4c3d8e6f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d", "new_password": "a-new-password-3" }))]
pub struct ResetConfirm {
    /// From the reset e-mail (or the administrator).
    pub token: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

/// Sets a new password with a reset token (once); every session ends.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirm, responses((status = 204, description = "The password is set; every session of the user ended"), (status = 422, description = "The token is invalid, used or expired")))]
async fn confirm_reset(
    State(state): State<UserApi>,
    Extension(ctx): Extension<RequestContext>,
    ObjectJson(body): ObjectJson<ResetConfirm>,
) -> Result<StatusCode, AppError> {
    state.limiter.hit("login", ctx.client_ip.as_deref().unwrap_or("unknown"), state.limiter.login).await?;
    state.users.confirm_reset(&actor(&ctx, None), &body.token, &body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Users, paged, filtered by role, status and text, sorted.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserFilter, crate::listing::Paging<UserFilter>), responses((status = 200, description = "A page of users: items, total, limit, offset")))]
async fn list_users(State(state): State<UserApi>, l: Listing<UserFilter>) -> Result<Json<Page<UserView>>, AppError> {
    Ok(Json(state.users.list_users(&l.filter, l.query).await?))
}

/// Registers a user (admins).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser, responses((status = 201, description = "The new user", body = UserView), (status = 409, description = "The email or register number is taken")))]
async fn create_user(
    State(state): State<UserApi>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ObjectJson(body): ObjectJson<NewUser>,
) -> Result<(StatusCode, Json<UserView>), AppError> {
    let user = state.users.create_user(&caller.actor(&ctx), body).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path, description = "User id")), responses((status = 200, description = "The user", body = UserView), (status = 404, description = "No such user")))]
async fn get_user(State(state): State<UserApi>, ApiPath(id): ApiPath<String>) -> Result<Json<UserView>, AppError> {
    Ok(Json(state.users.get_user(&id).await?))
}

/// Changes a user's email or profile.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path, description = "User id")), request_body = UserPatch, responses((status = 200, description = "The user", body = UserView), (status = 404, description = "No such user"), (status = 409, description = "The email is taken, or is the caller's own")))]
async fn update_user(
    State(state): State<UserApi>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<String>,
    ObjectJson(body): ObjectJson<UserPatch>,
) -> Result<Json<UserView>, AppError> {
    Ok(Json(state.users.update_user(&caller.actor(&ctx), &id, body, false).await?))
}

/// (Re)activates an account and clears any lock.
#[utoipa::path(post, path = "/api/v1/users/{id}/activate", tag = "users", params(("id" = Uuid, Path, description = "User id")), responses((status = 200, description = "The user", body = UserView), (status = 404, description = "No such user")))]
async fn activate(
    State(state): State<UserApi>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UserView>, AppError> {
    Ok(Json(state.users.set_status(&caller.actor(&ctx), &id, true, None).await?))
}

/// Why an account is suspended.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    /// At most 500 characters, no control characters but tab and newline.
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    pub reason: Option<String>,
}

/// Suspends an account; its sessions end at once. The body is optional; when sent it is JSON.
#[utoipa::path(post, path = "/api/v1/users/{id}/suspend", tag = "users", params(("id" = Uuid, Path, description = "User id")), request_body = Option<SuspendRequest>, responses((status = 200, description = "The user", body = UserView), (status = 404, description = "No such user"), (status = 409, description = "The caller's own account")))]
async fn suspend(
    State(state): State<UserApi>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<String>,
    request: axum::extract::Request,
) -> Result<Json<UserView>, AppError> {
    let reason = optional_json::<SuspendRequest>(request).await?.and_then(|b| b.reason);
    Ok(Json(state.users.set_status(&caller.actor(&ctx), &id, false, reason).await?))
}

/// An optional JSON body: none when the request has no body (`Content-Length: 0`, or neither a
/// length nor a `Content-Type`) or the body is JSON `null`, else exactly what [`ObjectJson`]
/// accepts (a broken or non-JSON body is refused, never ignored).
async fn optional_json<T: serde::de::DeserializeOwned>(request: axum::extract::Request) -> Result<Option<T>, AppError> {
    use axum::extract::FromRequest;
    let h = request.headers();
    let declared = |name| h.get(name).is_some();
    let length = h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let empty = length == Some(0)
        || (length.is_none() && !declared(header::CONTENT_TYPE) && !declared(header::TRANSFER_ENCODING));
    if empty {
        return Ok(None);
    }
    let ApiJson(value) = ApiJson::<Value>::from_request(request, &()).await?;
    if value.is_null() {
        return Ok(None);
    }
    crate::http::body::from_object(value).map(Some)
}

/// The role to give.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "role": "faculty" }))]
pub struct RoleRequest {
    #[schema(schema_with = super::service::role_schema)]
    pub role: String,
}

/// Gives a user another role (their tokens are revoked; the role applies from the next login).
/// Nobody changes their own role (409).
#[utoipa::path(post, path = "/api/v1/users/{id}/roles", tag = "users", params(("id" = Uuid, Path, description = "User id")), request_body = RoleRequest, responses((status = 200, description = "The user", body = UserView), (status = 404, description = "No such user"), (status = 409, description = "The caller's own role")))]
async fn assign_role(
    State(state): State<UserApi>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ApiPath(id): ApiPath<String>,
    ObjectJson(body): ObjectJson<RoleRequest>,
) -> Result<Json<UserView>, AppError> {
    Ok(Json(state.users.assign_role(&caller.actor(&ctx), &id, &body.role).await?))
}

/// The caller's own account and profile.
#[utoipa::path(get, path = "/api/v1/me", tag = "users", responses((status = 200, description = "The caller", body = UserView)))]
async fn me(State(state): State<UserApi>, Extension(caller): Extension<Caller>) -> Result<Json<UserView>, AppError> {
    Ok(Json(state.users.get_user(&caller.user_id).await?))
}

/// Changes the caller's own profile (not the email).
#[utoipa::path(patch, path = "/api/v1/me", tag = "users", request_body = ProfilePatch, responses((status = 200, description = "The caller", body = UserView)))]
async fn update_me(
    State(state): State<UserApi>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
    ObjectJson(body): ObjectJson<ProfilePatch>,
) -> Result<Json<UserView>, AppError> {
    Ok(Json(state.users.update_user(&caller.actor(&ctx), &caller.user_id, body.into(), true).await?))
}

/// The roles and their permissions.
#[utoipa::path(get, path = "/api/v1/roles", tag = "users", responses((status = 200, description = "Every role", body = Vec<RoleView>)))]
async fn roles(State(state): State<UserApi>) -> Result<Json<Vec<RoleView>>, AppError> {
    Ok(Json(state.users.roles().await?))
}

/// The public keys that verify user tokens (what classroom nodes receive).
#[utoipa::path(get, path = "/api/v1/keys", tag = "auth", responses((status = 200, description = "Keys snapshot")))]
async fn keys(State(state): State<UserApi>) -> Result<Json<nimbus_core::snapshot::KeysSnapshot>, AppError> {
    Ok(Json(crate::user::key_set(&state.users.pool).await?))
}

/// Rotates the signing key: new tokens use a new key, tokens of the old one stay valid until
/// they expire.
#[utoipa::path(post, path = "/api/v1/keys/rotate", tag = "auth", responses((status = 200, description = "The new key id: `{\"kid\": \"...\"}`")))]
async fn rotate_keys(
    State(state): State<UserApi>,
    Extension(caller): Extension<Caller>,
    Extension(ctx): Extension<RequestContext>,
) -> Result<Json<Value>, AppError> {
    let kid = state.users.keys.rotate().await?;
    tracing::info!(%kid, by = %caller.user_id, correlation_id = %ctx.correlation_id, "signing key rotated");
    Ok(Json(json!({ "kid": kid })))
}
