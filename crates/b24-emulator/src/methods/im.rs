//! `im.*`: what the webhook's user (the Phase 1 "operator polling" service user) can see and do.
//!
//! `im.recent.*` list the chats the caller is a member of, plus Open Lines chats of lines whose queue includes
//! the caller (queue operators see their lines' chats). `im.dialog.messages.get` follows SRC `im_rest.php` and
//! `Chat::getMessages`: `CHAT_ID` or `DIALOG_ID`, `FIRST_ID` wins over `LAST_ID`, ids must be digit strings,
//! `LIMIT` ≤ 50 (default 20); newest first, except after `FIRST_ID` (oldest first). Not modelled: the extra
//! messages a reader with unread messages gets when neither id is given.

use super::{chat_of_dialog, is_dialog_id, json_param, pos_int, text, within_block_limit, yes};
use crate::rest::dispatch::{Ctx, Keys, MethodDef, Output};
use crate::rest::errors::ApiError;
use crate::rest::params::Param;
use crate::state::Portal;
use crate::state::messages::Post;
use crate::state::views;
use serde_json::{Value, json};

pub(crate) static METHODS: &[MethodDef] = &[
    MethodDef { name: "im.recent.list", scope: Some("im"), keys: Keys::Upper, handler: recent_list },
    MethodDef { name: "im.recent.get", scope: Some("im"), keys: Keys::Upper, handler: recent_get },
    MethodDef { name: "im.dialog.messages.get", scope: Some("im"), keys: Keys::Upper, handler: messages_get },
    MethodDef { name: "im.dialog.users.list", scope: Some("im"), keys: Keys::Upper, handler: users_list },
    MethodDef { name: "im.message.add", scope: Some("im"), keys: Keys::Upper, handler: message_add },
    MethodDef { name: "im.dialog.writing", scope: Some("im"), keys: Keys::Upper, handler: writing },
    MethodDef { name: "im.dialog.read", scope: Some("im"), keys: Keys::Upper, handler: read },
    MethodDef { name: "im.user.get", scope: Some("im"), keys: Keys::Upper, handler: user_get },
];

/// Resolves a dialog id for the caller: `chat<N>`, or a user id (their private chat, if any).
fn dialog_chat(portal: &Portal, dialog: &str, caller: u64) -> Option<u64> {
    if dialog.starts_with("chat") {
        return chat_of_dialog(portal, dialog);
    }
    let other: u64 = dialog.parse().ok()?;
    portal.private_chats.get(&(caller.min(other), caller.max(other))).copied()
}

fn dialog_param(p: &Param) -> Option<String> {
    match pos_int(p, "CHAT_ID") {
        Some(id) => Some(format!("chat{id}")),
        None => text(p, "DIALOG_ID"),
    }
}

fn visible_chats(portal: &Portal, caller: u64, p: &Param, only_openlines: bool) -> Vec<u64> {
    let skip_lines = yes(p, "SKIP_OPENLINES");
    let skip_chat = yes(p, "SKIP_CHAT");
    let skip_dialog = yes(p, "SKIP_DIALOG");
    let mut chats: Vec<(u64, u64)> = portal
        .chats
        .values()
        .filter(|c| portal.can_access(c.id, caller))
        .filter(|c| match (&c.lines, c.private_pair) {
            (Some(_), _) => !skip_lines,
            (None, Some(_)) => !skip_dialog && !only_openlines,
            (None, None) => !skip_chat && !only_openlines,
        })
        .map(|c| (c.message_ids.last().copied().unwrap_or(0), c.id))
        .collect();
    chats.sort_by(|a, b| b.cmp(a));
    chats.into_iter().map(|(_, id)| id).collect()
}

fn recent_list(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let portal = ctx.portal();
    let caller = ctx.user();
    let offset = pos_int(p, "OFFSET").unwrap_or(0) as usize;
    let limit = pos_int(p, "LIMIT").map_or(50, |l| l.min(200)) as usize;
    let unread_only = yes(p, "UNREAD_ONLY");
    let items: Vec<Value> = visible_chats(&portal, caller, p, false)
        .into_iter()
        .filter_map(|id| portal.chats.get(&id))
        .map(|c| views::recent_item(&portal, c, caller))
        .filter(|i| !unread_only || i["counter"].as_u64().unwrap_or(0) > 0)
        .collect();
    let has_more = items.len() > offset + limit;
    let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    Ok(Output::of(json!({
        "items": page, "hasMore": has_more, "hasMorePages": has_more, "copilot": null,
        "messagesAutoDeleteConfigs": [],
    })))
}

