//! Typed Open Lines calls (contract §5.3–§5.7): the bot-side session methods, the operator transfer,
//! dialog and history reads, and the line list. UPPER_CASE parameters.

use serde::Deserialize;
use serde_json::{Value, json};

use super::client::B24Client;
use super::de;
use super::error::B24Error;
use super::im::yn;
use crate::domain::ids::{ChatId, LineId, SessionId, UserId};
use crate::domain::secret::Secret;

/// Where a transfer sends the chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferTarget {
    /// A specific operator.
    User(UserId),
    /// A line's queue: the line's **config id**, not a list of users.
    Queue(LineId),
}

impl TransferTarget {
    fn insert_into(self, p: &mut Value) {
        match self {
            Self::User(u) => p["USER_ID"] = json!(u.get()),
            Self::Queue(l) => p["QUEUE_ID"] = json!(l.get()),
        }
    }
}

/// What `imopenlines.bot.session.message.send` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionMessage {
    /// The line's configured greeting (`NAME=WELCOME`).
    Welcome,
    /// This text (`NAME=DEFAULT`).
    Text(String),
}

/// How to find a dialog with `imopenlines.dialog.get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogLookup {
    /// By chat id.
    Chat(ChatId),
    /// By session id.
    Session(SessionId),
    /// By user code (`connector|line|chat|user`).
    UserCode(String),
}

/// An Open Lines chat as `imopenlines.dialog.get` describes it (the fields the bridge reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct OpenlinesDialog {
    /// The chat id.
    #[serde(deserialize_with = "de::u64")]
    pub id: u64,
    /// `chat<N>`.
    #[serde(deserialize_with = "de::string")]
    pub dialog_id: String,
    /// Title.
    #[serde(deserialize_with = "de::string")]
    pub name: String,
    /// The chat's owner: the operator currently serving it (a bot while the bot has it).
    #[serde(deserialize_with = "de::u64")]
    pub owner: u64,
    /// `LINES` for Open Lines chats.
    #[serde(deserialize_with = "de::string")]
    pub entity_type: String,
    /// The user code: `connector|line|connector chat|connector user`.
    #[serde(deserialize_with = "de::string")]
    pub entity_id: String,
    /// Session data: `CRM|TYPE|ID|PAUSE|WAIT|SESSION_ID|DATE_CREATE|LINE|BLOCK_DATE|BLOCK_REASON`.
    #[serde(deserialize_with = "de::string")]
    pub entity_data_1: String,
    /// CRM links: `LEAD|id|COMPANY|id|CONTACT|id|DEAL|id`.
    #[serde(deserialize_with = "de::string")]
    pub entity_data_2: String,
    /// Silent mode flag.
    #[serde(deserialize_with = "de::string")]
    pub entity_data_3: String,
}

impl OpenlinesDialog {
    /// The connector id (segment 1 of the user code).
    pub fn connector(&self) -> Option<&str> {
        self.entity_id.split('|').next().filter(|s| !s.is_empty())
    }

    /// The line (segment 2 of the user code).
    pub fn line_id(&self) -> Option<LineId> {
        self.entity_id.split('|').nth(1).and_then(|s| LineId::parse(s).ok())
    }

    /// The session (field 6 of `entity_data_1`).
    pub fn session_id(&self) -> Option<SessionId> {
        self.entity_data_1.split('|').nth(5).and_then(|s| SessionId::parse(s).ok())
    }
}

/// `imopenlines.session.history.get`, reduced to the session's messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionHistory {
    /// The chat.
    pub chat_id: u64,
    /// The session.
    pub session_id: u64,
    /// Its messages, oldest first.
    pub messages: Vec<HistoryMessage>,
}

/// A message of a session's history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct HistoryMessage {
    /// Message id.
    #[serde(deserialize_with = "de::u64")]
    pub id: u64,
    /// Author (0 = system).
    #[serde(rename = "senderid", deserialize_with = "de::u64")]
    pub sender_id: u64,
    /// ATOM date.
    #[serde(deserialize_with = "de::string")]
    pub date: String,
    /// Text with BB codes.
    #[serde(deserialize_with = "de::string")]
    pub text: String,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawHistory {
    #[serde(deserialize_with = "de::u64")]
    chat_id: u64,
    #[serde(deserialize_with = "de::u64")]
    session_id: u64,
    #[serde(rename = "message", deserialize_with = "de::list_or_map")]
    messages: Vec<HistoryMessage>,
}

