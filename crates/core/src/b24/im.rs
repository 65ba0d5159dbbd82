//! Typed `im.*` calls (contract §6) plus `scope` and `profile`. They run as the webhook's user;
//! parameters are UPPER_CASE as the v1 methods name them, results are snake_case.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::client::B24Client;
use super::de;
use super::error::B24Error;
use super::imbot::V2EventPage;
use crate::domain::ids::{DialogId, MessageId, UserId};

/// `profile`: the webhook's user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Profile {
    /// The user id.
    #[serde(deserialize_with = "de::u64")]
    pub id: u64,
    /// Whether the user is a portal administrator.
    #[serde(deserialize_with = "de::flag")]
    pub admin: bool,
    /// First name.
    #[serde(deserialize_with = "de::string")]
    pub name: String,
    /// Last name.
    #[serde(deserialize_with = "de::string")]
    pub last_name: String,
}

/// A user as `im.*` methods describe one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ImUser {
    /// The user id.
    #[serde(deserialize_with = "de::u64")]
    pub id: u64,
    /// Full name.
    #[serde(deserialize_with = "de::string")]
    pub name: String,
    /// First name.
    #[serde(deserialize_with = "de::string")]
    pub first_name: String,
    /// Last name.
    #[serde(deserialize_with = "de::string")]
    pub last_name: String,
    /// Whether the account is active.
    #[serde(deserialize_with = "de::flag")]
    pub active: bool,
    /// A chatbot.
    #[serde(deserialize_with = "de::flag")]
    pub bot: bool,
    /// An Open Lines connector (customer) user.
    #[serde(deserialize_with = "de::flag")]
    pub connector: bool,
    /// An extranet user (Open Lines customers are).
    #[serde(deserialize_with = "de::flag")]
    pub extranet: bool,
    /// `user`, `bot`, `extranet`, ...
    #[serde(rename = "type", deserialize_with = "de::string")]
    pub kind: String,
    /// `default`, `imconnector`, `bot`, ...
    #[serde(deserialize_with = "de::string")]
    pub external_auth_id: String,
    /// Phones, when the portal fills them (`false` otherwise).
    #[serde(deserialize_with = "de::opt_object")]
    pub phones: Option<UserPhones>,
}

/// `phones` of an [`ImUser`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct UserPhones {
    /// Work phone.
    #[serde(deserialize_with = "de::string")]
    pub work_phone: String,
    /// Mobile phone.
    #[serde(deserialize_with = "de::string")]
    pub personal_mobile: String,
    /// Internal extension.
    #[serde(deserialize_with = "de::string")]
    pub inner_phone: String,
}

/// `im.recent.list` parameters; `OFFSET`/`LIMIT` paging (LIMIT ≤ 200).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentQuery {
    /// Skip this many items.
    pub offset: u32,
    /// Page size (0 = the portal's default, 50).
    pub limit: u32,
    /// Leave Open Lines chats out.
    pub skip_openlines: bool,
    /// Leave group chats out.
    pub skip_chat: bool,
    /// Leave private dialogs out.
    pub skip_dialog: bool,
    /// Only chats with unread messages.
    pub unread_only: bool,
}

/// One page of `im.recent.list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "RawRecentPage")]
pub struct RecentPage {
    /// The chats.
    pub items: Vec<RecentItem>,
    /// Whether another page exists.
    pub has_more: bool,
}

/// Portals send `hasMore` and its deprecated twin `hasMorePages` side by side; a serde alias would
/// refuse the pair as a duplicate, so both are read and either one counts.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawRecentPage {
    items: Vec<RecentItem>,
    #[serde(deserialize_with = "de::flag")]
    has_more: bool,
    #[serde(deserialize_with = "de::flag")]
    has_more_pages: bool,
}

impl From<RawRecentPage> for RecentPage {
    fn from(r: RawRecentPage) -> Self {
        Self { items: r.items, has_more: r.has_more || r.has_more_pages }
    }
}

/// A chat in the recent list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RecentItem {
    /// The dialog: `chat<N>` or a user id.
    #[serde(rename = "id", deserialize_with = "de::string")]
    pub dialog_id: String,
    /// The chat id (0 for private dialogs on some portals).
    #[serde(deserialize_with = "de::u64")]
    pub chat_id: u64,
    /// `user` or `chat`.
    #[serde(rename = "type", deserialize_with = "de::string")]
    pub kind: String,
    /// Title.
    #[serde(deserialize_with = "de::string")]
    pub title: String,
    /// Unread counter.
    #[serde(deserialize_with = "de::u64")]
    pub counter: u64,
    /// The newest message's id.
    #[serde(deserialize_with = "de::u64")]
    pub last_id: u64,
    /// ATOM date of the chat's last activity.
    #[serde(deserialize_with = "de::string")]
    pub date_last_activity: String,
    /// The last message.
    #[serde(deserialize_with = "de::opt_object")]
    pub message: Option<RecentMessage>,
    /// Open Lines session data, for Open Lines chats.
    #[serde(deserialize_with = "de::opt_object")]
    pub lines: Option<RecentLines>,
    /// The chat itself (owner and entity fields), for chats.
    #[serde(deserialize_with = "de::opt_object")]
    pub chat: Option<RecentChat>,
}

