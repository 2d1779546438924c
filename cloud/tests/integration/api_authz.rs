//! Authorization over the full app (`nimbus_cloud::api::app`: the user routes, the services'
//! and content routes, probes): every declared route is walked with no token, an expired token,
//! a token signed by another key, a revoked token, and a token of each role. Routes added later
//! are covered automatically, since the walk iterates the route specs.

use axum::http::{Method, StatusCode};
use nimbus_cloud::http::Access;
use nimbus_core::token::Claims;
use serde_json::json;

use crate::common::api::{TestApi, USER_PASSWORD, fill_path};

fn body_for(method: &Method) -> Option<serde_json::Value> {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}))
}

#[tokio::test]
async fn every_route_demands_a_valid_unrevoked_token_and_the_right_permission() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    assert!(api.specs.len() >= 22, "the walk must see the whole route table, saw {}", api.specs.len());

    // Tokens that must never pass.
    let mut claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(&admin).unwrap().claims;
    claims.iat -= 7200;
    claims.exp -= 7200;
    let expired = api.state.users.keys.sign(&claims).unwrap();
    let (_, der, _) = nimbus_cloud::user::keys::generate().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = jsonwebtoken::decode_header(&admin).unwrap().kid;
    let fresh_claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(&admin).unwrap().claims;
    let foreign = jsonwebtoken::encode(&header, &fresh_claims, &jsonwebtoken::EncodingKey::from_ed_der(&der)).unwrap();
    let (_, revoked) = api.token_of(&admin, "admin").await;
    assert_eq!(
        api.call(Method::POST, "/api/v1/auth/logout", Some(&revoked), None).await.status,
        StatusCode::NO_CONTENT
    );
    let bad =
        [("no token", None), ("expired", Some(expired)), ("foreign key", Some(foreign)), ("revoked", Some(revoked))];

    let mut roles = Vec::new();
    for role in ["admin", "faculty", "student", "device"] {
        let (_, email) = api.user(&admin, role).await;
        roles.push((role, email));
    }
    let mut tokens: Vec<String> = Vec::new();
    for (_, email) in &roles {
        tokens.push(api.login(email, USER_PASSWORD).await["access_token"].as_str().unwrap().to_owned());
    }

    let mut checked = 0;
    for spec in api.specs.clone() {
        let uri = fill_path(spec.path);
        let what = format!("{} {}", spec.method, spec.path);
        match spec.access {
            Access::Public => {
                let a = api.call(spec.method.clone(), &uri, None, body_for(&spec.method)).await;
                assert!(
                    a.status != StatusCode::UNAUTHORIZED && a.status != StatusCode::FORBIDDEN,
                    "{what} is public but answered {} without a token: {}",
                    a.status,
                    a.body
                );
                continue;
            }
            Access::Node => {
                let a = api.call(spec.method.clone(), &uri, None, body_for(&spec.method)).await;
                assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what} is a node route: no credentials, no access");
                continue;
            }
            Access::Authenticated | Access::Permission(_) => {}
        }
        for (name, token) in &bad {
            let a = api.call(spec.method.clone(), &uri, token.as_deref(), body_for(&spec.method)).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what} with {name}: {}", a.body);
            assert_eq!(a.body["code"], "UNAUTHORIZED", "{what} with {name}");
        }
        for (i, (role, email)) in roles.iter().enumerate() {
            let allowed = match spec.access {
                Access::Permission(p) => api.state.permissions.permissions(&[role.to_string()]).contains(p),
                _ => true,
            };
            let a = api.call(spec.method.clone(), &uri, Some(&tokens[i]), body_for(&spec.method)).await;
            if allowed {
                assert!(
                    a.status != StatusCode::UNAUTHORIZED && a.status != StatusCode::FORBIDDEN,
                    "{what} as {role} (allowed) answered {}: {}",
                    a.status,
                    a.body
                );
            } else {
                assert_eq!(a.status, StatusCode::FORBIDDEN, "{what} as {role} (not allowed): {}", a.body);
                assert_eq!(a.body["code"], "FORBIDDEN");
                if let Access::Permission(p) = spec.access {
                    assert_eq!(a.body["details"]["required_permission"], p);
                }
            }
            if *role == "student" && !allowed {
                assert!(!a.status.is_success(), "a student reached {what}");
            }
            // Routes such as logout or password change may end the session: log in again.
            if api.call(Method::GET, "/api/v1/me", Some(&tokens[i]), None).await.status != StatusCode::OK {
                tokens[i] = api.login(email, USER_PASSWORD).await["access_token"].as_str().unwrap().to_owned();
            }
            checked += 1;
        }
    }
    assert!(checked >= 4 * 13, "walked {checked} protected route/role pairs");
    api.finish().await;
}

#[tokio::test]
async fn a_student_cannot_reach_any_admin_route() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    let (_, student) = api.token_of(&admin, "student").await;
    let student_permissions = api.state.permissions.permissions(&["student".to_owned()]);
    assert_eq!(
        student_permissions.iter().map(String::as_str).collect::<Vec<_>>(),
        ["content:read", "course:read", "timetable:read"]
    );
    for spec in
        api.specs.iter().filter(|s| matches!(s.access, Access::Permission(p) if !student_permissions.contains(p)))
    {
        let a = api.call(spec.method.clone(), &fill_path(spec.path), Some(&student), body_for(&spec.method)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{} {}", spec.method, spec.path);
    }
    // Nothing a student attempted changed anything: still exactly the bootstrap admin and the student.
    let c = api.user_db().get().await.unwrap();
    let users: i64 = c.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get(0);
    assert_eq!(users, 2);
    api.finish().await;
}
