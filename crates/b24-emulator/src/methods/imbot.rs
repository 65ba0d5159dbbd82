//! v1 chatbots through an incoming webhook (`imbot.*`, contract §4; SRC `im_rest.php`).
//!
//! Every call must repeat `CLIENT_ID` (else 403 `ACCESS_DENIED` "Access denied! Client ID not specified"); the
//! bot's app is `custom<CLIENT_ID>`; registration appends `CLIENT_ID=<value>` to each handler URL and rebinds
//! the app's (single) set of handlers. A bot may only post into chats it is a member of (`WRONG_REQUEST`
//! "Message isn't added" otherwise, which is what a bot gets after handing a chat to an operator).

use super::{client_app, is_dialog_id, json_param, pos_int, resolve_bot, text, within_block_limit, yes};
use crate::rest::dispatch::{Ctx, Keys, MethodDef, Output};
use crate::rest::errors::ApiError;
use crate::rest::params::Param;
use crate::state::Portal;
use crate::state::messages::Post;
use crate::state::model::{App, Bot, Command, HandlerUrl, User};
use crate::state::seed::BotUser;
use serde_json::{Map, Value, json};

pub(crate) static METHODS: &[MethodDef] = &[
    MethodDef { name: "imbot.register", scope: Some("imbot"), keys: Keys::Upper, handler: register },
    MethodDef { name: "imbot.unregister", scope: Some("imbot"), keys: Keys::Upper, handler: unregister },
    MethodDef { name: "imbot.bot.list", scope: Some("imbot"), keys: Keys::Upper, handler: bot_list },
    MethodDef { name: "imbot.message.add", scope: Some("imbot"), keys: Keys::Upper, handler: message_add },
    MethodDef { name: "imbot.chat.sendTyping", scope: Some("imbot"), keys: Keys::Upper, handler: send_typing },
    MethodDef { name: "imbot.command.register", scope: Some("imbot"), keys: Keys::Upper, handler: command_register },
    MethodDef { name: "imbot.command.answer", scope: Some("imbot"), keys: Keys::Upper, handler: command_answer },
];

/// SRC: `url . (strpos(url, '?') === false ? '?' : '&') . 'CLIENT_ID=' . CLIENT_ID`.
pub(crate) fn with_client_id(url: &str, client_id: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}CLIENT_ID={client_id}")
}

/// `HandlerHelper::checkCallback`, minus the "public host" rule (tests deliver to 127.0.0.1).
pub(crate) fn valid_handler(u: &str) -> bool {
    url::Url::parse(u).is_ok_and(|x| matches!(x.scheme(), "http" | "https") && x.host_str().is_some_and(|h| !h.is_empty()))
}

fn handler(portal: &mut Portal, url: String) -> HandlerUrl {
    HandlerUrl { url, id: portal.ids.handler() }
}

