//! Chatbots 2.0 events (`ONIMBOTV2MESSAGEADD`, `ONIMBOTV2JOINCHAT`, `ONIMBOTV2DELETE`).
//!
//! The same `data` goes to both modes: fetch mode keeps native JSON types and the full Bot object (returned by
//! `imbot.v2.Event.get`); webhook mode replaces `bot` with `{id, code, auth}` and is form-encoded, so every
//! scalar arrives as a string (contract §4.8).

use super::OutEvent;
use crate::state::Portal;
use crate::state::model::Message;
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

/// `data` of `ONIMBOTV2MESSAGEADD`.
pub(crate) fn message_data(p: &Portal, bot_id: u64, msg: &Message, fetch: bool) -> Value {
    let chat = p.chats.get(&msg.chat_id).map_or(Value::Null, |c| views::chat_v2(p, c));
    let user = p.user(msg.author_id).map_or(Value::Null, |u| views::user_v2(p, u));
    let date = crate::rest::envelope::iso(msg.date.to_utc(), p.ident.tz);
    let params = if msg.params.is_empty() { json!({}) } else { Value::Object(msg.params.clone()) };
    json!({
        "bot": bot_value(p, bot_id, fetch),
        "message": {"id": msg.id, "chatId": msg.chat_id, "authorId": msg.author_id, "date": date, "text": msg.text,
            "isSystem": msg.system, "uuid": msg.uuid.clone().unwrap_or_default(), "forward": null, "params": params,
            "viewedByOthers": false},
        "chat": chat,
        "user": user,
        "language": p.ident.language,
    })
}

/// `data` of `ONIMBOTV2JOINCHAT` (shape UNCONFIRMED: `bot`, `chat`, `user` who added it, `language`).
pub(crate) fn join_data(p: &Portal, bot_id: u64, chat_id: u64, by_user: u64, fetch: bool) -> Value {
    let chat = p.chats.get(&chat_id).map_or(Value::Null, |c| views::chat_v2(p, c));
    let user = p.user(by_user).map_or(Value::Null, |u| views::user_v2(p, u));
    json!({"bot": bot_value(p, bot_id, fetch), "chat": chat, "user": user, "language": p.ident.language})
}

/// `data` of `ONIMBOTV2DELETE`.
pub(crate) fn delete_data(p: &Portal, bot_id: u64, fetch: bool) -> Value {
    json!({"bot": bot_value(p, bot_id, fetch), "language": p.ident.language})
}

/// A webhook-mode delivery.
pub(crate) fn webhook_event(p: &Portal, bot_id: u64, kind: &str, data: Value) -> Option<OutEvent> {
    let v2 = p.bots.get(&bot_id)?.v2.as_ref()?;
    let auth = super::v1::auth_block(p, &v2.application_token);
    Some(OutEvent { event: kind.to_owned(), handler_id: None, data, auth, url: v2.webhook_url.clone(), bot_id, key: format!("v2:{bot_id}") })
}
