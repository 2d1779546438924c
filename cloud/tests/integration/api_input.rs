//! Hostile and broken input through the full admin API: malformed JSON, wrong types, missing
//! and unknown fields, field-by-field validation, oversized bodies, wrong content types, unknown
//! routes and methods, and SQL/HTML injection strings in every text field. Each is answered
//! with the seed's AppError and the right status, and a refused request stores nothing.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::api::TestApi;

const HOSTILE: [&str; 5] = [
    "'; DROP TABLE users; --",
    "<script>alert('x')</script>",
    "\" OR 1=1 --",
    "Robert'); DELETE FROM roles;--",
    "$1 %s {{7*7}} ${jndi:ldap://x}",
];

async fn user_count(api: &TestApi) -> i64 {
    let c = api.user_db().get().await.unwrap();
    c.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get(0)
}

fn fields(body: &Value) -> Vec<String> {
    body["details"]["fields"]
        .as_array()
        .map(|a| a.iter().map(|f| f["field"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn broken_bodies_are_validation_errors_naming_the_field_and_store_nothing() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    let before = user_count(&api).await;
    let post = |body: String| api.call_with(Method::POST, "/api/v1/users", Some(&admin), Some(body), &[]);

    let a = post("{\"email\": \"a@b.c\", ".into()).await;
    assert_eq!((a.status, a.body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_ERROR")));

    let a = post(json!({ "email": 5, "password": "long-enough-1", "role": "student" }).to_string()).await;
    assert_eq!((a.status, a.body["details"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("email")), "{}", a.body);

    let a = post(
        json!({ "email": "x@campus.test", "password": "long-enough-1", "role": "student", "register_no": "ten" })
            .to_string(),
    )
    .await;
    assert_eq!(a.body["details"]["field"], "register_no", "{}", a.body);

    let full = json!({ "email": "x@campus.test", "password": "long-enough-1", "role": "student" });
    for missing in ["email", "password", "role"] {
        let mut body = full.clone();
        body.as_object_mut().unwrap().remove(missing);
        let a = post(body.to_string()).await;
        assert_eq!(
            (a.status, a.body["details"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(missing)),
            "{}",
            a.body
        );
    }
    let mut extra = full.clone();
    extra["is_admin"] = json!(true);
    let a = post(extra.to_string()).await;
    assert_eq!((a.status, a.body["details"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("is_admin")));

    // Every invalid field is reported at once.
    let a = post(
        json!({ "email": "not-an-email", "password": "short", "role": "superuser", "register_no": -4 }).to_string(),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(fields(&a.body), ["email", "password", "role", "register_no"]);

    let a = api
        .call_with(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(full.to_string()),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("UNSUPPORTED_MEDIA_TYPE"))
    );

    let huge = json!({ "email": "big@campus.test", "password": "long-enough-1", "role": "student", "first_name": "x".repeat(1_100_000) });
    let a = post(huge.to_string()).await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("PAYLOAD_TOO_LARGE")),
        "{}",
        a.body
    );
    let long = json!({ "email": "long@campus.test", "password": "long-enough-1", "role": "student", "first_name": "x".repeat(101) });
    assert_eq!(fields(&post(long.to_string()).await.body), ["first_name"]);

    assert_eq!(user_count(&api).await, before, "nothing stored on rejection");
    assert!(api.events("USER_CREATED").await.len() as i64 == before, "no event for a refused command");
    api.finish().await;
}

#[tokio::test]
async fn injection_strings_are_rejected_in_emails_and_stored_verbatim_elsewhere() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    let before = user_count(&api).await;
    for (i, hostile) in HOSTILE.iter().enumerate() {
        let a = api
            .call(
                Method::POST,
                "/api/v1/users",
                Some(&admin),
                Some(json!({ "email": format!("{hostile}@campus.test"), "password": "long-enough-1", "role": "student" })),
            )
            .await;
        assert_eq!((a.status, fields(&a.body)), (StatusCode::BAD_REQUEST, vec!["email".to_owned()]), "{hostile}");
        let a = api
            .call(
                Method::POST,
                "/api/v1/users",
                Some(&admin),
                Some(json!({ "email": format!("ok{i}@campus.test"), "password": hostile.repeat(2), "role": hostile })),
            )
            .await;
        assert_eq!(fields(&a.body), ["role"], "{hostile}");
    }
    assert_eq!(user_count(&api).await, before);

    // Names, phone, department and bio keep exactly what was sent.
    for (i, hostile) in HOSTILE.iter().enumerate() {
        let a = api
            .call(
                Method::POST,
                "/api/v1/users",
                Some(&admin),
                Some(json!({
                    "email": format!("hostile{i}@campus.test"), "password": "long-enough-1", "role": "faculty",
                    "first_name": hostile, "last_name": hostile, "phone": hostile, "department": hostile
                })),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{hostile}: {}", a.body);
        let id = a.body["id"].as_str().unwrap().to_owned();
        let token = api.login(&format!("hostile{i}@campus.test"), "long-enough-1").await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let me = api
            .call(
                Method::PATCH,
                "/api/v1/me",
                Some(&token),
                Some(json!({ "bio": hostile, "last_name": format!("{hostile}!") })),
            )
            .await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.body);
        let got = api.call(Method::GET, &format!("/api/v1/users/{id}"), Some(&admin), None).await.body;
        for field in ["first_name", "phone", "department", "bio"] {
            assert_eq!(got[field], *hostile, "{field}");
        }
        assert_eq!(got["last_name"], format!("{hostile}!"));
        // Searching for it finds it as text.
        let q: String = url_encode(hostile);
        let found = api.call(Method::GET, &format!("/api/v1/users?q={q}"), Some(&admin), None).await;
        assert_eq!(found.status, StatusCode::OK, "{}", found.body);
        assert!(found.body["items"].as_array().unwrap().iter().any(|u| u["id"] == id.as_str()));
    }
    assert_eq!(user_count(&api).await, before + HOSTILE.len() as i64, "the tables are intact");
    let roles = api.call(Method::GET, "/api/v1/roles", Some(&admin), None).await;
    assert_eq!(roles.body.as_array().unwrap().len(), 4);
    // Control characters and over-long text are refused, own email cannot be changed (the
    // profile has no such field).
    let (_, token) = api.token_of(&admin, "student").await;
    let a = api.call(Method::PATCH, "/api/v1/me", Some(&token), Some(json!({ "email": "x@y.z" }))).await;
    assert_eq!((a.status, a.body["details"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("email")), "{}", a.body);
    let a = api.call(Method::PATCH, "/api/v1/me", Some(&token), Some(json!({ "bio": "a\u{7}b" }))).await;
    assert_eq!(fields(&a.body), ["bio"], "{} {}", a.status, a.body);
    let a = api.call(Method::PATCH, "/api/v1/me", Some(&token), Some(json!({ "bio": "b".repeat(2001) }))).await;
    assert_eq!(fields(&a.body), ["bio"]);
    api.finish().await;
}

#[tokio::test]
async fn list_parameters_are_checked_and_never_reach_sql_as_text() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    for q in ["sort=email;DROP%20TABLE%20users", "limit=0", "limit=abc", "offset=-1", "role=root", "unknown=1"] {
        let a = api.call(Method::GET, &format!("/api/v1/users?{q}"), Some(&admin), None).await;
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("VALIDATION_ERROR")),
            "{q}: {}",
            a.body
        );
    }
    let a = api.call(Method::GET, "/api/v1/users?sort=-email&limit=1&role=admin", Some(&admin), None).await;
    assert_eq!((a.status, a.body["total"].as_i64(), a.body["limit"].as_i64()), (StatusCode::OK, Some(1), Some(1)));
    api.finish().await;
}

#[tokio::test]
async fn unknown_routes_methods_and_ids_answer_app_errors() {
    let api = TestApi::start().await;
    let admin = api.admin_token().await;
    let a = api.call(Method::GET, "/api/v1/nothing-here", Some(&admin), None).await;
    assert_eq!((a.status, a.body["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")));
    let a = api.call(Method::DELETE, "/api/v1/me", Some(&admin), None).await;
    assert_eq!((a.status, a.body["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("METHOD_NOT_ALLOWED")));
    assert!(a.headers.get("allow").is_some());
    let a = api.call(Method::GET, "/api/v1/users/not-a-uuid", Some(&admin), None).await;
    assert_eq!((a.status, a.body["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")));
    let a = api.call(Method::GET, &format!("/api/v1/users/{}", uuid::Uuid::new_v4()), Some(&admin), None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // Every answer carries a correlation id; a client's own is echoed.
    assert!(a.headers.get("x-correlation-id").is_some());
    let a = api.call_with(Method::GET, "/health", None, None, &[("x-correlation-id", "bad id\twith tab")]).await;
    assert_ne!(a.headers["x-correlation-id"], "bad id\twith tab");
    api.finish().await;
}

fn url_encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}
