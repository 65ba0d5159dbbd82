//! Shape comparison against fixtures: same keys, same JSON value types.
//!
//! Rules: object key sets must be equal (except listed extras/missing keys); maps keyed by ids are compared
//! value-wise against the fixture's first value; each array element must match *some* fixture element; `null` in
//! the fixture accepts anything (the field is nullable there); PHP's `[]` stands for an empty map, so `[]` and an
//! object are compatible; paths listed as opaque are not descended into.

use serde_json::{Map, Value};

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[derive(Default)]
pub struct Rules<'a> {
    /// Paths of keys the emulator may add (e.g. `result.entityId`).
    pub extra: &'a [&'a str],
    /// Paths of fixture keys the emulator may lack.
    pub missing: &'a [&'a str],
    /// Paths not compared below this point.
    pub opaque: &'a [&'a str],
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn id_map(o: &Map<String, Value>) -> bool {
    !o.is_empty() && o.keys().all(|k| k.parse::<u64>().is_ok())
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() { k.to_owned() } else { format!("{path}.{k}") }
}

pub fn diff(expected: &Value, actual: &Value, path: &str, rules: &Rules<'_>, out: &mut Vec<String>) {
    if rules.opaque.contains(&path) || expected.is_null() {
        return;
    }
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) if id_map(e) => {
            if !a.is_empty() && !id_map(a) {
                out.push(format!("{path}: expected a map keyed by ids, got keys {:?}", a.keys().collect::<Vec<_>>()));
            }
            let e: Vec<Value> = e.values().cloned().collect();
            let a: Vec<Value> = a.values().cloned().collect();
            any_match(&e, &a, &join(path, "*"), rules, out);
        }
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = join(path, k);
                match a.get(k) {
                    Some(av) => diff(ev, av, &p, rules, out),
                    None if rules.missing.contains(&p.as_str()) => {}
                    None => out.push(format!("{p}: missing")),
                }
            }
            for k in a.keys().filter(|k| !e.contains_key(*k)) {
                let p = join(path, k);
                if !rules.extra.contains(&p.as_str()) {
                    out.push(format!("{p}: unexpected key"));
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => any_match(e, a, &format!("{path}[]"), rules, out),
        (Value::Object(_), Value::Array(a)) | (Value::Array(a), Value::Object(_)) if a.is_empty() => {}
        (Value::Array(e), Value::Object(_)) if e.is_empty() => {}
        (e, a) if kind(e) == kind(a) => {}
        (e, a) => out.push(format!("{path}: expected {} like {e}, got {a}", kind(e))),
    }
}

/// Each actual element must match at least one expected element.
fn any_match(e: &[Value], a: &[Value], path: &str, rules: &Rules<'_>, out: &mut Vec<String>) {
    if e.is_empty() {
        return;
    }
    for av in a {
        let attempts: Vec<Vec<String>> = e
            .iter()
            .map(|ev| {
                let mut errs = Vec::new();
                diff(ev, av, path, rules, &mut errs);
                errs
            })
            .collect();
        if !attempts.iter().any(Vec::is_empty) {
            out.extend(attempts.into_iter().next().unwrap_or_default());
        }
    }
}

#[track_caller]
pub fn assert_shape(expected: &Value, actual: &Value, rules: Rules<'_>) {
    let mut out = Vec::new();
    diff(expected, actual, "", &rules, &mut out);
    assert!(out.is_empty(), "shape differs from fixture:\n  {}\nactual: {actual:#}", out.join("\n  "));
}

/// Flattens a decoded form tree back into `a[b][c]` keys.
pub fn flat_keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}[{k}]") };
                flat_keys(v, &key, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}
