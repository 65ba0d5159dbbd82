//! One read-only view over the two shapes an event's data arrives in: a PHP form tree (webhook
//! delivery, every scalar a string) and JSON (fetch mode, real types). Field extraction is
//! written once against [`Node`], so a v2 event decodes the same way from either.

use std::borrow::Cow;

use serde_json::Value;

use crate::domain::form::FormValue;

/// A tree node: named children or a scalar.
pub(super) trait Node {
    /// A named child.
    fn child(&self, key: &str) -> Option<&Self>;
    /// The scalar as text: strings as they are, numbers in decimal, booleans as `1`/`0` (the way
    /// PHP would have sent them), `null`, maps and lists as `None`.
    fn scalar(&self) -> Option<Cow<'_, str>>;
    /// The names of the children, in order.
    fn keys(&self) -> Vec<&str>;
}

impl Node for FormValue {
    fn child(&self, key: &str) -> Option<&Self> {
        self.get(key)
    }
    fn scalar(&self) -> Option<Cow<'_, str>> {
        self.as_text().map(Cow::Borrowed)
    }
    fn keys(&self) -> Vec<&str> {
        self.as_map().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default()
    }
}

impl Node for Value {
    fn child(&self, key: &str) -> Option<&Self> {
        self.as_object().and_then(|o| o.get(key))
    }
    fn scalar(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::String(s) => Some(Cow::Borrowed(s)),
            Value::Number(n) => Some(Cow::Owned(n.to_string())),
            Value::Bool(b) => Some(Cow::Borrowed(if *b { "1" } else { "0" })),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        self.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default()
    }
}

/// The node at `path`.
pub(super) fn at<'a, N: Node>(node: &'a N, path: &[&str]) -> Option<&'a N> {
    path.iter().try_fold(node, |n, key| n.child(key))
}

/// The trimmed scalar at `path`; `None` when absent or blank (PHP sends `null` as `""`).
pub(super) fn text<'a, N: Node>(node: &'a N, path: &[&str]) -> Option<Cow<'a, str>> {
    let value = at(node, path)?.scalar()?;
    match value {
        Cow::Borrowed(s) => Some(Cow::Borrowed(s.trim())),
        Cow::Owned(s) => Some(Cow::Owned(s.trim().to_owned())),
    }
    .filter(|s| !s.is_empty())
}

/// The first of several paths that has a non-blank scalar.
pub(super) fn first<'a, N: Node>(node: &'a N, paths: &[&[&str]]) -> Option<Cow<'a, str>> {
    paths.iter().find_map(|p| text(node, p))
}

/// The scalar at `path` exactly as sent (message text keeps its spaces); `""` when absent.
pub(super) fn verbatim<N: Node>(node: &N, path: &[&str]) -> String {
    at(node, path).and_then(Node::scalar).map(Cow::into_owned).unwrap_or_default()
}

/// A yes/no flag: `Y`, `1`, `true` (any case) are yes; anything else, or absence, is no.
pub(super) fn flag<N: Node>(node: &N, path: &[&str]) -> bool {
    flag_if_present(node, path).unwrap_or(false)
}

/// A yes/no flag as [`flag`] reads it, or `None` when absent or blank.
pub(super) fn flag_if_present<N: Node>(node: &N, path: &[&str]) -> Option<bool> {
    text(node, path).map(|v| matches!(v.to_ascii_lowercase().as_str(), "y" | "1" | "true"))
}
