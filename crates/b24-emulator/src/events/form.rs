//! PHP `http_build_query`: how Bitrix24 encodes an event body.
//!
//! Nested keys become `data[PARAMS][MESSAGE]`, every scalar becomes a string (`true` → `1`, `false` → `0`,
//! `null` → empty, contract §3.1), empty arrays vanish, and keys and values are `urlencode`d (RFC 1738: space as
//! `+`, only `A-Za-z0-9-_.` left as is).

use serde_json::Value;

/// PHP `urlencode`.
pub(crate) fn php_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Encodes ordered top-level fields.
pub(crate) fn build_query(fields: &[(&str, &Value)]) -> String {
    let mut parts = Vec::new();
    for (k, v) in fields {
        walk((*k).to_owned(), v, &mut parts);
    }
    parts.join("&")
}

fn walk(prefix: String, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                walk(format!("{prefix}[{k}]"), v, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                walk(format!("{prefix}[{i}]"), v, out);
            }
        }
        scalar => {
            let s = match scalar {
                Value::Bool(true) => "1".to_owned(),
                Value::Bool(false) => "0".to_owned(),
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push(format!("{}={}", php_urlencode(&prefix), php_urlencode(&s)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_like_php() {
        let data = json!({"PARAMS": {"MESSAGE": "hi there ~ü", "N": 5, "T": true, "F": false, "Z": null}, "E": []});
        let q = build_query(&[("event", &json!("ONIMBOTMESSAGEADD")), ("data", &data)]);
        assert_eq!(
            q,
            "event=ONIMBOTMESSAGEADD&data%5BPARAMS%5D%5BF%5D=0&data%5BPARAMS%5D%5BMESSAGE%5D=hi+there+%7E%C3%BC\
             &data%5BPARAMS%5D%5BN%5D=5&data%5BPARAMS%5D%5BT%5D=1&data%5BPARAMS%5D%5BZ%5D="
        );
    }
}
