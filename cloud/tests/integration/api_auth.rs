//! Authentication through the whole admin API (real PostgreSQL and Redis): login and its seed
//! events, account locking, refresh rotation and reuse detection, logout and suspension revoking
//! tokens at once, expired and foreign tokens, key rotation, password change and reset, rate
//! limits, and a cloud token verified by the classroom node's offline verifier.

use nimbus_core::snapshot::KeysSnapshot;

/// The field names of a JSON object, sorted (serde_json may keep insertion order).
fn sorted_keys(v: &serde_json::Value) -> Vec<&String> {
    let mut keys: Vec<&String> = v.as_object().expect("a JSON object").keys().collect();
    keys.sort();
    keys
}

use axum::http::{Method, StatusCode};
use nimbus_core::token::{Claims, ISSUER, TokenType};
use serde_json::{Value, json};

use crate::common::api::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApi, USER_PASSWORD};

fn token(pair: &Value, which: &str) -> String {
    pair[which].as_str().unwrap().to_owned()
}

fn claims_of(api_token: &str) -> Claims {
    let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(api_token).unwrap().claims;
    assert_eq!(claims.iss, ISSUER);
    claims
}

fn kid_of(api_token: &str) -> String {
    jsonwebtoken::decode_header(api_token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn login_issues_eddsa_tokens_and_publishes_login_success_with_the_request_correlation_id() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    let (id, email) = api.user(&admin, "faculty").await;
    let a = api
        .call_with(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": email.to_uppercase(), "password": USER_PASSWORD }).to_string()),
            &[("x-correlation-id", "corr-login-1"), ("x-forwarded-for", "10.1.2.3"), ("user-agent", "tests/1")],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers["x-correlation-id"], "corr-login-1");
    assert_eq!((a.body["token_type"].as_str(), a.body["expires_in"].as_i64()), (Some("Bearer"), Some(3600)));
    assert_eq!(a.body["refresh_expires_in"], 7 * 24 * 3600);
    let access = claims_of(&token(&a.body, "access_token"));
    assert_eq!((access.sub.as_str(), access.typ, access.exp - access.iat), (id.as_str(), TokenType::Access, 3600));
    assert_eq!(access.roles, ["faculty"]);
    let refresh = claims_of(&token(&a.body, "refresh_token"));
    assert_eq!((refresh.typ, refresh.sid.as_str()), (TokenType::Refresh, access.sid.as_str()));
    assert_eq!(
        jsonwebtoken::decode_header(token(&a.body, "access_token")).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA
    );

    let events = api.events("LOGIN_SUCCESS").await;
    let e = events.iter().find(|e| e["payload"]["user_id"] == id.as_str()).expect("LOGIN_SUCCESS in the outbox");
    assert_eq!(e["correlation_id"], "corr-login-1");
    assert_eq!(e["service_name"], "user-service");
    let p = &e["payload"];
    let keys = sorted_keys(p);
    assert_eq!(
        keys,
        [
            "device_type",
            "email",
            "expires_at",
            "ip_address",
            "login_at",
            "role_name",
            "session_id",
            "user_agent",
            "user_id"
        ],
        "every field of the seed's LoginSuccessPayload, even the empty ones"
    );
    assert_eq!((p["email"].as_str(), p["role_name"].as_str()), (Some(email.as_str()), Some("faculty")));
    assert_eq!((p["session_id"].as_str(), p["ip_address"].as_str()), (Some(access.sid.as_str()), Some("10.1.2.3")));
    assert_eq!(p["user_agent"], "tests/1");

    let me = api.call(Method::GET, "/api/v1/me", Some(&token(&a.body, "access_token")), None).await;
    assert_eq!((me.status, me.body["email"].as_str()), (StatusCode::OK, Some(email.as_str())));
    assert!(me.body.get("password_hash").is_none());
    api.finish().await;
}

#[tokio::test]
async fn failed_logins_lock_the_account_after_the_limit_with_exact_events() {
    let api = TestApi::start_with(|c| c.api.max_failed_logins = 3).await;
    let admin = api.admin_token().await;
    let (id, email) = api.user(&admin, "student").await;
    let unknown = api
        .call(Method::POST, "/api/v1/auth/login", None, Some(json!({ "email": "nobody@campus.test", "password": "x" })))
        .await;
    assert_eq!((unknown.status, unknown.body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED")));
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let a = api
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({ "email": email, "password": "wrong-password" })),
            )
            .await;
        statuses.push(a.status);
    }
    assert_eq!(statuses, [StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::LOCKED]);
    // Even the right password is refused while locked.
    let a = api
        .call(Method::POST, "/api/v1/auth/login", None, Some(json!({ "email": email, "password": USER_PASSWORD })))
        .await;
    assert_eq!((a.status, a.body["code"].as_str()), (StatusCode::LOCKED, Some("ACCOUNT_LOCKED")));
    assert!(a.body["details"]["locked_until"].is_string());

    let failed: Vec<Value> = api
        .events("LOGIN_FAILED")
        .await
        .into_iter()
        .map(|e| e["payload"].clone())
        .filter(|p| p["email"] == email.as_str())
        .collect();
    let seen: Vec<(u64, bool, &str)> = failed
        .iter()
        .map(|p| {
            (
                p["attempt_count"].as_u64().unwrap(),
                p["is_account_locked"].as_bool().unwrap(),
                p["failure_reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, false, "invalid_credentials"),
            (2, false, "invalid_credentials"),
            (3, true, "invalid_credentials"),
            (3, true, "account_locked")
        ]
    );
    let keys = sorted_keys(&failed[0]);
    assert_eq!(
        keys,
        ["attempt_count", "attempted_at", "email", "failure_reason", "ip_address", "is_account_locked", "user_agent"],
        "every field of the seed's LoginFailedPayload, even the empty ones"
    );
    let locked = api.events("ACCOUNT_LOCKED").await;
    assert_eq!(locked.len(), 1);
    let p = &locked[0]["payload"];
    assert_eq!((p["user_id"].as_str(), p["failed_attempts"].as_u64()), (Some(id.as_str()), Some(3)));
    assert!(p["locked_at"].is_string() && p["locked_until"].is_string());

    // An administrator's activation lifts the lock.
    let a = api.call(Method::POST, &format!("/api/v1/users/{id}/activate"), Some(&admin), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    api.login(&email, USER_PASSWORD).await;
    api.finish().await;
}

#[tokio::test]
async fn refresh_rotates_and_reusing_a_spent_refresh_token_revokes_the_session() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    let (id, email) = api.user(&admin, "student").await;
    let first = api.login(&email, USER_PASSWORD).await;
    let r1 = token(&first, "refresh_token");
    let second = api.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({ "refresh_token": r1 }))).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_ne!(token(&second.body, "refresh_token"), r1);
    assert_eq!(second.body["session_id"], first["session_id"]);
    let refreshed = api.events("TOKEN_REFRESHED").await;
    assert_eq!(refreshed.len(), 1);
    let keys = sorted_keys(&refreshed[0]["payload"]);
    assert_eq!(keys, ["expires_at", "refreshed_at", "session_id", "user_id"]);
    assert_eq!(refreshed[0]["payload"]["user_id"], id.as_str());

    // An access token is not a refresh token.
    let wrong = api
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": token(&first, "access_token") })),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    // Reuse of the spent token: refused, and the whole session dies.
    let reuse = api.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({ "refresh_token": r1 }))).await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    assert!(reuse.body["details"]["reason"].as_str().unwrap().contains("reuse"), "{}", reuse.body);
    let r2 = token(&second.body, "refresh_token");
    let after = api.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({ "refresh_token": r2 }))).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    let me = api.call(Method::GET, "/api/v1/me", Some(&token(&second.body, "access_token")), None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    // An access token may not be used as a refresh token at the gateway either.
    let me = api.call(Method::GET, "/api/v1/me", Some(&r2), None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    api.finish().await;
}

#[tokio::test]
async fn logout_and_suspension_revoke_tokens_at_once() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    let (_, email) = api.user(&admin, "faculty").await;
    let pair = api.login(&email, USER_PASSWORD).await;
    let access = token(&pair, "access_token");
    assert_eq!(api.call(Method::GET, "/api/v1/me", Some(&access), None).await.status, StatusCode::OK);
    let out = api
        .call_with(Method::POST, "/api/v1/auth/logout", Some(&access), None, &[("x-correlation-id", "corr-logout")])
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let me = api.call(Method::GET, "/api/v1/me", Some(&access), None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me.body["details"]["reason"], "token revoked");
    let r = api
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": token(&pair, "refresh_token") })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Classroom nodes learn of it with their next keys snapshot and refuse the token offline.
    let snapshot = nimbus_cloud::user::key_set(api.user_db()).await.unwrap();
    let sid =
        nimbus_edge::token::KeySet::from_snapshot(&KeysSnapshot { revoked_sessions: Vec::new(), ..snapshot.clone() })
            .verify(&access, chrono::Utc::now().timestamp())
            .expect("signature and expiry alone would accept it")
            .sid;
    assert!(snapshot.revoked_sessions.contains(&sid), "{:?}", snapshot.revoked_sessions);
    let node_keys = nimbus_edge::token::KeySet::from_snapshot(&snapshot);
    assert!(node_keys.verify(&access, chrono::Utc::now().timestamp()).is_err(), "a node refuses the logged-out token");
    let logout = api.events("LOGOUT").await;
    assert_eq!(logout.last().unwrap()["correlation_id"], "corr-logout");
    assert_eq!(logout.last().unwrap()["payload"]["reason"], "manual");

    // Suspension: every session of the user ends, and login is refused.
    let (id, email) = api.user(&admin, "student").await;
    let a = token(&api.login(&email, USER_PASSWORD).await, "access_token");
    let b = token(&api.login(&email, USER_PASSWORD).await, "access_token");
    let s = api
        .call(Method::POST, &format!("/api/v1/users/{id}/suspend"), Some(&admin), Some(json!({ "reason": "test" })))
        .await;
    assert_eq!((s.status, s.body["status"].as_str()), (StatusCode::OK, Some("suspended")));
    for t in [&a, &b] {
        assert_eq!(api.call(Method::GET, "/api/v1/me", Some(t), None).await.status, StatusCode::UNAUTHORIZED);
    }
    let l = api
        .call(Method::POST, "/api/v1/auth/login", None, Some(json!({ "email": email, "password": USER_PASSWORD })))
        .await;
    assert_eq!(l.status, StatusCode::FORBIDDEN);
    let suspended = api.events("USER_SUSPENDED").await;
    assert_eq!(suspended[0]["payload"]["reason"], "test");
    assert_eq!(suspended[0]["payload"]["status"], "suspended");
    api.finish().await;
}

