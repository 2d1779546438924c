//! Field checks of the announcement routes that the OpenAPI document states with the same
//! words: non-blank text without NUL characters, UUIDs in their hyphenated form, and request
//! bodies that are JSON objects.
//!
//! The generic pieces (exact text patterns, hyphenated UUIDs, object-only JSON) are
//! [`crate::http::fields`]'s, re-exported here under the names the service's routes use.

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};

pub use crate::http::fields::{
    Json, TEXT, blank, check_text as text, is_uuid, maybe_object, object, text_schema, uuid_list,
};

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
