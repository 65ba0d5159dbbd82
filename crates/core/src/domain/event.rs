//! Portal events after parsing, and the queue's unit of work.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{BotId, ChatId, DedupKey, DialogId, MessageId, UserId};
use super::message::{Author, InboundMessage, LinesContext, PortalRef};

/// Everything the portal can tell the bridge, whatever the transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PortalEvent {
    /// A message was written in a chat our bot serves.
    Message(InboundMessage),
    /// Our bot joined a chat (a new Open Lines session with the welcome bot).
    BotJoined {
        /// The portal.
        portal: PortalRef,
        /// The bot that joined.
        bot_id: BotId,
        /// The chat.
        chat_id: ChatId,
        /// The dialog.
        dialog_id: DialogId,
        /// Open Lines context (the new session id lives here).
        lines: LinesContext,
        /// When the portal sent it.
        sent_at: DateTime<Utc>,
    },
    /// A bot command was sent (a keyboard button such as a thumbs up/down, or `/command`).
    Command {
        /// The portal.
        portal: PortalRef,
        /// The bot the command belongs to.
        bot_id: BotId,
        /// The chat.
        chat_id: ChatId,
        /// The dialog.
        dialog_id: DialogId,
        /// The command word.
        command: String,
        /// Its parameters.
        params: String,
        /// The message that carried it.
        message_id: MessageId,
        /// Who sent it.
        author: Author,
        /// Open Lines context of the chat (line, session, CRM binding), when the event carries it.
        #[serde(default)]
        lines: LinesContext,
        /// When the portal sent it.
        sent_at: DateTime<Utc>,
    },
    /// Our bot was unregistered on the portal.
    BotDeleted {
        /// The portal.
        portal: PortalRef,
        /// The bot.
        bot_id: BotId,
        /// When the portal sent it.
        sent_at: DateTime<Utc>,
    },
}

impl PortalEvent {
    /// The portal the event belongs to.
    pub fn portal(&self) -> &PortalRef {
        match self {
            Self::Message(m) => &m.portal,
            Self::BotJoined { portal, .. } | Self::Command { portal, .. } | Self::BotDeleted { portal, .. } => portal,
        }
    }

    /// When the portal sent the event (`ts`).
    pub fn sent_at(&self) -> DateTime<Utc> {
        match self {
            Self::Message(m) => m.sent_at,
            Self::BotJoined { sent_at, .. } | Self::Command { sent_at, .. } | Self::BotDeleted { sent_at, .. } => *sent_at,
        }
    }

    /// The chat the event is about, if any.
    pub fn chat_id(&self) -> Option<ChatId> {
        match self {
            Self::Message(m) => Some(m.chat_id),
            Self::BotJoined { chat_id, .. } | Self::Command { chat_id, .. } => Some(*chat_id),
            Self::BotDeleted { .. } => None,
        }
    }

    /// The de-duplication key of the event.
    pub fn dedup_key(&self) -> DedupKey {
        match self {
            Self::Message(m) => m.dedup_key(),
            Self::BotJoined { portal, chat_id, lines, bot_id, .. } => {
                let session = lines.session_id.map(|s| s.to_string()).unwrap_or_else(|| "none".into());
                DedupKey::event(&portal.member_id, "join", &format!("{bot_id}:{chat_id}:{session}"))
            }
            // Who pressed is part of it: an operator's press in Bitrix24 must not swallow the
            // customer's press of the same button.
            Self::Command { portal, message_id, command, params, author, .. } => {
                let by = author.id.map_or(0, UserId::get);
                DedupKey::event(&portal.member_id, "cmd", &format!("{message_id}:{command}:{params}:{by}"))
            }
            Self::BotDeleted { portal, bot_id, .. } => DedupKey::event(&portal.member_id, "botdelete", &bot_id.to_string()),
        }
    }

    /// The FIFO group: events of one chat are processed one at a time, in order.
    pub fn group(&self) -> GroupId {
        let member = &self.portal().member_id;
        match self.chat_id() {
            Some(chat) => GroupId(format!("{member}:chat{chat}")),
            None => GroupId(format!("{member}:portal")),
        }
    }
}

/// A FIFO group (SQS `MessageGroupId`): one chat of one portal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(String);

impl GroupId {
    /// Rebuilds a group id read back from a store.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The queue's unit of work: one verified event, with its key and group computed once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Payload format version, so a queue can be drained across upgrades.
    pub version: u32,
    /// De-duplication key.
    pub key: DedupKey,
    /// FIFO group.
    pub group: GroupId,
    /// When the bridge received it (the start of every latency measurement).
    pub received_at: DateTime<Utc>,
    /// The event.
    pub event: PortalEvent,
}

impl Job {
    /// The current payload version.
    pub const VERSION: u32 = 1;

    /// Wraps an event received at `received_at`.
    pub fn new(event: PortalEvent, received_at: DateTime<Utc>) -> Self {
        Self { version: Self::VERSION, key: event.dedup_key(), group: event.group(), received_at, event }
    }

    /// The message's id, for a message.
    fn message_id(&self) -> Option<MessageId> {
        match &self.event {
            PortalEvent::Message(m) => Some(m.message_id),
            _ => None,
        }
    }
}

/// Puts one chat's queued items into the order their messages were written: each run of
/// consecutive messages is sorted by message id (ids grow portal-wide), and other events (a bot
/// joining, a command) keep their place. Jobs are queued in the order they reached the bridge, and
/// a message whose event was lost, found later by reconciliation, is queued after the ones whose
/// events arrived: taken together, it is still answered first.
pub fn written_order<T>(items: &mut [T], job: impl Fn(&T) -> Option<&Job>) {
    let id = |item: &T| job(item).and_then(Job::message_id);
    let mut start = 0;
    while start < items.len() {
        if id(&items[start]).is_none() {
            start += 1;
            continue;
        }
        let end = items[start..].iter().position(|i| id(i).is_none()).map_or(items.len(), |n| start + n);
        items[start..end].sort_by_key(|i| id(i).map(MessageId::get));
        start = end;
    }
}
