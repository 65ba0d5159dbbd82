//! Chatbots 2.0 (`imbot.v2.*`, contract §4.8, §3.7): camelCase parameters, `botToken` authenticates the bot on
//! webhook calls, events either POSTed (`eventMode: webhook`) or queued for `imbot.v2.Event.get` (`fetch`, the
//! default). `offset=N` acknowledges (drops) every queued event with `eventId < N`. Registration is idempotent
//! per application (`botToken`) and code; `Command.register` per bot and command.

use super::imbot::{normalize_keyboard, remove_bot, valid_handler};
use crate::rest::dispatch::{Ctx, Keys, MethodDef, Output};
use crate::rest::errors::ApiError;
use crate::rest::params::Param;
use crate::state::Portal;
use crate::state::messages::Post;
use crate::state::model::{Bot, Command, EventMode, V2Bot};
use crate::state::seed::BotUser;
use crate::state::views;
use serde_json::{Value, json};

pub(crate) static METHODS: &[MethodDef] = &[
    MethodDef { name: "imbot.v2.Bot.register", scope: Some("imbot"), keys: Keys::AsIs, handler: register },
    MethodDef { name: "imbot.v2.Bot.unregister", scope: Some("imbot"), keys: Keys::AsIs, handler: unregister },
    MethodDef { name: "imbot.v2.Chat.Message.send", scope: Some("imbot"), keys: Keys::AsIs, handler: message_send },
    MethodDef { name: "imbot.v2.Chat.InputAction.notify", scope: Some("imbot"), keys: Keys::AsIs, handler: input_action },
    MethodDef { name: "imbot.v2.Event.get", scope: Some("imbot"), keys: Keys::AsIs, handler: event_get },
    MethodDef { name: "imbot.v2.Command.register", scope: Some("imbot"), keys: Keys::AsIs, handler: command_register },
];

const MAX_TEXT: usize = 20_000;

/// v2 booleans: `true`/`false`, and `"Y"`/`"N"` (also `"1"`/`"0"` as form bodies send them).
fn flag(p: Option<&Param>) -> Option<bool> {
    match p? {
        Param::Bool(b) => Some(*b),
        Param::Num(n) => Some(n.as_f64() != Some(0.0)),
        other => {
            let t = other.text()?;
            match t.to_ascii_lowercase().as_str() {
                "y" | "true" | "1" => Some(true),
                "n" | "false" | "0" | "" => Some(false),
                _ => None,
            }
        }
    }
}

