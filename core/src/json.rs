//! Strict JSON reading for the signed documents: one reading per document, whatever the reader.
//!
//! serde_json alone lets two spellings of one document through: a key given twice in an object
//! (the last wins, where other parsers keep the first) and `null` for an optional field (read as
//! absent). Typed fields of a struct already refuse a repeat; these close the rest.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Refuses a document in which any object, at any depth, has a key twice (compared after
/// unescaping, so `"a"` and `"\u0061"` are the same key). Says nothing of the document's types.
pub fn check_unique_keys(bytes: &[u8]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    UniqueKeys::deserialize(&mut de)?;
    de.end()
}

/// An optional field that is present must hold a value: `null` is refused, naming `field`.
/// For `#[serde(default, deserialize_with = ...)]`, so absence still reads as `None`.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    field: &str,
) -> Result<Option<T>, D::Error> {
    match Option::<T>::deserialize(d)? {
        Some(value) => Ok(Some(value)),
        None => Err(de::Error::custom(format!(
            "{field} is null: an optional field is omitted when it has no value, never null"
        ))),
    }
}

/// Any JSON value, walked only to find a repeated key.
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeys)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!(
                    "the key {key:?} appears twice in one object (readers differ on which wins)"
                )));
            }
            map.next_value::<UniqueKeys>()?;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_refused_at_any_depth() {
        for doc in [
            r#"{"a":1,"a":1}"#,
            r#"{"a":{"b":[{"c":1,"c":2}]}}"#,
            r#"[{"x":true},{"y":null,"y":null}]"#,
            r#"{"a":1,"\u0061":2}"#,
        ] {
            let err = check_unique_keys(doc.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("appears twice"), "{doc}: {err}");
        }
        for doc in [
            r#"{"a":1,"b":{"a":1},"c":[{"a":1},{"a":2}]}"#,
            r#"[1,2.5,"s",null,false]"#,
            r#""x""#,
        ] {
            check_unique_keys(doc.as_bytes()).unwrap();
        }
        assert!(check_unique_keys(b"{} {}").is_err(), "trailing data");
    }
}