/// A line as `imopenlines.config.list.get` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "SCREAMING_SNAKE_CASE")]
pub struct LineConfig {
    /// The line's config id (what `QUEUE_ID` takes).
    #[serde(deserialize_with = "de::u64")]
    pub id: u64,
    /// Name.
    #[serde(deserialize_with = "de::string")]
    pub line_name: String,
    /// Active.
    #[serde(deserialize_with = "de::flag")]
    pub active: bool,
    /// A welcome bot is enabled.
    #[serde(deserialize_with = "de::flag")]
    pub welcome_bot_enable: bool,
    /// The welcome bot.
    #[serde(deserialize_with = "de::u64")]
    pub welcome_bot_id: u64,
    /// Seconds after which the chat moves from the bot to the queue.
    #[serde(deserialize_with = "de::u64")]
    pub welcome_bot_time: u64,
    /// Operators in the queue (with `OPTIONS.QUEUE=Y`).
    #[serde(deserialize_with = "de::list_or_map")]
    pub queue: Vec<Value>,
}

impl B24Client {
    /// `imopenlines.bot.session.operator`: hands the chat from the bot to the operator queue. A
    /// `WRONG_CHAT` error means a human already has it. `client_id` is needed for webhook-registered
    /// bots (v1 `CLIENT_ID` or v2 `botToken`).
    pub async fn imopenlines_bot_session_operator(&self, chat: ChatId, client_id: Option<&Secret>) -> Result<bool, B24Error> {
        self.call("imopenlines.bot.session.operator", &session_params(chat, client_id)).await
    }

    /// `imopenlines.bot.session.transfer`: to an operator or a line's queue; with `leave = false`
    /// the bot stays until the transfer is accepted.
    pub async fn imopenlines_bot_session_transfer(&self, chat: ChatId, to: TransferTarget, leave: bool, client_id: Option<&Secret>) -> Result<bool, B24Error> {
        let mut p = session_params(chat, client_id);
        to.insert_into(&mut p);
        p["LEAVE"] = json!(yn(leave));
        self.call("imopenlines.bot.session.transfer", &p).await
    }

    /// `imopenlines.bot.session.finish`: ends the bot's session.
    pub async fn imopenlines_bot_session_finish(&self, chat: ChatId, client_id: Option<&Secret>) -> Result<bool, B24Error> {
        self.call("imopenlines.bot.session.finish", &session_params(chat, client_id)).await
    }

    /// `imopenlines.bot.session.message.send`. `true` does not prove a message was created.
    pub async fn imopenlines_bot_session_message_send(&self, chat: ChatId, m: &SessionMessage) -> Result<bool, B24Error> {
        let p = match m {
            SessionMessage::Welcome => json!({"CHAT_ID": chat.get(), "NAME": "WELCOME"}),
            SessionMessage::Text(t) => json!({"CHAT_ID": chat.get(), "NAME": "DEFAULT", "MESSAGE": t}),
        };
        self.call_no_replay("imopenlines.bot.session.message.send", &p).await
    }

    /// `imopenlines.dialog.get`.
    pub async fn imopenlines_dialog_get(&self, by: &DialogLookup) -> Result<OpenlinesDialog, B24Error> {
        let p = match by {
            DialogLookup::Chat(c) => json!({"CHAT_ID": c.get()}),
            DialogLookup::Session(s) => json!({"SESSION_ID": s.get()}),
            DialogLookup::UserCode(u) => json!({"USER_CODE": u}),
        };
        self.call("imopenlines.dialog.get", &p).await
    }

