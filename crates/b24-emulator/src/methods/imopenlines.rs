//! `imopenlines.*`: bot session control, operator actions, dialogs, session history, lines, CRM lookups
//! (contract §5; SRC `imopenlines/lib/rest.php`). The `bot.session.*` methods take the bot's app from
//! `CLIENT_ID` (the v1 client id, or a v2 `botToken`).

use super::{pos_int, text};
use crate::rest::dispatch::{Ctx, Keys, MethodDef, Output};
use crate::rest::errors::ApiError;
use crate::rest::params::Param;
use crate::state::Portal;
use crate::state::crm::EntityType;
use crate::state::messages::Post;
use crate::state::openlines::TransferTo;
use serde_json::{Value, json};

pub(crate) static METHODS: &[MethodDef] = &[
    MethodDef { name: "imopenlines.bot.session.operator", scope: Some("imopenlines"), keys: Keys::Upper, handler: bot_operator },
    MethodDef { name: "imopenlines.bot.session.transfer", scope: Some("imopenlines"), keys: Keys::AsIs, handler: bot_transfer },
    MethodDef { name: "imopenlines.bot.session.finish", scope: Some("imopenlines"), keys: Keys::Upper, handler: bot_finish },
    MethodDef { name: "imopenlines.bot.session.message.send", scope: Some("imopenlines"), keys: Keys::Upper, handler: bot_message_send },
    MethodDef { name: "imopenlines.session.intercept", scope: Some("imopenlines"), keys: Keys::AsIs, handler: intercept },
    MethodDef { name: "imopenlines.operator.answer", scope: Some("imopenlines"), keys: Keys::Upper, handler: op_answer },
    MethodDef { name: "imopenlines.operator.finish", scope: Some("imopenlines"), keys: Keys::Upper, handler: op_finish },
    MethodDef { name: "imopenlines.operator.another.finish", scope: Some("imopenlines"), keys: Keys::Upper, handler: op_another_finish },
    MethodDef { name: "imopenlines.operator.spam", scope: Some("imopenlines"), keys: Keys::Upper, handler: op_another_finish },
    MethodDef { name: "imopenlines.operator.skip", scope: Some("imopenlines"), keys: Keys::Upper, handler: op_skip },
    MethodDef { name: "imopenlines.operator.transfer", scope: Some("imopenlines"), keys: Keys::AsIs, handler: op_transfer },
    MethodDef { name: "imopenlines.dialog.get", scope: Some("imopenlines"), keys: Keys::Upper, handler: super::imopenlines_read::dialog_get },
    MethodDef { name: "imopenlines.session.history.get", scope: Some("imopenlines"), keys: Keys::Upper, handler: super::imopenlines_read::history_get },
    MethodDef { name: "imopenlines.config.list.get", scope: Some("imopenlines"), keys: Keys::Upper, handler: super::imopenlines_read::config_list },
    MethodDef { name: "imopenlines.config.get", scope: Some("imopenlines"), keys: Keys::Upper, handler: super::imopenlines_read::config_get },
    MethodDef { name: "imopenlines.config.update", scope: Some("imopenlines"), keys: Keys::Upper, handler: super::imopenlines_read::config_update },
    MethodDef { name: "imopenlines.crm.chat.get", scope: Some("imopenlines"), keys: Keys::Upper, handler: super::imopenlines_read::crm_chat_get },
    MethodDef { name: "imopenlines.crm.lead.create", scope: Some("imopenlines"), keys: Keys::Upper, handler: crm_lead_create },
];

fn chat_id_empty() -> ApiError {
    ApiError::bad("CHAT_ID_EMPTY", "Chat ID can't be empty")
}

/// The bot behind `CLIENT_ID` (v1 `custom<CLIENT_ID>` app, or a v2 bot whose `botToken` it is).
fn bot_of_client(portal: &Portal, p: &Param) -> Result<u64, ApiError> {
    let not_found = || ApiError::bad("BOT_ID_ERROR", "Bot not found");
    let client = p.get_ci("CLIENT_ID").and_then(Param::text).filter(|c| !c.is_empty()).ok_or_else(not_found)?;
    portal
        .first_bot_of_app(&format!("custom{client}"))
        .or_else(|| portal.bots.values().find(|b| b.v2.as_ref().is_some_and(|v| v.bot_token == client)).map(|b| b.id))
        .ok_or_else(not_found)
}

