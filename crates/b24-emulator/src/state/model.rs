//! The portal's records: users, webhooks, lines, chats, sessions, messages, apps, bots, commands.
//!
//! These are the emulator's own types (never `olbridge-core`'s), shaped after Bitrix24's tables so that the
//! JSON views in [`super::views`] can print them exactly as each documented method example does.

use crate::api::{WelcomeBotJoin, WelcomeBotLeft};
use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap, VecDeque};

/// Portal-local time.
pub(crate) type Time = DateTime<FixedOffset>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UserKind {
    Employee,
    Bot,
    Connector,
}

#[derive(Clone, Debug)]
pub(crate) struct User {
    pub id: u64,
    pub first_name: String,
    pub last_name: String,
    pub kind: UserKind,
    pub work_position: String,
    pub gender: String,
    pub email: String,
    pub phone: Option<String>,
    pub color: String,
    pub active: bool,
    pub departments: Vec<u64>,
    pub last_activity: Time,
}

impl User {
    pub fn name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name).trim().to_owned()
    }
    pub fn is_bot(&self) -> bool {
        self.kind == UserKind::Bot
    }
    pub fn is_connector(&self) -> bool {
        self.kind == UserKind::Connector
    }
    /// Open Lines clients are extranet users (OBS `IS_EXTRANET=Y`).
    pub fn is_extranet(&self) -> bool {
        self.kind == UserKind::Connector
    }
    pub fn external_auth_id(&self) -> &'static str {
        match self.kind {
            UserKind::Employee => "default",
            UserKind::Bot => "bot",
            UserKind::Connector => "imconnector",
        }
    }
    pub fn user_type(&self) -> &'static str {
        match self.kind {
            UserKind::Employee => "user",
            UserKind::Bot => "bot",
            UserKind::Connector => "extranet",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Webhook {
    pub scopes: BTreeSet<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Line {
    pub id: u64,
    pub name: String,
    pub active: bool,
    pub connector_id: String,
    pub queue: Vec<u64>,
    pub crm: bool,
    pub welcome_bot_enable: bool,
    pub welcome_bot_id: u64,
    pub welcome_bot_join: WelcomeBotJoin,
    pub welcome_bot_left: WelcomeBotLeft,
    pub welcome_bot_time: u64,
    pub subject: String,
    pub welcome_message: String,
    pub date_create: Time,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CrmLinks {
    pub lead: u64,
    pub company: u64,
    pub contact: u64,
    pub deal: u64,
}

/// What makes a chat an Open Lines chat.
#[derive(Clone, Debug)]
pub(crate) struct LinesInfo {
    pub line_id: u64,
    pub connector_id: String,
    pub customer_id: u64,
    pub phone_digits: String,
    /// The user code: `connector|line|connectorChatId|connectorUserId`.
    pub entity_id: String,
    /// The current or last session (0 before the first).
    pub session_id: u64,
    pub crm: CrmLinks,
    /// `entity_data_3` (silent mode flag).
    pub silent: String,
    /// `BLOCK_DATE` (unix seconds, 0: none): free text posted from then on does not reach the
    /// customer (WhatsApp's 24-hour window).
    pub block_date: i64,
    /// `BLOCK_REASON` (`0`: none).
    pub block_reason: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Chat {
    pub id: u64,
    pub title: String,
    pub color: String,
    pub owner: u64,
    pub date_create: Time,
    pub members: Vec<u64>,
    pub lines: Option<LinesInfo>,
    /// For private (1:1) chats: the two users.
    pub private_pair: Option<(u64, u64)>,
    pub message_ids: Vec<u64>,
    pub typing: Vec<u64>,
    /// Last read message id per user.
    pub read: HashMap<u64, u64>,
}

impl Chat {
    pub fn dialog_id(&self) -> String {
        format!("chat{}", self.id)
    }
    pub fn is_member(&self, user: u64) -> bool {
        self.members.contains(&user)
    }
    pub fn add_member(&mut self, user: u64) {
        if !self.members.contains(&user) {
            self.members.push(user);
        }
    }
    pub fn remove_member(&mut self, user: u64) {
        self.members.retain(|m| *m != user);
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub id: u64,
    pub chat_id: u64,
    pub line_id: u64,
    /// 0 while the chat waits in the queue.
    pub operator_id: u64,
    pub open: bool,
    pub date_create: Time,
    pub date_close: Option<Time>,
}

#[derive(Clone, Debug)]
pub(crate) struct Message {
    pub id: u64,
    pub chat_id: u64,
    pub author_id: u64,
    pub text: String,
    pub date: Time,
    pub system: bool,
    pub skip_connector: bool,
    pub important_connector: bool,
    pub keyboard: Option<Value>,
    pub attach: Option<Value>,
    pub params: Map<String, Value>,
    pub session_id: u64,
    pub uuid: Option<String>,
    /// Whether the connector forwarded it to the customer's messenger.
    pub to_customer: bool,
    /// Posted for the customer after the chat's `BLOCK_DATE`: stored and shown in Bitrix24, never
    /// delivered (what a real portal does here is UNCONFIRMED; users of other platforms report
    /// messages that look sent and never arrive, so the emulator accepts and records it).
    pub window_blocked: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct HandlerUrl {
    pub url: String,
    pub id: u64,
}

/// A REST application: for webhook-registered bots, `APP_ID = 'custom' + CLIENT_ID` (SRC). One app has one set
/// of event handlers, shared by all its bots (each registration rebinds them).
#[derive(Clone, Debug)]
pub(crate) struct App {
    pub client_id: String,
    pub application_token: String,
    pub message_add: Option<HandlerUrl>,
    pub message_update: Option<HandlerUrl>,
    pub message_delete: Option<HandlerUrl>,
    pub welcome: Option<HandlerUrl>,
    pub bot_delete: Option<HandlerUrl>,
    pub command_add: Option<HandlerUrl>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventMode {
    Fetch,
    Webhook,
}

impl EventMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EventMode::Fetch => "fetch",
            EventMode::Webhook => "webhook",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct V2Event {
    pub id: u64,
    pub kind: String,
    pub date: Time,
    pub data: Value,
}

/// A user's `im.v2.Event.*` log: records are kept 24 h or until acknowledged by `offset` (for every consumer).
#[derive(Clone, Debug, Default)]
pub(crate) struct UserLog {
    pub subscribed: bool,
    pub events: VecDeque<V2Event>,
}

/// Chatbots 2.0 state of a bot.
#[derive(Clone, Debug)]
pub(crate) struct V2Bot {
    pub bot_token: String,
    pub event_mode: EventMode,
    pub webhook_url: String,
    pub bot_type: String,
    pub is_hidden: bool,
    pub is_reactions_enabled: bool,
    pub is_support_openline: bool,
    pub queue: VecDeque<V2Event>,
    pub application_token: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Bot {
    pub id: u64,
    pub code: String,
    /// v1: `custom<CLIENT_ID>`; v2: `v2:<botToken>`.
    pub app_id: String,
    /// v1 `TYPE` (`B`/`O`/`H`/`S`).
    pub bot_type: String,
    pub openline: bool,
    pub owner_id: u64,
    pub v2: Option<V2Bot>,
    pub count_message: u64,
    pub count_command: u64,
}

impl Bot {
    pub fn serves_openlines(&self) -> bool {
        match &self.v2 {
            Some(v2) => v2.is_support_openline || v2.bot_type == "openline",
            None => self.openline || self.bot_type == "O",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Command {
    pub id: u64,
    pub bot_id: u64,
    pub app_id: String,
    pub command: String,
    pub common: bool,
    pub hidden: bool,
    pub extranet_support: bool,
}
