//! A turn: one or more customer messages answered together, its durable progress (the outbox) and
//! its outcome.
//!
//! The worker checkpoints a [`TurnProgress`] before every side effect on the portal. If the process
//! dies mid-turn, the next attempt resumes from the checkpoint instead of starting over: the bot is
//! not asked twice for an answer it already gave, a reply chunk whose post was interrupted is looked
//! up on the portal before being sent again, and the handoff is not repeated.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::escalation::{EscalationMatch, EscalationRule};
use super::ids::{DedupKey, MessageId};
use super::message::{CrmBinding, InboundMessage};

/// Why a chat went to a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum HandoffReason {
    /// The customer wrote a configured escalation phrase.
    Phrase {
        /// The phrase that matched.
        phrase: String,
    },
    /// The customer's whole message was a configured lone escalation word ("help!").
    LoneWord {
        /// The word that matched.
        word: String,
    },
    /// The bot answered with `handoff: true`.
    BotRequested,
    /// The bot kept failing; the customer got the fallback message.
    BotFailed {
        /// The last failure, for the log.
        error: String,
    },
    /// The portal refused the reply for good (most often the bot is no longer in the chat: the
    /// customer typed `0`, the line's timer or queue rules moved it on); the chat is handed to a
    /// human so nobody is left without an answer.
    PortalRefused {
        /// Bitrix24's error code.
        code: String,
    },
    /// The bridge gave up on the turn (it failed too often, or its job kept being interrupted):
    /// the customer got the fallback message and the chat went to a human.
    GaveUp {
        /// Why.
        error: String,
    },
    /// WhatsApp's 24-hour window closed (the session's `BLOCK_DATE` passed) before the reply could
    /// be posted: nothing more is posted, no notice either (it would not reach the customer), and
    /// the chat goes to a human, who can reach the customer with a template.
    WindowClosed {
        /// `BLOCK_REASON`, when the portal gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        block_reason: Option<String>,
    },
    /// The customer's phone (or chat) used up its bot calls for the day
    /// (`OLBRIDGE_DAILY_BOT_CALLS`): the bot is not asked, the chat goes to a human with the
    /// handoff message.
    DailyCap {
        /// The day's count, this turn included.
        calls: u64,
    },
}

impl HandoffReason {
    /// The rule name of a given-up turn (the chat mode it leaves; a redrive looks for it).
    pub const GAVE_UP_RULE: &'static str = "gave_up";

    /// A stable name for the log and metrics.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Phrase { .. } => "phrase",
            Self::LoneWord { .. } => "lone_word",
            Self::BotRequested => "bot_handoff",
            Self::BotFailed { .. } => "bot_failure",
            Self::PortalRefused { .. } => "portal_refused",
            Self::GaveUp { .. } => Self::GAVE_UP_RULE,
            Self::WindowClosed { .. } => "window_closed",
            Self::DailyCap { .. } => "daily_cap",
        }
    }
}

impl From<EscalationMatch<'_>> for HandoffReason {
    /// The handoff an escalation match causes; its [`HandoffReason::rule`] is the match's rule.
    fn from(m: EscalationMatch<'_>) -> Self {
        match m.rule {
            EscalationRule::Phrase => Self::Phrase { phrase: m.text.to_owned() },
            EscalationRule::LoneWord => Self::LoneWord { word: m.text.to_owned() },
        }
    }
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TurnOutcome {
    /// The bot's reply was posted (possibly in several chunks).
    Answered {
        /// The ids of the posted messages.
        reply_ids: Vec<MessageId>,
    },
    /// The reply came from the FAQ answer cache: posted without asking the bot.
    Cached {
        /// The ids of the posted messages.
        reply_ids: Vec<MessageId>,
    },
    /// The customer was over the rate limit: the bot was not asked, nothing was escalated; the
    /// first such turn of a window posted the rate-limit notice, later ones stay silent.
    RateLimited {
        /// Whether this turn posted the notice.
        notice: bool,
    },
    /// The bot answered "send nothing" (204 or empty).
    Silent,
    /// The chat went to a human operator.
    HandedOff {
        /// Why.
        reason: HandoffReason,
    },
    /// The bot failed; the customer got the fallback message and the chat went to an operator.
    Fallback {
        /// The last failure.
        error: String,
    },
    /// The bridge gave up on the turn: the customer got the fallback message and the chat went to
    /// an operator (see `crate::usecase::job`).
    GaveUp {
        /// Why.
        error: String,
    },
    /// WhatsApp's 24-hour window was closed when the turn started or closed before its reply was
    /// posted: nothing (more) was posted into the chat and it went to a human. Neither a failure
    /// nor a fallback: the customer wrote too long ago for free text.
    WindowClosed {
        /// `BLOCK_REASON`, when the portal gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        block_reason: Option<String>,
    },
    /// The message was not answered, on purpose.
    Ignored {
        /// Why (a stable name, see `IgnoreReason::as_str`).
        reason: String,
    },
}

