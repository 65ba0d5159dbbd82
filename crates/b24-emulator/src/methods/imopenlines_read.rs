//! Read-mostly `imopenlines.*` methods: `dialog.get`, `session.history.get`, `config.list.get`, `config.get`,
//! `config.update` (the API way to attach a welcome bot), `crm.chat.get`.

use super::imopenlines::{chats_of_entity, option_yes};
use super::{pos_int, text};
use crate::api::{WelcomeBotJoin, WelcomeBotLeft};
use crate::rest::dispatch::{Ctx, Output};
use crate::rest::envelope::{iso, php_map};
use crate::rest::errors::ApiError;
use crate::rest::params::Param;
use crate::state::Portal;
use crate::state::crm::EntityType;
use crate::state::views;
use serde_json::{Map, Value, json};

fn find_dialog(portal: &Portal, p: &Param) -> Option<u64> {
    if let Some(id) = pos_int(p, "CHAT_ID") {
        return Some(id);
    }
    if let Some(d) = text(p, "DIALOG_ID") {
        return Portal::chat_from_dialog(&d);
    }
    if let Some(s) = pos_int(p, "SESSION_ID") {
        return portal.sessions.get(&s).map(|s| s.chat_id);
    }
    let code = text(p, "USER_CODE")?;
    portal.chats.values().find(|c| c.lines.as_ref().is_some_and(|l| l.entity_id == code)).map(|c| c.id)
}

pub(crate) fn dialog_get(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let portal = ctx.portal();
    let denied = || ApiError::bad("ACCESS_ERROR", "You do not have access to the specified dialog");
    let chat_id = find_dialog(&portal, p).ok_or_else(denied)?;
    let chat = portal.chats.get(&chat_id).filter(|c| c.lines.is_some()).ok_or_else(denied)?;
    if !portal.can_access(chat_id, ctx.user()) {
        return Err(denied());
    }
    Ok(Output::of(views::dialog_get(&portal, chat, ctx.user())))
}

pub(crate) fn history_get(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let portal = ctx.portal();
    let session = match (pos_int(p, "SESSION_ID"), pos_int(p, "CHAT_ID")) {
        (Some(s), _) => portal.sessions.get(&s).ok_or_else(|| ApiError::bad("INVALID_SESSION_ID", "Invalid session ID"))?,
        (None, Some(c)) => portal.sessions.values().rev().find(|s| s.chat_id == c).ok_or_else(|| ApiError::bad("INVALID_SESSION_ID", "Invalid session ID"))?,
        (None, None) => return Err(ApiError::bad("MISSING_REQUIRED_PARAM", "Missing required parameter: SESSION_ID or CHAT_ID")),
    };
    if !portal.can_access(session.chat_id, ctx.user()) {
        return Err(ApiError::bad("ACCESS_DENIED", "Access denied"));
    }
    let chat = portal.chats.get(&session.chat_id).ok_or_else(|| ApiError::bad("INVALID_SESSION_ID", "Invalid session ID"))?;
    let dialog = chat.dialog_id();
    let tz = portal.ident.tz;
    let msgs: Vec<&crate::state::model::Message> =
        chat.message_ids.iter().filter_map(|id| portal.messages.get(id)).filter(|m| m.session_id == session.id).collect();
    let mut message = Map::new();
    let mut ids = Vec::new();
    let mut users = Map::new();
    for m in msgs.iter().rev() {
        message.insert(
            m.id.to_string(),
            json!({"id": m.id.to_string(), "chatid": m.chat_id.to_string(), "senderid": m.author_id.to_string(),
                   "recipientid": dialog, "date": iso(m.date.to_utc(), tz), "text": m.text, "textlegacy": m.text,
                   "params": php_map(m.params.clone())}),
        );
        ids.push(json!(m.id.to_string()));
    }
    for u in chat.members.iter().chain(msgs.iter().map(|m| &m.author_id)).filter_map(|id| portal.user(*id)) {
        users.insert(u.id.to_string(), views::user_history(&portal, u));
    }
    let mut chat_obj = views::chat_v2(&portal, chat);
    if let Some(o) = chat_obj.as_object_mut() {
        o.insert("id".into(), json!(chat.id.to_string()));
        o.insert("messageCount".into(), json!(chat.message_ids.len()));
        o.insert("dateCreate".into(), json!(iso(chat.date_create.to_utc(), tz)));
        o.insert("messageType".into(), json!("L"));
    }
    let line = session.line_id.to_string();
    let blocks: Map<String, Value> = chat.members.iter().map(|m| (m.to_string(), json!(false))).collect();
    Ok(Output::of(json!({
        "chatId": chat.id, "canJoin": "Y", "canVoteHead": "Y", "sessionId": session.id, "sessionVoteHead": 0,
        "sessionCommentHead": null, "userId": dialog, "message": php_map(message),
        "usersMessage": {dialog.clone(): ids}, "users": php_map(users),
        "openlines": {"canvoteashead": {line: true}}, "userInGroup": [], "woUserInGroup": [],
        "chat": {chat.id.to_string(): chat_obj}, "userBlockChat": {chat.id.to_string(): blocks},
        "userInChat": {chat.id.to_string(): chat.members}, "files": [],
    })))
}

fn params_map(p: &Param, key: &str) -> Result<Param, ApiError> {
    match p.get(key) {
        None => Ok(Param::empty()),
        Some(v) if v.is_container() || v.is_php_empty() => Ok(if v.is_container() { v.clone() } else { Param::empty() }),
        Some(_) => Err(ApiError::bad("INVALID_FORMAT", &format!("{key} must be an array"))),
    }
}

