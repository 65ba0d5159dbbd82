//! The demo bot: a small FAQ answerer speaking the bot contract, so `olbridge demo` needs no
//! external service. It is also a reference for bot owners: it reads the request fields the bridge
//! sends, answers with `reply_text`, remembers the customer's name through `profile`, and verifies
//! the `X-Olbridge-Signature` header when a secret is configured.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use olbridge_core::bot::sign;
use olbridge_core::domain::secret::Secret;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The FAQ shipped with the demo.
pub const DEFAULT_FAQ: &str = include_str!("../../demo/faq.txt");

/// One FAQ entry.
#[derive(Debug, Clone)]
struct Entry {
    keywords: Vec<String>,
    answer: String,
}

/// The parsed FAQ.
#[derive(Debug, Clone)]
pub struct Faq(Vec<Entry>);

/// Why a FAQ file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaqError {
    /// A line breaks the format.
    #[error("line {line}: {problem}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong and how to fix it.
        problem: &'static str,
    },
    /// No entries at all.
    #[error("no `Q:` blocks: each block starts with `Q: keyword, keyword` followed by the answer (see demo/faq.txt)")]
    Empty,
}

/// A block being read: its first line, keywords and answer lines.
struct Block {
    line: usize,
    keywords: Vec<String>,
    answer: Vec<String>,
}

impl Block {
    fn finish(self) -> Result<Entry, FaqError> {
        if self.answer.is_empty() {
            return Err(FaqError::Line { line: self.line, problem: "this question has no answer: write it on the lines right after `Q:`" });
        }
        Ok(Entry { keywords: self.keywords, answer: self.answer.join("\n") })
    }
}

impl Faq {
    /// Parses the FAQ text format (see `demo/faq.txt`): blocks separated by blank lines, each a
    /// `Q: keyword, keyword` line followed by the answer; `#` lines are comments. Anything else is
    /// refused with its line, so a typo does not silently drop an answer.
    pub fn parse(text: &str) -> Result<Self, FaqError> {
        let mut entries = Vec::new();
        let mut block: Option<Block> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let fail = |problem| FaqError::Line { line: i + 1, problem };
            if line.starts_with('#') {
                continue;
            }
            if line.is_empty() {
                if let Some(b) = block.take() {
                    entries.push(b.finish()?);
                }
                continue;
            }
            let question = line.strip_prefix("Q:");
            match (&mut block, question) {
                (None, None) => return Err(fail("expected `Q: keyword, keyword` to start a block (blocks are separated by a blank line)")),
                (None, Some(keys)) => {
                    let keywords: Vec<String> = keys.split(',').map(|k| k.trim().to_lowercase()).filter(|k| !k.is_empty()).collect();
                    if keywords.is_empty() {
                        return Err(fail("`Q:` lists no keywords: write them separated by commas"));
                    }
                    block = Some(Block { line: i + 1, keywords, answer: Vec::new() });
                }
                (Some(_), Some(_)) => return Err(fail("a new `Q:` line needs a blank line before it")),
                (Some(b), None) => b.answer.push(line.to_owned()),
            }
        }
        if let Some(b) = block.take() {
            entries.push(b.finish()?);
        }
        if entries.is_empty() {
            return Err(FaqError::Empty);
        }
        Ok(Self(entries))
    }

    /// The best answer for `text`, if any keyword matches.
    pub fn answer(&self, text: &str) -> Option<&str> {
        let words: String = text.to_lowercase().chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
        let padded = format!(" {} ", words.split_whitespace().collect::<Vec<_>>().join(" "));
        self.0
            .iter()
            .map(|e| (e.keywords.iter().filter(|k| padded.contains(&format!(" {k} "))).count(), e))
            .filter(|(hits, _)| *hits > 0)
            .max_by_key(|(hits, _)| *hits)
            .map(|(_, e)| e.answer.as_str())
    }
}

#[derive(Debug)]
struct BotState {
    faq: Faq,
    secret: Option<Secret>,
    think: Duration,
}

