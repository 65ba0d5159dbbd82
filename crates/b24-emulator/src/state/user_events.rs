//! `im.v2.Event.*`: each subscribed user's event log (contract §3.7; DOC `chat-bots-v2/im.v2/events/*`).
//!
//! Once subscribed, a user's log gets `ONIMV2MESSAGEADD` for every new message in a chat the user belongs to
//! (their own and system messages included: the docs exclude neither) and `ONIMV2JOINCHAT` when someone joins
//! such a chat. Nothing before the subscription is logged. Records are kept 24 hours (portal clock) or until an
//! `offset` acknowledges them, which removes them for every consumer: there is one log per user. Whether Open
//! Lines chats are logged is UNCONFIRMED; [`crate::EmulatorConfig::im_v2_events_include_openlines`] decides.
//! Event ids come from the sequence the bots' queues use, so `imbot.v2.Event.get` with `withUserEvents` can
//! merge both and acknowledge both with one `offset`.

use super::Portal;
use super::model::V2Event;
use crate::events;
use serde_json::Value;

/// How long records are kept.
const RETENTION_SECS: i64 = 24 * 3600;

impl Portal {
    /// `im.v2.Event.subscribe`: starts logging (a repeated call keeps what is logged).
    pub fn subscribe_user_events(&mut self, user: u64) {
        self.user_events.entry(user).or_default().subscribed = true;
    }

    /// `im.v2.Event.unsubscribe`: stops logging; what is logged stays until acknowledged or expired.
    pub fn unsubscribe_user_events(&mut self, user: u64) {
        if let Some(log) = self.user_events.get_mut(&user) {
            log.subscribed = false;
        }
    }

    pub fn is_subscribed(&self, user: u64) -> bool {
        self.user_events.get(&user).is_some_and(|l| l.subscribed)
    }

    /// Subscribed members of a chat whose events are logged.
    fn subscribers_of(&self, chat_id: u64) -> Vec<u64> {
        let Some(chat) = self.chats.get(&chat_id) else { return Vec::new() };
        if chat.lines.is_some() && !self.ident.im_v2_openlines {
            return Vec::new();
        }
        chat.members.iter().copied().filter(|m| self.is_subscribed(*m)).collect()
    }

    fn log_to(&mut self, users: &[u64], kind: &str, data: &Value) {
        for user in users {
            let id = self.ids.v2_event();
            let date = self.now();
            if let Some(log) = self.user_events.get_mut(user) {
                log.events.push_back(V2Event { id, kind: kind.to_owned(), date, data: data.clone() });
            }
        }
    }

    /// Logs `ONIMV2MESSAGEADD` for a stored message.
    pub(crate) fn log_message(&mut self, message_id: u64) {
        let Some(msg) = self.messages.get(&message_id) else { return };
        let users = self.subscribers_of(msg.chat_id);
        if users.is_empty() {
            return;
        }
        let data = events::v2::im_message_data(self, msg);
        self.log_to(&users, "ONIMV2MESSAGEADD", &data);
    }

    /// Adds a member to a chat; a newcomer is announced with `ONIMV2JOINCHAT` to the chat's subscribers.
    pub(crate) fn add_chat_member(&mut self, chat_id: u64, user: u64) {
        let Some(chat) = self.chats.get_mut(&chat_id) else { return };
        if chat.is_member(user) {
            return;
        }
        chat.add_member(user);
        let users = self.subscribers_of(chat_id);
        if users.is_empty() {
            return;
        }
        let data = events::v2::im_join_data(self, chat_id, user);
        self.log_to(&users, "ONIMV2JOINCHAT", &data);
    }

    /// Drops a user's records older than 24 hours and, with `offset`, those with `eventId < offset`.
    pub(crate) fn ack_user_events(&mut self, user: u64, offset: Option<u64>) {
        let cutoff = self.now() - chrono::Duration::seconds(RETENTION_SECS);
        if let Some(log) = self.user_events.get_mut(&user) {
            log.events.retain(|e| e.date > cutoff && offset.is_none_or(|o| e.id >= o));
        }
    }

    /// A user's records, oldest first (call [`Portal::ack_user_events`] first).
    pub(crate) fn user_event_records(&self, user: u64) -> Vec<V2Event> {
        self.user_events.get(&user).map(|l| l.events.iter().cloned().collect()).unwrap_or_default()
    }
}
