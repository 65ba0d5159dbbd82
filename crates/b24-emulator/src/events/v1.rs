//! v1 chatbot events (`ONIMBOTMESSAGEADD`, `ONIMBOTJOINCHAT`, `ONIMBOTDELETE`, `ONIMCOMMANDADD`).
//!
//! Shapes follow SRC `im_rest.php` (`onBotMessageAdd` & co.) and, for Open Lines, the OBS captures of contract
//! §4.5: a webhook-registered bot's events carry no OAuth tokens, `auth` has only `domain`, `client_endpoint`,
//! `server_endpoint`, `member_id`, `application_token` (by default the bot's `CLIENT_ID`), and `data[BOT][<id>]`
//! repeats `domain`/`member_id`/`application_token` plus `AUTH`, `BOT_ID`, `BOT_CODE`. All values are strings.

use super::OutEvent;
use crate::state::Portal;
use crate::state::model::{App, Bot, Chat, Message, User};
use serde_json::{Map, Value, json};

fn yn(b: bool) -> &'static str {
    if b { "Y" } else { "N" }
}

/// The top-level `auth` of an event sent to a webhook-registered app.
pub(crate) fn auth_block(p: &Portal, application_token: &str) -> Value {
    json!({
        "domain": p.ident.domain, "client_endpoint": p.ident.client_endpoint,
        "server_endpoint": p.ident.server_endpoint, "member_id": p.ident.member_id,
        "application_token": application_token,
    })
}

fn bot_block(p: &Portal, app: &App, bot: &Bot) -> Value {
    let auth = json!({"domain": p.ident.domain, "member_id": p.ident.member_id, "application_token": app.application_token});
    json!({
        "domain": p.ident.domain, "member_id": p.ident.member_id, "application_token": app.application_token,
        "AUTH": auth, "BOT_ID": bot.id.to_string(), "BOT_CODE": bot.code,
    })
}

/// `data[USER]` of message and command events.
pub(crate) fn user_full(u: &User) -> Value {
    json!({
        "ID": u.id.to_string(), "NAME": u.name(), "FIRST_NAME": u.first_name, "LAST_NAME": u.last_name,
        "WORK_POSITION": u.work_position, "GENDER": u.gender, "IS_BOT": yn(u.is_bot()),
        "IS_CONNECTOR": yn(u.is_connector()), "IS_NETWORK": "N", "IS_EXTRANET": yn(u.is_extranet()),
    })
}

/// `data[USER]` of command events (DOC `on-im-command-add.md` example: no `WORK_POSITION`, no `IS_*`).
fn user_command(u: &User) -> Value {
    json!({"ID": u.id.to_string(), "NAME": u.name(), "FIRST_NAME": u.first_name, "LAST_NAME": u.last_name, "GENDER": u.gender})
}

/// `data[USER]` of join events (SRC `onBotJoinChat`: no `IS_*` flags).
fn user_short(u: &User) -> Value {
    json!({
        "ID": u.id.to_string(), "NAME": u.name(), "FIRST_NAME": u.first_name, "LAST_NAME": u.last_name,
        "WORK_POSITION": u.work_position, "GENDER": u.gender,
    })
}

/// `data[PARAMS]` for a message, as the bot `bot_id` sees it.
pub(crate) fn message_params(p: &Portal, msg: &Message, chat: &Chat, bot_id: u64, context: &str) -> Map<String, Value> {
    let s = |v: u64| json!(v.to_string());
    let mut m = Map::new();
    m.insert("FROM_USER_ID".into(), s(msg.author_id));
    m.insert("MESSAGE".into(), json!(msg.text));
    m.insert("TO_CHAT_ID".into(), s(chat.id));
    m.insert("SYSTEM".into(), json!(yn(msg.system)));
    for flag in ["SKIP_URL_INDEX", "SKIP_COUNTER_INCREMENTS", "SKIP_COMMAND", "SILENT_CONNECTOR"] {
        m.insert(flag.into(), json!("N"));
    }
    m.insert("SKIP_CONNECTOR".into(), json!(yn(msg.skip_connector)));
    m.insert("IMPORTANT_CONNECTOR".into(), json!(yn(msg.important_connector)));
    m.insert("AUTHOR_ID".into(), s(msg.author_id));
    m.insert("COMMAND_CONTEXT".into(), json!(context));
    m.insert("MESSAGE_ID".into(), s(msg.id));
    m.insert("LANGUAGE".into(), json!(p.ident.language));
    if chat.lines.is_some() || chat.private_pair.is_none() {
        let entity_id = chat.lines.as_ref().map(|l| l.entity_id.clone()).unwrap_or_default();
        let kind = if chat.lines.is_some() { "L" } else { "C" };
        m.insert("MESSAGE_TYPE".into(), json!(kind));
        m.insert("CHAT_TYPE".into(), json!(kind));
        m.insert("CHAT_ID".into(), s(chat.id));
        m.insert("CHAT_AUTHOR_ID".into(), s(if chat.lines.is_some() { 0 } else { chat.owner }));
        m.insert("CHAT_ENTITY_TYPE".into(), json!(if chat.lines.is_some() { "LINES" } else { "" }));
        m.insert("CHAT_ENTITY_ID".into(), json!(entity_id));
        m.insert("CHAT_ENTITY_DATA_1".into(), json!(p.entity_data_1(chat)));
        m.insert("CHAT_ENTITY_DATA_2".into(), json!(p.entity_data_2(chat)));
        m.insert("CHAT_ENTITY_DATA_3".into(), json!(p.entity_data_3(chat)));
        m.insert("MESSAGE_ORIGINAL".into(), json!(msg.text));
        m.insert("TO_USER_ID".into(), json!("0"));
        m.insert("DIALOG_ID".into(), json!(chat.dialog_id()));
    } else {
        m.insert("MESSAGE_TYPE".into(), json!("P"));
        m.insert("CHAT_TYPE".into(), json!("P"));
        m.insert("TO_USER_ID".into(), s(bot_id));
        m.insert("DIALOG_ID".into(), s(msg.author_id));
    }
    m
}

