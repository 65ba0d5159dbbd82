//! A parser for PHP `http_build_query` bodies: how Bitrix24 POSTs every event.
//!
//! Bitrix24 is PHP; its queue server sends events as `application/x-www-form-urlencoded` with PHP
//! bracket keys (`data[PARAMS][MESSAGE]=hi`, `data[BOT][11][BOT_ID]=11`, `a[]=1&a[]=2`). Generic
//! form decoders (`serde_urlencoded`) see flat keys only, so this module rebuilds the tree the PHP
//! handler would see in `$_POST`, as a [`FormValue`].
//!
//! The body comes from the internet, so the parser is total: it never panics, and everything that
//! could make it expensive is bounded by [`FormLimits`] and refused with a typed [`FormError`]
//! (the receiver answers 413 for [`FormError::TooLarge`] and 400 for the rest).
//!
//! # Decisions, where PHP's behaviour is not what we want or is not obvious
//! - **Bad percent escapes** (`%zz`, a trailing `%`) are kept literally, as PHP's `urldecode` does.
//!   `+` is a space.
//! - **Bad UTF-8** is decoded lossily (U+FFFD). Refusing the body would lose the customer's message
//!   for good (Bitrix24 never resends an event), while a replacement character costs one glyph.
//! - **A key that is both a scalar and a map** (`a=1&a[b]=2`): the last assignment wins, as in PHP.
//!   A repeated scalar key also keeps its last value.
//! - **Unbalanced brackets** (`a[b=1`): the whole decoded key is taken as a plain name, so the
//!   value is kept and visible. Text after a closing bracket that does not open a new one
//!   (`a[b]c=1`) is ignored, as in PHP. Pairs with an empty name (`=x`, `[a]=1`) are skipped, as in
//!   PHP. Unlike PHP, `.` and spaces in names are not turned into `_`.
//! - **List pushes** (`a[]=x`) take the next integer key, as PHP does: one more than the largest
//!   non-negative integer key so far, or `"0"`.

use std::collections::BTreeMap;

/// One node of a decoded form: a string, or a map of named children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormValue {
    /// A scalar. PHP sends every scalar as a string (`true` as `"1"`, `null` as `""`).
    Text(String),
    /// Named children. Lists are maps with keys `"0"`, `"1"`, ...
    Map(BTreeMap<String, FormValue>),
}

/// Bounds on what a body may cost to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormLimits {
    /// Largest body accepted, in bytes.
    pub max_bytes: usize,
    /// Most `name=value` pairs accepted (PHP's `max_input_vars` defaults to 1000).
    pub max_pairs: usize,
    /// Deepest nesting accepted, counting the top-level name (`data[BOT][7][AUTH][domain]` is 5).
    pub max_depth: usize,
    /// Longest decoded key accepted, in bytes.
    pub max_key_len: usize,
}

impl Default for FormLimits {
    /// Generous for Bitrix24 events (the deepest is 5 levels, a WhatsApp message is at most 4,096
    /// characters, under 40 KB encoded): 256 KiB, 1000 pairs, depth 16, 256-byte keys.
    fn default() -> Self {
        Self { max_bytes: 256 * 1024, max_pairs: 1000, max_depth: 16, max_key_len: 256 }
    }
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The body is larger than `max_bytes` (HTTP 413).
    #[error("form body of {actual} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
        /// The body's size.
        actual: usize,
    },
    /// More pairs than `max_pairs`.
    #[error("form body has more than {limit} fields")]
    TooManyPairs {
        /// The limit.
        limit: usize,
    },
    /// A key nests deeper than `max_depth`.
    #[error("a form key nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A key is longer than `max_key_len`.
    #[error("a form key is longer than {limit} bytes")]
    KeyTooLong {
        /// The limit.
        limit: usize,
    },
}

/// Parses a form body into a tree (always a `Map` at the root); see [`FormValue::parse`].
pub fn parse(body: &[u8], limits: &FormLimits) -> Result<FormValue, FormError> {
    FormValue::parse(body, limits)
}

