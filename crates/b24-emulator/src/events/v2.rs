//! Chatbots 2.0 events (`ONIMBOTV2MESSAGEADD`, `ONIMBOTV2JOINCHAT`, `ONIMBOTV2DELETE`, `ONIMBOTV2COMMANDADD`)
//! and the `im.v2` user events (`ONIMV2MESSAGEADD`, `ONIMV2JOINCHAT`).
//!
//! The same `data` goes to both modes: fetch mode keeps native JSON types and the full Bot object (returned by
//! `imbot.v2.Event.get`); webhook mode replaces `bot` with `{id, code, auth}` and is form-encoded, so every
//! scalar arrives as a string (contract §4.8).

use super::OutEvent;
use crate::state::Portal;
use crate::state::model::{Command, Message};
use crate::state::views;
use serde_json::{Value, json};

fn bot_value(p: &Portal, bot_id: u64, fetch: bool) -> Value {
    let Some(bot) = p.bots.get(&bot_id) else { return Value::Null };
    if fetch {
        views::bot_v2(p, bot)
    } else {
        let token = bot.v2.as_ref().map(|v| v.application_token.clone()).unwrap_or_default();
        json!({"id": bot.id, "code": bot.code, "auth": {"domain": p.ident.domain, "member_id": p.ident.member_id, "application_token": token}})
    }
}

/// The `message` object of v2 events (DOC `entities.md#message`).
fn message_v2(p: &Portal, msg: &Message) -> Value {
    let date = crate::rest::envelope::iso(msg.date.to_utc(), p.ident.tz);
    let params = if msg.params.is_empty() { json!({}) } else { Value::Object(msg.params.clone()) };
    json!({"id": msg.id, "chatId": msg.chat_id, "authorId": msg.author_id, "date": date, "text": msg.text,
        "isSystem": msg.system, "uuid": msg.uuid.clone().unwrap_or_default(), "forward": null, "params": params,
        "viewedByOthers": false})
}

/// `data` of `ONIMV2MESSAGEADD` (DOC `im.v2/events/events.md`): `message`, `chat`, `user` (the author; `null`
/// for a system message, which has none), `language`.
pub(crate) fn im_message_data(p: &Portal, msg: &Message) -> Value {
    let chat = p.chats.get(&msg.chat_id).map_or(Value::Null, |c| views::chat_v2(p, c));
    let user = p.user(msg.author_id).map_or(Value::Null, |u| views::user_v2_event(p, u));
    json!({"message": message_v2(p, msg), "chat": chat, "user": user, "language": p.ident.language})
}

/// `data` of `ONIMV2JOINCHAT`: `dialogId`, `chat`, `user` (the one added), `language`.
pub(crate) fn im_join_data(p: &Portal, chat_id: u64, user: u64) -> Value {
    let chat = p.chats.get(&chat_id);
    json!({
        "dialogId": chat.map(|c| c.dialog_id()).unwrap_or_default(),
        "chat": chat.map_or(Value::Null, |c| views::chat_v2(p, c)),
        "user": p.user(user).map_or(Value::Null, |u| views::user_v2_event(p, u)),
        "language": p.ident.language,
    })
}

/// `data` of `ONIMBOTV2MESSAGEADD`.
pub(crate) fn message_data(p: &Portal, bot_id: u64, msg: &Message, fetch: bool) -> Value {
    let chat = p.chats.get(&msg.chat_id).map_or(Value::Null, |c| views::chat_v2(p, c));
    let user = p.user(msg.author_id).map_or(Value::Null, |u| views::user_v2(p, u));
    json!({
        "bot": bot_value(p, bot_id, fetch),
        "message": message_v2(p, msg),
        "chat": chat,
        "user": user,
        "language": p.ident.language,
    })
}

/// `data` of `ONIMBOTV2JOINCHAT` (DOC `imbot.v2/events/events.md`): `bot`, `dialogId`, `chat`, `user` (who
/// added the bot; for an Open Lines welcome bot, the customer), `language`.
pub(crate) fn join_data(p: &Portal, bot_id: u64, chat_id: u64, by_user: u64, fetch: bool) -> Value {
    let chat = p.chats.get(&chat_id);
    let user = p.user(by_user).map_or(Value::Null, |u| views::user_v2(p, u));
    json!({
        "bot": bot_value(p, bot_id, fetch),
        "dialogId": chat.map(|c| c.dialog_id()).unwrap_or_default(),
        "chat": chat.map_or(Value::Null, |c| views::chat_v2(p, c)),
        "user": user,
        "language": p.ident.language,
    })
}

/// `data` of `ONIMBOTV2DELETE`: only `bot` (DOC: "the last event the bot will receive").
pub(crate) fn delete_data(p: &Portal, bot_id: u64, fetch: bool) -> Value {
    json!({"bot": bot_value(p, bot_id, fetch)})
}

/// `data` of `ONIMBOTV2COMMANDADD` (DOC `imbot.v2/events/events.md`): `bot`, `command{id, command, params,
/// context}`, `message` (the one carrying the command), `chat`, `user`, `language`.
pub(crate) fn command_data(p: &Portal, bot_id: u64, cmd: &Command, params: &str, msg: &Message, fetch: bool) -> Value {
    let chat = p.chats.get(&msg.chat_id).map_or(Value::Null, |c| views::chat_v2(p, c));
    let user = p.user(msg.author_id).map_or(Value::Null, |u| views::user_v2(p, u));
    json!({
        "bot": bot_value(p, bot_id, fetch),
        "command": {"id": cmd.id, "command": format!("/{}", cmd.command), "params": params, "context": "keyboard"},
        "message": message_v2(p, msg),
        "chat": chat,
        "user": user,
        "language": p.ident.language,
    })
}

/// A webhook-mode delivery.
pub(crate) fn webhook_event(p: &Portal, bot_id: u64, kind: &str, data: Value) -> Option<OutEvent> {
    let v2 = p.bots.get(&bot_id)?.v2.as_ref()?;
    let auth = super::v1::auth_block(p, &v2.application_token);
    Some(OutEvent { event: kind.to_owned(), handler_id: None, data, auth, url: v2.webhook_url.clone(), bot_id, key: format!("v2:{bot_id}") })
}
