//! JSON that means one thing: objects whose member names are all distinct, at every depth.
//!
//! RFC 8259 leaves duplicate names undefined and parsers disagree on which copy wins
//! (`serde_json` keeps the last, others the first), so a token with `"roles"` twice can mean
//! one thing to us and another to the next reader (CouchDB, CVE-2017-12635). [`UniqueKeys`]
//! deserializes like `serde_json::Value` and fails on a repeated name. Names are compared
//! after unescaping, so `"rol\u0065s"` and `"roles"` are the same name.
//!
//! Pure: depends only on serde.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON value whose objects have no repeated member names.
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueKeys(pub Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Strict).map(UniqueKeys)
    }
}

/// Builds a `Value`, refusing an object that names a member twice.
struct Strict;

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains_key(&name) {
                return Err(de::Error::custom("duplicate member name"));
            }
            let UniqueKeys(value) = access.next_value()?;
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

/// Parses JSON text, refusing repeated member names at any depth.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<UniqueKeys>(bytes).map(|UniqueKeys(value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Value, String> {
        from_slice(text.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn distinct_names_parse_like_serde_json() {
        let text = r#"{"sub":"alice","roles":["a","b"],"n":-1,"f":1.5,"big":18446744073709551615,
            "x":null,"t":true,"realm_access":{"roles":["admin"]},"list":[{"a":1},{"a":2}]}"#;
        let expected: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse(text).unwrap(), expected);
        // The same name in sibling objects is no duplicate.
        assert!(parse(r#"{"a":{"k":1},"b":{"k":2}}"#).is_ok());
    }

    #[test]
    fn a_repeated_name_is_refused_at_any_depth() {
        for text in [
            r#"{"roles":["reader"],"roles":["admin"]}"#,
            r#"{"alg":"RS256","kid":"a","alg":"none"}"#,
            r#"{"realm_access":{"roles":["x"],"roles":["admin"]}}"#,
            r#"{"a":{"b":{"c":{"d":1,"d":2}}}}"#,
            r#"{"list":[{"ok":1},{"k":1,"k":1}]}"#,
            r#"[[{"k":1,"k":2}]]"#,
            r#"{"x":1,"x":1}"#,
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains("duplicate member name"), "{text}: {error}");
        }
    }

    #[test]
    fn names_are_compared_after_unescaping() {
        for text in [
            r#"{"roles":["reader"],"rol\u0065s":["admin"]}"#,
            r#"{"\u0072oles":1,"roles":2}"#,
            r#"{"k\/":1,"k/":2}"#,
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn invalid_json_is_still_an_error() {
        for text in ["", "{", r#"{"a":}"#, "[1,]", r#"{"a":1} x"#] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
