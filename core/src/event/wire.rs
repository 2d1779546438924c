//! How an optional payload field is written: always, as the seed's Go structs do (none of their
//! fields is `omitempty`), so a consumer written from the seed finds every key. A value the
//! producer does not have is the zero value of the field's JSON type (`""`, `0`, `[]`, `{}`); a
//! time it does not have is `null`, as in the seed's own `SEND_NOTIFICATION` example (Go's
//! decoder reads it as the zero time) rather than a made-up date. Reading turns the zero value
//! back into `None`, so a round trip changes neither the JSON nor the meaning.

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
    use alloc::vec::Vec;

    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct P {
        #[serde(default, serialize_with = "super::or_zero", deserialize_with = "super::zero_is_none")]
        text: Option<String>,
        #[serde(default, serialize_with = "super::or_zero", deserialize_with = "super::zero_is_none")]
        ids: Option<Vec<String>>,
        #[serde(default)]
        at: Option<u32>,
    }

    #[test]
    fn absent_values_are_written_as_zero_values_and_read_back_as_absent() {
        let none = P { text: None, ids: None, at: None };
        let json = serde_json::to_string(&none).unwrap();
        assert_eq!(json, r#"{"text":"","ids":[],"at":null}"#);
        assert_eq!(serde_json::from_str::<P>(&json).unwrap(), none);
        assert_eq!(serde_json::from_str::<P>("{}").unwrap(), none);
        let some = P { text: Some("x".into()), ids: Some(alloc::vec!["a".into()]), at: Some(3) };
        assert_eq!(serde_json::from_str::<P>(&serde_json::to_string(&some).unwrap()).unwrap(), some);
    }
}
