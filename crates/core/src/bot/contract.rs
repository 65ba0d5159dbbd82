//! The bot contract on the wire: building the request from a turn's messages, and normalising
//! whatever the bot answered into a [`BotAnswer`].
//!
//! The client's bot exists and must not change, and it has answered in several shapes over time
//! (`reply_text`, `text`, `response`, `reply`, `replies`, `messages`, plain text). Every one of
//! them is accepted; anything that is clearly not an answer is a [`BotError`], which the worker
//! handles as a bot failure (retry, then fallback to a human).
//!
//! # Decisions where the contract is silent
//! - Several reply keys in one object: the first present, non-null one in the order `replies`,
//!   `messages`, `reply_text`, `text`, `response`, `reply` wins (lists first: they carry more).
//! - A reply key with the wrong type (`{"text": 5}`) is an invalid answer, not "send nothing": the
//!   bot meant to say something and we cannot tell what.
//! - `handoff` and `cacheable` accept booleans, numbers (non-zero is yes) and the strings
//!   `true/false/yes/no/y/n/1/0` (any case); any other value counts as `false` rather than
//!   failing the whole answer and losing the reply.
//! - `profile` is used only when it is an object; other values are ignored.
//! - `kb_version` is a string (trimmed, cut to 128 characters) or a number (its decimal text);
//!   any other value, or a blank string, is no version.
//! - A top-level JSON string is the reply; a top-level array of strings is the replies.
//! - Plain text (`text/*` other than HTML, or no content type and a body that is not JSON) is the
//!   reply, trimmed. A `text/*` body that parses as a JSON object is read as JSON: servers that
//!   forget the content type are common. `text/html` is refused: a 200 HTML page is a proxy's or a
//!   framework's error page, never a reply to forward to a customer.
//! - Whitespace-only replies are dropped; other replies are kept as sent (the splitter trims).

use serde_json::{Map, Value};

use crate::domain::message::{AuthorKind, InboundMessage};
use crate::ports::HistoryTurn;
use crate::ports::{BotAnswer, BotCrm, BotError, BotRequest};

/// Normalises the bot's HTTP answer.
pub fn parse_answer(status: u16, content_type: Option<&str>, body: &[u8]) -> Result<BotAnswer, BotError> {
    if !(200..300).contains(&status) {
        return Err(BotError::Status(status));
    }
    if status == 204 || body.iter().all(u8::is_ascii_whitespace) {
        return Ok(BotAnswer::default());
    }
    let mime = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match mime.as_deref() {
        Some(m) if m == "application/json" || m.ends_with("+json") => from_json(&parse_json(body)?),
        Some("text/html") => Err(BotError::InvalidAnswer("the bot answered an HTML page".into())),
        Some(m) if m.starts_with("text/") => match serde_json::from_slice::<Value>(body) {
            Ok(v @ Value::Object(_)) => from_json(&v),
            _ => plain_text(body),
        },
        Some(_) | None => match serde_json::from_slice::<Value>(body) {
            Ok(v) => from_json(&v),
            Err(_) => plain_text(body),
        },
    }
}

fn parse_json(body: &[u8]) -> Result<Value, BotError> {
    serde_json::from_slice(body).map_err(|e| BotError::InvalidAnswer(format!("invalid JSON at line {} column {}", e.line(), e.column())))
}

fn plain_text(body: &[u8]) -> Result<BotAnswer, BotError> {
    let text = std::str::from_utf8(body).map_err(|_| BotError::InvalidAnswer("the text answer is not UTF-8".into()))?;
    Ok(BotAnswer { replies: keep_nonblank(vec![text.trim().to_owned()]), ..BotAnswer::default() })
}

fn from_json(value: &Value) -> Result<BotAnswer, BotError> {
    match value {
        Value::Object(obj) => from_object(obj),
        Value::String(s) => Ok(BotAnswer { replies: keep_nonblank(vec![s.clone()]), ..BotAnswer::default() }),
        Value::Array(items) => Ok(BotAnswer { replies: strings(items, "the answer")?, ..BotAnswer::default() }),
        Value::Null | Value::Bool(_) | Value::Number(_) => {
            Err(BotError::InvalidAnswer("the answer is neither an object, a string nor a list of strings".into()))
        }
    }
}