/// The `chat` part of a [`RecentItem`]: who serves it and, for Open Lines chats, the user code and
/// the session and CRM strings (the same ones events carry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RecentChat {
    /// The chat's owner: in Open Lines, the operator serving the session (a bot while the bot has
    /// it; 0 while it waits in the queue).
    #[serde(deserialize_with = "de::u64")]
    pub owner: u64,
    /// `LINES` for Open Lines chats.
    #[serde(deserialize_with = "de::string")]
    pub entity_type: String,
    /// The user code.
    #[serde(deserialize_with = "de::string")]
    pub entity_id: String,
    /// The session string.
    #[serde(deserialize_with = "de::string")]
    pub entity_data_1: String,
    /// The CRM links string.
    #[serde(deserialize_with = "de::string")]
    pub entity_data_2: String,
}

impl RecentItem {
    /// The dialog, when its id parses.
    pub fn dialog(&self) -> Option<DialogId> {
        DialogId::parse(&self.dialog_id).ok()
    }
}

/// The last message of a [`RecentItem`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RecentMessage {
    /// Message id.
    #[serde(deserialize_with = "de::u64")]
    pub id: u64,
    /// Text.
    #[serde(deserialize_with = "de::string")]
    pub text: String,
    /// Author (0 = system).
    #[serde(deserialize_with = "de::u64")]
    pub author_id: u64,
    /// ATOM date.
    #[serde(deserialize_with = "de::string")]
    pub date: String,
}

/// The `lines` part of a [`RecentItem`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RecentLines {
    /// The session id.
    #[serde(deserialize_with = "de::u64")]
    pub id: u64,
    /// The session status code.
    #[serde(deserialize_with = "de::u64")]
    pub status: u64,
}

/// `im.dialog.messages.get` paging: `FIRST_ID` for newer, `LAST_ID` for older, neither for the
/// latest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessagesQuery {
    /// Messages with id > this.
    pub first_id: Option<MessageId>,
    /// Messages with id < this.
    pub last_id: Option<MessageId>,
    /// Page size (≤ 50; `None` = the portal's default, 20).
    pub limit: Option<u32>,
}

/// The messages of a dialog and their authors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DialogMessages {
    /// The chat.
    #[serde(deserialize_with = "de::u64")]
    pub chat_id: u64,
    /// The messages, in the portal's order (newest first in the docs' example).
    #[serde(deserialize_with = "de::list_or_map")]
    pub messages: Vec<ImMessage>,
    /// Their authors.
    #[serde(deserialize_with = "de::list_or_map")]
    pub users: Vec<ImUser>,
}

/// A message as `im.dialog.messages.get` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ImMessage {
    /// Message id.
    #[serde(deserialize_with = "de::u64")]
    pub id: u64,
    /// The chat.
    #[serde(deserialize_with = "de::u64")]
    pub chat_id: u64,
    /// The author (0 = system).
    #[serde(deserialize_with = "de::u64")]
    pub author_id: u64,
    /// ATOM date.
    #[serde(deserialize_with = "de::string")]
    pub date: String,
    /// Text with BB codes.
    #[serde(deserialize_with = "de::string")]
    pub text: String,
    /// Message parameters (`CODE`, `LIKE`, ...), as sent.
    pub params: Value,
}

/// A message to post with `im.message.add` or `imbot.message.add`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Where.
    pub dialog: DialogId,
    /// Text with BB codes (no markdown: contract §6.6).
    pub text: String,
    /// A system message: in Open Lines it is **not** forwarded to the customer's messenger.
    pub system: bool,
    /// Show link previews.
    pub url_preview: bool,
    /// A keyboard (`{"BUTTONS": [...]}`), as Bitrix24 takes it.
    pub keyboard: Option<Value>,
}

impl OutgoingMessage {
    /// A plain message with link previews off (WhatsApp customers see plain text anyway).
    pub fn new(dialog: DialogId, text: impl Into<String>) -> Self {
        Self { dialog, text: text.into(), system: false, url_preview: false, keyboard: None }
    }

