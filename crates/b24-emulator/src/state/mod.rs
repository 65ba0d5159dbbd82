//! The portal model: everything a Bitrix24 portal knows, behind one `std::sync::Mutex`.
//!
//! Every REST method, control-API call and Rust-API call locks [`Portal`], changes it synchronously and
//! releases it; the lock is never held across an `.await`. Events are produced *inside* the lock (so their
//! order matches the order of state changes) and handed to the non-blocking [`crate::events::EventSink`];
//! delivery happens later on the dispatcher task.
//!
//! Submodules: [`model`] (records), [`openlines`] (sessions, queue, handoff), [`messages`] (posting, bot
//! notification, the customer's inbox), [`crm`] (leads, contacts, deals, timeline), [`views`] (JSON renderings
//! as the documented examples print them), [`seed`] (employees, webhooks, lines, demo portal).

pub(crate) mod commands;
pub(crate) mod crm;
pub(crate) mod messages;
pub(crate) mod model;
pub(crate) mod openlines;
pub(crate) mod seed;
pub(crate) mod user_events;
pub(crate) mod views;

use crate::clock::Clock;
use crate::events::EventSink;
use chrono::FixedOffset;
use model::{App, Bot, Chat, Command, Line, Message, Session, Time, User, UserLog, Webhook};
use rand::Rng;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Portal-wide facts that events and responses repeat.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub domain: String,
    pub member_id: String,
    pub client_endpoint: String,
    pub server_endpoint: String,
    pub language: String,
    pub tz: FixedOffset,
    pub default_connector: String,
    pub v2_app_token: String,
    pub enforce_extranet_support: bool,
    pub expose_connector_phones: bool,
    /// Whether `im.v2.Event.*` logs Open Lines chats (UNCONFIRMED).
    pub im_v2_openlines: bool,
    /// WhatsApp's window after a customer message (`None`: no block dates).
    pub whatsapp_window: Option<std::time::Duration>,
    /// Whether keyboards reach WhatsApp customers (UNCONFIRMED; off).
    pub keyboards_reach_whatsapp: bool,
}

/// Monotonic id sequences. They start at different, realistic-looking bases so that a client mixing up a chat
/// id with a message id or a session id fails loudly instead of passing by luck.
#[derive(Clone, Debug)]
pub(crate) struct Ids {
    pub chat: u64,
    pub message: u64,
    pub session: u64,
    pub handler: u64,
    pub command: u64,
    pub v2_event: u64,
}

impl Default for Ids {
    fn default() -> Self {
        Ids { chat: 1700, message: 84000, session: 300, handler: 400, command: 100, v2_event: 1000 }
    }
}

fn bump(n: &mut u64) -> u64 {
    *n += 1;
    *n
}

impl Ids {
    pub fn chat(&mut self) -> u64 {
        bump(&mut self.chat)
    }
    /// Strictly increasing across the whole portal (contract: message ids are portal-wide).
    pub fn message(&mut self) -> u64 {
        bump(&mut self.message)
    }
    pub fn session(&mut self) -> u64 {
        bump(&mut self.session)
    }
    pub fn handler(&mut self) -> u64 {
        bump(&mut self.handler)
    }
    pub fn command(&mut self) -> u64 {
        bump(&mut self.command)
    }
    pub fn v2_event(&mut self) -> u64 {
        bump(&mut self.v2_event)
    }
}