fn from_object(obj: &Map<String, Value>) -> Result<BotAnswer, BotError> {
    const KEYS: [&str; 6] = ["replies", "messages", "reply_text", "text", "response", "reply"];
    let replies = match KEYS.iter().find_map(|k| obj.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v))) {
        None => Vec::new(),
        Some((_, Value::String(s))) => keep_nonblank(vec![s.clone()]),
        Some((key, Value::Array(items))) if matches!(key, "replies" | "messages") => strings(items, key)?,
        Some((key, _)) => return Err(BotError::InvalidAnswer(format!("`{key}` has the wrong type"))),
    };
    Ok(BotAnswer {
        replies,
        handoff: obj.get("handoff").is_some_and(truthy),
        profile: obj.get("profile").filter(|p| p.is_object()).cloned(),
        cacheable: obj.get("cacheable").is_some_and(truthy),
        kb_version: obj.get("kb_version").and_then(version),
    })
}

/// The strings of a list, whitespace-only ones dropped; any other element is an error.
fn strings(items: &[Value], what: &str) -> Result<Vec<String>, BotError> {
    let texts = items
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| BotError::InvalidAnswer(format!("`{what}` must be a list of strings")))?;
    Ok(keep_nonblank(texts))
}

fn keep_nonblank(texts: Vec<String>) -> Vec<String> {
    texts.into_iter().filter(|t| !t.trim().is_empty()).collect()
}

/// `kb_version` as a string: a non-blank string (trimmed, at most 128 characters) or a number;
/// anything else is no version.
fn version(v: &Value) -> Option<String> {
    let text = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_) => return None,
    };
    (!text.is_empty()).then(|| text.chars().take(128).collect())
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "y" | "1"),
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