/// One step below the top-level name.
enum Segment {
    Named(String),
    Push,
}

impl FormValue {
    /// An empty map (the root of an empty body).
    pub fn empty() -> Self {
        Self::Map(BTreeMap::new())
    }

    /// Parses a form body into a tree (always a `Map` at the root).
    pub fn parse(body: &[u8], limits: &FormLimits) -> Result<Self, FormError> {
        if body.len() > limits.max_bytes {
            return Err(FormError::TooLarge { limit: limits.max_bytes, actual: body.len() });
        }
        let mut root = BTreeMap::new();
        let mut pairs = 0usize;
        for part in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            pairs += 1;
            if pairs > limits.max_pairs {
                return Err(FormError::TooManyPairs { limit: limits.max_pairs });
            }
            let (raw_key, raw_value) = match part.iter().position(|b| *b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &b""[..]),
            };
            let key = percent_decode(raw_key);
            if key.len() > limits.max_key_len {
                return Err(FormError::KeyTooLong { limit: limits.max_key_len });
            }
            let Some((name, segments)) = split_key(&key) else { continue };
            if segments.len() + 1 > limits.max_depth {
                return Err(FormError::TooDeep { limit: limits.max_depth });
            }
            insert(&mut root, name, segments, percent_decode(raw_value));
        }
        Ok(Self::Map(root))
    }

    /// The string, when this is a scalar.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            Self::Map(_) => None,
        }
    }

    /// The children, when this is a map.
    pub fn as_map(&self) -> Option<&BTreeMap<String, FormValue>> {
        match self {
            Self::Map(m) => Some(m),
            Self::Text(_) => None,
        }
    }

    /// A direct child.
    pub fn get(&self, key: &str) -> Option<&FormValue> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// The node at `path` (`&["data", "PARAMS"]`).
    pub fn node(&self, path: &[&str]) -> Option<&FormValue> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The scalar at `path` (`&["data", "PARAMS", "MESSAGE"]`); `None` when absent or a map.
    pub fn get_path(&self, path: &[&str]) -> Option<&str> {
        self.node(path).and_then(Self::as_text)
    }

    /// The tree as JSON, every scalar a string (for logs of non-secret parts and for tests).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Text(s) => serde_json::Value::String(s.clone()),
            Self::Map(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    /// Encodes the tree as PHP's `http_build_query` would (brackets percent-encoded, spaces as `+`,
    /// pairs in key order). Empty maps produce nothing, as in PHP; a scalar root encodes to "".
    pub fn to_query_string(&self) -> String {
        let mut out = String::new();
        if let Self::Map(m) = self {
            for (k, v) in m {
                encode_into(&mut out, &php_urlencode(k), v);
            }
        }
        out
    }

    /// Removes, anywhere in the tree, the entries whose key names a credential (`access_token`,
    /// `refresh_token`, `application_token`, `client_secret`, any case), so the data part of an
    /// event can be kept and logged without carrying OAuth tokens around.
    pub fn without_credentials(&self) -> FormValue {
        const CREDENTIALS: [&str; 4] = ["access_token", "refresh_token", "application_token", "client_secret"];
        match self {
            Self::Text(s) => Self::Text(s.clone()),
            Self::Map(m) => Self::Map(
                m.iter().filter(|(k, _)| !CREDENTIALS.iter().any(|c| k.eq_ignore_ascii_case(c))).map(|(k, v)| (k.clone(), v.without_credentials())).collect(),
            ),
        }
    }
}