/// A running demo bot.
#[derive(Debug)]
pub struct DemoBot {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DemoBot {
    /// Starts the bot on 127.0.0.1:0. `think` is how long it "thinks" before answering, so the
    /// typing indicator is visible.
    pub async fn start(faq: Faq, secret: Option<Secret>, think: Duration) -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), faq, secret, think).await
    }

    /// Starts the bot on `listen` (`olbridge demo-bot`).
    pub async fn start_on(listen: SocketAddr, faq: Faq, secret: Option<Secret>, think: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(BotState { faq, secret, think });
        let app = Router::new().route("/webhook/whatsapp", post(answer)).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, task })
    }

    /// The URL to put in `BOT_HTTP_URL`.
    pub fn url(&self) -> String {
        format!("http://{}/webhook/whatsapp", self.addr)
    }
}

impl Drop for DemoBot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(state): State<Arc<BotState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(secret) = &state.secret {
        let header = headers.get("x-olbridge-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !sign::verify(secret, header, &body, chrono::Utc::now().timestamp(), 300) {
            return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
        }
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "expected JSON").into_response();
    };
    tokio::time::sleep(state.think).await;
    let text = request.get("text").and_then(Value::as_str).unwrap_or("");
    let known_name = request.pointer("/profile/name").and_then(Value::as_str).filter(|n| !n.is_empty());
    if let Some(name) = introduced_name(text) {
        let reply = format!("Nice to meet you, {name}! I'll remember your name. How can I help?");
        return axum::Json(json!({"reply_text": reply, "profile": {"name": name}})).into_response();
    }
    let reply = match state.faq.answer(text) {
        Some(a) => a.to_owned(),
        None => {
            "I'm only a demo bot and don't know that one. Try asking about opening hours, delivery, returns or prices, or write \"agent\" to talk to a person."
                .to_owned()
        }
    };
    let reply = match known_name {
        Some(name) if state.faq.answer(text).is_some_and(|a| a.starts_with("Hello")) => format!("Welcome back, {name}! {reply}"),
        _ => reply,
    };
    axum::Json(json!({"reply_text": reply})).into_response()
}

/// "my name is Ana" → "Ana".
fn introduced_name(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let idx = lower.find("my name is ")?;
    let rest = text.get(idx + "my name is ".len()..)?;
    let name: String = rest.split_whitespace().next()?.chars().filter(|c| c.is_alphabetic() || *c == '-').collect();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_faq_answers_by_keywords() {
        let faq = Faq::parse(DEFAULT_FAQ).unwrap();
        assert!(faq.answer("When are you open?").is_some_and(|a| a.contains("9:00")));
        assert!(faq.answer("how long does delivery take").is_some_and(|a| a.contains("1-3")));
        assert!(faq.answer("qwerty").is_none());
        assert_eq!(introduced_name("Hi, my name is Ana!").as_deref(), Some("Ana"));
    }

    #[test]
    fn a_malformed_faq_is_refused_with_its_line() {
        let line = |text: &str| match Faq::parse(text) {
            Err(FaqError::Line { line, .. }) => line,
            other => panic!("{other:?}"),
        };
        assert_eq!(line("# c\nhours, open\nWe're open.\n"), 2, "no Q:");
        assert_eq!(line("Q: hours\n\nQ: price\nCheap.\n"), 1, "a question without an answer");
        assert_eq!(line("Q: hours\nOpen.\nQ: price\nCheap.\n"), 3, "no blank line between blocks");
        assert_eq!(line("Q: , \nOpen.\n"), 1, "no keywords");
        assert!(matches!(Faq::parse("# only comments\n\n"), Err(FaqError::Empty)));
        let faq = Faq::parse("Q: hours\r\nOpen\r\nall day.\r\n\r\nQ: price\nCheap.").unwrap();
        assert_eq!(faq.answer("your hours?"), Some("Open\nall day."));
    }
}
