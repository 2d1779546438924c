//! The OpenAPI document served at `/openapi.json`.
//!
//! Each service derives its paths with utoipa from the types its handlers deserialize (request
//! bodies, filters, paging), so the document cannot drift from the code. What every route shares
//! is added here from the route table instead of being repeated on 120 handlers: who may call it
//! (`security`), and the answers the gateway itself gives in the seed's `AppError` shape (401 and
//! 403 from the route's access, 400/413/415 from the extractors, 404 for a path naming a missing
//! resource, 429 from the rate limiter, 503 from the request timeout).

use serde_json::{Map, Value, json};
use utoipa::OpenApi as _;

use crate::http::{Access, RouteSpec};

/// The document of every route in `specs`.
pub fn document(specs: &[RouteSpec]) -> Value {
    let mut doc = crate::user::routes::openapi();
    doc.merge(super::health::openapi());
    doc.merge(super::explorer::openapi());
    doc.merge(super::services::openapi());
    doc.merge(crate::content::openapi());
    doc.merge(Shared::openapi());
    doc.info.title = "NimbusU Edge admin API".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "The campus cloud's admin API. Every error is the seed's AppError: `code`, `message` and \
         optional `details`. Send `Authorization: Bearer <access token>` (from `POST \
         /api/v1/auth/login`) to every route that is not public. A request that follows this \
         document but breaks a rule between its fields (an end before its start, a referenced \
         row that does not exist) is 422; text never holds NUL (U+0000), refused with 400."
            .into(),
    );
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    value["components"]["securitySchemes"]["bearerAuth"] =
        json!({ "type": "http", "scheme": "bearer", "bearerFormat": "JWT" });
    value["components"]["securitySchemes"]["nodeAuth"] = json!({ "type": "http", "scheme": "basic" });
    value["security"] = json!([{ "bearerAuth": [] }]);
    if let Some(paths) = value["paths"].as_object_mut() {
        for spec in specs {
            let Some(op) = paths.get_mut(&spec.openapi_path()).and_then(|p| p.get_mut(method_key(spec))) else {
                continue;
            };
            if let Some(op) = op.as_object_mut() {
                complete(op, spec);
            }
        }
    }
    value
}

fn method_key(spec: &RouteSpec) -> String {
    spec.method.as_str().to_ascii_lowercase()
}

/// Routes the rate limiter skips (orchestrators poll them).
fn rate_limited(path: &str) -> bool {
    !matches!(path, "/health" | "/health/ready" | "/metrics")
}

fn complete(op: &mut Map<String, Value>, spec: &RouteSpec) {
    match spec.access {
        Access::Public => {
            op.insert("security".into(), json!([]));
        }
        Access::Node => {
            op.insert("security".into(), json!([{ "nodeAuth": [] }]));
        }
        Access::Authenticated | Access::Permission(_) => {}
    }
    if let Access::Permission(p) = spec.access {
        let note = format!("Requires the permission `{p}`.");
        let description = match op.get("description").and_then(Value::as_str) {
            Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
            _ => note,
        };
        op.insert("description".into(), Value::String(description));
    }
    let has_params = op.get("parameters").and_then(Value::as_array).is_some_and(|p| !p.is_empty());
    let has_path_params = spec.path.contains(':') || spec.path.contains('*');
    let has_body = op.contains_key("requestBody");
    let json_body = op
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_object)
        .is_some_and(|c| c.contains_key("application/json"));
    let mut shared: Vec<(&str, &str)> = Vec::new();
    if has_params || has_body {
        shared.push((
            "400",
            "The request is malformed or a field is invalid (`VALIDATION_ERROR`, details name the fields)",
        ));
    }
    match spec.access {
        Access::Public => {}
        Access::Node => shared.push(("401", "No or wrong node credentials")),
        Access::Authenticated => shared.push(("401", "No, an expired or a revoked access token")),
        Access::Permission(_) => {
            shared.push(("401", "No, an expired or a revoked access token"));
            shared.push(("403", "The caller's roles do not grant the permission"));
        }
    }
    if has_path_params {
        shared.push(("404", "No such resource, or one the caller may not see"));
    }
    if has_body {
        shared.push(("413", "The body is larger than the route accepts"));
    }
    if json_body {
        shared.push(("415", "The body is not `application/json`"));
    }
    if rate_limited(spec.path) {
        shared.push(("429", "Rate limit reached (`Retry-After` says when to retry)"));
    }
    shared.push(("503", "A dependency is unavailable or the request took too long"));
    let responses = op.entry("responses").or_insert_with(|| json!({}));
    let Some(responses) = responses.as_object_mut() else { return };
    for (status, description) in shared {
        responses.entry(status).or_insert_with(|| json!({ "description": description }));
    }
    for (status, answer) in responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if is_error && answer.get("content").is_none() && answer.get("$ref").is_none() {
            answer["content"] =
                json!({ "application/json": { "schema": { "$ref": "#/components/schemas/AppError" } } });
        }
    }
}

/// The seed's error answer.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({ "code": "VALIDATION_ERROR", "message": "Validation failed", "details": { "fields": [{ "field": "email", "message": "is required" }] } }))]
#[allow(dead_code)] // documents `nimbus_core::http::AppError`'s JSON, which core serializes itself
struct AppError {
    /// Machine-readable (`VALIDATION_ERROR`, `NOT_FOUND`, `CONFLICT`, `UNAUTHORIZED`, …).
    code: String,
    /// For people.
    message: String,
    /// Anything that helps: the invalid fields, the conflicting rows, the required permission.
    #[schema(value_type = Option<Object>)]
    details: Option<Value>,
}

#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(AppError)))]
struct Shared;

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;

    #[test]
    fn shared_answers_follow_the_access_of_the_route() {
        let specs = [
            RouteSpec { method: Method::GET, path: "/health", access: Access::Public },
            RouteSpec {
                method: Method::PATCH,
                path: "/api/v1/rooms/:id",
                access: Access::Permission("timetable:write"),
            },
        ];
        let doc = document(&specs);
        let health = &doc["paths"]["/health"]["get"];
        assert_eq!(health["security"], json!([]));
        assert!(health["responses"].get("401").is_none() && health["responses"].get("429").is_none());
        let patch = &doc["paths"]["/api/v1/rooms/{id}"]["patch"];
        for status in ["400", "401", "403", "404", "413", "415", "429", "503"] {
            assert_eq!(
                patch["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/AppError",
                "{status}"
            );
        }
        assert!(patch["description"].as_str().unwrap().contains("timetable:write"));
        assert!(doc["components"]["schemas"]["AppError"]["properties"]["code"].is_object());
    }
}