    /// The UPPER_CASE parameters shared by `im.message.add` and `imbot.message.add`.
    pub(crate) fn params(&self) -> Map<String, Value> {
        let mut p = Map::new();
        p.insert("DIALOG_ID".into(), json!(self.dialog.to_string()));
        p.insert("MESSAGE".into(), json!(self.text));
        p.insert("SYSTEM".into(), json!(yn(self.system)));
        p.insert("URL_PREVIEW".into(), json!(yn(self.url_preview)));
        if let Some(k) = &self.keyboard {
            p.insert("KEYBOARD".into(), k.clone());
        }
        p
    }
}

fn recent_params(q: &RecentQuery) -> Value {
    let mut p = json!({"OFFSET": q.offset, "SKIP_OPENLINES": yn(q.skip_openlines), "SKIP_CHAT": yn(q.skip_chat),
        "SKIP_DIALOG": yn(q.skip_dialog), "UNREAD_ONLY": yn(q.unread_only)});
    if q.limit > 0 {
        p["LIMIT"] = json!(q.limit);
    }
    p
}

/// The parameters of `im.dialog.messages.get` (also as a `batch` command).
pub(crate) fn messages_params(dialog: DialogId, q: MessagesQuery) -> Value {
    let mut p = json!({"DIALOG_ID": dialog.to_string()});
    if let Some(id) = q.first_id {
        p["FIRST_ID"] = json!(id.get());
    }
    if let Some(id) = q.last_id {
        p["LAST_ID"] = json!(id.get());
    }
    if let Some(n) = q.limit {
        p["LIMIT"] = json!(n);
    }
    p
}

/// Bitrix24's flag spelling.
pub(crate) fn yn(b: bool) -> &'static str {
    if b { "Y" } else { "N" }
}

/// Message ids come back as a number (or a numeric string on some portals).
pub(crate) fn message_id(method: &str, v: &Value) -> Result<MessageId, B24Error> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    n.and_then(|n| MessageId::new(n).ok())
        .ok_or_else(|| B24Error::local(method, super::error::ErrorKind::Permanent, super::error::codes::UNEXPECTED_RESULT, "expected a message id"))
}

impl B24Client {
    /// `scope`: the scopes granted to the webhook.
    pub async fn scope(&self) -> Result<Vec<String>, B24Error> {
        self.call("scope", &json!({})).await
    }

    /// `profile`: the webhook's user.
    pub async fn profile(&self) -> Result<Profile, B24Error> {
        self.call("profile", &json!({})).await
    }

    /// `im.recent.list`: one page of the webhook user's chats.
    pub async fn im_recent_list(&self, q: &RecentQuery) -> Result<RecentPage, B24Error> {
        self.call("im.recent.list", &recent_params(q)).await
    }

    /// `im.recent.list` at background priority (the pollers' read: it waits for headroom in the
    /// rate budget instead of queueing in front of replies).
    pub async fn im_recent_list_background(&self, q: &RecentQuery) -> Result<RecentPage, B24Error> {
        self.call_background("im.recent.list", &recent_params(q)).await
    }

    /// `im.dialog.messages.get`: one page of a dialog's messages (the caller must be a member).
    pub async fn im_dialog_messages_get(&self, dialog: DialogId, q: MessagesQuery) -> Result<DialogMessages, B24Error> {
        self.call("im.dialog.messages.get", &messages_params(dialog, q)).await
    }

    /// `im.dialog.users.list`: the members of a dialog.
    pub async fn im_dialog_users_list(&self, dialog: DialogId) -> Result<Vec<ImUser>, B24Error> {
        let v: Value = self.call("im.dialog.users.list", &json!({"DIALOG_ID": dialog.to_string()})).await?;
        de::list_from_value(v).map_err(|e| B24Error::unexpected_result("im.dialog.users.list", &e))
    }

    /// `im.message.add`: posts as the webhook's user (who must be a member of the chat; in Open
    /// Lines a non-system message is forwarded to the customer). Not replayed after a timeout.
    pub async fn im_message_add(&self, m: &OutgoingMessage) -> Result<MessageId, B24Error> {
        let v: Value = self.call_no_replay("im.message.add", &Value::Object(m.params())).await?;
        message_id("im.message.add", &v)
    }

    /// `im.dialog.writing` at optional priority: `None` when skipped for lack of rate budget.
    pub async fn im_dialog_writing(&self, dialog: DialogId) -> Result<Option<bool>, B24Error> {
        let v: Option<Value> = self.call_optional("im.dialog.writing", &json!({"DIALOG_ID": dialog.to_string()})).await?;
        Ok(v.map(|v| v != Value::Bool(false)))
    }