impl TurnOutcome {
    /// A stable name for the log and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Answered { .. } => "answered",
            Self::Cached { .. } => "cached",
            Self::RateLimited { .. } => "rate_limited",
            Self::Silent => "silent",
            Self::HandedOff { .. } => "handed_off",
            Self::Fallback { .. } => "fallback",
            Self::GaveUp { .. } => "gave_up",
            Self::WindowClosed { .. } => "window_closed",
            Self::Ignored { .. } => "ignored",
        }
    }
}

/// What the bot said, kept in the checkpoint so a resumed turn does not ask again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedAnswer {
    /// The reply split into postable chunks (empty: send nothing).
    pub chunks: Vec<String>,
    /// The bot asked for a human.
    pub handoff: bool,
    /// The bot's `profile` patch, applied to the stored profile when the turn finishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<serde_json::Value>,
}

/// The outbox of a turn: what has been decided and what has been done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnProgress {
    /// The bot's answer, once received.
    pub answer: Option<SavedAnswer>,
    /// The handoff decided for this turn, once decided.
    pub handoff: Option<HandoffReason>,
    /// Customer-facing text to post before the transfer (handoff or fallback message).
    pub notice: Option<String>,
    /// How many chunks of `answer` (then `notice`) were posted and confirmed.
    pub sent: usize,
    /// A post was started and not confirmed: on resume, look it up on the portal first.
    pub sending: bool,
    /// Ids of the messages posted so far.
    pub posted_ids: Vec<MessageId>,
    /// The transfer to an operator was done.
    pub transferred: bool,
    /// How many bot calls were made, across attempts.
    pub bot_attempts: u32,
    /// The other messages answered in this turn (folded follow-ups), saved with the turn's first
    /// message before the bot is asked: a resumed turn answers exactly the same messages, and
    /// marks them done with it, even when they are not redelivered together.
    pub merged: Vec<InboundMessage>,
    /// The turn's first message itself, saved with `merged` in the composition: a folded message
    /// whose record comes back without the first's (dead-lettered, or further back in the queue)
    /// resumes the turn through it (see `part_of`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<Box<InboundMessage>>,
    /// On a folded message's own record: the key of the turn's first message, whose record holds
    /// the composition. Such a message is finished through that turn, never asked about alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of: Option<DedupKey>,
    /// `answer` came from the FAQ answer cache, not from the bot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// The turn is over the rate limit: `notice` is the rate-limit notice, nothing else is posted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rate_limited: bool,
    /// `notice` is the CSAT prompt and is posted with its 👍/👎 keyboard
    /// (`crate::usecase::csat::keyboard`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keyboard: bool,
}

/// Timings of one turn, for the message log. Every instant is wall-clock UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnTimings {
    /// The bridge received the first event of the turn.
    pub received_at: DateTime<Utc>,
    /// The worker started the turn.
    pub started_at: DateTime<Utc>,
    /// Time spent waiting for the bot, in milliseconds, over all attempts.
    pub bot_ms: Option<u64>,
    /// The last reply chunk (or the transfer) was confirmed by the portal.
    pub finished_at: DateTime<Utc>,
}

/// One row of the per-message log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnRecord {
    /// The keys of the messages answered together (the first is the turn's own key).
    pub keys: Vec<DedupKey>,
    /// The chat, as `chat<N>`.
    pub dialog: String,
    /// The Open Lines session, when known.
    pub session_id: Option<u64>,
    /// How it ended.
    pub outcome: TurnOutcome,
    /// Stage timings.
    pub timings: TurnTimings,
    /// Bot calls made.
    pub bot_attempts: u32,
    /// Where the turn belongs (line, CRM entity) and what it cost; absent in records written
    /// before it existed.
    #[serde(default)]
    pub trace: TurnTrace,
}

/// The per-message record's context beyond outcome and timings: which line and CRM entity the
/// turn belongs to, so the CRM timeline and the per-line statistics can point at them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnTrace {
    /// The Open Lines line of the chat, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_id: Option<u64>,
    /// The CRM entity the chat was bound to when the turn ran (`imopenlines.dialog.get`
    /// `entity_data_1/2`, or the event's copy of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm: Option<CrmBinding>,
    /// The customer's (first) message as the portal timestamped it (the event's `ts` or the
    /// message's date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_at: Option<DateTime<Utc>>,
    /// The (last) bot call started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_started_at: Option<DateTime<Utc>>,
    /// The (last) bot call ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_finished_at: Option<DateTime<Utc>>,
    /// The last reply chunk (or notice) was confirmed by the portal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_posted_at: Option<DateTime<Utc>>,
    /// HTTP requests to the portal the turn made (retries included; this attempt only, a resumed
    /// turn counts again from zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest_calls: Option<u32>,
    /// The CSAT answer to this turn's bot answer (`up`/`down`), once the customer gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csat: Option<String>,
}
