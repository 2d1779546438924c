//! Field checks of the announcement routes that the OpenAPI document states with the same
//! words: non-blank text without NUL characters, UUIDs in their hyphenated form, and request
//! bodies that are JSON objects.
//!
//! "Blank" is what `str::trim` strips (Unicode `White_Space`). `\s` means something else in each
//! regex engine (ECMAScript's has U+FEFF and lacks U+0085, Python's has U+001C–U+001F), so the
//! patterns spell the characters out, as the course service's do.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde_json::{Map, Value};
use utoipa::openapi::Object;
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};

use crate::error::FieldError;

/// Non-blank text without NUL characters (the `pattern` of a required text field).
pub const TEXT: &str =
    r"^[^\u0000]*[^\u0000\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$";

/// Whether `s` is empty or only whitespace (Unicode `White_Space`, as `str::trim` strips it).
pub fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// A required text field: not blank, at most `max` characters, no NUL ([`TEXT`]).
pub fn text(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) {
    if value.contains('\0') {
        errors.push(FieldError::new(field, "must not contain NUL characters"));
    } else if blank(value) {
        errors.push(FieldError::new(field, "is required"));
    } else if value.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
    }
}

/// Whether `s` is a UUID as JSON Schema's `format: uuid` has it: hyphenated, 36 characters
/// (`Uuid::parse_str` also takes the simple, braced and URN forms).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

fn string(nullable: bool) -> SchemaType {
    if nullable { SchemaType::from_iter([Type::String, Type::Null]) } else { SchemaType::new(Type::String) }
}

/// The schema of required text ([`TEXT`], [`text`]): 1 to `max` characters (unbounded: `None`).
pub fn text_schema(max: Option<usize>, nullable: bool) -> Object {
    ObjectBuilder::new().schema_type(string(nullable)).min_length(Some(1)).max_length(max).pattern(Some(TEXT)).build()
}

/// A list of UUIDs ([`is_uuid`]).
pub fn uuid_list() -> ArrayBuilder {
    ArrayBuilder::new().items(
        ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
    )
}

/// A list of non-blank names of 1 to 64 characters.
pub fn name_list() -> ArrayBuilder {
    ArrayBuilder::new().items(
        ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(64)).pattern(Some(TEXT)),
    )
}

/// A list of strings, each one of `values`.
pub fn enum_list(values: &[&str]) -> ArrayBuilder {
    ArrayBuilder::new().items(crate::http::schema::one_of(values))
}

/// A list of integers from `min` to `max`.
pub fn int_list(min: i32, max: i32) -> ArrayBuilder {
    ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(min)).maximum(Some(max)))
}

/// A JSON object read as `T`. Serde reads a struct from an array of its fields' values as well
/// (`[null, null]`), which the document (`type: object`) forbids; this refuses anything but an
/// object. The request bodies are `ApiJson<Json<T>>`; nested objects use [`object`].
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Json<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object(d).map(Json)
    }
}

/// `#[serde(deserialize_with)]` of a nested object (see [`Json`]).
pub fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    let map = Map::<String, Value>::deserialize(d)?;
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." { D::Error::custom(inner) } else { D::Error::custom(format!("{path}: {inner}")) }
    })
}

/// `#[serde(default, deserialize_with)]` of an optional nested object: `null` is `None`.
pub fn maybe_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    match Option::<Map<String, Value>>::deserialize(d)? {
        None => Ok(None),
        Some(map) => object(Value::Object(map)).map(Some).map_err(D::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_hyphenated_and_blank_is_unicode_white_space() {
        assert!(is_uuid("00000000-0000-0000-0000-00000000000A"));
        assert!(!is_uuid("00000000000000000000000000000000") && !is_uuid("{00000000-0000-0000-0000-000000000000}"));
        assert!(blank(" \u{85}") && !blank("\u{feff}"));
    }

    #[test]
    fn objects_only() {
        #[derive(Debug, Deserialize)]
        struct T {
            #[serde(default)]
            _a: Option<bool>,
        }
        assert!(serde_json::from_str::<Json<T>>("{}").is_ok());
        assert!(serde_json::from_str::<Json<T>>("[null]").is_err());
        assert!(serde_json::from_str::<T>("[null]").is_ok(), "serde's own");
    }
}
