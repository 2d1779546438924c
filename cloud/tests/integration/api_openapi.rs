//! The OpenAPI document served at `/openapi.json` describes exactly the routes that exist: the
//! set of (method, path) in it equals the set of declared route specs of the full app.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};

use crate::common::api::TestApi;

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_declared_routes() {
    let api = TestApi::start().await;
    let a = api.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in a.body["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete", "head", "options"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let declared: BTreeSet<(String, String)> =
        api.specs.iter().map(|s| (s.method.as_str().to_owned(), s.openapi_path())).collect();
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&declared).collect();
    assert!(undocumented.is_empty(), "routes missing from /openapi.json: {undocumented:?}");
    assert!(phantom.is_empty(), "/openapi.json documents routes that do not exist: {phantom:?}");
    api.finish().await;
}

#[tokio::test]
async fn no_route_is_declared_twice() {
    let api = TestApi::start().await;
    let mut seen = BTreeSet::new();
    for s in &api.specs {
        assert!(seen.insert((s.method.clone(), s.path)), "{} {} declared twice", s.method, s.path);
    }
    api.finish().await;
}

#[tokio::test]
async fn every_error_answer_is_documented_in_the_app_error_shape_and_every_list_is_bounded() {
    let api = TestApi::start().await;
    let doc = api.call(Method::GET, "/openapi.json", None, None).await.body;
    let error = &doc["components"]["schemas"]["AppError"];
    assert_eq!(error["required"], serde_json::json!(["code", "message"]), "{error}");
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let responses = op["responses"].as_object().unwrap();
            // A WebSocket route succeeds by switching protocols.
            assert!(responses.keys().any(|s| s.starts_with('2') || s == "101"), "{method} {path} documents no success");
            for (status, answer) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        answer["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/AppError",
                        "{method} {path} {status}"
                    );
                }
            }
            if op["security"] != serde_json::json!([]) {
                assert!(responses.contains_key("401"), "{method} {path}: an authenticated route answers 401");
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    assert!(responses.contains_key("404"), "{method} {path}: a path parameter can name nothing");
                }
                if p["name"] == "limit" {
                    assert_eq!(
                        (p["schema"]["minimum"].as_i64(), p["schema"]["maximum"].as_i64()),
                        (Some(1), Some(200))
                    );
                }
                if p["name"] == "sort" {
                    assert!(p["schema"]["enum"].as_array().is_some_and(|e| !e.is_empty()), "{method} {path} sort");
                }
            }
            if op.get("requestBody").is_some() {
                assert!(responses.contains_key("400") && responses.contains_key("413"), "{method} {path}");
            }
        }
    }
    assert!(operations > 100, "{operations} operations");
    api.finish().await;
}
