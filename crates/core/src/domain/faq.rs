//! The FAQ answer cache's rules, pure: which questions may be cached, under which key, and which
//! answers must never be.
//!
//! The bot's `cacheable: true` is the primary signal that an answer depends on the question alone
//! (not on the customer's profile or history). These rules are the guard around it, because a
//! cached entry outlives the conversation and is served to other customers:
//! - **Personal questions are never cached** ([`is_personal`]): a question with an e-mail address,
//!   a phone number or any long run of digits (an order, an account, a document number) could name
//!   a person, and an entry keyed by it would survive `privacy erase` (which finds data by phone).
//! - **Answers that echo the customer are never cached** ([`echoes_customer`]): a reply containing
//!   the customer's name, phone or any text value of their stored profile was personalised,
//!   whatever the bot's flag says.
//! - The key is a hash of the line and the normalised question ([`key`]), so the store holds no
//!   customer words at all, and "When are you open?" and "when are  you open" are one entry.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The shortest profile or name value looked for in a reply: shorter ones ("pt", "Al") match
/// ordinary words.
const MIN_ECHO_CHARS: usize = 3;

/// A digit run this long (separators such as spaces, dashes and dots between digits included)
/// makes a question personal.
const LONG_DIGIT_RUN: usize = 5;

/// The question as the cache compares it: Unicode lowercase, whitespace collapsed to one space,
/// trimmed, trailing punctuation (`?`, `!`, `.`, `…`, `¿`, ...) dropped.
pub fn normalise(question: &str) -> String {
    let lower = question.to_lowercase();
    let collapsed = lower.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.trim_end_matches(|c: char| c.is_ascii_punctuation() || matches!(c, '…' | '¿' | '¡' | '。' | '？' | '！') || c.is_whitespace()).to_owned()
}

/// The cache key of a normalised question on a line: hex SHA-256, so no customer text is stored.
pub fn key(line: &str, normalised: &str) -> String {
    let mut h = Sha256::new();
    h.update(line.as_bytes());
    h.update([0]);
    h.update(normalised.as_bytes());
    hex::encode(h.finalize())
}

/// Whether the question could identify a person: an e-mail address, a phone number or another
/// long digit run.
pub fn is_personal(question: &str) -> bool {
    let has_email = question.split_whitespace().any(|w| w.find('@').is_some_and(|at| at > 0 && w[at + 1..].contains('.')));
    has_email || longest_digit_run(question) >= LONG_DIGIT_RUN
}

/// The longest run of digits, counting separators (space, `-`, `.`, `/`, parentheses) between
/// digits as part of the run: `+55 (11) 91234-5678` is one run of 13 digits.
fn longest_digit_run(text: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_numeric() {
            run += 1;
            best = best.max(run);
        } else if matches!(c, ' ' | '-' | '.' | '/' | '(' | ')' | '+')
            && run > 0
            && chars.peek().is_some_and(|n| n.is_numeric() || matches!(n, ' ' | '(' | ')'))
        {
            // A separator inside a number: the run goes on.
        } else {
            run = 0;
        }
    }
    best
}

/// Whether the reply contains something of the customer: their name (whole or any word of it),
/// their phone (its digits), or any text or number value of their profile. Case-insensitive;
/// values shorter than three characters are not looked for.
pub fn echoes_customer(reply: &str, name: Option<&str>, phone: Option<&str>, profile: Option<&Value>) -> bool {
    let reply_lower = reply.to_lowercase();
    let reply_digits: String = reply.chars().filter(char::is_ascii_digit).collect();
    let mut values: Vec<String> = Vec::new();
    if let Some(name) = name {
        values.push(name.trim().to_owned());
        values.extend(name.split_whitespace().map(str::to_owned));
    }
    if let Some(profile) = profile {
        collect_values(profile, &mut values);
    }
    let named = values.iter().map(|v| v.trim().to_lowercase()).filter(|v| v.chars().count() >= MIN_ECHO_CHARS).any(|v| reply_lower.contains(&v));
    let phoned =
        phone.map(|p| p.chars().filter(char::is_ascii_digit).collect::<String>()).is_some_and(|d| d.len() >= LONG_DIGIT_RUN && reply_digits.contains(&d));
    named || phoned
}

fn collect_values(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|i| collect_values(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_values(i, out)),
        Value::Null | Value::Bool(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn normalising_folds_case_space_and_trailing_punctuation() {
        assert_eq!(normalise("  When ARE   you\topen?? "), "when are you open");
        assert_eq!(normalise("Öffnungszeiten…"), "öffnungszeiten");
        assert_eq!(normalise("¿Dónde están?"), "¿dónde están");
        assert_eq!(normalise("price of 3.5"), "price of 3.5");
        assert_eq!(key("1", &normalise("When are you open?")), key("1", &normalise("when are you open")));
        assert_ne!(key("1", "when are you open"), key("2", "when are you open"), "lines are apart");
        assert_eq!(key("1", "x").len(), 64);
    }

    #[test]
    fn personal_questions_are_recognised() {
        for q in ["my number is +55 (11) 91234-5678", "write to ana@example.com please", "order 123456 status?", "cpf 123.456.789-09"] {
            assert!(is_personal(q), "{q}");
        }
        for q in ["When are you open?", "do you deliver on 24/12?", "price for 2 pizzas", "@home delivery", "open 9-18?"] {
            assert!(!is_personal(q), "{q}");
        }
    }

    #[test]
    fn replies_that_echo_the_customer_are_recognised() {
        let profile = json!({"name": "Ana", "city": "Campinas", "tier": "gold", "language": "pt", "visits": 12345});
        assert!(echoes_customer("Hi Ana! We open at 9.", Some("Ana Müller"), None, None));
        assert!(echoes_customer("Dear MÜLLER", Some("Ana Müller"), None, None));
        assert!(echoes_customer("Our Campinas store opens at 9.", None, None, Some(&profile)));
        assert!(!echoes_customer("Call you on 11 91234 5678", None, Some("+5511912345678"), None), "only the whole number counts");
        assert!(echoes_customer("We will call +55 11 91234-5678", None, Some("+5511912345678"), None));
        assert!(!echoes_customer("We open at 9, Monday to Friday.", Some("Al"), Some("+5511912345678"), Some(&json!({"language": "pt"}))));
    }
}
