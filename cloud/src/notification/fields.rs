//! Field checks of the notification routes that the OpenAPI document states with the same
//! words: text without NUL characters (PostgreSQL refuses them), non-blank text, and the
//! channels, priorities and recipient types of the seed's commands as enumerations.
//!
//! The generic pieces (exact text patterns, hyphenated UUIDs, object-only JSON) are
//! [`crate::http::fields`]'s, re-exported here under the names the service's routes use.

use utoipa::openapi::Object;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};

use crate::error::FieldError;

pub use crate::http::fields::{ANY_TEXT, Json, TEXT, blank, check_text as text, object, strict_date_opt, text_schema};

/// The channels, as [`super::channels::channel_of`] knows them.
pub const CHANNELS: &[&str] = &["email", "sms", "push", "in_app"];

/// The priorities of the seed's commands.
pub const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];

/// Who a bulk command goes to (the seed's `RecipientType`).
pub const RECIPIENT_TYPES: &[&str] = &["all", "department", "course", "group"];

/// Refuses NUL characters in `value`.
pub fn no_nul(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    if value.contains('\0') {
        errors.push(FieldError::new(field, "must not contain NUL characters"));
    }
}

/// `channel`: one of [`CHANNELS`].
pub fn channel() -> Object {
    crate::http::schema::one_of(CHANNELS)
}

/// `channels`: one or more of [`CHANNELS`].
pub fn channel_list() -> ArrayBuilder {
    ArrayBuilder::new().items(channel()).min_items(Some(1))
}

/// `priority`: one of [`PRIORITIES`].
pub fn priority() -> Object {
    crate::http::schema::one_of(PRIORITIES)
}

/// `recipient_type`: one of [`RECIPIENT_TYPES`].
pub fn recipient_type() -> Object {
    crate::http::schema::one_of(RECIPIENT_TYPES)
}

/// An optional list of texts without NUL characters.
pub fn maybe_texts() -> ArrayBuilder {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(ANY_TEXT)))
}

/// An optional list of semester numbers (0–255, the seed's `u8`).
pub fn maybe_semesters() -> ArrayBuilder {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(255)))
}