fn register(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let app_id = client_app(p)?;
    let client_id = text(p, "CLIENT_ID").unwrap_or_default();
    let all = text(p, "EVENT_HANDLER");
    let mut urls: Vec<Option<String>> = Vec::new();
    for (key, code, label, required) in [
        ("EVENT_MESSAGE_ADD", "EVENT_MESSAGE_ADD_ERROR", "Message add", true),
        ("EVENT_MESSAGE_UPDATE", "EVENT_MESSAGE_UPDATE_ERROR", "Message update", false),
        ("EVENT_MESSAGE_DELETE", "EVENT_MESSAGE_DELETE_ERROR", "Message delete", false),
        ("EVENT_WELCOME_MESSAGE", "EVENT_WELCOME_MESSAGE_ERROR", "Welcome message", true),
        ("EVENT_BOT_DELETE", "EVENT_BOT_DELETE_ERROR", "Bot delete", true),
    ] {
        match all.clone().or_else(|| text(p, key)) {
            Some(u) if valid_handler(&u) => urls.push(Some(with_client_id(&u, &client_id))),
            Some(_) => return Err(ApiError::bad(code, "Wrong handler URL")),
            None if required => return Err(ApiError::bad(code, &format!("Handler for \"{label}\" event isn't specified"))),
            None => urls.push(None),
        }
    }
    let code = text(p, "CODE").ok_or_else(|| ApiError::bad("CODE_ERROR", "Bot code isn't specified"))?;
    let bot_type = text(p, "TYPE").filter(|t| ["O", "B", "H", "S"].contains(&t.as_str())).unwrap_or_else(|| "B".to_owned());
    let openline = yes(p, "OPENLINE") || bot_type == "O";
    if !(bot_type == "S" || bot_type == "O" || openline) {
        for u in urls.iter_mut().skip(1).take(2) {
            *u = None;
        }
    }
    let props = p.get("PROPERTIES");
    let prop = |k: &str| props.and_then(|x| x.get(k)).and_then(Param::text).filter(|s| !s.is_empty());
    let (name, last_name) = (prop("NAME"), prop("LAST_NAME"));
    if name.is_none() && last_name.is_none() {
        return Err(ApiError::bad("NAME_ERROR", "Bot name isn't specified"));
    }
    let mut portal = ctx.portal();
    // Bot::register refuses a second bot with the same code in the same app (the emulator's reading: the REST
    // layer then answers "Bot can't be created"; UNCONFIRMED). Use imbot.bot.list to stay idempotent.
    if portal.bots.values().any(|b| b.app_id == app_id && b.code == code) {
        return Err(ApiError::bad("WRONG_REQUEST", "Bot can't be created"));
    }
    let id = portal.add_bot_user(BotUser {
        first_name: name.unwrap_or_default(),
        last_name: last_name.unwrap_or_default(),
        work_position: prop("WORK_POSITION").unwrap_or_default(),
        gender: prop("PERSONAL_GENDER").unwrap_or_default(),
        email: prop("EMAIL").unwrap_or_default(),
    });
    let mut it = urls.into_iter();
    let mut next = || it.next().flatten();
    let (add, update, delete, welcome, bot_delete) = (next(), next(), next(), next(), next());
    let existing_token = portal.apps.get(&app_id).map(|a| a.application_token.clone());
    let app = App {
        client_id: client_id.clone(),
        application_token: existing_token.unwrap_or(client_id),
        message_add: add.map(|u| handler(&mut portal, u)),
        message_update: update.map(|u| handler(&mut portal, u)),
        message_delete: delete.map(|u| handler(&mut portal, u)),
        welcome: welcome.map(|u| handler(&mut portal, u)),
        bot_delete: bot_delete.map(|u| handler(&mut portal, u)),
        command_add: portal.apps.get(&app_id).and_then(|a| a.command_add.clone()),
    };
    portal.apps.insert(app_id.clone(), app);
    portal.bots.insert(id, Bot { id, code, app_id, bot_type, openline, owner_id: ctx.user(), v2: None, count_message: 0, count_command: 0 });
    Ok(Output::of(id))
}

/// Removes a bot from every chat and line; hands chats it was serving to the queue. Events must be queued
/// by the caller before.
pub(crate) fn remove_bot(portal: &mut Portal, bot_id: u64) {
    let chats: Vec<u64> = portal.chats.values().filter(|c| c.is_member(bot_id)).map(|c| c.id).collect();
    for chat_id in chats {
        if let Some(c) = portal.chats.get_mut(&chat_id) {
            c.remove_member(bot_id);
        }
        if portal.open_session(chat_id).is_some_and(|s| s.operator_id == bot_id) {
            portal.transfer_to_next_in_queue(chat_id, &[bot_id]);
        }
    }
    for line in portal.lines.values_mut().filter(|l| l.welcome_bot_id == bot_id) {
        line.welcome_bot_enable = false;
        line.welcome_bot_id = 0;
    }
    portal.commands.retain(|_, c| c.bot_id != bot_id);
    if let Some(bot) = portal.bots.remove(&bot_id)
        && !portal.bots.values().any(|b| b.app_id == bot.app_id)
    {
        portal.apps.remove(&bot.app_id);
    }
    if let Some(u) = portal.users.get_mut(&bot_id) {
        u.active = false;
    }
}

fn unregister(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let app_id = client_app(p)?;
    let mut portal = ctx.portal();
    let not_found = || ApiError::bad("BOT_ID_ERROR", "Bot not found");
    let bot_id = pos_int(p, "BOT_ID").ok_or_else(not_found)?;
    let bot = portal.bots.get(&bot_id).cloned().ok_or_else(not_found)?;
    if bot.app_id != app_id {
        return Err(ApiError::bad("APP_ID_ERROR", "Bot was installed by another rest application"));
    }
    if let Some(ev) = crate::events::v1::bot_delete(&portal, &bot) {
        portal.push_event(ev);
    }
    remove_bot(&mut portal, bot_id);
    Ok(Output::of(true))
}

