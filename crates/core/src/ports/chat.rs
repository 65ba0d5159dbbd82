//! Per-chat, per-session state: who serves a chat, and the recent conversation the bot sees.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::domain::ids::{ChatId, Phone, SessionId};

/// Who serves a chat in a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ChatMode {
    /// The bot answers.
    Bot,
    /// A human has the chat for this session; the bot stays silent.
    Human {
        /// Which rule fired (`phrase`, `bot_handoff`, `bot_failure`, `operator_wrote`).
        rule: String,
        /// Since when.
        since: DateTime<Utc>,
    },
}

/// A turn of the conversation, as the bot's history sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryTurn {
    /// `customer`, `bot` or `operator`.
    pub role: String,
    /// What was said.
    pub text: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Per-chat, per-session state: who serves the chat, and the recent conversation.
#[async_trait]
pub trait ChatStore: Send + Sync {
    /// The mode of `chat` in `session` (`Bot` when nothing was recorded). `session = None` is the
    /// chat-wide state used when the session is unknown.
    async fn mode(&self, chat: ChatId, session: Option<SessionId>) -> StoreResult<ChatMode>;

    /// Puts the chat in human mode for `session` (idempotent: the first rule and time are kept).
    async fn set_human(&self, chat: ChatId, session: Option<SessionId>, rule: &str, now: DateTime<Utc>) -> StoreResult<()>;

    /// Hands a chat back to the bot for `session` (an operator command).
    async fn set_bot(&self, chat: ChatId, session: Option<SessionId>) -> StoreResult<()>;

    /// Appends a turn to the chat's history.
    async fn append_history(&self, chat: ChatId, turn: &HistoryTurn) -> StoreResult<()>;

    /// The last `limit` turns, oldest first.
    async fn history(&self, chat: ChatId, limit: usize) -> StoreResult<Vec<HistoryTurn>>;

    /// Drops history older than `cutoff`; returns how many turns. Links last seen before `cutoff`
    /// go too (they exist to find history).
    async fn purge_history_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;

    /// Records that `chat` serves `phone` (seen at `now`; idempotent, the time is refreshed), so
    /// [`Privacy`](super::Privacy) finds the chat's history from the phone. Kept as long as
    /// history.
    async fn link_phone(&self, chat: ChatId, phone: &Phone, now: DateTime<Utc>) -> StoreResult<()>;
}
