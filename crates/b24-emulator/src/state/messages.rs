//! Posting messages, telling bots about them, and what the customer's messenger receives.
//!
//! Message ids come from one portal-wide sequence. Whether a message reaches the customer follows SRC
//! `imopenlines/lib/connector.php::onMessageSend`: messages in an Open Lines chat from anyone but the customer
//! are forwarded, except `SYSTEM=Y` (unless `IMPORTANT_CONNECTOR=Y`) and `SKIP_CONNECTOR=Y` ones.
//! Bots hear about every message in a chat they are a member of, except their own and system (author 0) ones.

use super::Portal;
use super::model::{EventMode, Message, V2Event};
use crate::api::InboxMessage;
use crate::events::{self, OutEvent};
use crate::rest::errors::ApiError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A message to post.
#[derive(Clone, Debug, Default)]
pub(crate) struct Post {
    pub chat_id: u64,
    pub author_id: u64,
    pub text: String,
    pub system: bool,
    pub skip_connector: bool,
    pub important_connector: bool,
    pub keyboard: Option<Value>,
    pub attach: Option<Value>,
    pub params: Map<String, Value>,
}

impl Post {
    pub fn text(chat_id: u64, author_id: u64, text: &str) -> Post {
        Post { chat_id, author_id, text: text.to_owned(), ..Post::default() }
    }
}

impl Portal {
    /// Stores a message (no notifications). The chat must exist.
    pub fn post(&mut self, p: Post) -> u64 {
        let id = self.ids.message();
        let now = self.now();
        let Some(chat) = self.chats.get_mut(&p.chat_id) else { return id };
        let lines = chat.lines.as_ref();
        let for_customer = lines.is_some_and(|l| p.author_id != l.customer_id) && !p.skip_connector && (!p.system || p.important_connector);
        // WhatsApp's window: after BLOCK_DATE the connector delivers no free text.
        let window_blocked = for_customer && lines.is_some_and(|l| l.block_date > 0 && now.timestamp() >= l.block_date);
        let to_customer = for_customer && !window_blocked;
        let session_id = lines.map_or(0, |l| l.session_id);
        chat.message_ids.push(id);
        let mut params = p.params;
        if let Some(k) = &p.keyboard {
            params.insert("KEYBOARD".into(), k.clone());
        }
        if let Some(a) = &p.attach {
            params.insert("ATTACH".into(), Value::Array(vec![a.clone()]));
        }
        if let Some(b) = self.bots.get_mut(&p.author_id) {
            b.count_message += 1;
        }
        if let Some(u) = self.users.get_mut(&p.author_id) {
            u.last_activity = now;
        }
        self.messages.insert(
            id,
            Message {
                id,
                chat_id: p.chat_id,
                author_id: p.author_id,
                text: p.text,
                date: now,
                system: p.system,
                skip_connector: p.skip_connector,
                important_connector: p.important_connector,
                keyboard: p.keyboard,
                attach: p.attach,
                params,
                session_id,
                uuid: (p.author_id != 0).then(super::random_uuid),
                to_customer,
                window_blocked,
            },
        );
        self.log_message(id);
        id
    }

    /// A system message (author 0, `SYSTEM=Y`): visible in Bitrix24 only.
    pub fn system_message(&mut self, chat_id: u64, text: &str) -> u64 {
        self.post(Post { chat_id, author_id: 0, text: text.to_owned(), system: true, ..Post::default() })
    }

    /// Queues `ONIMBOTMESSAGEADD` (one per app, listing the app's bots in the chat) and
    /// `ONIMBOTV2MESSAGEADD` (one per v2 bot) for a new message.
    pub fn notify_bots(&mut self, message_id: u64) {
        let Some(msg) = self.messages.get(&message_id).cloned() else { return };
        if msg.author_id == 0 {
            return;
        }
        let Some(chat) = self.chats.get(&msg.chat_id) else { return };
        let mut apps: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut v2 = Vec::new();
        for m in &chat.members {
            let Some(bot) = self.bots.get(m) else { continue };
            if bot.id == msg.author_id {
                continue;
            }
            if bot.v2.is_some() {
                v2.push(bot.id);
            } else {
                apps.entry(bot.app_id.clone()).or_default().push(bot.id);
            }
        }
        for (app_id, bots) in apps {
            if let Some(ev) = events::v1::message_add(self, &app_id, &bots, &msg) {
                self.events.push(ev);
            }
        }
        for bot in v2 {
            self.emit_v2(bot, "ONIMBOTV2MESSAGEADD", |p, fetch| events::v2::message_data(p, bot, &msg, fetch));
        }
    }

    /// Queues the join event of a bot that joined a chat (v1 `ONIMBOTJOINCHAT`, v2 `ONIMBOTV2JOINCHAT`).
    pub fn emit_join(&mut self, chat_id: u64, bot_id: u64, by_user: u64) {
        let Some(bot) = self.bots.get(&bot_id) else { return };
        if bot.v2.is_some() {
            self.emit_v2(bot_id, "ONIMBOTV2JOINCHAT", |p, fetch| events::v2::join_data(p, bot_id, chat_id, by_user, fetch));
        } else if let Some(ev) = events::v1::join_chat(self, bot_id, chat_id, by_user) {
            self.events.push(ev);
        }
    }