fn bot_list(ctx: &Ctx<'_>, _p: &Param) -> Result<Output, ApiError> {
    let portal = ctx.portal();
    let mut m = Map::new();
    for b in portal.bots.values() {
        let name = portal.user(b.id).map(User::name).unwrap_or_default();
        m.insert(b.id.to_string(), json!({"ID": b.id, "NAME": name, "CODE": b.code, "OPENLINE": if b.serves_openlines() { "Y" } else { "N" }}));
    }
    Ok(Output::of(crate::rest::envelope::php_map(m)))
}

/// `Keyboard::getKeyboardByJson`: `{BUTTONS:[...]}` or a bare array; every button needs `TEXT` (or is a
/// `NEWLINE`). Returns the button list.
pub(crate) fn normalize_keyboard(v: Value) -> Option<Value> {
    let buttons = match v {
        Value::Object(mut o) => match o.remove("BUTTONS") {
            Some(b) => b,
            None => Value::Array(o.into_iter().map(|(_, v)| v).collect()),
        },
        other => other,
    };
    let list: Vec<Value> = match buttons {
        Value::Array(a) => a,
        Value::Object(o) => o.into_iter().map(|(_, v)| v).collect(),
        _ => return None,
    };
    let ok = !list.is_empty() && list.iter().all(|b| b.get("TYPE").and_then(Value::as_str) == Some("NEWLINE") || b.get("TEXT").is_some());
    ok.then_some(Value::Array(list))
}

/// Parses MESSAGE / ATTACH / KEYBOARD / flags into a post, with the documented errors.
pub(crate) fn bot_post(p: &Param) -> Result<Post, ApiError> {
    let message = p.get("MESSAGE").and_then(Param::text).unwrap_or_default().trim().to_owned();
    let attach = json_param(p, "ATTACH").map_err(|()| ApiError::bad("ATTACH_ERROR", "Incorrect attach params"))?;
    within_block_limit(attach.as_ref(), "ATTACH_OVERSIZE", "attach")?;
    let keyboard = match json_param(p, "KEYBOARD") {
        Ok(None) => None,
        Ok(Some(k)) => Some(normalize_keyboard(k).ok_or_else(|| ApiError::bad("KEYBOARD_ERROR", "Incorrect keyboard params"))?),
        Err(()) => return Err(ApiError::bad("KEYBOARD_ERROR", "Incorrect keyboard params")),
    };
    within_block_limit(keyboard.as_ref(), "KEYBOARD_OVERSIZE", "keyboard")?;
    json_param(p, "MENU").map_err(|()| ApiError::bad("MENU_ERROR", "Incorrect menu params"))?;
    if message.is_empty() && attach.is_none() {
        return Err(ApiError::bad("MESSAGE_EMPTY", "Message can't be empty"));
    }
    Ok(Post {
        text: message,
        system: yes(p, "SYSTEM"),
        skip_connector: p.get("SKIP_CONNECTOR").and_then(Param::text).is_some_and(|s| s.eq_ignore_ascii_case("Y")),
        keyboard,
        attach,
        ..Post::default()
    })
}

fn message_add(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let app_id = client_app(p)?;
    let mut portal = ctx.portal();
    let bot_id = resolve_bot(&portal, p, &app_id)?;
    let (from, to) = (pos_int(p, "FROM_USER_ID"), pos_int(p, "TO_USER_ID"));
    let dialog = text(p, "DIALOG_ID");
    if from.zip(to).is_none() && !dialog.as_deref().is_some_and(is_dialog_id) {
        return Err(ApiError::bad("DIALOG_ID_EMPTY", "Dialog ID can't be empty"));
    }
    let mut post = bot_post(p)?;
    let not_added = || ApiError::bad("WRONG_REQUEST", "Message isn't added");
    let chat_id = match (from.zip(to), dialog) {
        (Some((f, t)), _) => {
            post.system = true;
            if portal.user(f).is_none() || portal.user(t).is_none() {
                return Err(not_added());
            }
            portal.private_chat(f, t)
        }
        (None, Some(d)) if d.starts_with("chat") => {
            let id = super::chat_of_dialog(&portal, &d).ok_or_else(not_added)?;
            if !portal.chats.get(&id).is_some_and(|c| c.is_member(bot_id)) {
                return Err(not_added());
            }
            id
        }
        (None, Some(d)) => {
            let user: u64 = d.parse().map_err(|_| not_added())?;
            if portal.user(user).is_none_or(|u| u.is_connector()) {
                return Err(not_added());
            }
            portal.private_chat(bot_id, user)
        }
        (None, None) => return Err(not_added()),
    };
    let id = portal.post(Post { chat_id, author_id: bot_id, ..post });
    portal.notify_bots(id);
    Ok(Output::of(id))
}

