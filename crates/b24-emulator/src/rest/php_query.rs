//! PHP's `parse_str`, reimplemented: query strings and form bodies with bracket keys into a [`Param`] tree.
//!
//! Differences from PHP are deliberate and all on the strict side: where PHP silently mangles a malformed key
//! (`a[b` becomes `a_b`, `[x]=1` is dropped) the emulator answers 400, so a client bug surfaces in tests. Inputs
//! are bounded ([`Limits`]) and nothing here can panic.

use super::params::Param;

/// Limits that keep hostile input cheap.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most `key=value` pairs accepted in one query string or body.
    pub max_pairs: usize,
    /// Most bracket levels in one key.
    pub max_depth: usize,
}

/// Default limits: 10,000 pairs, 32 levels.
pub const DEFAULT_LIMITS: Limits = Limits { max_pairs: 10_000, max_depth: 32 };

/// Why a parameter set could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// More pairs than [`Limits::max_pairs`].
    #[error("too many parameters")]
    TooMany,
    /// A key nested deeper than [`Limits::max_depth`].
    #[error("parameter nesting is too deep")]
    TooDeep,
    /// A bracket key PHP would mangle: empty name, unclosed `[`, text after `]`.
    #[error("malformed parameter name")]
    BadKey(String),
    /// The JSON body does not parse.
    #[error("invalid JSON body")]
    Json(String),
    /// The JSON body is valid but not an object.
    #[error("JSON body must be an object")]
    NotObject,
}

enum Seg {
    Named(String),
    Append,
}

/// Parses a query string / form body the way PHP's `parse_str` does (bracket keys, `+` as space, `%XX`),
/// but refuses the malformed keys PHP would silently mangle.
pub fn parse_query(input: &str, limits: Limits) -> Result<Param, ParseError> {
    let mut root: Vec<(String, Param)> = Vec::new();
    let mut pairs = 0usize;
    for pair in input.split('&') {
        if pair.is_empty() {
            continue;
        }
        pairs += 1;
        if pairs > limits.max_pairs {
            return Err(ParseError::TooMany);
        }
        let (raw_key, raw_value) = match pair.split_once('=') {
            Some((k, v)) => (k, v),
            None => (pair, ""),
        };
        insert_pair(&mut root, &url_decode(raw_key), url_decode(raw_value), limits)?;
    }
    Ok(Param::Map(root))
}

/// Inserts one decoded `key=value` pair (also used for multipart fields).
pub fn insert_pair(root: &mut Vec<(String, Param)>, key: &str, value: String, limits: Limits) -> Result<(), ParseError> {
    let segs = split_key(key, limits)?;
    insert(root, &segs, Param::Str(value));
    Ok(())
}

fn split_key(key: &str, limits: Limits) -> Result<Vec<Seg>, ParseError> {
    let bad = || ParseError::BadKey(key.chars().take(64).collect());
    let open = key.find('[');
    let base = match open {
        Some(i) => &key[..i],
        None => key,
    };
    if base.is_empty() {
        return Err(bad());
    }
    // PHP turns spaces and dots in the top-level name into underscores.
    let mut segs = vec![Seg::Named(base.replace([' ', '.'], "_"))];
    let mut rest = match open {
        Some(i) => &key[i..],
        None => "",
    };
    while !rest.is_empty() {
        if !rest.starts_with('[') {
            return Err(bad());
        }
        let close = rest.find(']').ok_or_else(bad)?;
        let inner = &rest[1..close];
        segs.push(if inner.is_empty() { Seg::Append } else { Seg::Named(inner.to_owned()) });
        if segs.len() > limits.max_depth {
            return Err(ParseError::TooDeep);
        }
        rest = &rest[close + 1..];
    }
    Ok(segs)
}

fn next_index(map: &[(String, Param)]) -> u64 {
    map.iter().filter_map(|(k, _)| canonical_index(k)).max().map_or(0, |m| m.saturating_add(1))
}

fn canonical_index(k: &str) -> Option<u64> {
    let n: u64 = k.parse().ok()?;
    (n.to_string() == k).then_some(n)
}