/// `ONIMBOTMESSAGEADD` for the bots of one app that are members of the message's chat.
pub(crate) fn message_add(p: &Portal, app_id: &str, bots: &[u64], msg: &Message) -> Option<OutEvent> {
    let app = p.apps.get(app_id)?;
    let handler = app.message_add.as_ref()?;
    let chat = p.chats.get(&msg.chat_id)?;
    let first = *bots.first()?;
    let mut bot_map = Map::new();
    for b in bots.iter().filter_map(|id| p.bots.get(id)) {
        bot_map.insert(b.id.to_string(), bot_block(p, app, b));
    }
    let user = p.user(msg.author_id).map_or(json!([]), user_full);
    let params = message_params(p, msg, chat, first, "TEXTAREA");
    Some(OutEvent {
        event: "ONIMBOTMESSAGEADD".to_owned(),
        handler_id: Some(handler.id),
        data: json!({"BOT": bot_map, "PARAMS": params, "USER": user}),
        auth: auth_block(p, &app.application_token),
        url: handler.url.clone(),
        bot_id: first,
        key: format!("app:{app_id}"),
    })
}

/// `ONIMBOTJOINCHAT` when a bot joins a chat (an Open Lines welcome bot: `CHAT_TYPE=L`; UNCONFIRMED shape,
/// built from the documented group-chat keys).
pub(crate) fn join_chat(p: &Portal, bot_id: u64, chat_id: u64, by_user: u64) -> Option<OutEvent> {
    let bot = p.bots.get(&bot_id)?;
    let app = p.apps.get(&bot.app_id)?;
    let handler = app.welcome.as_ref()?;
    let chat = p.chats.get(&chat_id)?;
    let kind = if chat.lines.is_some() { "L" } else { "C" };
    let params = json!({
        "CHAT_TYPE": kind, "MESSAGE_TYPE": kind, "BOT_ID": bot_id.to_string(), "USER_ID": by_user.to_string(),
        "CHAT_ID": chat_id.to_string(), "CHAT_AUTHOR_ID": if chat.lines.is_some() { "0".to_owned() } else { chat.owner.to_string() },
        "CHAT_ENTITY_TYPE": if chat.lines.is_some() { "LINES" } else { "" },
        "CHAT_ENTITY_ID": chat.lines.as_ref().map(|l| l.entity_id.clone()).unwrap_or_default(),
        "ACCESS_HISTORY": "1", "DIALOG_ID": chat.dialog_id(), "LANGUAGE": p.ident.language,
    });
    let user = p.user(by_user).map_or(json!([]), user_short);
    Some(OutEvent {
        event: "ONIMBOTJOINCHAT".to_owned(),
        handler_id: Some(handler.id),
        data: json!({"BOT": {bot_id.to_string(): bot_block(p, app, bot)}, "PARAMS": params, "USER": user}),
        auth: auth_block(p, &app.application_token),
        url: handler.url.clone(),
        bot_id,
        key: format!("app:{}", bot.app_id),
    })
}

/// `ONIMBOTDELETE` (built before the bot is removed).
pub(crate) fn bot_delete(p: &Portal, bot: &Bot) -> Option<OutEvent> {
    let app = p.apps.get(&bot.app_id)?;
    let handler = app.bot_delete.as_ref()?;
    Some(OutEvent {
        event: "ONIMBOTDELETE".to_owned(),
        handler_id: Some(handler.id),
        data: json!({"BOT_ID": bot.id.to_string(), "BOT_CODE": bot.code}),
        auth: auth_block(p, &app.application_token),
        url: handler.url.clone(),
        bot_id: bot.id,
        key: format!("app:{}", bot.app_id),
    })
}

/// `ONIMCOMMANDADD` for a keyboard button press (`COMMAND_CONTEXT=KEYBOARD`) on message `msg` by `user`.
pub(crate) fn command_add(p: &Portal, command_id: u64, params_text: &str, msg: &Message, user: &User) -> Option<OutEvent> {
    let cmd = p.commands.get(&command_id)?;
    let bot = p.bots.get(&cmd.bot_id)?;
    let app = p.apps.get(&cmd.app_id)?;
    let handler = app.command_add.as_ref()?;
    let chat = p.chats.get(&msg.chat_id)?;
    let mut block = bot_block(p, app, bot);
    if let Some(o) = block.as_object_mut() {
        o.insert("COMMAND".into(), json!(cmd.command));
        o.insert("COMMAND_ID".into(), json!(cmd.id.to_string()));
        o.insert("COMMAND_PARAMS".into(), json!(params_text));
        o.insert("COMMAND_CONTEXT".into(), json!("KEYBOARD"));
        o.insert("MESSAGE_ID".into(), json!(msg.id.to_string()));
    }
    let pressed = Message { author_id: user.id, text: format!("/{} {}", cmd.command, params_text).trim_end().to_owned(), ..msg.clone() };
    let params = message_params(p, &pressed, chat, bot.id, "KEYBOARD");
    Some(OutEvent {
        event: "ONIMCOMMANDADD".to_owned(),
        handler_id: Some(handler.id),
        data: json!({"COMMAND": {cmd.id.to_string(): block}, "PARAMS": params, "USER": user_command(user)}),
        auth: auth_block(p, &app.application_token),
        url: handler.url.clone(),
        bot_id: bot.id,
        key: format!("app:{}", cmd.app_id),
    })
}