    /// Builds a v2 event and queues it for fetch (`imbot.v2.Event.get`) or webhook delivery.
    pub fn emit_v2(&mut self, bot_id: u64, kind: &str, build: impl Fn(&Portal, bool) -> Value) {
        let Some(mode) = self.bots.get(&bot_id).and_then(|b| b.v2.as_ref()).map(|v| v.event_mode) else { return };
        match mode {
            EventMode::Fetch => {
                let data = build(self, true);
                let id = self.ids.v2_event();
                let date = self.now();
                if let Some(v2) = self.bots.get_mut(&bot_id).and_then(|b| b.v2.as_mut()) {
                    v2.queue.push_back(V2Event { id, kind: kind.to_owned(), date, data });
                }
            }
            EventMode::Webhook => {
                let data = build(self, false);
                if let Some(ev) = events::v2::webhook_event(self, bot_id, kind, data) {
                    self.events.push(ev);
                }
            }
        }
    }

    /// Pushes an already-built event.
    pub fn push_event(&self, ev: OutEvent) {
        self.events.push(ev);
    }

    /// An employee (or the webhook user) writes in a chat: must be a member, or an operator of the chat's line
    /// (who then joins). A queue operator writing in a chat nobody holds takes it.
    pub fn employee_writes(&mut self, chat_id: u64, user_id: u64, post: Post) -> Result<u64, ApiError> {
        let denied = || ApiError::bad("ACCESS_ERROR", "Action unavailable");
        if !self.chats.contains_key(&chat_id) || !self.can_access(chat_id, user_id) {
            return Err(denied());
        }
        let waiting = self.open_session(chat_id).is_some_and(|s| s.operator_id == 0);
        self.add_chat_member(chat_id, user_id);
        if let Some(c) = self.chats.get_mut(&chat_id)
            && waiting
            && c.lines.is_some()
        {
            c.owner = user_id;
        }
        if waiting {
            let sid = self.session_id_of(chat_id);
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.operator_id = user_id;
            }
        }
        let id = self.post(Post { chat_id, author_id: user_id, ..post });
        self.notify_bots(id);
        Ok(id)
    }

    /// What the customer with this phone received, in order.
    pub fn inbox(&self, phone: &str) -> Vec<InboxMessage> {
        let digits = super::openlines::phone_digits(phone);
        let mut out: Vec<InboxMessage> = self
            .chats
            .values()
            .filter(|c| c.lines.as_ref().is_some_and(|l| l.phone_digits == digits))
            .flat_map(|c| {
                let plain = c.lines.as_ref().is_some_and(|l| l.connector_id.starts_with("whatsapp"));
                let buttons = c.lines.as_ref().is_some_and(|l| self.shows_keyboards(&l.connector_id));
                c.message_ids.iter().filter_map(move |id| self.messages.get(id).map(|m| (m, plain, buttons)))
            })
            .filter(|(m, _, _)| m.to_customer)
            .map(|(m, plain, buttons)| InboxMessage {
                message_id: m.id,
                author_id: m.author_id,
                text: if plain { clean_text_out(&m.text) } else { m.text.clone() },
                raw_text: m.text.clone(),
                keyboard: m.keyboard.clone().filter(|_| buttons),
            })
            .collect();
        out.sort_by_key(|m| m.message_id);
        out
    }
}

/// What the Edna WhatsApp connector makes of BB codes (SRC `whatsappbyedna.php::cleanTextOut`, contract §6.6).
pub(crate) fn clean_text_out(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut url_stack: Vec<Option<String>> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let Some(close) = after.find(']') else {
            out.push_str(after);
            rest = "";
            break;
        };
        let tag = &after[1..close];
        let (closing, body) = match tag.strip_prefix('/') {
            Some(b) => (true, b),
            None => (false, tag),
        };
        let name_end = body.find(['=', ' ']).unwrap_or(body.len());
        let name = body[..name_end].to_ascii_lowercase();
        let value = body.get(name_end + 1..).map(str::to_owned).filter(|_| body[name_end..].starts_with('='));
        match name.as_str() {
            "br" => out.push('\n'),
            "b" | "u" | "i" | "s" | "user" | "chat" | "send" | "put" | "call" | "pch" | "attach" | "icon" => {}
            "url" if !closing => url_stack.push(value),
            "url" => {
                if let Some(Some(v)) = url_stack.pop() {
                    out.push_str(": ");
                    out.push_str(&v);
                }
            }
            _ => out.push_str(&after[..=close]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

impl Portal {
    /// The private (1:1) chat of two users, created on first use.
    pub fn private_chat(&mut self, a: u64, b: u64) -> u64 {
        let key = (a.min(b), a.max(b));
        if let Some(id) = self.private_chats.get(&key) {
            return *id;
        }
        let id = self.ids.chat();
        let now = self.now();
        self.chats.insert(
            id,
            super::model::Chat {
                id,
                title: String::new(),
                color: super::openlines::color_for(id),
                owner: 0,
                date_create: now,
                members: vec![key.0, key.1],
                lines: None,
                private_pair: Some(key),
                message_ids: Vec::new(),
                typing: Vec::new(),
                read: Default::default(),
            },
        );
        self.private_chats.insert(key, id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::clean_text_out;

    #[test]
    fn edna_strips_bb_codes() {
        assert_eq!(clean_text_out("[b]Hi[/b][br]see [url=https://x.y]docs[/url]"), "Hi\nsee docs: https://x.y");
        assert_eq!(clean_text_out("[USER=5]Anna[/USER] [send=/a]press[/send] [x]"), "Anna press [x]");
        assert_eq!(clean_text_out("a [ b"), "a [ b");
    }
}
