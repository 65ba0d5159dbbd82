//! The one internal message model.
//!
//! Bot push (v1 `ONIMBOTMESSAGEADD`, v2 `ONIMBOTV2MESSAGEADD`), bot fetch (`imbot.v2.Event.get`),
//! operator polling (`im.dialog.messages.get`) and reconciliation all produce an
//! [`InboundMessage`]. Everything after the edge — de-duplication, the queue, the worker, the bot
//! call, the log — sees only this type, so a message seen by push and by polling has the same
//! [`DedupKey`] and is answered once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{BotId, ChatId, DedupKey, DialogId, LineId, MemberId, MessageId, Phone, PortalDomain, SessionId, UserId};

/// Which path brought a message in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A chatbot v1 event (`ONIMBOTMESSAGEADD`) POSTed to the receiver.
    BotPushV1,
    /// A Chatbots 2.0 event in webhook mode.
    BotPushV2,
    /// A Chatbots 2.0 event pulled with `imbot.v2.Event.get`.
    BotFetch,
    /// The service user's polling of `im.recent.list` / `im.dialog.messages.get`.
    OperatorPoll,
    /// Recovered by the reconciliation pass (a push event that never arrived).
    Reconcile,
}

/// Who wrote a message, as far as answering is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorKind {
    /// The customer: the connector user of an Open Lines chat (`IS_CONNECTOR=Y`). Only these
    /// messages are answered.
    Customer,
    /// An employee (a human operator): seeing one in the chat silences the bot for the session.
    Operator,
    /// A bot, including ours: never answered, or the bot would talk to itself.
    Bot,
    /// The portal itself (author 0, `SYSTEM=Y`).
    System,
}

/// The author of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// The Bitrix24 user id; `None` for system messages (author 0).
    pub id: Option<UserId>,
    /// Display name (`data[USER][NAME]`), possibly empty.
    pub name: String,
    /// What kind of author this is.
    pub kind: AuthorKind,
}

/// Which portal a message belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalRef {
    /// `auth[member_id]`.
    pub member_id: MemberId,
    /// `auth[domain]`.
    pub domain: PortalDomain,
}

/// The CRM entity an Open Lines chat is bound to (`entity_data_1` fields 2–3, or `entity_data_2`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmBinding {
    /// `LEAD`, `DEAL`, `CONTACT` or `COMPANY`, lower-cased for `crm.timeline.comment.add`.
    pub entity_type: String,
    /// The entity's id.
    pub entity_id: u64,
}

/// What an Open Lines chat says about itself: the user code and the session string, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinesContext {
    /// The line the chat belongs to.
    pub line_id: Option<LineId>,
    /// The connector id (`whatsappbyedna`, `whatsappbytwilio`, ...).
    pub connector: Option<String>,
    /// The raw user code `connector|line|connector chat id|connector user id`.
    pub user_code: Option<String>,
    /// The current session (field 6 of `entity_data_1`).
    pub session_id: Option<SessionId>,
    /// The CRM binding, when the line has CRM on.
    pub crm: Option<CrmBinding>,
    /// The customer's phone when the connector puts it in the user code.
    pub phone: Option<Phone>,
    /// When the connector stops taking free text (WhatsApp's 24-hour window; `entity_data_1`
    /// fields 9–10), if the session string says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<crate::domain::window::Block>,
}

/// One message, whatever path brought it in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// The path it came by.
    pub source: Source,
    /// The portal.
    pub portal: PortalRef,
    /// The message id (portal-wide, increasing).
    pub message_id: MessageId,
    /// The chat.
    pub chat_id: ChatId,
    /// The dialog to reply to (`chat<N>`).
    pub dialog_id: DialogId,
    /// Who wrote it.
    pub author: Author,
    /// The text as the customer wrote it (BB codes as Bitrix24 delivered them).
    pub text: String,
    /// `true` for `SYSTEM=Y` messages, which are never answered.
    pub system: bool,
    /// Open Lines context, decoded from the chat's entity fields.
    pub lines: LinesContext,
    /// The bot the event was addressed to (push and fetch paths).
    pub bot_id: Option<BotId>,
    /// The portal language (`LANGUAGE`), a hint for the bot and for canned messages.
    pub language: Option<String>,
    /// When the portal says the message was sent or the event left its queue (`ts`).
    pub sent_at: DateTime<Utc>,
}

/// What a synthetic canary's message starts with; the rest is its nonce.
pub const CANARY_PREFIX: &str = "olbridge canary ";

/// Whether `text` is a canary's: outside Open Lines (`in_open_line` false) and starting with
/// [`CANARY_PREFIX`]. In an Open Lines chat the same words are a customer's ordinary question.
pub fn is_canary_text(text: &str, in_open_line: bool) -> bool {
    !in_open_line && text.trim_start().starts_with(CANARY_PREFIX)
}

impl InboundMessage {
    /// Whether this is a synthetic canary's message (`crate::usecase::canary`): never inside an
    /// Open Lines chat, whatever the text.
    pub fn is_canary(&self) -> bool {
        is_canary_text(&self.text, self.lines.user_code.is_some())
    }
}

impl InboundMessage {
    /// The de-duplication key: portal + message id, the same for every source.
    pub fn dedup_key(&self) -> DedupKey {
        DedupKey::message(&self.portal.member_id, self.message_id)
    }

    /// Whether the bridge should answer this message at all: a customer wrote it, it is not a
    /// system message, and it has text. The reason is returned for the log when not.
    pub fn answerability(&self) -> Result<(), IgnoreReason> {
        match self.author.kind {
            AuthorKind::Customer if self.system => Err(IgnoreReason::SystemMessage),
            AuthorKind::Customer if self.text.trim().is_empty() => Err(IgnoreReason::EmptyText),
            AuthorKind::Customer => Ok(()),
            AuthorKind::Operator => Err(IgnoreReason::OperatorMessage),
            AuthorKind::Bot => Err(IgnoreReason::BotMessage),
            AuthorKind::System => Err(IgnoreReason::SystemMessage),
        }
    }
}

/// Why a message was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    /// Written by an operator (it silences the bot for the session instead).
    OperatorMessage,
    /// Written by a bot, ours included.
    BotMessage,
    /// A system message.
    SystemMessage,
    /// No text (a sticker, a file without caption).
    EmptyText,
    /// The chat is with a human for this session.
    HumanSession,
    /// Not an Open Lines chat.
    NotOpenLines,
}

impl IgnoreReason {
    /// A stable name for logs and the message log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OperatorMessage => "operator_message",
            Self::BotMessage => "bot_message",
            Self::SystemMessage => "system_message",
            Self::EmptyText => "empty_text",
            Self::HumanSession => "human_session",
            Self::NotOpenLines => "not_open_lines",
        }
    }
}