#[tokio::test]
async fn expired_foreign_and_malformed_tokens_are_401_with_a_reason() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    let mut claims = claims_of(&admin);
    claims.iat -= 7200;
    claims.exp -= 7200;
    claims.jti = uuid::Uuid::new_v4().to_string();
    let expired = api.state.users.keys.sign(&claims).unwrap();
    let a = api.call(Method::GET, "/api/v1/users", Some(&expired), None).await;
    assert_eq!((a.status, a.body["details"]["reason"].as_str()), (StatusCode::UNAUTHORIZED, Some("token expired")));
    assert_eq!(a.headers["www-authenticate"], "Bearer");

    // Signed by a key the cloud does not have, under the cloud's own kid.
    let (_, der, _) = nimbus_cloud::user::keys::generate().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid_of(&admin));
    let forged =
        jsonwebtoken::encode(&header, &claims_of(&admin), &jsonwebtoken::EncodingKey::from_ed_der(&der)).unwrap();
    let a = api.call(Method::GET, "/api/v1/users", Some(&forged), None).await;
    assert_eq!((a.status, a.body["details"]["reason"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid token")));
    // Under an unknown kid.
    header.kid = Some("k-unknown".into());
    let foreign =
        jsonwebtoken::encode(&header, &claims_of(&admin), &jsonwebtoken::EncodingKey::from_ed_der(&der)).unwrap();
    let a = api.call(Method::GET, "/api/v1/users", Some(&foreign), None).await;
    assert_eq!(
        (a.status, a.body["details"]["reason"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unknown signing key"))
    );
    let a = api.call(Method::GET, "/api/v1/users", Some("not.a.jwt"), None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = api.call(Method::GET, "/api/v1/users", None, None).await;
    assert_eq!((a.status, a.body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED")));
    assert_eq!(api.call(Method::GET, "/api/v1/users", Some(&admin), None).await.status, StatusCode::OK);
    api.finish().await;
}

#[tokio::test]
async fn key_rotation_signs_with_the_new_key_and_old_tokens_stay_valid() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    let old_kid = kid_of(&admin);
    let r = api.call(Method::POST, "/api/v1/keys/rotate", Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new_kid = r.body["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(api.call(Method::GET, "/api/v1/users", Some(&admin), None).await.status, StatusCode::OK);
    let fresh = api.admin_token().await;
    assert_eq!(kid_of(&fresh), new_kid);
    let keys = api.call(Method::GET, "/api/v1/keys", None, None).await;
    assert_eq!(keys.status, StatusCode::OK);
    let kids: Vec<&str> = keys.body["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);
    assert!(keys.body["keys"].as_array().unwrap().iter().all(|k| k["alg"] == "EdDSA" && k.get("d").is_none()));
    api.finish().await;
}

#[tokio::test]
async fn a_cloud_token_verifies_offline_on_the_node_with_the_downlink_keys() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    let (id, email) = api.user(&admin, "student").await;
    let access = token(&api.login(&email, USER_PASSWORD).await, "access_token");
    let snapshot = nimbus_cloud::user::key_set(api.user_db()).await.unwrap();
    let keys = nimbus_edge::token::KeySet::from_snapshot(&snapshot);
    let now = chrono::Utc::now().timestamp();
    let claims = keys.verify(&access, now).expect("the node accepts the cloud's access token");
    assert_eq!((claims.sub.as_str(), claims.roles.as_slice()), (id.as_str(), ["student".to_owned()].as_slice()));
    assert!(keys.verify(&access, now + 7200).is_err(), "expired on the node too");
    let refresh = token(&api.login(&email, USER_PASSWORD).await, "refresh_token");
    assert!(keys.verify(&refresh, now).is_err(), "the node accepts access tokens only");
    // After a rotation the node (with the new snapshot) accepts old and new tokens.
    api.state.users.keys.rotate().await.unwrap();
    let rotated = nimbus_edge::token::KeySet::from_snapshot(&nimbus_cloud::user::key_set(api.user_db()).await.unwrap());
    let newer = token(&api.login(&email, USER_PASSWORD).await, "access_token");
    assert!(rotated.verify(&access, now).is_ok() && rotated.verify(&newer, now).is_ok());
    api.finish().await;
}

#[tokio::test]
async fn password_change_revokes_sessions_and_the_old_password() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    let (id, email) = api.user(&admin, "faculty").await;
    let access = token(&api.login(&email, USER_PASSWORD).await, "access_token");
    let bad = api
        .call(
            Method::POST,
            "/api/v1/auth/password",
            Some(&access),
            Some(json!({ "current_password": "not-it-at-all", "new_password": "a-new-password-2" })),
        )
        .await;
    // The caller failed to prove who they are: 403 (the request itself is well-formed).
    assert_eq!(bad.status, StatusCode::FORBIDDEN, "{}", bad.body);
    assert!(bad.body["details"]["reason"].as_str().unwrap().contains("current_password"), "{}", bad.body);
    let same = api
        .call(
            Method::POST,
            "/api/v1/auth/password",
            Some(&access),
            Some(json!({ "current_password": USER_PASSWORD, "new_password": USER_PASSWORD })),
        )
        .await;
    assert_eq!(
        (same.status, same.body["details"]["fields"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("new_password")),
        "the same password again breaks a rule between the fields"
    );
    let short = api
        .call(
            Method::POST,
            "/api/v1/auth/password",
            Some(&access),
            Some(json!({ "current_password": USER_PASSWORD, "new_password": "short" })),
        )
        .await;
    assert_eq!(short.body["details"]["fields"][0]["field"], "new_password");
    let ok = api
        .call(
            Method::POST,
            "/api/v1/auth/password",
            Some(&access),
            Some(json!({ "current_password": USER_PASSWORD, "new_password": "a-new-password-2" })),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.body);
    assert_eq!(api.call(Method::GET, "/api/v1/me", Some(&access), None).await.status, StatusCode::UNAUTHORIZED);
    let old = api
        .call(Method::POST, "/api/v1/auth/login", None, Some(json!({ "email": email, "password": USER_PASSWORD })))
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let fresh = token(&api.login(&email, "a-new-password-2").await, "access_token");
    assert_eq!(api.call(Method::GET, "/api/v1/me", Some(&fresh), None).await.status, StatusCode::OK);
    let changed = api.events("PASSWORD_CHANGED").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["payload"]["user_id"], id.as_str());
    api.finish().await;
}

#[tokio::test]
async fn a_reset_token_sets_a_new_password_once_and_is_stored_hashed() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    let (_, email) = api.user(&admin, "student").await;
    // Anyone may ask; only an administrator gets the token back; unknown emails look the same.
    let anon = api.call(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({ "email": email }))).await;
    assert_eq!(anon.status, StatusCode::ACCEPTED);
    assert!(anon.body.get("reset_token").is_none());
    let unknown = api
        .call(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({ "email": "ghost@campus.test" })))
        .await;
    assert_eq!((unknown.status, &unknown.body), (StatusCode::ACCEPTED, &anon.body));
    let issued =
        api.call(Method::POST, "/api/v1/auth/password-reset", Some(&admin), Some(json!({ "email": email }))).await;
    let reset = issued.body["reset_token"].as_str().unwrap().to_owned();
    let c = api.user_db().get().await.unwrap();
    let stored: Vec<String> =
        c.query("SELECT token_hash FROM password_reset_tokens", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert!(!stored.contains(&reset), "the token itself is never stored");
    let requested = api.events("PASSWORD_RESET_REQUESTED").await;
    assert!(!requested.iter().any(|e| e.to_string().contains(&reset)), "events carry the token id only");

    let confirm = |t: String| {
        api.call(
            Method::POST,
            "/api/v1/auth/password-reset/confirm",
            None,
            Some(json!({ "token": t, "new_password": "reset-password-3" })),
        )
    };
    assert_eq!(confirm(reset.clone()).await.status, StatusCode::NO_CONTENT);
    api.login(&email, "reset-password-3").await;
    let again = confirm(reset).await;
    assert_eq!(
        (again.status, again.body["details"]["fields"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("token")),
        "a used token names no usable reset"
    );
    assert_eq!(api.events("PASSWORD_RESET_COMPLETED").await.len(), 1);
    api.finish().await;
}

#[tokio::test]
async fn too_many_logins_or_requests_are_429_with_retry_after() {
    let api = TestApi::start_with(|c| {
        c.api.rate_limit_login = 2;
        c.api.rate_limit_ip = 5;
    })
    .await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    let body = || Some(json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }).to_string());
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let a = api.call_with(Method::POST, "/api/v1/auth/login", None, body(), &from("10.9.9.1")).await;
        statuses.push(a.status);
        last = Some(a);
    }
    assert_eq!(statuses, [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]);
    let last = last.unwrap();
    assert_eq!(last.body["code"], "TOO_MANY_REQUESTS");
    let retry: u64 = last.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=61).contains(&retry), "{retry}");
    // Another address may still log in; the general per-address limit applies to every route.
    let other = api.call_with(Method::POST, "/api/v1/auth/login", None, body(), &from("10.9.9.2")).await;
    assert_eq!(other.status, StatusCode::OK);
    let mut general = Vec::new();
    for _ in 0..6 {
        general.push(api.call_with(Method::GET, "/api/v1/keys", None, None, &from("10.9.9.3")).await.status);
    }
    assert_eq!(general.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count(), 1);
    assert_eq!(api.call_with(Method::GET, "/health", None, None, &from("10.9.9.3")).await.status, StatusCode::OK);
    let metrics = api.call_with(Method::GET, "/metrics", None, None, &from("10.9.9.3")).await;
    assert_eq!(metrics.status, StatusCode::OK);
    api.finish().await;
}

#[tokio::test]
async fn faculty_set_their_classroom_pin_admins_reset_and_clear_it_and_the_nodes_get_only_its_hash() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    let (faculty, faculty_token) = api.token_of(&admin, "faculty").await;
    let (student, student_token) = api.token_of(&admin, "student").await;
    let (_, other_admin_token) = api.token_of(&admin, "admin").await;
    let own = |pin: &str, password: &str| json!({ "current_password": password, "pin": pin });
    let set_own = |token: String, body: Value| {
        let api = &api;
        async move { api.call(Method::PUT, "/api/v1/me/classroom-pin", Some(&token), Some(body)).await }
    };

    // Malformed (400), too easy to guess (422, a rule the document cannot state), or without the
    // right password (403): refused, naming the field.
    for (body, field, status, code) in [
        (own("123456", USER_PASSWORD), "pin", StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR"),
        (own("4029", USER_PASSWORD), "pin", StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
        (own("40291x", USER_PASSWORD), "pin", StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
        (own("402913", "not-my-password"), "current_password", StatusCode::FORBIDDEN, "FORBIDDEN"),
        (own("402913", ""), "current_password", StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
    ] {
        let a = set_own(faculty_token.clone(), body.clone()).await;
        assert_eq!(a.status, status, "{body}: {}", a.body);
        assert_eq!(a.body["code"], code);
        assert!(a.body.to_string().contains(field), "{field}: {}", a.body);
    }
    let both = [faculty.clone(), student.clone()];
    let credentials = || nimbus_cloud::user::classroom_credentials(api.user_db(), &both);
    assert_eq!(credentials().await.unwrap()[0].pin_hash, None, "nothing stored by refused attempts");

    let a = set_own(faculty_token.clone(), own("402913", USER_PASSWORD)).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let found = credentials().await.unwrap();
    assert_eq!(found.len(), 1, "only faculty have classroom credentials: {found:?}");
    let hash = found[0].pin_hash.clone().expect("a hash");
    assert!(hash.starts_with("$argon2id$") && !hash.contains("402913"), "{hash}");
    assert!(nimbus_edge::auth::verify_pin("402913", &hash), "the node verifies what the cloud hashed");
    assert_eq!(found[0].email, found[0].email.to_lowercase());
    assert!(found[0].staff_number.parse::<i64>().is_ok());

    // Students have one too (the node's student page); their credentials are listed apart.
    let a = set_own(student_token.clone(), own("715024", USER_PASSWORD)).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let students = nimbus_cloud::user::student_credentials(api.user_db(), &both).await.unwrap();
    assert_eq!(students.len(), 1, "only the student: {students:?}");
    assert_eq!(students[0].user_id, student);
    assert!(nimbus_edge::auth::verify_pin("715024", students[0].pin_hash.as_deref().unwrap()));
    assert!(students[0].staff_number.parse::<i64>().is_ok(), "their register number");
    assert_eq!(credentials().await.unwrap().len(), 1, "still only faculty among faculty credentials");
    // Other roles have none; an administrator is told so.
    let a = set_own(other_admin_token.clone(), own("402913", USER_PASSWORD)).await;
    assert_eq!((a.status, a.body["code"].as_str()), (StatusCode::CONFLICT, Some("CONFLICT")), "{}", a.body);

    // The admin resets it (forgotten PIN) and clears it; the events say only whether one is set.
    let path = format!("/api/v1/users/{faculty}/classroom-pin");
    let a = api.call(Method::PUT, &path, Some(&admin), Some(json!({ "pin": "583920" }))).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let hash = credentials().await.unwrap()[0].pin_hash.clone().unwrap();
    assert!(nimbus_edge::auth::verify_pin("583920", &hash) && !nimbus_edge::auth::verify_pin("402913", &hash));
    let a = api.call(Method::PUT, &path, Some(&faculty_token), Some(json!({ "pin": "583921" }))).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "faculty cannot reset anyone's PIN: {}", a.body);
    let a = api.call(Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_eq!(credentials().await.unwrap()[0].pin_hash, None);
    let unknown = format!("/api/v1/users/{}/classroom-pin", uuid::Uuid::new_v4());
    assert_eq!(api.call(Method::DELETE, &unknown, Some(&admin), None).await.status, StatusCode::NOT_FOUND);

    let changes: Vec<Value> = api
        .events("USER_UPDATED")
        .await
        .into_iter()
        .chain(api.events("PROFILE_UPDATED").await)
        .filter(|e| e["payload"]["user_id"] == faculty.as_str())
        .map(|e| e["payload"]["changes"]["classroom_pin"].clone())
        .collect();
    assert_eq!(
        changes,
        [
            json!({ "old_value": "set", "new_value": "set" }),
            json!({ "old_value": "set", "new_value": "not set" }),
            json!({ "old_value": "not set", "new_value": "set" }),
        ],
        "admin reset, admin clear (USER_UPDATED), then the faculty's own (PROFILE_UPDATED)"
    );
    let outbox = api.user_db().get().await.unwrap().query("SELECT payload FROM event_outbox", &[]).await.unwrap();
    assert!(
        outbox.iter().all(|r| !r.get::<_, &str>(0).contains("$argon2") && !r.get::<_, &str>(0).contains("583920")),
        "no PIN or hash in any event"
    );
    api.finish().await;
}
