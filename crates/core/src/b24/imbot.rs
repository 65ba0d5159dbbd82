//! Typed chatbot calls: v1 `imbot.*` (contract §4.1–§4.4, §4.7; UPPER_CASE parameters) and the
//! Chatbots 2.0 calls the bridge uses (`imbot.v2.Bot.register`, `imbot.v2.Event.get`,
//! `imbot.v2.Chat.Message.send`, `imbot.v2.Chat.InputAction.notify`; camelCase, §3.7, §4.8).
//!
//! Through a webhook every v1 bot call must repeat the `CLIENT_ID` the bot was registered with, and
//! every v2 call its `botToken`; both are [`Secret`]s and only ever go into the request body.

use serde::Deserialize;
use serde_json::{Value, json};

use super::client::B24Client;
use super::de;
use super::error::{B24Error, ErrorKind, codes};
use super::im::{OutgoingMessage, message_id, yn};
use crate::domain::ids::{BotId, DialogId, MessageId};
use crate::domain::secret::Secret;

/// `imbot.register` `TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BotType {
    /// `B`: a standard bot.
    Standard,
    /// `O`: an Open Lines bot (forces `OPENLINE=Y`). The bridge's choice.
    OpenLine,
    /// `H`: shows "typing…" before answers.
    Human,
    /// `S`: a supervisor, sees every message of its chats.
    Supervisor,
}

impl BotType {
    fn code(self) -> &'static str {
        match self {
            Self::Standard => "B",
            Self::OpenLine => "O",
            Self::Human => "H",
            Self::Supervisor => "S",
        }
    }
}

/// `imbot.register` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotRegistration {
    /// Unique within the portal.
    pub code: String,
    /// The bot's type.
    pub kind: BotType,
    /// Open Lines support (forced on by Bitrix24 for [`BotType::OpenLine`]).
    pub openline: bool,
    /// Handler URL of `ONIMBOTMESSAGEADD`.
    pub event_message_add: String,
    /// Handler URL of `ONIMBOTJOINCHAT`.
    pub event_welcome_message: String,
    /// Handler URL of `ONIMBOTDELETE`.
    pub event_bot_delete: String,
    /// The bot's user profile.
    pub properties: BotProperties,
    /// Ties the bot to this webhook; repeated on every later call.
    pub client_id: Secret,
}

/// `PROPERTIES` of a bot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BotProperties {
    /// Name (this or `last_name` is required).
    pub name: String,
    /// Last name.
    pub last_name: Option<String>,
    /// `RED`, `GREEN`, `MINT`, ... (contract §4.1).
    pub color: Option<String>,
    /// Job title shown under the name.
    pub work_position: Option<String>,
}

/// A bot as `imbot.bot.list` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "SCREAMING_SNAKE_CASE")]
pub struct BotInfo {
    /// The bot id (its user id).
    #[serde(deserialize_with = "de::u64")]
    pub id: u64,
    /// Name.
    #[serde(deserialize_with = "de::string")]
    pub name: String,
    /// Registration code.
    #[serde(deserialize_with = "de::string")]
    pub code: String,
    /// Open Lines support.
    #[serde(deserialize_with = "de::flag")]
    pub openline: bool,
}

/// `imbot.command.register` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRegistration {
    /// The bot that owns the command.
    pub bot_id: BotId,
    /// Latin letters and digits (`like`).
    pub command: String,
    /// Handler URL of `ONIMCOMMANDADD`.
    pub event_command_add: String,
    /// Available in every chat, not only where the bot is.
    pub common: bool,
    /// Hidden from the command list (for keyboard-only commands).
    pub hidden: bool,
    /// Usable by extranet users (Open Lines customers are extranet users).
    pub extranet_support: bool,
    /// Titles per language.
    pub lang: Vec<CommandLang>,
}

/// One `LANG` entry of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLang {
    /// `en`, `de`, `ru`, ...
    pub language_id: String,
    /// The command's title.
    pub title: String,
    /// A hint about its parameters.
    pub params: Option<String>,
}

/// One page of `imbot.v2.Event.get`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct V2EventPage {
    /// The events, oldest first.
    pub events: Vec<V2Event>,
    /// Send as `offset` next time: acknowledges every event before it.
    #[serde(deserialize_with = "de::opt_u64")]
    pub next_offset: Option<u64>,
    /// More events are waiting.
    #[serde(deserialize_with = "de::flag")]
    pub has_more: bool,
}

/// One queued Chatbots 2.0 event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct V2Event {
    /// The event's position in the queue.
    #[serde(deserialize_with = "de::u64")]
    pub event_id: u64,
    /// `ONIMBOTV2MESSAGEADD`, ...
    #[serde(rename = "type", deserialize_with = "de::string")]
    pub kind: String,
    /// ATOM date.
    #[serde(deserialize_with = "de::string")]
    pub date: String,
    /// The event's data, camelCase, as sent.
    pub data: Value,
}

