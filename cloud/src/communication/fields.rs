//! Field checks of the communication routes that the OpenAPI document states with the same
//! words: plain text (no control characters but newlines and tabs, not blank), text without
//! NUL characters, UUIDs in their hyphenated form, and request bodies that are JSON objects.
//!
//! The generic pieces (exact text patterns, hyphenated UUIDs, object-only JSON) are
//! [`crate::http::fields`]'s, re-exported here under the names the service's routes use.

use utoipa::openapi::Object;
use utoipa::openapi::schema::{ObjectBuilder, Type};

pub use crate::http::fields::{
    ANY_TEXT, Json, TEXT, blank, check_text as text, is_uuid, maybe_object, object, text_schema, uuid_list,
};

/// Plain text a person writes: no control characters but newlines and tabs, not blank
/// ([`plain`]).
pub const PLAIN: &str = r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*$";

/// Whether `value` is [`PLAIN`].
pub fn plain(value: &str) -> bool {
    !blank(value) && !value.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

/// The schema of plain text ([`PLAIN`], [`plain`]) of 1 to `max` characters.
pub fn plain_schema(max: usize) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(PLAIN))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_has_no_control_characters_but_newlines_and_tabs() {
        assert!(plain("a\n\tb") && plain("\u{feff}") && !plain("a\u{7}") && !plain("\u{85}") && !plain(" \u{3000}"));
    }
}