impl From<&str> for FormValue {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

/// Splits `data[PARAMS][MESSAGE]` into `data` and its segments; `None` for an empty name.
fn split_key(key: &str) -> Option<(String, Vec<Segment>)> {
    let Some(open) = key.find('[') else {
        return (!key.is_empty()).then(|| (key.to_owned(), Vec::new()));
    };
    let name = &key[..open];
    if name.is_empty() {
        return None;
    }
    let mut segments = Vec::new();
    let mut rest = &key[open..];
    while let Some(after_open) = rest.strip_prefix('[') {
        let Some(close) = after_open.find(']') else {
            if segments.is_empty() {
                // `a[b=1`: nothing bracketed at all; keep the whole key as a name.
                return Some((key.to_owned(), Vec::new()));
            }
            break; // `a[b][c=1`: PHP drops the unterminated tail.
        };
        let inner = &after_open[..close];
        segments.push(if inner.is_empty() { Segment::Push } else { Segment::Named(inner.to_owned()) });
        rest = &after_open[close + 1..];
    }
    Some((name.to_owned(), segments))
}

/// Stores `value` under `name` + `segments`; the last assignment to a path wins.
fn insert(root: &mut BTreeMap<String, FormValue>, name: String, segments: Vec<Segment>, value: String) {
    let mut map = root;
    let mut key = name;
    for segment in segments {
        let slot = map.entry(key).or_insert_with(FormValue::empty);
        if let FormValue::Text(_) = slot {
            *slot = FormValue::empty();
        }
        let FormValue::Map(child) = slot else { return };
        key = match segment {
            Segment::Named(s) => s,
            Segment::Push => next_index(child).to_string(),
        };
        map = child;
    }
    map.insert(key, FormValue::Text(value));
}

/// PHP's next list index: one past the largest non-negative integer key, or 0.
fn next_index(map: &BTreeMap<String, FormValue>) -> u64 {
    map.keys()
        .filter(|k| k.len() <= 18 && !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) && (k.len() == 1 || !k.starts_with('0')))
        .filter_map(|k| k.parse::<u64>().ok())
        .max()
        .map_or(0, |m| m + 1)
}

