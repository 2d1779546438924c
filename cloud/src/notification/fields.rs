//! Field checks of the notification routes that the OpenAPI document states with the same
//! words: text without NUL characters (PostgreSQL refuses them), non-blank text, and the
//! channels, priorities and recipient types of the seed's commands as enumerations.
//!
//! "Blank" is what `str::trim` strips (Unicode `White_Space`). `\s` means something else in each
//! regex engine (ECMAScript's has U+FEFF and lacks U+0085, Python's has U+001C–U+001F), so the
//! patterns spell the characters out, as the course service's do.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde_json::{Map, Value};
use utoipa::openapi::Object;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};

use crate::error::FieldError;

/// Text without NUL characters (the `pattern` of a field that may be empty).
pub const ANY_TEXT: &str = r"^[^\u0000]*$";

/// Non-blank text without NUL characters (the `pattern` of a required text field).
pub const TEXT: &str =
    r"^[^\u0000]*[^\u0000\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$";

/// The channels, as [`super::channels::channel_of`] knows them.
pub const CHANNELS: &[&str] = &["email", "sms", "push", "in_app"];

/// The priorities of the seed's commands.
pub const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];

/// Who a bulk command goes to (the seed's `RecipientType`).
pub const RECIPIENT_TYPES: &[&str] = &["all", "department", "course", "group"];

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

/// A date of the API: `YYYY-MM-DD` exactly (RFC 3339 `full-date`, the document's `format: date`
/// as JSON Schema validators check it); chrono's own parser also takes signs, longer years and
/// one-digit months and days.
fn parse_date<E: serde::de::Error>(s: &str) -> Result<chrono::NaiveDate, E> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    shape
        .then(|| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| E::custom(format!("invalid date {s:?}: expected YYYY-MM-DD")))
}

/// `#[serde(default, deserialize_with)]` for an optional date (`YYYY-MM-DD`).
pub fn strict_date_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<chrono::NaiveDate>, D::Error> {
    let s = <Option<std::borrow::Cow<'de, str>> as Deserialize>::deserialize(d)?;
    s.map(|s| parse_date(&s)).transpose()
}

/// Whether `s` is empty or only whitespace (Unicode `White_Space`, as `str::trim` strips it).
pub fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// Refuses NUL characters in `value`.
pub fn no_nul(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    if value.contains('\0') {
        errors.push(FieldError::new(field, "must not contain NUL characters"));
    }
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

fn string(nullable: bool) -> SchemaType {
    if nullable { SchemaType::from_iter([Type::String, Type::Null]) } else { SchemaType::new(Type::String) }
}

/// The schema of required text ([`TEXT`], [`text`]): 1 to `max` characters (unbounded: `None`).
pub fn text_schema(max: Option<usize>, nullable: bool) -> Object {
    ObjectBuilder::new().schema_type(string(nullable)).min_length(Some(1)).max_length(max).pattern(Some(TEXT)).build()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_unicode_white_space() {
        assert!(blank("") && blank(" \t\n\u{a0}\u{2028}\u{85}"));
        assert!(!blank("\u{feff}") && !blank("\u{1c}") && !blank(" a "));
        let mut e = Vec::new();
        text(&mut e, "a", "x\0", 10);
        text(&mut e, "b", "   ", 10);
        text(&mut e, "c", &"é".repeat(11), 10);
        text(&mut e, "d", &"é".repeat(10), 10);
        let fields: Vec<&str> = e.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["a", "b", "c"]);
    }

    #[test]
    fn dates_are_exactly_yyyy_mm_dd() {
        #[derive(Deserialize)]
        struct Q {
            #[serde(default, deserialize_with = "strict_date_opt")]
            on: Option<chrono::NaiveDate>,
        }
        let parse = |s: &str| serde_urlencoded::from_str::<Q>(s).map(|q| q.on);
        assert_eq!(parse("on=0000-01-31").unwrap(), chrono::NaiveDate::from_ymd_opt(0, 1, 31));
        assert_eq!(parse("").unwrap(), None);
        for bad in ["on=2026-1-5", "on=+2026-01-05", "on=%202026-01-05", "on=2026-02-30", "on=12026-01-05"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
