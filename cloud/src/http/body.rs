//! The JSON body of a request, refused unless it is a JSON object.
//!
//! `ApiJson<T>` deserializes a struct from a JSON array too (serde's derive accepts a struct's
//! fields as a sequence), so `[null, null]` would be taken for an empty `PATCH`, although the
//! document says the body is an object. [`ObjectJson`] reads the body as `ApiJson` does (same
//! 400/413/415 answers), then refuses anything but an object and deserializes `T` from it with
//! the failing field named. The user and content routes use it for every JSON body.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::http::{ApiJson, AppError};

/// A JSON object body deserialized into `T`; anything else is a 400 `VALIDATION_ERROR`.
#[derive(Debug, Clone)]
pub struct ObjectJson<T>(pub T);

#[axum::async_trait]
impl<T, S> FromRequest<S> for ObjectJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let ApiJson(value) = ApiJson::<Value>::from_request(req, state).await?;
        from_object(value).map(ObjectJson)
    }
}

/// `T` from `value`, which must be a JSON object.
pub fn from_object<T: DeserializeOwned>(value: Value) -> Result<T, AppError> {
    if !value.is_object() {
        return Err(AppError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Invalid request body")
            .with_details(json!({ "problem": "the body must be a JSON object" })));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let problem = e.inner().to_string();
        let field = if path != "." && !path.is_empty() { Some(path) } else { named_field(&problem) };
        let mut details = json!({ "problem": problem });
        let message = match field {
            Some(f) => {
                let message = format!("Invalid request body: field `{f}`");
                details["field"] = Value::String(f);
                message
            }
            None => "Invalid request body".to_owned(),
        };
        AppError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message).with_details(details)
    })
}

/// The field a "missing field `x`" / "unknown field `x`" message names.
fn named_field(problem: &str) -> Option<String> {
    ["missing field `", "unknown field `"].iter().find_map(|marker| {
        let rest = &problem[problem.find(marker)? + marker.len()..];
        Some(rest[..rest.find('`')?].to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Patch {
        name: Option<String>,
        size: Option<i32>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct New {
        email: String,
    }

    fn field(e: &AppError) -> Option<String> {
        let m = e.message();
        Some(m[m.find('`')? + 1..m.rfind('`')?].to_owned())
    }

    #[test]
    fn only_an_object_is_a_body() {
        assert_eq!(from_object::<Patch>(json!({ "size": 3 })).unwrap(), Patch { name: None, size: Some(3) });
        for not_an_object in [json!([null, null]), json!(null), json!("x"), json!(3)] {
            let e = from_object::<Patch>(not_an_object.clone()).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{not_an_object}");
        }
    }

    #[test]
    fn the_failing_field_is_named() {
        let e = from_object::<Patch>(json!({ "size": "big" })).unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("size"));
        let e = from_object::<Patch>(json!({ "colour": 1 })).unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("colour"));
        let e = from_object::<New>(json!({})).unwrap_err();
        assert_eq!(field(&e).as_deref(), Some("email"));
    }
}
