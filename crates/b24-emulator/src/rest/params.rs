//! Request parameters as PHP sees them: an ordered tree of maps and scalars.
//!
//! Bitrix24 is PHP, so a request's parameters become a PHP array whatever the encoding: JSON bodies,
//! `application/x-www-form-urlencoded` bodies with bracket keys (`fields[PHONE][0][VALUE]=..`, `a[]=1&a[]=2`) and
//! query strings all end up in the same shape. [`Param`] is that shape. It keeps insertion order (a `batch` runs its
//! commands in the order they were given, which `serde_json::Map` would lose), and the parser never panics: every
//! malformed input becomes a [`ParseError`] the router turns into a Bitrix-style 400.

pub use super::php_query::{DEFAULT_LIMITS, Limits, ParseError, insert_pair, parse_json, parse_query, url_decode};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use std::fmt;

/// One request parameter (or the whole parameter set, a [`Param::Map`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    /// JSON `null`.
    Null,
    /// JSON boolean.
    Bool(bool),
    /// JSON number.
    Num(Number),
    /// A string (every form / query value is one).
    Str(String),
    /// A JSON array.
    List(Vec<Param>),
    /// An ordered map (a JSON object or a PHP array built from bracket keys).
    Map(Vec<(String, Param)>),
}

impl Param {
    /// An empty map.
    pub fn empty() -> Param {
        Param::Map(Vec::new())
    }

    /// The child under `key` (map key, or list index).
    pub fn get(&self, key: &str) -> Option<&Param> {
        match self {
            Param::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            Param::List(l) => key.parse::<usize>().ok().and_then(|i| l.get(i)),
            _ => None,
        }
    }