fn send_typing(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let app_id = client_app(p)?;
    let mut portal = ctx.portal();
    let bot_id = resolve_bot(&portal, p, &app_id)?;
    let dialog = text(p, "DIALOG_ID").filter(|d| is_dialog_id(d));
    let dialog = dialog.ok_or_else(|| ApiError::bad("DIALOG_ID_EMPTY", "Dialog ID can't be empty"))?;
    if let Some(c) = Portal::chat_from_dialog(&dialog).and_then(|id| portal.chats.get_mut(&id)) {
        c.typing.push(bot_id);
    }
    Ok(Output::of(true))
}

fn command_register(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let app_id = client_app(p)?;
    let client_id = text(p, "CLIENT_ID").unwrap_or_default();
    let url = match text(p, "EVENT_COMMAND_ADD") {
        Some(u) if valid_handler(&u) => with_client_id(&u, &client_id),
        Some(_) => return Err(ApiError::bad("EVENT_COMMAND_ADD_ERROR", "Wrong handler URL")),
        None => return Err(ApiError::bad("EVENT_COMMAND_ADD_ERROR", "Handler for \"Command add\" event isn't specified")),
    };
    let command = text(p, "COMMAND").ok_or_else(|| ApiError::bad("COMMAND_ERROR", "Command isn't specified"))?;
    let mut portal = ctx.portal();
    let not_found = || ApiError::bad("BOT_ID_ERROR", "Bot not found");
    let bot_id = pos_int(p, "BOT_ID").ok_or_else(not_found)?;
    let bot = portal.bots.get(&bot_id).ok_or_else(not_found)?;
    if bot.app_id != app_id {
        return Err(ApiError::bad("APP_ID_ERROR", "Bot was installed by another rest application"));
    }
    if p.get("LANG").is_none_or(Param::is_php_empty) {
        return Err(ApiError::bad("LANG_ERROR", "Lang set can't be empty"));
    }
    let id = portal.ids.command();
    let h = handler(&mut portal, url);
    if let Some(app) = portal.apps.get_mut(&app_id) {
        app.command_add = Some(h);
    }
    if let Some(b) = portal.bots.get_mut(&bot_id) {
        b.count_command += 1;
    }
    portal
        .commands
        .insert(id, Command { id, bot_id, app_id, command, common: yes(p, "COMMON"), hidden: yes(p, "HIDDEN"), extranet_support: yes(p, "EXTRANET_SUPPORT") });
    Ok(Output::of(id))
}

fn command_answer(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let app_id = client_app(p)?;
    let mut portal = ctx.portal();
    let by_id = pos_int(p, "COMMAND_ID").and_then(|id| portal.commands.get(&id));
    let by_name = text(p, "COMMAND").and_then(|c| portal.commands.values().find(|x| x.command == c && x.app_id == app_id));
    let cmd = by_id.or(by_name).cloned().ok_or_else(|| ApiError::bad("COMMAND_ID_ERROR", "Command not found"))?;
    if cmd.app_id != app_id {
        return Err(ApiError::bad("APP_ID_ERROR", "Command was installed by another rest application"));
    }
    let msg_id = pos_int(p, "MESSAGE_ID").ok_or_else(|| ApiError::bad("MESSAGE_ID_EMPTY", "Message ID can't be empty"))?;
    let post = bot_post(p)?;
    let chat_id = portal.messages.get(&msg_id).map(|m| m.chat_id).ok_or_else(|| ApiError::bad("WRONG_REQUEST", "Message isn't added"))?;
    if !portal.chats.get(&chat_id).is_some_and(|c| c.is_member(cmd.bot_id)) {
        return Err(ApiError::bad("WRONG_REQUEST", "Message isn't added"));
    }
    let id = portal.post(Post { chat_id, author_id: cmd.bot_id, ..post });
    portal.notify_bots(id);
    Ok(Output::of(id))
}