    /// `imopenlines.session.history.get` by session, or the chat's latest session.
    pub async fn imopenlines_session_history_get(&self, chat: ChatId, session: Option<SessionId>) -> Result<SessionHistory, B24Error> {
        let p = match session {
            Some(s) => json!({"CHAT_ID": chat.get(), "SESSION_ID": s.get()}),
            None => json!({"CHAT_ID": chat.get()}),
        };
        let raw: RawHistory = self.call("imopenlines.session.history.get", &p).await?;
        let mut messages = raw.messages;
        messages.sort_by_key(|m| m.id);
        Ok(SessionHistory { chat_id: raw.chat_id, session_id: raw.session_id, messages })
    }

    /// `imopenlines.operator.transfer`, as the webhook's user (who must serve the chat).
    pub async fn imopenlines_operator_transfer(&self, chat: ChatId, to: TransferTarget) -> Result<bool, B24Error> {
        let mut p = json!({"CHAT_ID": chat.get()});
        to.insert_into(&mut p);
        self.call("imopenlines.operator.transfer", &p).await
    }

    /// `imopenlines.session.intercept`: the webhook's user takes the dialog from its current
    /// operator, which may be the bot (contract §5.4). `OPERATOR_WRONG` when it cannot.
    pub async fn imopenlines_session_intercept(&self, chat: ChatId) -> Result<bool, B24Error> {
        self.call("imopenlines.session.intercept", &json!({"CHAT_ID": chat.get()})).await
    }

    /// `imopenlines.operator.finish`: the webhook's user finishes its own dialog (contract §5.5);
    /// the customer's next message starts a new session.
    pub async fn imopenlines_operator_finish(&self, chat: ChatId) -> Result<bool, B24Error> {
        self.call("imopenlines.operator.finish", &json!({"CHAT_ID": chat.get()})).await
    }

    /// `imopenlines.config.list.get`: one page of lines (`limit` ≤ 200), with their queues.
    pub async fn imopenlines_config_list_get(&self, offset: u32, limit: u32) -> Result<Vec<LineConfig>, B24Error> {
        let p = json!({"PARAMS": {"offset": offset, "limit": limit.clamp(1, 200)}, "OPTIONS": {"QUEUE": "Y"}});
        let v: Value = self.call("imopenlines.config.list.get", &p).await?;
        de::list_from_value(v).map_err(|e| B24Error::unexpected_result("imopenlines.config.list.get", &e))
    }
}

fn session_params(chat: ChatId, client_id: Option<&Secret>) -> Value {
    let mut p = json!({"CHAT_ID": chat.get()});
    if let Some(c) = client_id {
        p["CLIENT_ID"] = json!(c.expose());
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_dialog_yields_line_session_and_connector() {
        let v = json!({"id": 1777, "owner": 27, "entity_type": "LINES", "entity_id": "livechat|22|1775|599",
            "entity_data_1": "Y|LEAD|1209|N|N|343|1773682918|0|0|0", "entity_data_2": "LEAD|1209|COMPANY|0|CONTACT|0|DEAL|0",
            "entity_data_3": "N", "dialog_id": "chat1777", "description": null});
        let d: OpenlinesDialog = serde_json::from_value(v).expect("parses");
        assert_eq!(d.connector(), Some("livechat"));
        assert_eq!(d.line_id().map(LineId::get), Some(22));
        assert_eq!(d.session_id().map(SessionId::get), Some(343));
    }

    #[test]
    fn history_messages_keyed_by_id_come_out_oldest_first() {
        let v = json!({"chatId": 1763, "sessionId": 321, "message": {
            "85851": {"id": "85851", "senderid": "103", "text": "b"}, "85833": {"id": "85833", "senderid": "0", "text": "a"}}});
        let raw: RawHistory = serde_json::from_value(v).expect("parses");
        let mut ids: Vec<u64> = raw.messages.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![85833, 85851]);
        assert_eq!((raw.chat_id, raw.session_id), (1763, 321));
    }

    #[test]
    fn line_configs_parse_with_y_n_flags() {
        let v = json!([{"ID": "15", "LINE_NAME": "VIP", "ACTIVE": "Y", "QUEUE": [101, 205], "WELCOME_BOT_ENABLE": "N"}]);
        let lines: Vec<LineConfig> = de::list_from_value(v).expect("parses");
        assert_eq!((lines[0].id, lines[0].active, lines[0].queue.len()), (15, true, 2));
    }
}
