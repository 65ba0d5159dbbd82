//! The bot-response parser (`bot::contract::parse_answer`) and the splitter every reply goes
//! through before it is posted (`split_reply` at WhatsApp's limit), on arbitrary answers.
//!
//! Input: byte 0 picks the HTTP status, byte 1 the content type, byte 2 the splitter's limit for
//! a second, small-limit split; the rest is the body.
//!
//! Properties: nothing panics (errors are values); a non-2xx status is `BotError::Status` with
//! that status; 204 and blank bodies mean "send nothing"; every reply is non-blank; a profile is
//! an object; every chunk of a split reply is non-empty, trimmed and within the limit in UTF-16
//! code units (`WHATSAPP_MAX_CHARS` = 4,096 for the real split), and the chunks together keep
//! every non-whitespace character of the reply, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use olbridge_core::bot::contract::parse_answer;
use olbridge_core::domain::split::{WHATSAPP_MAX_CHARS, split_reply, utf16_len};
use olbridge_core::ports::BotError;

const STATUSES: [u16; 12] = [200, 200, 200, 201, 202, 204, 299, 199, 300, 404, 500, 503];
const TYPES: [Option<&str>; 10] = [
    None,
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/problem+json"),
    Some("text/plain"),
    Some("text/plain; charset=utf-8"),
    Some("text/html"),
    Some("TEXT/HTML; charset=UTF-8"),
    Some("application/octet-stream"),
    Some(""),
];

fn check_split(reply: &str, max_units: usize) {
    let chunks = split_reply(reply, max_units);
    for chunk in &chunks {
        assert!(!chunk.is_empty() && chunk.trim() == chunk, "chunk {chunk:?} is empty or untrimmed");
        assert!(utf16_len(chunk) <= max_units.max(2), "chunk of {} units over the limit {max_units}", utf16_len(chunk));
    }
    let visible = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    assert_eq!(visible(&chunks.concat()), visible(reply), "splitting lost or changed text");
}

fuzz_target!(|data: &[u8]| {
    let [s, t, m, body @ ..] = data else { return };
    let status = STATUSES[usize::from(*s) % STATUSES.len()];
    let content_type = TYPES[usize::from(*t) % TYPES.len()];
    let result = parse_answer(status, content_type, body);
    if !(200..300).contains(&status) {
        assert_eq!(result, Err(BotError::Status(status)));
        return;
    }
    let answer = match result {
        Ok(answer) => answer,
        Err(BotError::InvalidAnswer(reason)) => {
            assert!(!reason.is_empty());
            return;
        }
        Err(e) => panic!("a 2xx answer failed with {e:?}"),
    };
    if status == 204 || body.iter().all(u8::is_ascii_whitespace) {
        assert_eq!(answer, Default::default(), "an empty answer means send nothing");
    }
    assert!(answer.profile.as_ref().is_none_or(serde_json::Value::is_object), "profile is not an object");
    for reply in &answer.replies {
        assert!(!reply.trim().is_empty(), "blank reply kept");
        check_split(reply, WHATSAPP_MAX_CHARS);
        check_split(reply, usize::from(*m));
    }
});
