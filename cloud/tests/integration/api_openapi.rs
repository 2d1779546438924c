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
