//! Text and date fields every service's routes share: each check here has a schema that states
//! exactly what it accepts, for the OpenAPI derives (`#[schema(schema_with = ...)]`,
//! `#[param(schema_with = ...)]`), so the document and the validation cannot drift apart.
//!
//! Two things the plain `\S` pattern does not say: PostgreSQL refuses text holding a NUL
//! character (so a NUL is a 400 here, not the database's 500), and "blank" is what `str::trim`
//! strips (Unicode `White_Space`), which `\s` means differently in ECMA, Python and Rust regexes.
//! The patterns therefore spell both out.

use chrono::{Datelike, NaiveDate};
use utoipa::openapi::Object;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};

use crate::error::FieldError;

/// The characters `str::trim` strips (Unicode `White_Space`), as inclusive ranges.
const BLANK: &[(char, char)] = &[
    ('\t', '\r'),
    (' ', ' '),
    ('\u{85}', '\u{85}'),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

/// Text without NUL characters (may be empty or blank).
pub const NO_NUL: &str = r"^[^\u0000]*$";

/// The pattern of required text ([`check_text`]): no NUL, and at least one character that is
/// neither NUL nor blank.
pub fn text_pattern() -> String {
    let esc = |c: char| format!("\\u{:04x}", c as u32);
    let blank: String =
        BLANK.iter().map(|(a, b)| if a == b { esc(*a) } else { format!("{}-{}", esc(*a), esc(*b)) }).collect();
    format!(r"^[^\u0000]*[^\u0000{blank}][^\u0000]*$")
}

fn string_type(nullable: bool) -> SchemaType {
    if nullable { SchemaType::from_iter([Type::String, Type::Null]) } else { SchemaType::new(Type::String) }
}

/// Required text of at most `max` characters ([`check_text`]).
pub fn text(max: usize, nullable: bool) -> Object {
    ObjectBuilder::new()
        .schema_type(string_type(nullable))
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(text_pattern()))
        .build()
}

/// Free text: anything without a NUL character ([`check_free_text`]), at most `max` characters
/// when given.
pub fn free_text(max: Option<usize>, nullable: bool) -> Object {
    ObjectBuilder::new().schema_type(string_type(nullable)).max_length(max).pattern(Some(NO_NUL)).build()
}

/// Non-blank text without NUL characters, the `pattern` of a required text field: the same
/// characters as [`text_pattern`] (tested), as a constant for the derives.
pub const TEXT: &str =
    r"^[^\u0000]*[^\u0000\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$";

/// Text without NUL characters (the `pattern` of a field that may be empty).
pub const ANY_TEXT: &str = NO_NUL;

/// Whether `s` is empty or only whitespace (Unicode `White_Space`, as `str::trim` strips it).
pub fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// The schema of required text ([`TEXT`], [`check_text`]): 1 to `max` characters (unbounded:
/// `None`).
pub fn text_schema(max: Option<usize>, nullable: bool) -> Object {
    ObjectBuilder::new()
        .schema_type(string_type(nullable))
        .min_length(Some(1))
        .max_length(max)
        .pattern(Some(TEXT))
        .build()
}

/// Whether `s` is a UUID as JSON Schema's `format: uuid` has it: hyphenated, 36 characters
/// (`Uuid::parse_str` also takes the simple, braced and URN forms).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

/// A list of UUIDs ([`is_uuid`]).
pub fn uuid_list() -> utoipa::openapi::schema::ArrayBuilder {
    utoipa::openapi::schema::ArrayBuilder::new().items(
        ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
    )
}

/// A JSON object read as `T`. Serde reads a struct from an array of its fields' values as well
/// (`[null, null]`), which the document (`type: object`) forbids; this refuses anything but an
/// object. Request bodies are `ApiJson<Json<T>>` (or [`super::body::ObjectJson`]); nested
/// objects use [`object`].
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<'de, T: serde::de::DeserializeOwned> serde::Deserialize<'de> for Json<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object(d).map(Json)
    }
}

/// `#[serde(deserialize_with)]` of a nested object (see [`Json`]).
pub fn object<'de, D: serde::Deserializer<'de>, T: serde::de::DeserializeOwned>(d: D) -> Result<T, D::Error> {
    use serde::de::Error as _;
    let map = <serde_json::Map<String, serde_json::Value> as serde::Deserialize>::deserialize(d)?;
    serde_path_to_error::deserialize(serde_json::Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." { D::Error::custom(inner) } else { D::Error::custom(format!("{path}: {inner}")) }
    })
}

