//! A minimal `multipart/form-data` reader: text fields only (file parts keep their raw bytes, lossily, as a
//! string), fed through the same PHP bracket-key insertion as form bodies.

use super::params::{Limits, Param, ParseError, insert_pair};

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').map(str::trim).find_map(|p| p.strip_prefix("boundary=").map(|b| b.trim_matches('"').to_owned()))
}

fn field_name(headers: &str) -> Option<String> {
    let disp = headers.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))?;
    let idx = disp.find("name=\"")?;
    let rest = &disp[idx + 6..];
    let end = rest.find('"')?;
    Some(rest[..end].to_owned())
}

/// Parses a multipart body; a missing boundary or malformed part is a 400.
pub(crate) fn parse(body: &[u8], content_type: &str, limits: Limits) -> Result<Param, ParseError> {
    let bad = || ParseError::BadKey("multipart/form-data body".to_owned());
    let b = boundary(content_type).filter(|b| !b.is_empty()).ok_or_else(bad)?;
    let delim = format!("--{b}").into_bytes();
    let mut root = Vec::new();
    let mut pos = find(body, &delim, 0).ok_or_else(bad)? + delim.len();
    let mut pairs = 0usize;
    loop {
        if body.get(pos..pos + 2) == Some(b"--") {
            break;
        }
        let next = find(body, &delim, pos).ok_or_else(bad)?;
        let part = &body[pos..next];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let split = find(part, b"\r\n\r\n", 0).ok_or_else(bad)?;
        let headers = String::from_utf8_lossy(&part[..split]);
        let value = String::from_utf8_lossy(&part[split + 4..]).into_owned();
        let name = field_name(&headers).ok_or_else(bad)?;
        pairs += 1;
        if pairs > limits.max_pairs {
            return Err(ParseError::TooMany);
        }
        insert_pair(&mut root, &name, value, limits)?;
        pos = next + delim.len();
    }
    Ok(Param::Map(root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::params::DEFAULT_LIMITS;

    #[test]
    fn reads_text_fields() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"fields[TITLE]\"\r\n\r\nHello\r\n--XX\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\n5\r\n--XX--\r\n";
        let p = parse(body, "multipart/form-data; boundary=XX", DEFAULT_LIMITS).map(|p| p.to_json());
        assert_eq!(p, Ok(serde_json::json!({"fields": {"TITLE": "Hello"}, "id": "5"})));
        assert!(parse(b"garbage", "multipart/form-data; boundary=XX", DEFAULT_LIMITS).is_err());
    }
}
