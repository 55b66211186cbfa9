//! Strict JSON reading for the signed documents: one reading per document, whatever the reader.
//!
//! serde_json alone lets other spellings of one document through: a key given twice in an object
//! (the last wins, where other parsers keep the first), `null` for an optional field (read as
//! absent), and an array where a struct is expected (serde reads its elements as the fields, in
//! declaration order). These close them.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// One step of a path into a document, for naming where objects belong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The member of this name.
    Key(&'static str),
    /// Every element of an array.
    Each,
}

/// Refuses a document in which any object, at any depth, has a key twice (compared after
/// unescaping, so `"a"` and `"\u0061"` are the same key), or which holds an array at one of
/// `objects`, the places its type reads as a struct. Nothing else about the types is checked.
pub fn check_document(bytes: &[u8], objects: &[&[Step]]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Node {
        path: &mut Vec::new(),
        objects,
    }
    .deserialize(&mut de)?;
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

/// Where the walk is: member names, and array elements by index.
enum Seg {
    Key(String),
    Item(usize),
}

/// Any JSON value, walked to find a repeated key or an array where an object belongs.
struct Node<'a> {
    path: &'a mut Vec<Seg>,
    objects: &'a [&'a [Step]],
}

impl Node<'_> {
    fn wants_object(&self) -> bool {
        self.objects.iter().any(|place| {
            place.len() == self.path.len()
                && place
                    .iter()
                    .zip(self.path.iter())
                    .all(|(step, seg)| match (step, seg) {
                        (Step::Key(want), Seg::Key(have)) => want == have,
                        (Step::Each, Seg::Item(_)) => true,
                        _ => false,
                    })
        })
    }

    /// `images[2]`, `manifests[0].platform`, or "the document".
    fn name(&self) -> String {
        let mut out = String::new();
        for seg in self.path.iter() {
            match seg {
                Seg::Key(k) if out.is_empty() => out.push_str(k),
                Seg::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Seg::Item(i) => out.push_str(&format!("[{i}]")),
            }
        }
        if out.is_empty() {
            "the document".into()
        } else {
            out
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.wants_object() {
            return Err(de::Error::custom(format!(
                "{} must be a JSON object, not an array",
                self.name()
            )));
        }
        for i in 0.. {
            self.path.push(Seg::Item(i));
            let more = seq.next_element_seed(Node {
                path: &mut *self.path,
                objects: self.objects,
            })?;
            self.path.pop();
            if more.is_none() {
                break;
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!(
                    "the key {key:?} appears twice in one object (readers differ on which wins)"
                )));
            }
            self.path.push(Seg::Key(key));
            map.next_value_seed(Node {
                path: &mut *self.path,
                objects: self.objects,
            })?;
            self.path.pop();
        }
        Ok(())
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
            let err = check_document(doc.as_bytes(), &[]).unwrap_err();
            assert!(err.to_string().contains("appears twice"), "{doc}: {err}");
        }
        for doc in [
            r#"{"a":1,"b":{"a":1},"c":[{"a":1},{"a":2}]}"#,
            r#"[1,2.5,"s",null,false]"#,
            r#""x""#,
        ] {
            check_document(doc.as_bytes(), &[]).unwrap();
        }
        assert!(check_document(b"{} {}", &[]).is_err(), "trailing data");
    }

    #[test]
    fn an_array_is_refused_where_an_object_belongs() {
        const PLACES: &[&[Step]] = &[&[], &[Step::Key("images"), Step::Each, Step::Key("p")]];
        for (doc, name) in [
            (r#"[1]"#, "the document"),
            (r#"{"images":[{"p":{}},{"p":[]}]}"#, "images[1].p"),
        ] {
            let err = check_document(doc.as_bytes(), PLACES).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("{name} must be a JSON object, not an array")),
                "{doc}: {err}"
            );
        }
        // Elsewhere arrays are fine, and so is anything but an array at those places (the
        // types see to the rest).
        check_document(br#"{"images":[{"p":{},"q":[]}],"x":[[]]}"#, PLACES).unwrap();
        check_document(br#"{"images":[{"p":"s"}]}"#, PLACES).unwrap();
    }
}