    /// `im.dialog.read` at optional priority, up to `message` (everything when `None`): `None` when
    /// skipped, `Some(false)` when the portal refused (no access).
    pub async fn im_dialog_read(&self, dialog: DialogId, message: Option<MessageId>) -> Result<Option<bool>, B24Error> {
        let mut p = json!({"DIALOG_ID": dialog.to_string()});
        if let Some(m) = message {
            p["MESSAGE_ID"] = json!(m.get());
        }
        let v: Option<Value> = self.call_optional("im.dialog.read", &p).await?;
        Ok(v.map(|v| v != Value::Bool(false)))
    }

    /// `im.v2.Event.subscribe`: from now on the webhook's user's events are logged for
    /// `im.v2.Event.get` (kept 24 hours; one consumer per user, contract §3.7).
    pub async fn im_v2_event_subscribe(&self) -> Result<bool, B24Error> {
        self.call("im.v2.Event.subscribe", &json!({})).await
    }

    /// `im.v2.Event.get` at background priority: the webhook user's events from `offset`, which
    /// acknowledges (and removes, for every consumer) every event before it.
    pub async fn im_v2_event_get_background(&self, offset: Option<u64>, limit: u32) -> Result<V2EventPage, B24Error> {
        let mut p = json!({"limit": limit.clamp(1, 1000)});
        if let Some(o) = offset {
            p["offset"] = json!(o);
        }
        self.call_background("im.v2.Event.get", &p).await
    }

    /// `im.user.get`: a user, or the webhook's own user for `None`.
    pub async fn im_user_get(&self, id: Option<UserId>) -> Result<ImUser, B24Error> {
        let p = id.map_or_else(|| json!({}), |id| json!({"ID": id.get()}));
        self.call("im.user.get", &p).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_messages_response_parses() {
        let v = json!({"chat_id": 1489, "messages": [
            {"id": 84877, "chat_id": 1489, "author_id": 503, "date": "2026-03-04T09:43:26+03:00", "text": "Hi", "unread": false,
             "uuid": null, "replaces": [], "params": {"LIKE": [547]}, "disappearing_date": null},
            {"id": "84869", "chat_id": "1489", "author_id": 0, "text": "joined", "params": []}],
            "users": [{"id": 503, "active": true, "name": "Klaus Weber", "bot": false, "connector": false, "phones": false, "type": "user"}],
            "files": []});
        let d: DialogMessages = serde_json::from_value(v).expect("parses");
        assert_eq!(d.messages.iter().map(|m| (m.id, m.author_id)).collect::<Vec<_>>(), vec![(84877, 503), (84869, 0)]);
        assert_eq!(d.users[0].name, "Klaus Weber");
        assert_eq!(d.users[0].phones, None);
    }

    #[test]
    fn recent_items_accept_numeric_and_chat_ids() {
        let v = json!({"items": [{"id": 5, "type": "user"}, {"id": "chat12", "chat_id": 12, "type": "chat",
            "lines": {"id": 77, "status": 20, "date_create": "x"}, "message": {"id": 9, "text": "t", "author_id": "3"}}], "hasMore": true, "hasMorePages": true});
        let p: RecentPage = serde_json::from_value(v).expect("parses");
        assert!(p.has_more);
        assert_eq!(p.items[1].chat, None);
        assert_eq!(p.items[0].dialog(), DialogId::parse("5").ok());
        assert_eq!(p.items[1].dialog(), DialogId::parse("chat12").ok());
        assert_eq!(p.items[1].lines.as_ref().map(|l| l.id), Some(77));
    }

    #[test]
    fn recent_items_carry_the_chats_owner_and_entity_strings() {
        let v = json!({"items": [{"id": "chat7", "chat_id": 7, "type": "chat", "last_id": 90,
            "chat": {"id": 7, "owner": 38005, "entity_type": "LINES", "entity_id": "whatsappbyedna|3|4915@s|41",
                "entity_data_1": "Y|LEAD|5|N|N|301|1|0|0|0", "entity_data_2": "LEAD|5|COMPANY|0|CONTACT|0|DEAL|0", "entity_data_3": "N"}}],
            "hasMore": false});
        let p: RecentPage = serde_json::from_value(v).expect("parses");
        let chat = p.items[0].chat.as_ref().expect("chat");
        assert_eq!((chat.owner, chat.entity_type.as_str()), (38005, "LINES"));
        assert!(chat.entity_data_1.contains("|301|"));
    }

    #[test]
    fn outgoing_messages_use_upper_case_keys_and_y_n_flags() {
        let dialog = DialogId::parse("chat7").expect("dialog");
        let p = OutgoingMessage::new(dialog, "hello").params();
        assert_eq!(Value::Object(p), json!({"DIALOG_ID": "chat7", "MESSAGE": "hello", "SYSTEM": "N", "URL_PREVIEW": "N"}));
    }
}
