//! What the pollers read on the portal: the Open Lines chats the webhook's user sees (most recently
//! active first), their messages after a cursor, and the user's `im.v2` event log. The adapter over
//! the REST client is [`crate::b24::feed::RestFeed`]; the poll use case (the local runner's poller
//! task and, later, the poller Lambda) sees only this port.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::PortalError;
use crate::domain::ids::{ChatId, MessageId, UserId};

/// An Open Lines chat as the recent list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedChat {
    /// The chat.
    pub chat_id: ChatId,
    /// Who serves the open session (`None`: nobody, the chat waits in the queue or is closed).
    pub owner: Option<UserId>,
    /// The chat's newest message.
    pub last_message_id: Option<MessageId>,
    /// When that message was written (or the chat last changed).
    pub last_activity: Option<DateTime<Utc>>,
    /// The user code (`entity_id`).
    pub entity_id: String,
    /// The session string (`entity_data_1`).
    pub entity_data_1: String,
    /// The CRM links (`entity_data_2`).
    pub entity_data_2: String,
}

/// A message read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedMessage {
    /// Its id.
    pub id: MessageId,
    /// Its author (0: the portal itself).
    pub author_id: u64,
    /// Its text.
    pub text: String,
    /// When it was written (`None` when the portal's date could not be read).
    pub sent_at: Option<DateTime<Utc>>,
}

/// An author as the messages' response lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedUser {
    /// The user id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// The Open Lines connector user (the customer).
    pub connector: bool,
    /// A chatbot.
    pub bot: bool,
}

/// Which messages of a chat to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessagesWanted {
    /// The chat.
    pub chat: ChatId,
    /// Only messages newer than this (`None`: the latest page).
    pub after: Option<MessageId>,
}

/// One chat's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessages {
    /// The chat.
    pub chat: ChatId,
    /// The messages, oldest first.
    pub messages: Vec<FeedMessage>,
    /// Their authors.
    pub users: Vec<FeedUser>,
    /// The page was full: more messages may follow the last one.
    pub full: bool,
}

/// A page of the webhook user's `im.v2.Event.get` log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPage {
    /// The events, oldest first, as the portal sent them (`{eventId, type, date, data}`).
    pub events: Vec<Value>,
    /// More events are waiting.
    pub has_more: bool,
}

/// How close the polled methods are to the portal's operating-time limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    /// The largest share of the limit a polled method has used in the current ten minutes: 0 when
    /// idle, 1 at the limit.
    pub share: f64,
    /// When that method's oldest counted minute expires and its count goes down, if the portal
    /// said.
    pub eases_at: Option<DateTime<Utc>>,
}

/// What the pollers read on the portal.
#[async_trait]
pub trait ChatFeed: Send + Sync {
    /// The Open Lines chats of the webhook's user, most recently active first, at least down to
    /// those last active at `active_since` (older ones may come along), at most `max`.
    async fn recent_chats(&self, active_since: DateTime<Utc>, max: usize) -> Result<Vec<FeedChat>, PortalError>;

    /// Reads several chats' messages in as few requests as possible (a `batch` of up to 50 costs
    /// one slot of the rate budget). One result per wanted chat, in order: a chat that failed does
    /// not fail the others.
    async fn messages(&self, wanted: &[MessagesWanted]) -> Result<Vec<Result<ChatMessages, PortalError>>, PortalError>;

    /// Starts the webhook user's event log (`im.v2.Event.subscribe`; idempotent).
    async fn subscribe_events(&self) -> Result<(), PortalError>;

    /// The log's events from `offset`, which acknowledges (removes, for every consumer of this
    /// user's log) every event before it.
    async fn events(&self, offset: Option<u64>) -> Result<EventPage, PortalError>;

    /// How close the polled methods are to the portal's operating-time limit (contract §2.2).
    fn pressure(&self) -> Pressure;

    /// The webhook's user (our own messages, in operator mode).
    fn self_id(&self) -> UserId;
}