impl BotRequest {
    /// The request for one turn: one customer message, or several sent in a burst.
    ///
    /// The texts are joined with `\n` (blank ones skipped); `message_id`, the chat and the Open
    /// Lines context come from the last message (the newest state), the customer's phone and
    /// name from the newest message that has them; `event_id` is the first message's
    /// de-duplication key (the turn's own key). A `profile` that is not an object becomes `{}`;
    /// `consent` is the profile's `consent` when it is a boolean.
    /// `None` for an empty slice.
    pub fn for_turn(messages: &[InboundMessage], profile: Value, history: Vec<HistoryTurn>, business_phone: Option<&str>) -> Option<Self> {
        let first = messages.first()?;
        let last = messages.last()?;
        let text = messages.iter().map(|m| m.text.as_str()).filter(|t| !t.trim().is_empty()).collect::<Vec<_>>().join("\n");
        let phone = messages.iter().rev().find_map(|m| m.lines.phone.as_ref()).map(ToString::to_string);
        let customers = || messages.iter().rev().filter(|m| m.author.kind == AuthorKind::Customer);
        let author_id = customers().next().unwrap_or(last).author.id.map(|u| u.get());
        let customer_name = customers().map(|m| m.author.name.trim()).find(|n| !n.is_empty()).map(str::to_owned);
        let lines = &last.lines;
        Some(Self {
            platform: "bitrix24".into(),
            direction: "inbound".into(),
            dialog_id: last.dialog_id.to_string(),
            chat_id: last.chat_id.get(),
            message_id: last.message_id.get(),
            message: text.clone(),
            text,
            customer_phone: phone.clone(),
            phone,
            business_phone: business_phone.map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned),
            author_id,
            customer_name,
            line_id: lines.line_id.map(|l| l.get()),
            connector: lines.connector.clone(),
            session_id: lines.session_id.map(|s| s.get()),
            crm: lines.crm.as_ref().map(|c| BotCrm { entity_type: c.entity_type.clone(), entity_id: c.entity_id }),
            consent: profile.get("consent").and_then(Value::as_bool),
            profile: if profile.is_object() { profile } else { Value::Object(Map::new()) },
            history,
            event_id: first.dedup_key().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_answer(body: &str) -> Result<BotAnswer, BotError> {
        parse_answer(200, Some("application/json; charset=utf-8"), body.as_bytes())
    }

    fn replies(r: Result<BotAnswer, BotError>) -> Vec<String> {
        r.expect("valid answer").replies
    }

    #[test]
    fn every_shape_of_the_existing_bot_is_accepted() {
        assert_eq!(replies(json_answer(r#"{"reply_text": "Hello!"}"#)), vec!["Hello!"]);
        assert_eq!(replies(json_answer(r#"{"replies": ["Hello!", "How can I help?"]}"#)), vec!["Hello!", "How can I help?"]);
        assert_eq!(replies(json_answer(r#"{"text": "Hello!"}"#)), vec!["Hello!"]);
        assert_eq!(replies(json_answer(r#"{"messages": ["Hello!"]}"#)), vec!["Hello!"]);
        assert_eq!(replies(json_answer(r#"{"response": "Hello!"}"#)), vec!["Hello!"]);
        assert_eq!(replies(json_answer(r#"{"reply": "Hello!"}"#)), vec!["Hello!"]);
        assert_eq!(replies(json_answer(r#""Hello!""#)), vec!["Hello!"]);
        assert_eq!(replies(json_answer(r#"["a", " ", "b"]"#)), vec!["a", "b"]);
    }

    #[test]
    fn precedence_and_optional_fields() {
        let a = json_answer(r#"{"text": "t", "replies": ["r1", "r2"], "handoff": "true", "profile": {"name": "Ana"}, "cacheable": 1}"#).expect("valid");
        assert_eq!(a.replies, vec!["r1", "r2"]);
        assert!(a.handoff && a.cacheable);
        assert_eq!(a.profile, Some(json!({"name": "Ana"})));
        let b = json_answer(r#"{"reply_text": null, "text": "fallback", "handoff": "maybe", "profile": "x", "cacheable": false}"#).expect("valid");
        assert_eq!((b.replies, b.handoff, b.profile, b.cacheable), (vec!["fallback".to_owned()], false, None, false));
        for yes in [r#"true"#, r#""YES""#, r#""1""#, r#"2"#] {
            assert!(json_answer(&format!(r#"{{"handoff": {yes}}}"#)).expect("valid").handoff, "{yes}");
        }
    }

    #[test]
    fn kb_version_is_a_string_or_a_number() {
        let v = |raw: &str| json_answer(&format!(r#"{{"text": "t", "kb_version": {raw}}}"#)).expect("valid").kb_version;
        assert_eq!(v(r#"" 2024-06 ""#).as_deref(), Some("2024-06"));
        assert_eq!(v("7").as_deref(), Some("7"));
        assert_eq!(v(&format!(r#""{}""#, "x".repeat(300))).map(|s| s.len()), Some(128));
        for none in [r#""  ""#, "null", "true", "[1]", r#"{"v": 1}"#] {
            assert_eq!(v(none), None, "{none}");
        }
    }

    #[test]
    fn empty_answers_mean_send_nothing() {
        for (status, body) in [(204, "ignored"), (200, ""), (200, "  \n"), (202, "")] {
            assert_eq!(parse_answer(status, Some("application/json"), body.as_bytes()), Ok(BotAnswer::default()));
        }
        assert_eq!(json_answer(r#"{"ok": true}"#), Ok(BotAnswer::default()));
        assert_eq!(json_answer(r#"{"reply_text": "   "}"#), Ok(BotAnswer::default()));
        let handoff_only = json_answer(r#"{"handoff": true, "profile": {"lang": "ru"}}"#).expect("valid");
        assert!(handoff_only.replies.is_empty() && handoff_only.handoff && handoff_only.profile.is_some());
    }

    #[test]
    fn invalid_answers_are_refused() {
        for body in ["null", "42", "true", r#"[1, 2]"#, r#"{"replies": ["a", 1]}"#, r#"{"text": 5}"#, r#"{"reply_text": ["a"]}"#, "{not json"] {
            assert!(matches!(json_answer(body), Err(BotError::InvalidAnswer(_))), "{body}");
        }
        assert!(matches!(parse_answer(200, Some("text/html"), b"<html>login</html>"), Err(BotError::InvalidAnswer(_))));
        assert!(matches!(parse_answer(200, Some("text/plain"), &[0xff, 0xfe]), Err(BotError::InvalidAnswer(_))));
    }

    #[test]
    fn plain_text_and_sniffing() {
        assert_eq!(replies(parse_answer(200, Some("text/plain; charset=utf-8"), " Hi there \n".as_bytes())), vec!["Hi there"]);
        assert_eq!(replies(parse_answer(200, None, b"Hi")), vec!["Hi"]);
        assert_eq!(replies(parse_answer(200, None, br#"{"text": "json"}"#)), vec!["json"]);
        assert_eq!(replies(parse_answer(200, Some("text/plain"), br#"{"text": "json"}"#)), vec!["json"]);
        assert_eq!(replies(parse_answer(200, Some("text/plain"), b"[1, 2]")), vec!["[1, 2]"]);
        assert_eq!(replies(parse_answer(201, Some("application/octet-stream"), b"ok")), vec!["ok"]);
    }

    #[test]
    fn non_2xx_is_a_status_error() {
        assert_eq!(parse_answer(500, Some("application/json"), br#"{"text": "x"}"#), Err(BotError::Status(500)));
        assert_eq!(parse_answer(404, None, b""), Err(BotError::Status(404)));
        assert_eq!(parse_answer(302, None, b""), Err(BotError::Status(302)));
        assert_eq!(parse_answer(199, None, b""), Err(BotError::Status(199)));
    }
}