fn recent_get(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let portal = ctx.portal();
    let caller = ctx.user();
    let since = text(p, "LAST_SYNC_DATE").or_else(|| text(p, "LAST_UPDATE"));
    // DOC: changes since that date, at most 7 days back.
    let week_ago = portal.now() - chrono::Duration::days(7);
    let since = since.and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok()).map(|s| s.max(week_ago));
    let items: Vec<Value> = visible_chats(&portal, caller, p, yes(p, "ONLY_OPENLINES"))
        .into_iter()
        .filter_map(|id| portal.chats.get(&id))
        .filter(|c| {
            let last = c.message_ids.last().and_then(|m| portal.messages.get(m)).map_or(c.date_create, |m| m.date);
            since.is_none_or(|s| last >= s)
        })
        .map(|c| views::recent_item(&portal, c, caller))
        .collect();
    Ok(Output::of(Value::Array(items)))
}

fn digits_only(p: &Param, key: &str) -> Result<Option<u64>, ()> {
    match p.get(key) {
        None => Ok(None),
        Some(v) => {
            let t = v.text().ok_or(())?;
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            Ok(Some(t.parse().unwrap_or(u64::MAX)))
        }
    }
}

fn messages_get(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let dialog = dialog_param(p).filter(|d| is_dialog_id(d));
    let dialog = dialog.ok_or_else(|| ApiError::bad("DIALOG_ID_EMPTY", "Dialog ID can't be empty"))?;
    let portal = ctx.portal();
    let caller = ctx.user();
    let denied = || ApiError::forbidden("ACCESS_ERROR", "You do not have access to the specified dialog");
    let chat_id = match dialog_chat(&portal, &dialog, caller) {
        Some(id) => id,
        None if !dialog.starts_with("chat") && portal.user(dialog.parse().unwrap_or(0)).is_some() => {
            return Ok(Output::of(json!({"chat_id": 0, "messages": [], "users": [], "files": []})));
        }
        None => return Err(denied()),
    };
    if !portal.can_access(chat_id, caller) {
        return Err(denied());
    }
    let first = digits_only(p, "FIRST_ID").map_err(|()| ApiError::bad("FIRST_ID_STRING", "First ID can't be string"))?;
    let last = if first.is_none() { digits_only(p, "LAST_ID").map_err(|()| ApiError::bad("LAST_ID_STRING", "Last ID can't be string"))? } else { None };
    let limit = p.get("LIMIT").and_then(Param::int).map_or(20, |l| if l <= 0 { 20 } else { l.min(50) }) as usize;
    let Some(chat) = portal.chats.get(&chat_id) else { return Err(denied()) };
    let ids = &chat.message_ids;
    // SRC Chat::getMessages: FIRST_ID selects the oldest `limit` newer messages with no ORDER BY on the result
    // (ascending ids); otherwise `ID DESC`, newest first (as the doc example shows).
    let picked: Vec<u64> = match (first, last) {
        (Some(f), _) => ids.iter().copied().filter(|id| *id > f).take(limit).collect(),
        (None, Some(l)) if l > 0 => ids.iter().rev().copied().filter(|id| *id < l).take(limit).collect(),
        _ => ids.iter().rev().copied().take(limit).collect(),
    };
    let msgs: Vec<&crate::state::model::Message> = picked.iter().filter_map(|id| portal.messages.get(id)).collect();
    let mut authors: Vec<u64> = msgs.iter().map(|m| m.author_id).filter(|a| *a > 0).collect();
    authors.sort_unstable();
    authors.dedup();
    let users: Vec<Value> = authors.iter().filter_map(|a| portal.user(*a)).map(|u| views::user_snake(&portal, u)).collect();
    let messages: Vec<Value> = msgs.iter().map(|m| views::message_im(&portal, m, caller)).collect();
    Ok(Output::of(json!({"chat_id": chat_id, "messages": messages, "users": users, "files": []})))
}

fn chat_for_dialog(ctx: &Ctx<'_>, portal: &Portal, p: &Param) -> Result<u64, ApiError> {
    let dialog = dialog_param(p).filter(|d| is_dialog_id(d)).ok_or_else(|| ApiError::bad("DIALOG_ID_EMPTY", "Dialog ID can't be empty"))?;
    dialog_chat(portal, &dialog, ctx.user())
        .filter(|id| portal.can_access(*id, ctx.user()))
        .ok_or_else(|| ApiError::forbidden("ACCESS_ERROR", "You do not have access to the specified dialog"))
}

fn users_list(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let portal = ctx.portal();
    let chat_id = chat_for_dialog(ctx, &portal, p)?;
    let users: Vec<Value> = portal
        .chats
        .get(&chat_id)
        .map(|c| c.members.iter().filter_map(|m| portal.user(*m)).map(|u| views::user_snake(&portal, u)).collect())
        .unwrap_or_default();
    Ok(Output::of(Value::Array(users)))
}