/// `#[serde(default, deserialize_with)]` of an optional nested object: `null` is `None`.
pub fn maybe_object<'de, D: serde::Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    use serde::de::Error as _;
    match <Option<serde_json::Map<String, serde_json::Value>> as serde::Deserialize>::deserialize(d)? {
        None => Ok(None),
        Some(map) => object(serde_json::Value::Object(map)).map(Some).map_err(D::Error::custom),
    }
}

/// Pushes an error when `value` holds a NUL, is blank, or is longer than `max` characters.
pub fn check_text(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) {
    if value.contains('\0') {
        errors.push(FieldError::new(field, "must not contain NUL characters"));
    } else {
        crate::listing::require_text(errors, field, value, max);
    }
}

/// Pushes an error when `value` holds a NUL character.
pub fn check_free_text(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    if value.contains('\0') {
        errors.push(FieldError::new(field, "must not contain NUL characters"));
    }
}

/// Pushes an error when an optional filter holds a NUL character.
pub fn check_filter(errors: &mut Vec<FieldError>, field: &str, value: Option<&str>) {
    if let Some(v) = value {
        check_free_text(errors, field, v);
    }
}

/// A date of the API: `YYYY-MM-DD` exactly, years 0001 to 9999 (RFC 3339 `full-date`, the
/// document's `format: date`, as JSON Schema validators check it). chrono's own parser also
/// takes spaces, signs, longer years and year 0.
fn parse_date<E: serde::de::Error>(s: &str) -> Result<NaiveDate, E> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    match shape.then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()).flatten() {
        Some(d) if d.year() >= 1 => Ok(d),
        _ => Err(E::custom(format!("invalid date {s:?}: expected YYYY-MM-DD (years 0001 to 9999)"))),
    }
}

/// `#[serde(deserialize_with)]` for a date (`YYYY-MM-DD`).
pub fn strict_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    parse_date(&s)
}

/// `#[serde(default, deserialize_with)]` for an optional date.
pub fn strict_date_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    let s = <Option<std::borrow::Cow<'de, str>> as serde::Deserialize>::deserialize(d)?;
    s.map(|s| parse_date(&s)).transpose()
}

/// The schema of a date ([`strict_date`]).
pub fn date() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
        .examples([serde_json::json!("2026-09-01")])
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_names_exactly_the_characters_trim_strips() {
        assert_eq!(
            text_pattern(),
            r"^[^\u0000]*[^\u0000\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028-\u2029\u202f\u205f\u3000][^\u0000]*$"
        );
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let listed = BLANK.iter().any(|(a, b)| (*a..=*b).contains(&c));
            assert_eq!(listed, c.is_whitespace(), "{c:?}");
        }
    }

    #[test]
    fn the_text_constant_is_the_generated_pattern() {
        assert_eq!(TEXT, text_pattern().replace(r"\u2028-\u2029", r"\u2028\u2029"));
    }

    #[test]
    fn uuids_are_hyphenated_and_only_objects_are_objects() {
        assert!(is_uuid("00000000-0000-0000-0000-00000000000A"));
        assert!(!is_uuid("00000000000000000000000000000000") && !is_uuid("{00000000-0000-0000-0000-000000000000}"));
        #[derive(Debug, serde::Deserialize)]
        struct T {
            #[serde(default)]
            _a: Option<bool>,
        }
        assert!(serde_json::from_str::<Json<T>>("{}").is_ok());
        assert!(serde_json::from_str::<Json<T>>("[null]").is_err());
    }

    #[test]
    fn required_text_refuses_nul_blank_and_long_values() {
        let check = |v: &str| {
            let mut e = Vec::new();
            check_text(&mut e, "name", v, 5);
            e.is_empty()
        };
        for ok in ["a", " a ", "\u{feff}", "\u{1c}", "abcde"] {
            assert!(check(ok), "{ok:?}");
        }
        for bad in ["", " ", "\t\u{3000}\u{85}", "a\0", "abcdef"] {
            assert!(!check(bad), "{bad:?}");
        }
    }

    #[test]
    fn dates_are_exactly_year_month_day() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "strict_date")]
            on: NaiveDate,
        }
        let parse = |s: &str| serde_json::from_value::<T>(serde_json::json!({ "on": s })).map(|t| t.on);
        assert_eq!(parse("2026-09-01").unwrap(), NaiveDate::from_ymd_opt(2026, 9, 1).unwrap());
        let bad = ["2026-9-01", "+2026-09-01", "12026-09-01", "2026-02-30", "2026-09-01T00:00", "0000-01-01"];
        for bad in bad.into_iter().chain([" 2026-09-01", ""]) {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