/// `urldecode`: `+` is a space, `%XX` a byte, anything malformed is kept as is; lossy UTF-8.
fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match (raw.get(i + 1).and_then(|b| hex_val(*b)), raw.get(i + 2).and_then(|b| hex_val(*b))) {
                (Some(hi), Some(lo)) => {
                    out.push((hi << 4) | lo);
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

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// PHP's `urlencode`: letters, digits and `-_.` stay, space becomes `+`, the rest `%XX`.
fn php_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn encode_into(out: &mut String, prefix: &str, value: &FormValue) {
    match value {
        FormValue::Text(s) => {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(prefix);
            out.push('=');
            out.push_str(&php_urlencode(s));
        }
        FormValue::Map(m) => {
            for (k, v) in m {
                encode_into(out, &format!("{prefix}%5B{}%5D", php_urlencode(k)), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(body: &str) -> FormValue {
        FormValue::parse(body.as_bytes(), &FormLimits::default()).expect("parses")
    }

    #[test]
    fn nested_keys_lists_and_decoding() {
        let f = parse("data%5BPARAMS%5D%5BMESSAGE%5D=hi+there%21&data[BOT][11][BOT_ID]=11&a[]=1&a[]=2&flag");
        assert_eq!(f.get_path(&["data", "PARAMS", "MESSAGE"]), Some("hi there!"));
        assert_eq!(f.get_path(&["data", "BOT", "11", "BOT_ID"]), Some("11"));
        assert_eq!(f.get_path(&["a", "0"]), Some("1"));
        assert_eq!(f.get_path(&["a", "1"]), Some("2"));
        assert_eq!(f.get_path(&["flag"]), Some(""));
        assert_eq!(f.get_path(&["data", "PARAMS"]), None, "a map is not a scalar");
        assert!(f.node(&["data", "PARAMS"]).and_then(FormValue::as_map).is_some());
    }

    #[test]
    fn pushes_follow_php_indexing() {
        let f = parse("a[5]=x&a[]=y&a[02]=z&a[]=w");
        assert_eq!(f.get_path(&["a", "6"]), Some("y"));
        assert_eq!(f.get_path(&["a", "02"]), Some("z"));
        assert_eq!(f.get_path(&["a", "7"]), Some("w"));
    }

    #[test]
    fn malformed_input_is_tolerated_as_documented() {
        let f = parse("p=100%&q=%zz%4&r=%E2%82&[x]=1&=2&u[b=3&v[b]c=4&w[b][c=5");
        assert_eq!(f.get_path(&["p"]), Some("100%"));
        assert_eq!(f.get_path(&["q"]), Some("%zz%4"));
        assert_eq!(f.get_path(&["r"]), Some("\u{fffd}"));
        assert_eq!(f.get_path(&["u[b"]), Some("3"));
        assert_eq!(f.get_path(&["v", "b"]), Some("4"));
        assert_eq!(f.get_path(&["w", "b"]), Some("5"));
        assert_eq!(f.as_map().map(BTreeMap::len), Some(6), "empty names are skipped: {f:?}");
    }

    #[test]
    fn last_assignment_wins_between_scalar_and_map() {
        assert_eq!(parse("a=1&a[b]=2").get_path(&["a", "b"]), Some("2"));
        assert_eq!(parse("a[b]=2&a=1").get_path(&["a"]), Some("1"));
        assert_eq!(parse("a=1&a=2").get_path(&["a"]), Some("2"));
    }

    #[test]
    fn limits_are_typed_errors() {
        let l = FormLimits { max_bytes: 64, max_pairs: 3, max_depth: 3, max_key_len: 10 };
        let p = |s: &str| FormValue::parse(s.as_bytes(), &l);
        assert_eq!(p(&"a".repeat(65)), Err(FormError::TooLarge { limit: 64, actual: 65 }));
        assert_eq!(p("a=1&b=2&c=3&d=4"), Err(FormError::TooManyPairs { limit: 3 }));
        assert_eq!(p("a[b][c][d]=1"), Err(FormError::TooDeep { limit: 3 }));
        assert!(p("a[b][c]=1&&&").is_ok(), "empty pairs are not counted");
        assert_eq!(p("abcdefghijk=1"), Err(FormError::KeyTooLong { limit: 10 }));
    }

    #[test]
    fn encodes_like_php_http_build_query() {
        // php -r 'echo http_build_query(["a"=>["b"=>"c d","x"=>["1","2"]],"k"=>"ü&="]);'
        let f = parse("k=%C3%BC%26%3D&a[x][]=1&a[x][]=2&a[b]=c d");
        assert_eq!(f.to_query_string(), "a%5Bb%5D=c+d&a%5Bx%5D%5B0%5D=1&a%5Bx%5D%5B1%5D=2&k=%C3%BC%26%3D");
    }

    #[test]
    fn credentials_are_dropped_from_data() {
        let f = parse("BOT[7][access_token]=t&BOT[7][AUTH][Application_Token]=s&BOT[7][BOT_ID]=7");
        let clean = f.without_credentials();
        assert_eq!(clean.get_path(&["BOT", "7", "BOT_ID"]), Some("7"));
        assert_eq!(clean.get_path(&["BOT", "7", "access_token"]), None);
        assert!(clean.node(&["BOT", "7", "AUTH"]).and_then(FormValue::as_map).is_some_and(BTreeMap::is_empty));
    }

    fn arb_key() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_ %+&=.~ü-]{1,8}"
    }

    fn arb_tree() -> impl Strategy<Value = FormValue> {
        let leaf = any::<String>().prop_map(FormValue::Text);
        leaf.prop_recursive(4, 32, 4, |inner| prop::collection::btree_map(arb_key(), inner, 1..4).prop_map(FormValue::Map))
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = FormValue::parse(&body, &FormLimits::default());
            let _ = FormValue::parse(&body, &FormLimits { max_bytes: 100, max_pairs: 4, max_depth: 2, max_key_len: 4 });
        }

        #[test]
        fn never_panics_on_bracket_soup(body in "[\\[\\]a=&%+]{0,64}") {
            let _ = FormValue::parse(body.as_bytes(), &FormLimits::default());
        }

        #[test]
        fn round_trips_php_encoded_trees(children in prop::collection::btree_map(arb_key(), arb_tree(), 1..4)) {
            let tree = FormValue::Map(children);
            let encoded = tree.to_query_string();
            let decoded = FormValue::parse(encoded.as_bytes(), &FormLimits::default()).expect("parses");
            prop_assert_eq!(decoded, tree);
        }
    }
}