    /// The child under `key`, comparing map keys case-insensitively.
    pub fn get_ci(&self, key: &str) -> Option<&Param> {
        match self {
            Param::Map(m) => m.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v),
            _ => self.get(key),
        }
    }

    /// Whether `key` is present (even if empty).
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The scalar as PHP would print it (`true` → "1", `false`/`null` → ""); `None` for maps and lists.
    pub fn text(&self) -> Option<String> {
        match self {
            Param::Null => Some(String::new()),
            Param::Bool(true) => Some("1".to_owned()),
            Param::Bool(false) => Some(String::new()),
            Param::Num(n) => Some(n.to_string()),
            Param::Str(s) => Some(s.clone()),
            Param::List(_) | Param::Map(_) => None,
        }
    }

    /// PHP `intval` of a scalar: leading sign and digits, else 0. `None` for maps and lists.
    pub fn int(&self) -> Option<i64> {
        match self {
            Param::Num(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Param::Bool(b) => Some(i64::from(*b)),
            Param::Null => Some(0),
            Param::Str(s) => Some(php_intval(s)),
            Param::List(_) | Param::Map(_) => None,
        }
    }

    /// Whether this is PHP's idea of `== 'Y'`: the string `Y`, or boolean `true`.
    pub fn is_yes(&self) -> bool {
        matches!(self, Param::Bool(true)) || matches!(self, Param::Str(s) if s == "Y")
    }

    /// PHP `empty()`.
    pub fn is_php_empty(&self) -> bool {
        match self {
            Param::Null | Param::Bool(false) => true,
            Param::Str(s) => s.is_empty() || s == "0",
            Param::Num(n) => n.as_f64() == Some(0.0),
            Param::List(l) => l.is_empty(),
            Param::Map(m) => m.is_empty(),
            Param::Bool(true) => false,
        }
    }

    /// The children of a map or list, in order.
    pub fn values(&self) -> Vec<&Param> {
        match self {
            Param::Map(m) => m.iter().map(|(_, v)| v).collect(),
            Param::List(l) => l.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// Key/value pairs of a map (list indices as keys), in order.
    pub fn entries(&self) -> Vec<(String, &Param)> {
        match self {
            Param::Map(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
            Param::List(l) => l.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether this is a map or a list.
    pub fn is_container(&self) -> bool {
        matches!(self, Param::Map(_) | Param::List(_))
    }

    /// Top-level keys upper-cased (PHP `array_change_key_case($p, CASE_UPPER)`); later duplicates win.
    pub fn upper_keys(self) -> Param {
        match self {
            Param::Map(m) => {
                let mut out: Vec<(String, Param)> = Vec::with_capacity(m.len());
                for (k, v) in m {
                    let k = k.to_uppercase();
                    match out.iter_mut().find(|(ok, _)| *ok == k) {
                        Some(slot) => slot.1 = v,
                        None => out.push((k, v)),
                    }
                }
                Param::Map(out)
            }
            other => other,
        }
    }

    /// Overlays the top-level keys of `other` onto this map (PHP `array_merge($_GET, $_POST)`).
    pub fn merge(self, other: Param) -> Param {
        let (Param::Map(mut base), Param::Map(over)) = (self.clone(), other.clone()) else {
            return if other.is_container() { other } else { self };
        };
        for (k, v) in over {
            match base.iter_mut().find(|(bk, _)| *bk == k) {
                Some(slot) => slot.1 = v,
                None => base.push((k, v)),
            }
        }
        Param::Map(base)
    }

    /// As JSON (for recordings and for values stored verbatim, such as keyboards).
    pub fn to_json(&self) -> Value {
        match self {
            Param::Null => Value::Null,
            Param::Bool(b) => Value::Bool(*b),
            Param::Num(n) => Value::Number(n.clone()),
            Param::Str(s) => Value::String(s.clone()),
            Param::List(l) => Value::Array(l.iter().map(Param::to_json).collect()),
            Param::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    /// From JSON (batch `$result[...]` references substitute JSON values).
    pub fn from_json(v: &Value) -> Param {
        match v {
            Value::Null => Param::Null,
            Value::Bool(b) => Param::Bool(*b),
            Value::Number(n) => Param::Num(n.clone()),
            Value::String(s) => Param::Str(s.clone()),
            Value::Array(a) => Param::List(a.iter().map(Param::from_json).collect()),
            Value::Object(o) => Param::Map(o.iter().map(|(k, v)| (k.clone(), Param::from_json(v))).collect()),
        }
    }

    /// Rewrites every string leaf through `f` (used for batch references).
    pub fn map_strings(self, f: &mut dyn FnMut(String) -> Param) -> Param {
        match self {
            Param::Str(s) => f(s),
            Param::List(l) => Param::List(l.into_iter().map(|p| p.map_strings(f)).collect()),
            Param::Map(m) => Param::Map(m.into_iter().map(|(k, v)| (k, v.map_strings(f))).collect()),
            other => other,
        }
    }
}

/// PHP `intval` on a string.
pub fn php_intval(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut n: i64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg { -n } else { n }
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParamVisitor)
    }
}

struct ParamVisitor;

impl<'de> Visitor<'de> for ParamVisitor {
    type Value = Param;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Param, E> {
        Ok(Param::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Param, E> {
        Ok(Param::Num(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Param, E> {
        Ok(Param::Num(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Param, E> {
        Ok(Number::from_f64(v).map_or(Param::Null, Param::Num))
    }
    fn visit_str<E>(self, v: &str) -> Result<Param, E> {
        Ok(Param::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Param, E> {
        Ok(Param::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Param, E> {
        Ok(Param::Null)
    }
    fn visit_none<E>(self) -> Result<Param, E> {
        Ok(Param::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Param, D::Error> {
        Param::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Param, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Param>()? {
            out.push(v);
        }
        Ok(Param::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Param, A::Error> {
        let mut out: Vec<(String, Param)> = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Param>()? {
            match out.iter_mut().find(|(ok, _)| *ok == k) {
                Some(slot) => slot.1 = v,
                None => out.push((k, v)),
            }
        }
        Ok(Param::Map(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intval_and_flags() {
        assert_eq!(php_intval(" 12abc"), 12);
        assert_eq!(php_intval("chat5"), 0);
        assert_eq!(php_intval("-3"), -3);
        assert!(Param::Str("Y".into()).is_yes());
        assert!(!Param::Str("y".into()).is_yes());
        assert!(Param::Bool(true).is_yes());
    }
}