pub(crate) fn config_list(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let params = params_map(p, "PARAMS")?;
    let options = params_map(p, "OPTIONS")?;
    let limit = params.get_ci("limit").and_then(Param::int).filter(|n| *n > 0).map_or(50, |n| n.min(200)) as usize;
    let offset = params.get_ci("offset").and_then(Param::int).filter(|n| *n > 0).unwrap_or(0) as usize;
    let select: Vec<String> = params.get_ci("select").map(|s| s.values().iter().filter_map(|v| v.text()).collect()).unwrap_or_default();
    let filter: Vec<(String, String)> =
        params.get_ci("filter").map(|f| f.entries().into_iter().filter_map(|(k, v)| v.text().map(|t| (k.to_uppercase(), t))).collect()).unwrap_or_default();
    let desc = params.get_ci("order").and_then(|o| o.get_ci("ID")).and_then(Param::text).is_some_and(|d| d.eq_ignore_ascii_case("desc"));
    let portal = ctx.portal();
    let (q, cq) = (option_yes(&options, "QUEUE"), option_yes(&options, "CONFIG_QUEUE"));
    let mut lines: Vec<Value> = portal
        .lines
        .values()
        .map(|l| views::line_config(&portal, l, q, cq))
        .filter(|v| filter.iter().all(|(k, want)| v.get(k).and_then(Value::as_str) == Some(want.as_str())))
        .collect();
    if desc {
        lines.reverse();
    }
    let out: Vec<Value> = lines
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|v| match (&v, select.is_empty()) {
            (Value::Object(o), false) => Value::Object(
                o.iter()
                    .filter(|(k, _)| select.iter().any(|s| s.eq_ignore_ascii_case(k)) || ["QUEUE", "QUEUE_USERS_FIELDS", "CONFIG_QUEUE"].contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            _ => v,
        })
        .collect();
    Ok(Output::of(Value::Array(out)))
}

pub(crate) fn config_get(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let id = pos_int(p, "CONFIG_ID").ok_or_else(|| ApiError::bad("CONFIG_ID_EMPTY", "Config ID can't be empty"))?;
    let portal = ctx.portal();
    let line = portal.lines.get(&id).ok_or_else(|| ApiError::bad("CONFIG_NOT_FOUND", "Config not found"))?;
    let with_queue = p.get("WITH_QUEUE").is_none_or(|v| v.text().is_some_and(|t| t == "Y"));
    Ok(Output::of(views::line_config(&portal, line, with_queue, with_queue)))
}

/// `imopenlines.config.update` with `CONFIG_ID` and `PARAMS` (`WELCOME_BOT_*`, `CRM`, `LINE_NAME`, `QUEUE`).
pub(crate) fn config_update(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let id = pos_int(p, "CONFIG_ID").ok_or_else(|| ApiError::bad("CONFIG_ID_EMPTY", "Config ID can't be empty"))?;
    let params = params_map(p, "PARAMS")?;
    let mut portal = ctx.portal();
    if !portal.lines.contains_key(&id) {
        return Err(ApiError::bad("CONFIG_NOT_FOUND", "Config not found"));
    }
    let get = |k: &str| params.get_ci(k).and_then(Param::text);
    let bot = params.get_ci("WELCOME_BOT_ID").and_then(Param::int).map(i64::unsigned_abs);
    if let Some(b) = bot.filter(|b| *b > 0)
        && !portal.bots.get(&b).is_some_and(|x| x.serves_openlines())
    {
        return Err(ApiError::bad("WELCOME_BOT_ERROR", "Bot not found or is not an Open Lines bot"));
    }
    let queue: Option<Vec<u64>> = params.get_ci("QUEUE").map(|q| q.values().iter().filter_map(|v| v.int()).filter(|n| *n > 0).map(i64::unsigned_abs).collect());
    let Some(line) = portal.lines.get_mut(&id) else { return Ok(Output::of(true)) };
    if let Some(v) = get("WELCOME_BOT_ENABLE") {
        line.welcome_bot_enable = v == "Y";
    }
    if let Some(b) = bot {
        line.welcome_bot_id = b;
    }
    match get("WELCOME_BOT_JOIN").as_deref() {
        Some("first") => line.welcome_bot_join = WelcomeBotJoin::First,
        Some("always") => line.welcome_bot_join = WelcomeBotJoin::Always,
        _ => {}
    }
    match get("WELCOME_BOT_LEFT").as_deref() {
        Some("close") => line.welcome_bot_left = WelcomeBotLeft::Close,
        Some("queue") => line.welcome_bot_left = WelcomeBotLeft::Queue,
        _ => {}
    }
    if let Some(t) = params.get_ci("WELCOME_BOT_TIME").and_then(Param::int) {
        line.welcome_bot_time = t.unsigned_abs();
    }
    if let Some(v) = get("CRM") {
        line.crm = v == "Y";
    }
    if let Some(n) = get("LINE_NAME").filter(|n| !n.is_empty()) {
        line.name = n;
    }
    if let Some(q) = queue {
        line.queue = q;
    }
    Ok(Output::of(true))
}

pub(crate) fn crm_chat_get(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let et = text(p, "CRM_ENTITY_TYPE").and_then(|t| EntityType::parse(&t)).ok_or_else(|| ApiError::bad("ERROR_ARGUMENT", "Invalid CRM_ENTITY_TYPE"))?;
    let id = pos_int(p, "CRM_ENTITY").ok_or_else(|| ApiError::bad("ERROR_ARGUMENT", "CRM_ENTITY can't be empty"))?;
    let active_only = p.get("ACTIVE_ONLY").and_then(Param::text).is_none_or(|v| v != "N");
    let portal = ctx.portal();
    Ok(Output::of(Value::Array(chats_of_entity(&portal, et, id, active_only))))
}