fn bot_operator(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let chat = pos_int(p, "CHAT_ID").ok_or_else(chat_id_empty)?;
    ctx.portal().end_bot_session(chat)?;
    Ok(Output::of(true))
}

/// `TRANSFER_ID` (`<userId>` or `queue<id>`) is rewritten to `USER_ID`/`QUEUE_ID`; `USER_ID` wins over `QUEUE_ID`.
fn transfer_target(p: &Param) -> Result<TransferTo, ApiError> {
    let get = |k: &str| p.get_ci(k).filter(|v| !matches!(v, Param::Null));
    let mut user = get("USER_ID").cloned();
    let mut queue = get("QUEUE_ID").cloned();
    if let Some(t) = get("TRANSFER_ID").and_then(Param::text) {
        match t.strip_prefix("queue") {
            Some(q) => queue = Some(Param::Str(q.to_owned())),
            None => user = Some(Param::Str(t)),
        }
    }
    if let Some(u) = user {
        let id = u.int().filter(|n| *n > 0).ok_or_else(|| ApiError::bad("USER_ID_EMPTY", "User ID can't be empty"))?;
        return Ok(TransferTo::User(id.unsigned_abs()));
    }
    if let Some(q) = queue {
        let id = q.int().filter(|n| *n > 0).ok_or_else(|| ApiError::bad("QUEUE_ID_EMPTY", "QUEUE ID can't be empty"))?;
        return Ok(TransferTo::Queue(id.unsigned_abs()));
    }
    Err(ApiError::bad("TRANSFER_ID_EMPTY", "Queue ID or User ID can't be empty"))
}

fn chat_param(p: &Param) -> Option<u64> {
    p.get_ci("CHAT_ID").and_then(Param::int).filter(|n| *n > 0).map(i64::unsigned_abs)
}

fn bot_transfer(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let chat = chat_param(p).ok_or_else(chat_id_empty)?;
    let to = transfer_target(p)?;
    let mut portal = ctx.portal();
    bot_of_client(&portal, p)?;
    portal.transfer(chat, to)?;
    Ok(Output::of(true))
}

fn bot_finish(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let chat = pos_int(p, "CHAT_ID").ok_or_else(chat_id_empty)?;
    let mut portal = ctx.portal();
    let bot = bot_of_client(&portal, p)?;
    if portal.open_session(chat).is_some() {
        portal.answer(chat, bot)?;
        portal.finish_session(chat)?;
    }
    Ok(Output::of(true))
}

fn bot_message_send(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let chat = pos_int(p, "CHAT_ID").ok_or_else(chat_id_empty)?;
    let mut portal = ctx.portal();
    let Some(line) = portal.chats.get(&chat).and_then(|c| c.lines.as_ref()).and_then(|l| portal.lines.get(&l.line_id)) else {
        return Ok(Output::of(true));
    };
    let message = match text(p, "NAME").as_deref() {
        Some("WELCOME") => line.welcome_message.clone(),
        _ => text(p, "MESSAGE").unwrap_or_default(),
    };
    if !message.is_empty() {
        // SRC sendAutoMessage: an automatic line message (author 0, system, but IMPORTANT_CONNECTOR so the
        // client receives it). UNCONFIRMED detail.
        portal.post(Post { chat_id: chat, author_id: 0, text: message, system: true, important_connector: true, ..Post::default() });
    }
    Ok(Output::of(true))
}

fn intercept(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let chat = chat_param(p).ok_or_else(chat_id_empty)?;
    let mut portal = ctx.portal();
    if !portal.can_access(chat, ctx.user()) {
        return Err(ApiError::bad("OPERATOR_WRONG", "You can not redirect to this operator"));
    }
    portal.answer(chat, ctx.user()).map_err(|_| ApiError::bad("OPERATOR_WRONG", "You can not redirect to this operator"))?;
    Ok(Output::of(true))
}

/// SRC `ImOpenLines\Operator::__construct` checks: `CHAT_ID`, `CHAT_TYPE`, `ACCESS_DENIED`.
fn operator_chat(portal: &Portal, p: &Param, user: u64) -> Result<u64, ApiError> {
    let chat = pos_int(p, "CHAT_ID").ok_or_else(|| ApiError::bad("CHAT_ID", "Chat ID can't be empty"))?;
    let c = portal.chats.get(&chat).ok_or_else(|| ApiError::bad("CHAT_ID", "Chat ID can't be empty"))?;
    if c.lines.is_none() {
        return Err(ApiError::bad("CHAT_TYPE", "Chat isn't operator"));
    }
    if !portal.can_access(chat, user) {
        return Err(ApiError::bad("ACCESS_DENIED", "You don't have access to this chat"));
    }
    Ok(chat)
}

