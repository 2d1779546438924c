//! How an optional payload field is written: always, as the seed's Go structs do (none of their
//! fields is `omitempty`), so a consumer written from the seed finds every key. A text or number
//! the producer does not have is written as Go writes its zero value (`""`, `0`), and read back
//! as absent ([`or_zero`], [`zero_is_none`]). A list, map or time it does not have is `null`,
//! which is what Go writes for a nil slice or map and what the seed's own `SEND_NOTIFICATION`
//! example writes for an unset time (plain `Option` with `#[serde(default)]`): that keeps "no
//! list" apart from "an empty list" (a bulk notification to no named people is not one to
//! everybody) and never makes up a date.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Writes `Some(v)` as `v` and `None` as `T`'s zero value.
pub fn or_zero<T: Serialize + Default, S: Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => v.serialize(s),
        None => T::default().serialize(s),
    }
}

/// Reads `null`, an absent key (with `#[serde(default)]`) or the zero value as `None`.
pub fn zero_is_none<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de> + Default + PartialEq,
    D: Deserializer<'de>,
{
    Ok(Option::<T>::deserialize(d)?.filter(|v| *v != T::default()))
}

#[cfg(test)]
mod tests {
    use alloc::string::String;

    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct P {
        #[serde(default, serialize_with = "super::or_zero", deserialize_with = "super::zero_is_none")]
        text: Option<String>,
        #[serde(default, serialize_with = "super::or_zero", deserialize_with = "super::zero_is_none")]
        count: Option<u32>,
        #[serde(default)]
        at: Option<u32>,
    }

    #[test]
    fn absent_values_are_written_as_zero_values_and_read_back_as_absent() {
        let none = P { text: None, count: None, at: None };
        let json = serde_json::to_string(&none).unwrap();
        assert_eq!(json, r#"{"text":"","count":0,"at":null}"#);
        assert_eq!(serde_json::from_str::<P>(&json).unwrap(), none);
        assert_eq!(serde_json::from_str::<P>("{}").unwrap(), none);
        let some = P { text: Some("x".into()), count: Some(2), at: Some(3) };
        assert_eq!(serde_json::from_str::<P>(&serde_json::to_string(&some).unwrap()).unwrap(), some);
    }
}
