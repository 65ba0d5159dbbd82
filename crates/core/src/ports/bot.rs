//! The bot port and its own types: the request we send, the answer we accept, how a call fails.
//! The HTTP adapter that speaks the contract on the wire is [`crate::bot::http::HttpBot`].

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::HistoryTurn;
use crate::domain::ids::DedupKey;

/// The CRM binding as the bot sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotCrm {
    /// `lead`, `deal`, `contact` or `company`.
    pub entity_type: String,
    /// The entity id.
    pub entity_id: u64,
}

/// The JSON body POSTed to `BOT_HTTP_URL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotRequest {
    /// Always `bitrix24`.
    pub platform: String,
    /// Always `inbound`.
    pub direction: String,
    /// `chat<N>`.
    pub dialog_id: String,
    /// The chat id.
    pub chat_id: u64,
    /// The (last) customer message id of the turn.
    pub message_id: u64,
    /// The customer's text (all texts of a burst, joined by newlines).
    pub text: String,
    /// Same as `text` (the client's older bot reads `message`).
    pub message: String,
    /// The customer's phone, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Same as `phone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_phone: Option<String>,
    /// `B24_BUSINESS_PHONE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_phone: Option<String>,
    /// The customer's Bitrix24 user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author_id: Option<u64>,
    /// The customer's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    /// The Open Lines line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_id: Option<u64>,
    /// The connector id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// The Open Lines session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<u64>,
    /// The CRM binding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crm: Option<BotCrm>,
    /// The stored per-phone profile (an object; `{}` when none).
    pub profile: Value,
    /// Whether the customer consented to being remembered: the profile's `consent` field, `null`
    /// when never asked (or no phone). Always sent, `null` included, so a bot can tell "unknown"
    /// from an older bridge that does not send it (additive: bots that ignore it are unaffected).
    #[serde(default)]
    pub consent: Option<bool>,
    /// The last turns of the conversation.
    pub history: Vec<HistoryTurn>,
    /// The de-duplication key of the turn (also sent as `Idempotency-Key`).
    pub event_id: String,
}

/// A bot answer, normalised from any accepted shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BotAnswer {
    /// Messages to post, in order; empty means "send nothing".
    pub replies: Vec<String>,
    /// The bot asks for a human.
    pub handoff: bool,
    /// A patch for the stored profile.
    pub profile: Option<Value>,
    /// The answer depends on the question alone and may be served from the FAQ answer cache
    /// (`crate::domain::faq` adds its own guards).
    pub cacheable: bool,
    /// The bot's knowledge-base version (`kb_version`): a new one invalidates the cache's entries.
    pub kb_version: Option<String>,
}

/// Why a bot call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotError {
    /// No answer within the timeout.
    #[error("the bot did not answer within {0} s")]
    Timeout(u64),
    /// The bot answered with an error status.
    #[error("the bot answered HTTP {0}")]
    Status(u16),
    /// The bot answered 200 with something that is not a valid answer.
    #[error("the bot's answer is invalid: {0}")]
    InvalidAnswer(String),
    /// The connection failed.
    #[error("could not reach the bot: {0}")]
    Transport(String),
    /// The bot answered a 3xx. Redirects are never followed: that would re-send the customer's
    /// data (and the URL's token, as `Referer`) to another host and relay its answer.
    #[error("the bot answered a redirect to another location; olbridge does not follow redirects, fix BOT_HTTP_URL (HTTP {0})")]
    Redirect(u16),
}

impl BotError {
    /// 5xx, 429, timeouts and connection failures are worth another try; 4xx, redirects and
    /// invalid answers are not (the same request would get the same answer).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout(_) | Self::Transport(_) => true,
            Self::Status(s) => *s >= 500 || *s == 429 || *s == 408,
            Self::InvalidAnswer(_) | Self::Redirect(_) => false,
        }
    }
}

/// The bot, as the worker needs it.
#[async_trait]
pub trait Bot: Send + Sync {
    /// Asks the bot once, waiting at most `timeout` (the configured `BOT_HTTP_TIMEOUT_SEC`,
    /// shortened by the caller to fit what is left of a Lambda invocation). Retries are the
    /// caller's (one policy, one budget).
    async fn ask(&self, request: &BotRequest, idempotency_key: &DedupKey, timeout: Duration) -> Result<BotAnswer, BotError>;
}