impl B24Client {
    /// `imbot.register`: the new bot's id.
    pub async fn imbot_register(&self, r: &BotRegistration) -> Result<BotId, B24Error> {
        let mut props = json!({"NAME": r.properties.name});
        for (key, value) in [("LAST_NAME", &r.properties.last_name), ("COLOR", &r.properties.color), ("WORK_POSITION", &r.properties.work_position)] {
            if let Some(v) = value {
                props[key] = json!(v);
            }
        }
        let p = json!({
            "CODE": r.code, "TYPE": r.kind.code(), "OPENLINE": yn(r.openline),
            "EVENT_MESSAGE_ADD": r.event_message_add, "EVENT_WELCOME_MESSAGE": r.event_welcome_message,
            "EVENT_BOT_DELETE": r.event_bot_delete, "PROPERTIES": props, "CLIENT_ID": r.client_id.expose(),
        });
        let v: Value = self.call_no_replay("imbot.register", &p).await?;
        bot_id("imbot.register", &v)
    }

    /// `imbot.unregister`.
    pub async fn imbot_unregister(&self, bot: BotId, client_id: &Secret) -> Result<bool, B24Error> {
        self.call("imbot.unregister", &json!({"BOT_ID": bot.get(), "CLIENT_ID": client_id.expose()})).await
    }

    /// `imbot.bot.list`: the portal's bots (an object keyed by id on the wire).
    pub async fn imbot_bot_list(&self) -> Result<Vec<BotInfo>, B24Error> {
        let v: Value = self.call("imbot.bot.list", &json!({})).await?;
        de::list_from_value(v).map_err(|e| B24Error::unexpected_result("imbot.bot.list", &e))
    }

    /// `imbot.message.add`: posts as the bot. Not replayed after a timeout or a 5xx.
    pub async fn imbot_message_add(&self, bot: BotId, m: &OutgoingMessage, client_id: &Secret) -> Result<MessageId, B24Error> {
        let mut p = m.params();
        p.insert("BOT_ID".into(), json!(bot.get()));
        p.insert("CLIENT_ID".into(), json!(client_id.expose()));
        let v: Value = self.call_no_replay("imbot.message.add", &Value::Object(p)).await?;
        message_id("imbot.message.add", &v)
    }

    /// `imbot.chat.sendTyping` at optional priority: `None` when skipped for lack of rate budget.
    pub async fn imbot_chat_send_typing(&self, bot: BotId, dialog: DialogId, client_id: &Secret) -> Result<Option<bool>, B24Error> {
        let p = json!({"BOT_ID": bot.get(), "DIALOG_ID": dialog.to_string(), "CLIENT_ID": client_id.expose()});
        let v: Option<Value> = self.call_optional("imbot.chat.sendTyping", &p).await?;
        Ok(v.map(|v| v != Value::Bool(false)))
    }

    /// `imbot.command.register`: the command's id.
    pub async fn imbot_command_register(&self, c: &CommandRegistration, client_id: &Secret) -> Result<u64, B24Error> {
        let lang: Vec<Value> =
            c.lang.iter().map(|l| json!({"LANGUAGE_ID": l.language_id, "TITLE": l.title, "PARAMS": l.params.clone().unwrap_or_default()})).collect();
        let p = json!({
            "BOT_ID": c.bot_id.get(), "COMMAND": c.command, "EVENT_COMMAND_ADD": c.event_command_add,
            "COMMON": yn(c.common), "HIDDEN": yn(c.hidden), "EXTRANET_SUPPORT": yn(c.extranet_support),
            "LANG": lang, "CLIENT_ID": client_id.expose(),
        });
        let v: Value = self.call_no_replay("imbot.command.register", &p).await?;
        bot_id("imbot.command.register", &v).map(BotId::get)
    }

    /// `imbot.v2.Event.get`: the next events of a fetch-mode bot. `offset` acknowledges every event
    /// before it.
    pub async fn imbot_v2_event_get(&self, bot: BotId, bot_token: &Secret, offset: Option<u64>, limit: Option<u32>) -> Result<V2EventPage, B24Error> {
        let mut p = json!({"botId": bot.get(), "botToken": bot_token.expose()});
        if let Some(o) = offset {
            p["offset"] = json!(o);
        }
        if let Some(l) = limit {
            p["limit"] = json!(l.clamp(1, 1000));
        }
        self.call("imbot.v2.Event.get", &p).await
    }

    /// `imbot.v2.Chat.Message.send`: posts as a v2 bot. Not replayed after a timeout or a 5xx.
    pub async fn imbot_v2_chat_message_send(&self, bot: BotId, bot_token: &Secret, m: &OutgoingMessage) -> Result<MessageId, B24Error> {
        let mut fields = json!({"message": m.text, "system": m.system, "urlPreview": m.url_preview});
        if let Some(k) = &m.keyboard {
            fields["keyboard"] = k.clone();
        }
        let p = json!({"botId": bot.get(), "botToken": bot_token.expose(), "dialogId": m.dialog.to_string(), "fields": fields});
        let v: Value = self.call_no_replay("imbot.v2.Chat.Message.send", &p).await?;
        message_id("imbot.v2.Chat.Message.send", v.get("id").unwrap_or(&Value::Null))
    }
}

