//! Schema helpers for the services' OpenAPI derives (`#[schema(schema_with = ...)]`): the same
//! tables that validate a field describe it in the document, so the two cannot disagree.

use utoipa::openapi::Object;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};

/// A string that must be one of `values` (room types, statuses, roles, …).
pub fn one_of(values: &[&str]) -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.iter().copied())).build()
}

/// An optional (`null`able) string that must be one of `values` when present.
pub fn maybe_one_of(values: &[&str]) -> Object {
    let mut all: Vec<serde_json::Value> = values.iter().map(|v| serde_json::Value::from(*v)).collect();
    all.push(serde_json::Value::Null);
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(all))
        .build()
}

/// A UUID in its canonical text form, for ids the handlers take as strings.
pub fn uuid() -> Object {
    ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))).build()
}

/// The clock times the API takes: `HH:MM` or `HH:MM:SS` (24-hour). Stricter than chrono's own
/// parser, which also takes spaces and one-digit hours, so that the pattern in the document is
/// exactly what is accepted.
pub const TIME_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$";

/// The schema of a clock time field ([`TIME_PATTERN`]).
pub fn time_of_day() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(TIME_PATTERN))
        .examples([serde_json::json!("09:00")])
        .build()
}

/// The schema of an optional clock time field.
pub fn maybe_time_of_day() -> Object {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(TIME_PATTERN))
        .examples([serde_json::json!("09:00")])
        .build()
}

fn parse_time<E: serde::de::Error>(s: &str) -> Result<chrono::NaiveTime, E> {
    let b = s.as_bytes();
    let digits = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit) && b.get(i + 1).is_some_and(u8::is_ascii_digit);
    let shape = match b.len() {
        5 => digits(0) && b[2] == b':' && digits(3),
        8 => digits(0) && b[2] == b':' && digits(3) && b[5] == b':' && digits(6),
        _ => false,
    };
    let fmt = if b.len() == 5 { "%H:%M" } else { "%H:%M:%S" };
    match shape.then(|| chrono::NaiveTime::parse_from_str(s, fmt).ok()).flatten() {
        Some(t) if !s.ends_with(":60") => Ok(t),
        _ => Err(E::custom(format!("invalid time {s:?}: expected HH:MM or HH:MM:SS"))),
    }
}

/// `#[serde(deserialize_with)]` for a clock time ([`TIME_PATTERN`]).
pub fn strict_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<chrono::NaiveTime, D::Error> {
    let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    parse_time(&s)
}

/// `#[serde(default, deserialize_with)]` for an optional clock time.
pub fn strict_time_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<chrono::NaiveTime>, D::Error> {
    let s = <Option<std::borrow::Cow<'de, str>> as serde::Deserialize>::deserialize(d)?;
    s.map(|s| parse_time(&s)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumerations_list_exactly_the_values_of_the_table() {
        let v = serde_json::to_value(one_of(&["lab", "lecture"])).unwrap();
        assert_eq!(v, serde_json::json!({ "type": "string", "enum": ["lab", "lecture"] }));
        let v = serde_json::to_value(maybe_one_of(&["a"])).unwrap();
        assert_eq!(v["enum"], serde_json::json!(["a", null]));
    }

    #[test]
    fn clock_times_are_exactly_the_pattern() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "strict_time")]
            at: chrono::NaiveTime,
        }
        let parse = |s: &str| serde_json::from_value::<T>(serde_json::json!({ "at": s })).map(|t| t.at);
        assert_eq!(parse("09:05").unwrap(), chrono::NaiveTime::from_hms_opt(9, 5, 0).unwrap());
        assert_eq!(parse("23:59:59").unwrap(), chrono::NaiveTime::from_hms_opt(23, 59, 59).unwrap());
        for bad in ["9:05", " 09:05", "09:05 ", "24:00", "09:60", "09:05:60", "09:05:00.5", "0905"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