fn op_answer(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let mut portal = ctx.portal();
    let chat = operator_chat(&portal, p, ctx.user())?;
    portal.answer(chat, ctx.user())?;
    Ok(Output::of(true))
}

fn op_finish(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let mut portal = ctx.portal();
    let chat = operator_chat(&portal, p, ctx.user())?;
    match portal.open_session(chat).map(|s| s.operator_id) {
        None => Ok(Output::of(true)),
        Some(op) if op == ctx.user() => {
            portal.finish_session(chat)?;
            Ok(Output::of(true))
        }
        Some(_) => Err(ApiError::bad("ACCESS_DENIED", "You don't have access to this chat")),
    }
}

fn op_another_finish(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let mut portal = ctx.portal();
    let chat = operator_chat(&portal, p, ctx.user())?;
    if portal.open_session(chat).is_some() {
        portal.finish_session(chat)?;
    }
    Ok(Output::of(true))
}

fn op_skip(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let mut portal = ctx.portal();
    let chat = operator_chat(&portal, p, ctx.user())?;
    portal.skip(chat, ctx.user())?;
    Ok(Output::of(true))
}

fn op_transfer(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let chat = chat_param(p).ok_or_else(chat_id_empty)?;
    let to = transfer_target(p)?;
    let mut portal = ctx.portal();
    // SRC Operator::transfer: no access, or a transfer to the caller itself, fails (OPERATOR_WRONG).
    if !portal.can_access(chat, ctx.user()) || matches!(to, TransferTo::User(u) if u == ctx.user()) {
        return Err(ApiError::bad("OPERATOR_WRONG", "You can not redirect to this operator"));
    }
    portal.transfer(chat, to)?;
    Ok(Output::of(true))
}

fn crm_lead_create(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let mut portal = ctx.portal();
    let chat = operator_chat(&portal, p, ctx.user())?;
    if portal.open_session(chat).map(|s| s.operator_id) != Some(ctx.user()) {
        return Err(ApiError::bad("ERROR_USER_NOT_OPERATOR", "You are not an operator of this dialog"));
    }
    let Some(info) = portal.chats.get(&chat).and_then(|c| c.lines.clone()) else { return Ok(Output::of(true)) };
    if info.crm.lead == 0 {
        let lead = portal.create_chat_lead(chat, &info);
        if let Some(l) = portal.chats.get_mut(&chat).and_then(|c| c.lines.as_mut()) {
            l.crm.lead = lead;
        }
    }
    Ok(Output::of(true))
}

/// Lines chats bound to a CRM entity (`imopenlines.crm.chat.get`).
pub(crate) fn chats_of_entity(portal: &Portal, et: EntityType, id: u64, active_only: bool) -> Vec<Value> {
    portal
        .chats
        .values()
        .filter_map(|c| c.lines.as_ref().map(|l| (c, l)))
        .filter(|(_, l)| match et {
            EntityType::Lead => l.crm.lead == id,
            EntityType::Deal => l.crm.deal == id,
            EntityType::Contact => l.crm.contact == id,
            EntityType::Company => l.crm.company == id,
        })
        .filter(|(c, _)| !active_only || portal.open_session(c.id).is_some())
        .map(|(c, l)| json!({"CHAT_ID": c.id.to_string(), "CONNECTOR_ID": l.connector_id, "CONNECTOR_TITLE": connector_title(&l.connector_id)}))
        .collect()
}

fn connector_title(id: &str) -> String {
    match id {
        "whatsappbyedna" => "Edna.com WhatsApp".to_owned(),
        "whatsappbytwilio" => "WhatsApp".to_owned(),
        "livechat" => "Live Chat".to_owned(),
        "telegrambot" => "Telegram".to_owned(),
        other => other.to_owned(),
    }
}

/// `true`/`Y` flags from `OPTIONS`.
pub(crate) fn option_yes(p: &Param, key: &str) -> bool {
    p.get_ci(key).is_some_and(|v| v.is_yes() || v.text().is_some_and(|t| t == "1"))
}
