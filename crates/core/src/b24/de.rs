//! Tolerant deserializers for Bitrix24 v1 values.
//!
//! v1 methods write numbers as strings (`"ID": "123"`) in some places and as numbers in others, even
//! within one response, and flags as `"Y"`/`"N"`, `true`/`false` or `1`/`0`. Rather than guess per
//! field which form a portal version sends, typed results accept every form through these helpers:
//! `#[serde(deserialize_with = "de::u64")]` and friends. Missing fields are handled with
//! `#[serde(default)]` on the struct.

use serde::Deserialize;
use serde::de::{Deserializer, Error};
use serde_json::Value;

fn number_from(v: &Value) -> Option<Option<u64>> {
    match v {
        Value::Null => Some(None),
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0).map(|f| f as u64)).map(Some),
        Value::String(s) if s.trim().is_empty() => Some(None),
        Value::String(s) => s.trim().parse::<u64>().ok().map(Some),
        Value::Bool(false) => Some(None),
        _ => None,
    }
}

/// A non-negative integer written as a number or a numeric string; `null`, `""` and `false` (how
/// Bitrix24 writes "none") are 0.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Value::deserialize(d)?;
    number_from(&v).map(Option::unwrap_or_default).ok_or_else(|| D::Error::custom(format!("expected an integer, got {}", kind(&v))))
}

/// Like [`u64`](fn@u64), but "none" (`null`, `""`, `false`, `0`) is `None`.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Value::deserialize(d)?;
    number_from(&v).map(|n| n.filter(|n| *n != 0)).ok_or_else(|| D::Error::custom(format!("expected an integer, got {}", kind(&v))))
}

/// A flag: `true`/`false`, `"Y"`/`"N"`, `"1"`/`"0"`, `1`/`0`; `null` and `""` are false.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Bool(b) => Ok(*b),
        Value::Null => Ok(false),
        Value::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(s) => match s.trim().to_ascii_uppercase().as_str() {
            "Y" | "1" | "TRUE" => Ok(true),
            "N" | "0" | "FALSE" | "" => Ok(false),
            _ => Err(D::Error::custom("expected a Y/N flag")),
        },
        _ => Err(D::Error::custom(format!("expected a flag, got {}", kind(&v)))),
    }
}

/// Text written as a string or a number (`"id": 5` vs `"id": "chat5"`); `null` is empty.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Null | Value::Bool(false) => Ok(String::new()),
        other => Err(D::Error::custom(format!("expected text, got {}", kind(&other)))),
    }
}

/// A list that PHP may have written as an object keyed by id (`{"39": {...}}`), as an empty array
/// (`[]` for an empty PHP array), or as `false`/`null` for none. The values, in key order for
/// objects.
pub fn list_or_map<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    list_from_value(Value::deserialize(d)?).map_err(D::Error::custom)
}

/// [`list_or_map`] on a value already parsed (a whole `result`).
pub fn list_from_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<Vec<T>, serde_json::Error> {
    let items: Vec<Value> = match v {
        Value::Array(a) => a,
        Value::Object(m) => m.into_iter().map(|(_, v)| v).collect(),
        Value::Null | Value::Bool(false) => Vec::new(),
        other => return Err(serde_json::Error::custom(format!("expected a list, got {}", kind(&other)))),
    };
    items.into_iter().map(serde_json::from_value).collect()
}

/// An object PHP may write as `false`, `null` or `[]` when there is none (`"phones": false`).
pub fn opt_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Value::deserialize(d)? {
        v @ Value::Object(_) => serde_json::from_value(v).map(Some).map_err(D::Error::custom),
        Value::Null | Value::Bool(false) => Ok(None),
        Value::Array(a) if a.is_empty() => Ok(None),
        other => Err(D::Error::custom(format!("expected an object, got {}", kind(&other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct T {
        #[serde(default, deserialize_with = "super::u64")]
        id: u64,
        #[serde(default, deserialize_with = "super::opt_u64")]
        chat: Option<u64>,
        #[serde(default, deserialize_with = "super::flag")]
        on: bool,
        #[serde(default, deserialize_with = "super::string")]
        dialog: String,
        #[serde(default, deserialize_with = "super::list_or_map")]
        list: Vec<u32>,
    }

    fn t(v: serde_json::Value) -> Result<T, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn numbers_flags_and_text_in_every_bitrix_form() {
        let a = t(json!({"id": "123", "chat": "0", "on": "Y", "dialog": 5, "list": {"2": 20, "1": 10}})).expect("a");
        assert_eq!(a, T { id: 123, chat: None, on: true, dialog: "5".into(), list: vec![10, 20] });
        let b = t(json!({"id": 7, "chat": 1763, "on": "N", "dialog": "chat1763", "list": []})).expect("b");
        assert_eq!(b, T { id: 7, chat: Some(1763), on: false, dialog: "chat1763".into(), list: vec![] });
        let c = t(json!({"id": null, "chat": "", "on": 1, "dialog": null, "list": false})).expect("c");
        assert_eq!(c, T { id: 0, chat: None, on: true, dialog: String::new(), list: vec![] });
        let d = t(json!({})).expect("d");
        assert_eq!(d.id, 0);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(t(json!({"id": "12a"})).is_err());
        assert!(t(json!({"id": -1})).is_err());
        assert!(t(json!({"on": "maybe"})).is_err());
        assert!(t(json!({"dialog": []})).is_err());
    }
}