/// `imbot.v2.Bot.register` `fields.eventMode`: how the portal hands the bot its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V2EventMode {
    /// POSTed form-encoded to this URL (`ONIMBOTV2*`, never retried).
    Webhook(String),
    /// Queued on the portal for `imbot.v2.Event.get` (offset-acknowledged; no public endpoint).
    Fetch,
}

/// `imbot.v2.Bot.register` parameters (an Open Lines bot: `type: openline`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2BotRegistration {
    /// Unique within the portal.
    pub code: String,
    /// The bot's user profile (`properties.name`, `lastName`, `workPosition`, `color`).
    pub properties: BotProperties,
    /// Webhook or fetch.
    pub mode: V2EventMode,
    /// Ties the bot to this webhook; repeated on every later call (≤ 40 characters, §4.8).
    pub bot_token: Secret,
}

/// A v2 bot as `imbot.v2.Bot.register` (and the fetch-mode events) describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct V2Bot {
    /// Its id (its user id).
    #[serde(deserialize_with = "de::u64")]
    pub id: u64,
    /// Registration code.
    #[serde(deserialize_with = "de::string")]
    pub code: String,
    /// `bot`, `openline`, ...
    #[serde(rename = "type", deserialize_with = "de::string")]
    pub kind: String,
    /// `webhook` or `fetch`.
    #[serde(deserialize_with = "de::string")]
    pub event_mode: String,
}

impl B24Client {
    /// `imbot.v2.Bot.register`: idempotent on the portal for the same `botToken` and code (the
    /// existing bot comes back unchanged; another token gets `BOT_CODE_ALREADY_TAKEN`).
    pub async fn imbot_v2_bot_register(&self, r: &V2BotRegistration) -> Result<V2Bot, B24Error> {
        const METHOD: &str = "imbot.v2.Bot.register";
        let mut props = json!({"name": r.properties.name});
        for (key, value) in [("lastName", &r.properties.last_name), ("color", &r.properties.color), ("workPosition", &r.properties.work_position)] {
            if let Some(v) = value {
                props[key] = json!(v);
            }
        }
        let mut fields = json!({"code": r.code, "type": "openline", "isSupportOpenline": true, "properties": props});
        match &r.mode {
            V2EventMode::Webhook(url) => {
                fields["eventMode"] = json!("webhook");
                fields["webhookUrl"] = json!(url);
            }
            V2EventMode::Fetch => fields["eventMode"] = json!("fetch"),
        }
        let v: Value = self.call_no_replay(METHOD, &json!({"botToken": r.bot_token.expose(), "fields": fields})).await?;
        let bot = v.get("bot").cloned().unwrap_or(Value::Null);
        let bot: V2Bot = serde_json::from_value(bot).map_err(|e| B24Error::unexpected_result(METHOD, &e))?;
        if bot.id == 0 {
            return Err(B24Error::local(METHOD, ErrorKind::Permanent, codes::UNEXPECTED_RESULT, "expected result.bot.id"));
        }
        Ok(bot)
    }

    /// `imbot.v2.Chat.InputAction.notify` ("typing…") at optional priority: `None` when skipped for
    /// lack of rate budget.
    pub async fn imbot_v2_chat_input_action_notify(&self, bot: BotId, bot_token: &Secret, dialog: DialogId) -> Result<Option<bool>, B24Error> {
        let p = json!({"botId": bot.get(), "botToken": bot_token.expose(), "dialogId": dialog.to_string()});
        let v: Option<Value> = self.call_optional("imbot.v2.Chat.InputAction.notify", &p).await?;
        Ok(v.map(|v| v != Value::Bool(false)))
    }
}

fn bot_id(method: &str, v: &Value) -> Result<BotId, B24Error> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    n.and_then(|n| BotId::new(n).ok()).ok_or_else(|| B24Error::local(method, ErrorKind::Permanent, codes::UNEXPECTED_RESULT, "expected a positive id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_lists_keyed_by_id_parse() {
        let v = json!({"39": {"ID": 39, "NAME": "NewBot", "CODE": "newbot", "OPENLINE": "N"}, "41": {"ID": "41", "CODE": "ol", "OPENLINE": "Y"}});
        let bots: Vec<BotInfo> = de::list_from_value(v).expect("parses");
        assert_eq!(bots.iter().map(|b| (b.id, b.openline)).collect::<Vec<_>>(), vec![(39, false), (41, true)]);
    }

    #[test]
    fn v2_event_pages_parse() {
        let v = json!({"events": [{"eventId": 1001, "type": "ONIMBOTV2MESSAGEADD", "date": "2025-01-15T10:30:00+02:00", "data": {"x": 1}}],
            "nextOffset": 1002, "hasMore": false});
        let p: V2EventPage = serde_json::from_value(v).expect("parses");
        assert_eq!((p.events[0].event_id, p.next_offset, p.has_more), (1001, Some(1002), false));
    }
}