#[derive(Debug)]
pub(crate) struct Portal {
    pub ident: Identity,
    pub users: BTreeMap<u64, User>,
    pub webhooks: HashMap<(u64, String), Webhook>,
    pub lines: BTreeMap<u64, Line>,
    pub chats: BTreeMap<u64, Chat>,
    pub sessions: BTreeMap<u64, Session>,
    pub messages: BTreeMap<u64, Message>,
    pub apps: BTreeMap<String, App>,
    pub bots: BTreeMap<u64, Bot>,
    pub commands: BTreeMap<u64, Command>,
    pub crm: crm::Crm,
    pub ids: Ids,
    /// (connector id, phone digits) → connector user.
    pub connector_users: HashMap<(String, String), u64>,
    /// (line, connector user) → chat.
    pub lines_chats: HashMap<(u64, u64), u64>,
    /// (smaller user id, larger user id) → private chat.
    pub private_chats: HashMap<(u64, u64), u64>,
    /// `im.v2.Event.*` logs by user.
    pub user_events: HashMap<u64, UserLog>,
    pub events: EventSink,
    pub clock: Arc<Clock>,
}

/// Random lowercase alphanumerics (webhook codes, tokens).
pub(crate) fn random_code(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len).map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())])).collect()
}

/// Random lowercase hex (member ids, application tokens).
pub(crate) fn random_hex(len: usize) -> String {
    const CHARS: &[u8] = b"0123456789abcdef";
    let mut rng = rand::rng();
    (0..len).map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())])).collect()
}

/// A v4-shaped UUID string (message `uuid`, `TEMPLATE_ID`).
pub(crate) fn random_uuid() -> String {
    let h = random_hex(32);
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

impl Portal {
    pub fn new(ident: Identity, events: EventSink, clock: Arc<Clock>) -> Portal {
        Portal {
            ident,
            users: BTreeMap::new(),
            webhooks: HashMap::new(),
            lines: BTreeMap::new(),
            chats: BTreeMap::new(),
            sessions: BTreeMap::new(),
            messages: BTreeMap::new(),
            apps: BTreeMap::new(),
            bots: BTreeMap::new(),
            commands: BTreeMap::new(),
            crm: crm::Crm::default(),
            ids: Ids::default(),
            connector_users: HashMap::new(),
            lines_chats: HashMap::new(),
            private_chats: HashMap::new(),
            user_events: HashMap::new(),
            events,
            clock,
        }
    }

    pub fn now(&self) -> Time {
        self.clock.now().with_timezone(&self.ident.tz)
    }

    pub fn next_user_id(&self) -> u64 {
        self.users.keys().next_back().map_or(1, |m| m.saturating_add(1))
    }

    pub fn user(&self, id: u64) -> Option<&User> {
        self.users.get(&id)
    }

    pub fn is_bot(&self, id: u64) -> bool {
        self.users.get(&id).is_some_and(User::is_bot)
    }

    /// Parses `chat<N>` into a chat id.
    pub fn chat_from_dialog(dialog_id: &str) -> Option<u64> {
        dialog_id.strip_prefix("chat").and_then(|n| n.parse().ok())
    }

    /// The open session of a chat, if any.
    pub fn open_session(&self, chat_id: u64) -> Option<&Session> {
        let sid = self.chats.get(&chat_id)?.lines.as_ref()?.session_id;
        self.sessions.get(&sid).filter(|s| s.open)
    }

    /// The current or last session id of a chat (0 if none).
    pub fn session_id_of(&self, chat_id: u64) -> u64 {
        self.chats.get(&chat_id).and_then(|c| c.lines.as_ref()).map_or(0, |l| l.session_id)
    }

    /// Whether `user` may read the chat: a member, or (for Open Lines chats) an operator in the line's queue.
    pub fn can_access(&self, chat_id: u64, user: u64) -> bool {
        let Some(chat) = self.chats.get(&chat_id) else { return false };
        if chat.is_member(user) {
            return true;
        }
        chat.lines.as_ref().and_then(|l| self.lines.get(&l.line_id)).is_some_and(|line| line.queue.contains(&user))
    }

    /// The bot behind a v1 `CLIENT_ID` (its app's first bot), as `imbot.*` resolves an omitted `BOT_ID`.
    pub fn first_bot_of_app(&self, app_id: &str) -> Option<u64> {
        self.bots.values().find(|b| b.app_id == app_id).map(|b| b.id)
    }
}