fn message_add(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let empty = || ApiError::bad("MESSAGE_EMPTY", "Message can't be empty");
    let message = match p.get("MESSAGE") {
        Some(v) if v.is_container() => return Err(ApiError::bad("MESSAGE_EMPTY", "Wrong message type")),
        Some(v) => v.text().unwrap_or_default().trim().to_owned(),
        None => String::new(),
    };
    let attach = json_param(p, "ATTACH").map_err(|()| ApiError::bad("ATTACH_ERROR", "Incorrect attach params"))?;
    if message.is_empty() && attach.is_none() {
        return Err(empty());
    }
    let keyboard = json_param(p, "KEYBOARD").map_err(|()| ApiError::bad("KEYBOARD_ERROR", "Incorrect keyboard params"))?;
    within_block_limit(attach.as_ref(), "ATTACH_OVERSIZE", "attach")?;
    within_block_limit(keyboard.as_ref(), "KEYBOARD_OVERSIZE", "keyboard")?;
    let mut portal = ctx.portal();
    let caller = ctx.user();
    let dialog = text(p, "DIALOG_ID");
    let chat_id = match dialog.as_deref() {
        Some(d) if d.starts_with("chat") => Some(crate::rest::params::php_intval(&d[4..])),
        _ => pos_int(p, "CHAT_ID").map(|c| c as i64),
    };
    let user_id = dialog.as_deref().filter(|d| !d.starts_with("chat")).map(crate::rest::params::php_intval);
    let post = Post {
        text: message,
        system: yes(p, "SYSTEM"),
        skip_connector: p.get("SKIP_CONNECTOR").and_then(Param::text).is_some_and(|s| s.eq_ignore_ascii_case("Y")),
        keyboard,
        attach,
        ..Post::default()
    };
    if let Some(uid) = user_id.or_else(|| p.get("USER_ID").and_then(Param::int)) {
        let uid = u64::try_from(uid).ok().filter(|u| *u > 0).ok_or_else(|| ApiError::bad("USER_ID_EMPTY", "User ID can't be empty"))?;
        if portal.user(uid).is_none() {
            return Err(ApiError::bad("USER_NOT_FOUND", "User not found"));
        }
        let chat = portal.private_chat(caller, uid);
        let id = portal.post(Post { chat_id: chat, author_id: caller, ..post });
        portal.notify_bots(id);
        return Ok(Output::of(id));
    }
    let Some(chat_id) = chat_id else { return Err(ApiError::bad("PARAMS_ERROR", "Incorrect params")) };
    let chat_id = u64::try_from(chat_id).ok().filter(|c| *c > 0).ok_or_else(|| ApiError::bad("CHAT_ID_EMPTY", "Chat ID can't be empty"))?;
    if !portal.chats.contains_key(&chat_id) {
        return Err(ApiError::bad("PARAMS_ERROR", "Message isn't added"));
    }
    if !portal.can_access(chat_id, caller) {
        return Err(ApiError::forbidden("ACCESS_ERROR", "It is forbidden to send messages to this chat"));
    }
    let id = portal.employee_writes(chat_id, caller, post)?;
    Ok(Output::of(id))
}

fn writing(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let mut portal = ctx.portal();
    let chat_id = chat_for_dialog(ctx, &portal, p)?;
    if let Some(c) = portal.chats.get_mut(&chat_id) {
        c.typing.push(ctx.user());
    }
    Ok(Output::of(true))
}

fn read(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let dialog = dialog_param(p).filter(|d| is_dialog_id(d)).ok_or_else(|| ApiError::bad("DIALOG_ID_EMPTY", "Dialog ID can't be empty"))?;
    let mut portal = ctx.portal();
    let caller = ctx.user();
    let Some(chat_id) = dialog_chat(&portal, &dialog, caller).filter(|c| portal.can_access(*c, caller)) else {
        return Ok(Output::of(false));
    };
    let upto = pos_int(p, "MESSAGE_ID");
    let Some(chat) = portal.chats.get_mut(&chat_id) else { return Ok(Output::of(false)) };
    let last = chat.message_ids.last().copied().unwrap_or(0);
    let mark = upto.map_or(last, |u| u.min(last));
    chat.read.insert(caller, mark);
    let counter = chat.message_ids.iter().filter(|id| **id > mark).count();
    Ok(Output::of(json!({"dialogId": dialog, "chatId": chat_id, "lastId": mark, "counter": counter})))
}

fn user_get(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let id = if p.has("ID") { pos_int(p, "ID").ok_or_else(|| ApiError::bad("ID_EMPTY", "ID can't be empty"))? } else { ctx.user() };
    let portal = ctx.portal();
    let u = portal.user(id).ok_or_else(|| ApiError::bad("USER_NOT_EXISTS", "User not exists"))?;
    Ok(Output::of(views::user_snake(&portal, u)))
}