fn s(p: Option<&Param>) -> Option<String> {
    p.and_then(Param::text).map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

/// `botId` + `botToken` → the bot, with the documented errors.
fn authorize(portal: &Portal, p: &Param) -> Result<u64, ApiError> {
    let token = s(p.get("botToken")).ok_or_else(|| ApiError::bad("BOT_TOKEN_NOT_SPECIFIED", "Bot token is not specified"))?;
    let id = p.get("botId").and_then(Param::int).filter(|n| *n > 0).ok_or_else(|| ApiError::bad("BOT_ID_REQUIRED", "Bot ID is required"))?.unsigned_abs();
    let bot = portal.bots.get(&id).filter(|b| b.v2.is_some()).ok_or_else(|| ApiError::bad("BOT_NOT_FOUND", "Bot not found"))?;
    if bot.v2.as_ref().is_none_or(|v| v.bot_token != token) {
        return Err(ApiError::forbidden("BOT_OWNERSHIP_ERROR", "Bot belongs to another application"));
    }
    Ok(id)
}

fn register(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let fields = p.get("fields").cloned().unwrap_or_else(Param::empty);
    let token = s(p.get("botToken")).or_else(|| s(fields.get("botToken")));
    let token = token.ok_or_else(|| ApiError::bad("BOT_TOKEN_NOT_SPECIFIED", "Bot token is not specified"))?;
    if token.chars().count() > 40 {
        return Err(ApiError::bad("BOT_TOKEN_INVALID_LENGTH", "Bot token must not be longer than 40 characters"));
    }
    let code = s(fields.get("code")).ok_or_else(|| ApiError::bad("BOT_CODE_REQUIRED", "Bot code is required"))?;
    let props = fields.get("properties");
    let prop = |k: &str| s(props.and_then(|x| x.get(k)));
    let name = prop("name").ok_or_else(|| ApiError::bad("BOT_PROPERTIES_REQUIRED", "Bot properties are required"))?;
    let bot_type = s(fields.get("type")).unwrap_or_else(|| "bot".to_owned());
    let letter = match bot_type.as_str() {
        "bot" => "B",
        "supervisor" => "S",
        "personal" => "H",
        "openline" => "O",
        "network" => "N",
        _ => return Err(ApiError::bad("BOT_INVALID_TYPE", "Invalid bot type")),
    };
    let event_mode = match s(fields.get("eventMode")).as_deref() {
        None | Some("fetch") => EventMode::Fetch,
        Some("webhook") => EventMode::Webhook,
        Some(_) => return Err(ApiError::bad("BOT_INVALID_EVENT_MODE", "Invalid event mode")),
    };
    let webhook_url = s(fields.get("webhookUrl")).unwrap_or_default();
    if event_mode == EventMode::Webhook {
        if webhook_url.is_empty() {
            return Err(ApiError::bad("BOT_WEBHOOK_URL_REQUIRED", "Webhook URL is required in webhook mode"));
        }
        if !valid_handler(&webhook_url) {
            return Err(ApiError::bad("BOT_INVALID_CALLBACK", "Invalid webhook URL"));
        }
    }
    let app_id = format!("v2:{token}");
    let mut portal = ctx.portal();
    // DOC bot-register.md: idempotent per application and code (the existing bot, unchanged); the same code
    // from another application (another botToken) is BOT_CODE_ALREADY_TAKEN.
    if let Some(existing) = portal.bots.values().find(|b| b.v2.is_some() && b.code == code).map(|b| (b.id, b.app_id.clone())) {
        if existing.1 != app_id {
            return Err(ApiError::bad("BOT_CODE_ALREADY_TAKEN", "Bot code is already taken"));
        }
        return Ok(Output::of(registered(&portal, existing.0)));
    }
    if portal.bots.values().filter(|b| b.app_id == app_id).count() >= 100 {
        return Err(ApiError::bad("BOT_LIMIT_EXCEEDED", "Bot limit exceeded"));
    }
    let id = portal.add_bot_user(BotUser {
        first_name: name,
        last_name: prop("lastName").unwrap_or_default(),
        work_position: prop("workPosition").unwrap_or_default(),
        gender: prop("gender").unwrap_or_default(),
        email: String::new(),
    });
    let application_token = portal.ident.v2_app_token.clone();
    portal.bots.insert(
        id,
        Bot {
            id,
            code,
            app_id,
            bot_type: letter.to_owned(),
            openline: bot_type == "openline",
            owner_id: ctx.user(),
            v2: Some(V2Bot {
                bot_token: token,
                event_mode,
                webhook_url,
                bot_type,
                is_hidden: flag(fields.get("isHidden")).unwrap_or(false),
                is_reactions_enabled: flag(fields.get("isReactionsEnabled")).unwrap_or(true),
                is_support_openline: flag(fields.get("isSupportOpenline")).unwrap_or(false),
                queue: Default::default(),
                application_token,
            }),
            count_message: 0,
            count_command: 0,
        },
    );
    Ok(Output::of(registered(&portal, id)))
}

/// `{bot, users}` of `imbot.v2.Bot.register`: the bot in the owner's extended format (with `appId`).
fn registered(portal: &Portal, id: u64) -> Value {
    let mut bot = portal.bots.get(&id).map(|b| views::bot_v2(portal, b)).unwrap_or(Value::Null);
    if let (Some(o), Some(b)) = (bot.as_object_mut(), portal.bots.get(&id)) {
        o.insert("appId".into(), json!(b.app_id));
    }
    let user = portal.user(id).map(|u| views::user_v2(portal, u)).unwrap_or(Value::Null);
    json!({"bot": bot, "users": [user]})
}

/// `imbot.v2.Command.register` (DOC `commands/command-register.md`): `fields{command, title, params, common,
/// hidden, extranetSupport}` (the old flat form, accepted until 2026-09-30, too); idempotent per bot and command.
fn command_register(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let mut portal = ctx.portal();
    let bot = authorize(&portal, p)?;
    let fields = p.get("fields").filter(|f| f.is_container()).unwrap_or(p);
    let command = match fields.get("command") {
        None => return Err(ApiError::bad("COMMAND_REQUIRED", "Command is required")),
        Some(c) if c.is_container() => return Err(ApiError::bad("COMMAND_NAME_INVALID", "Command name is invalid")),
        Some(c) => c.text().unwrap_or_default().trim().trim_start_matches('/').to_owned(),
    };
    if command.is_empty() {
        return Err(ApiError::bad("COMMAND_REQUIRED", "Command is required"));
    }
    let hidden = flag(fields.get("hidden")).unwrap_or(false);
    if !hidden && fields.get("title").is_none_or(Param::is_php_empty) {
        return Err(ApiError::bad("COMMAND_TITLE_REQUIRED", "Command title is required"));
    }
    let app_id = portal.bots.get(&bot).map(|b| b.app_id.clone()).unwrap_or_default();
    let id = match portal.commands.values().find(|c| c.bot_id == bot && c.command == command).map(|c| c.id) {
        Some(id) => id,
        None => {
            let id = portal.ids.command();
            let cmd = Command {
                id,
                bot_id: bot,
                app_id,
                command,
                common: flag(fields.get("common")).unwrap_or(false),
                hidden,
                extranet_support: flag(fields.get("extranetSupport")).unwrap_or(false),
            };
            portal.commands.insert(id, cmd);
            if let Some(b) = portal.bots.get_mut(&bot) {
                b.count_command += 1;
            }
            id
        }
    };
    let c = portal.commands.get(&id).cloned().ok_or_else(ApiError::internal)?;
    Ok(Output::of(json!({"command": {"id": c.id, "botId": c.bot_id, "command": format!("/{}", c.command), "common": c.common,
        "hidden": c.hidden, "extranetSupport": c.extranet_support}})))
}

fn unregister(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let mut portal = ctx.portal();
    let id = authorize(&portal, p)?;
    portal.emit_v2(id, "ONIMBOTV2DELETE", |pp, fetch| crate::events::v2::delete_data(pp, id, fetch));
    remove_bot(&mut portal, id);
    Ok(Output::of(true))
}

fn message_send(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let mut portal = ctx.portal();
    let bot = authorize(&portal, p)?;
    let dialog = s(p.get("dialogId")).ok_or_else(|| ApiError::bad("ACCESS_DENIED", "Dialog ID is required"))?;
    let fields = p.get("fields").cloned().unwrap_or_else(Param::empty);
    let mut text = fields.get("message").and_then(Param::text).unwrap_or_default().trim().to_owned();
    let attach = fields.get("attach").filter(|a| !a.is_php_empty()).map(Param::to_json);
    if text.is_empty() && attach.is_none() {
        return Err(ApiError::bad("EMPTY_MESSAGE", "Message is empty"));
    }
    if text.chars().count() > MAX_TEXT {
        text = text.chars().take(MAX_TEXT).collect::<String>() + " (...)";
    }
    let keyboard = match fields.get("keyboard").filter(|k| !k.is_php_empty()) {
        None => None,
        Some(k) => Some(normalize_keyboard(k.to_json()).ok_or_else(|| ApiError::bad("SENDING_FAILED", "Invalid keyboard"))?),
    };
    let denied = || ApiError::forbidden("ACCESS_DENIED", "Bot is not a member of this chat");
    let chat_id = match Portal::chat_from_dialog(&dialog) {
        Some(id) => id,
        None => {
            let user: u64 = dialog.parse().map_err(|_| denied())?;
            if portal.user(user).is_none() {
                return Err(denied());
            }
            portal.private_chat(bot, user)
        }
    };
    if !portal.chats.get(&chat_id).is_some_and(|c| c.is_member(bot)) {
        return Err(denied());
    }
    let post = Post { chat_id, author_id: bot, text, system: flag(fields.get("system")).unwrap_or(false), keyboard, attach, ..Post::default() };
    let id = portal.post(post);
    portal.notify_bots(id);
    Ok(Output::of(json!({"id": id, "uuidMap": []})))
}

fn input_action(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let mut portal = ctx.portal();
    let bot = authorize(&portal, p)?;
    let dialog = s(p.get("dialogId")).ok_or_else(|| ApiError::bad("ACCESS_DENIED", "Dialog ID is required"))?;
    if let Some(c) = Portal::chat_from_dialog(&dialog).and_then(|id| portal.chats.get_mut(&id)) {
        c.typing.push(bot);
    }
    Ok(Output::of(true))
}

/// `imbot.v2.Event.get`: the bot's queue, merged with the webhook user's `im.v2` log when `withUserEvents`
/// (which needs scope `im` and an `im.v2.Event.subscribe`); one `offset` acknowledges both.
fn event_get(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let (offset, limit) = super::im_v2::paging(p);
    let with_user = flag(p.get("withUserEvents")).unwrap_or(false);
    let mut portal = ctx.portal();
    let bot = authorize(&portal, p)?;
    if with_user && !ctx.auth.scopes.contains("im") {
        // The docs give the status only as "400, 403" for all errors; 403 for a missing scope (UNCONFIRMED).
        return Err(ApiError::forbidden("SCOPE_ERROR", "Scope error"));
    }
    if with_user && !portal.is_subscribed(ctx.user()) {
        return Err(ApiError::bad("USER_NOT_SUBSCRIBED", "User not subscribed"));
    }
    let tz = portal.ident.tz;
    let Some(v2) = portal.bots.get_mut(&bot).and_then(|b| b.v2.as_mut()) else {
        return Err(ApiError::bad("BOT_NOT_FOUND", "Bot not found"));
    };
    if v2.event_mode != EventMode::Fetch {
        // UNCONFIRMED: the docs only say the queue exists in fetch mode.
        return Err(ApiError::bad("BOT_INVALID_EVENT_MODE", "Events can be fetched only by bots in fetch mode"));
    }
    if let Some(o) = offset {
        v2.queue.retain(|e| e.id >= o);
    }
    let mut records: Vec<_> = v2.queue.iter().cloned().collect();
    if with_user {
        portal.ack_user_events(ctx.user(), offset);
        records.extend(portal.user_event_records(ctx.user()));
        records.sort_by_key(|e| e.id);
    }
    Ok(Output::of(super::im_v2::page(&records, offset, limit, tz)))
}