fn insert(map: &mut Vec<(String, Param)>, segs: &[Seg], value: Param) {
    let Some((first, rest)) = segs.split_first() else { return };
    let key = match first {
        Seg::Named(k) => k.clone(),
        Seg::Append => next_index(map).to_string(),
    };
    let idx = match map.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            map.push((key, Param::Null));
            map.len() - 1
        }
    };
    let Some(slot) = map.get_mut(idx) else { return };
    if rest.is_empty() {
        slot.1 = value;
        return;
    }
    if !matches!(slot.1, Param::Map(_)) {
        slot.1 = Param::Map(Vec::new());
    }
    if let Param::Map(inner) = &mut slot.1 {
        insert(inner, rest, value);
    }
}

/// PHP `urldecode`: `+` is a space, `%XX` a byte, anything else literal; invalid UTF-8 is replaced.
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses a JSON body into a parameter map. An empty body, `null` or `[]` mean "no parameters".
pub fn parse_json(body: &[u8]) -> Result<Param, ParseError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Param::Map(Vec::new()));
    }
    let p: Param = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    match p {
        Param::Map(_) => Ok(p),
        Param::Null => Ok(Param::Map(Vec::new())),
        Param::List(l) if l.is_empty() => Ok(Param::Map(Vec::new())),
        _ => Err(ParseError::NotObject),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn q(s: &str) -> Value {
        parse_query(s, DEFAULT_LIMITS).map(|p| p.to_json()).unwrap_or(Value::Null)
    }

    #[test]
    fn php_bracket_keys() {
        assert_eq!(q("fields[PHONE][0][VALUE]=%2B4917&fields[TITLE]=a+b"), json!({"fields": {"PHONE": {"0": {"VALUE": "+4917"}}, "TITLE": "a b"}}));
        assert_eq!(q("a[]=1&a[]=2&a[5]=x&a[]=y"), json!({"a": {"0": "1", "1": "2", "5": "x", "6": "y"}}));
        assert_eq!(q("a.b=1&c d=2"), json!({"a_b": "1", "c_d": "2"}));
        assert_eq!(q("a=1&a[b]=2"), json!({"a": {"b": "2"}}));
        assert_eq!(q("flag&x=%zz"), json!({"flag": "", "x": "%zz"}));
    }

    #[test]
    fn malformed_keys_are_errors() {
        for bad in ["[a]=1", "a[b=1", "a[b]c=1", "=1"] {
            assert!(matches!(parse_query(bad, DEFAULT_LIMITS), Err(ParseError::BadKey(_))), "{bad}");
        }
        let deep = format!("a{}=1", "[x]".repeat(40));
        assert_eq!(parse_query(&deep, DEFAULT_LIMITS), Err(ParseError::TooDeep));
    }

    #[test]
    fn json_keeps_order() {
        let p = parse_json(br#"{"cmd":{"z":"a","b":"c"}}"#).unwrap_or(Param::Null);
        let keys: Vec<String> = p.get("cmd").map(|c| c.entries().into_iter().map(|(k, _)| k).collect()).unwrap_or_default();
        assert_eq!(keys, vec!["z", "b"]);
        assert_eq!(parse_json(b"[1]"), Err(ParseError::NotObject));
        assert!(matches!(parse_json(b"{"), Err(ParseError::Json(_))));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        #[test]
        fn parser_never_panics(input in ".{0,200}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse_query(&input, DEFAULT_LIMITS);
            let _ = parse_json(&bytes);
            let _ = url_decode(&input);
        }

        #[test]
        fn bracket_keys_round_trip(keys in proptest::collection::vec("[a-z]{1,5}", 1..5), value in "[a-z0-9 ]{0,10}") {
            let key = format!("{}{}", keys[0], keys[1..].iter().map(|k| format!("[{k}]")).collect::<String>());
            let encoded = format!("{}={}", key, value.replace(' ', "+"));
            let parsed = parse_query(&encoded, DEFAULT_LIMITS).map(|p| p.to_json()).unwrap_or(Value::Null);
            let mut v = &parsed;
            for k in &keys {
                v = &v[k.as_str()];
            }
            proptest::prop_assert_eq!(v, &json!(value));
        }
    }
}
