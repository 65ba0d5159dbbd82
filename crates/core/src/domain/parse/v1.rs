//! Chatbot API v1 events (`ONIMBOT*`, `ONIMCOMMANDADD`): UPPER_CASE `data[PARAMS]` (the message
//! and its chat), `data[USER]` (the author), `data[BOT][<id>]` or `data[COMMAND][<id>]` (whom the
//! event is for).

use chrono::{DateTime, Utc};

use super::node::{self, Node};
use super::{Ctx, Kind, Names, ParseError, RawMessage, command_word};
use crate::domain::event::PortalEvent;
use crate::domain::form::FormValue;
use crate::domain::ids::{BotId, DialogId, MessageId};
use crate::domain::message::{PortalRef, Source};

const NAMES: Names =
    Names { message_id: "data[PARAMS][MESSAGE_ID]", chat: "data[PARAMS][CHAT_ID]", dialog: "data[PARAMS][DIALOG_ID]", author: "data[PARAMS][AUTHOR_ID]" };

pub(super) fn decode(kind: Kind, data: &FormValue, portal: PortalRef, sent_at: DateTime<Utc>) -> Result<Option<PortalEvent>, ParseError> {
    let ctx = Ctx { portal, source: Source::BotPushV1, sent_at: Some(sent_at), bot_id: addressed_bot(data, "BOT") };
    match kind {
        Kind::Message => {
            if data.get("PARAMS").is_none() {
                return Err(ParseError::Missing("data[PARAMS]"));
            }
            raw_message(data).into_message(&NAMES, &ctx).map(|m| Some(PortalEvent::Message(m)))
        }
        Kind::Join => {
            let bot_id = match node::text(data, &["PARAMS", "BOT_ID"]) {
                Some(raw) => BotId::parse(&raw).map_err(|e| ParseError::invalid("data[PARAMS][BOT_ID]", e))?,
                None => ctx.bot_id.ok_or(ParseError::Missing("data[PARAMS][BOT_ID]"))?,
            };
            let raw = raw_message(data);
            if raw.chat_id.is_none() && matches!(raw.dialog_id.as_deref().map(DialogId::parse), Some(Ok(DialogId::User(_)))) {
                return Ok(None); // joined a private dialog: not a chat the bridge serves
            }
            let (chat_id, dialog_id) = raw.chat_and_dialog(&NAMES)?;
            Ok(Some(PortalEvent::BotJoined { portal: ctx.portal, bot_id, chat_id, dialog_id, lines: raw.lines_context(), sent_at }))
        }
        Kind::Command => command(data, ctx, sent_at).map(Some),
        Kind::Delete => {
            let raw = node::text(data, &["BOT_ID"]).ok_or(ParseError::Missing("data[BOT_ID]"))?;
            let bot_id = BotId::parse(&raw).map_err(|e| ParseError::invalid("data[BOT_ID]", e))?;
            Ok(Some(PortalEvent::BotDeleted { portal: ctx.portal, bot_id, sent_at }))
        }
    }
}

fn command(data: &FormValue, ctx: Ctx, sent_at: DateTime<Utc>) -> Result<PortalEvent, ParseError> {
    let commands = data.get("COMMAND").ok_or(ParseError::Missing("data[COMMAND]"))?;
    let key = commands.keys().into_iter().next().ok_or(ParseError::Missing("data[COMMAND][<id>]"))?;
    let cmd = commands.get(key).ok_or(ParseError::Missing("data[COMMAND][<id>]"))?;
    let raw_bot = node::text(cmd, &["BOT_ID"]).ok_or(ParseError::Missing("data[COMMAND][<id>][BOT_ID]"))?;
    let bot_id = BotId::parse(&raw_bot).map_err(|e| ParseError::invalid("data[COMMAND][<id>][BOT_ID]", e))?;
    let command = node::text(cmd, &["COMMAND"]).ok_or(ParseError::Missing("data[COMMAND][<id>][COMMAND]"))?;
    let raw_message_id = node::text(cmd, &["MESSAGE_ID"])
        .or_else(|| node::text(data, &["PARAMS", "MESSAGE_ID"]))
        .ok_or(ParseError::Missing("data[COMMAND][<id>][MESSAGE_ID]"))?;
    let message_id = MessageId::parse(&raw_message_id).map_err(|e| ParseError::invalid("data[COMMAND][<id>][MESSAGE_ID]", e))?;
    let raw = raw_message(data);
    let (chat_id, dialog_id) = raw.chat_and_dialog(&NAMES)?;
    let author = raw.author(&NAMES, Some(bot_id))?;
    Ok(PortalEvent::Command {
        portal: ctx.portal,
        bot_id,
        chat_id,
        dialog_id,
        command: command_word(&command),
        params: node::verbatim(cmd, &["COMMAND_PARAMS"]).trim().to_owned(),
        message_id,
        author,
        lines: raw.lines_context(),
        sent_at,
    })
}

/// The bot an event is for: the first entry of `data[BOT]` whose `BOT_ID` (or key) is an id.
/// Bitrix24 calls the handler once per bot, so there is normally exactly one.
fn addressed_bot(data: &FormValue, section: &str) -> Option<BotId> {
    let bots = data.get(section)?;
    bots.keys().into_iter().find_map(|key| {
        let raw = node::text(bots, &[key, "BOT_ID"]);
        BotId::parse(raw.as_deref().unwrap_or(key)).ok()
    })
}

fn raw_message(data: &FormValue) -> RawMessage<'_> {
    let p = |k: &str| node::text(data, &["PARAMS", k]);
    let lines = match p("CHAT_ENTITY_TYPE") {
        Some(t) => t.eq_ignore_ascii_case("LINES"),
        None => p("CHAT_TYPE").or_else(|| p("MESSAGE_TYPE")).is_some_and(|t| t == "L"),
    };
    let name = node::text(data, &["USER", "NAME"]).map(|n| n.into_owned()).unwrap_or_else(|| {
        let first = node::verbatim(data, &["USER", "FIRST_NAME"]);
        let last = node::verbatim(data, &["USER", "LAST_NAME"]);
        format!("{} {}", first.trim(), last.trim()).trim().to_owned()
    });
    RawMessage {
        message_id: p("MESSAGE_ID"),
        chat_id: p("CHAT_ID").or_else(|| p("TO_CHAT_ID")),
        dialog_id: p("DIALOG_ID"),
        author_id: p("AUTHOR_ID").or_else(|| p("FROM_USER_ID")).or_else(|| node::text(data, &["USER", "ID"])),
        author_name: name,
        author_connector: node::flag_if_present(data, &["USER", "IS_CONNECTOR"]),
        author_bot: node::flag(data, &["USER", "IS_BOT"]),
        system: node::flag(data, &["PARAMS", "SYSTEM"]),
        text: node::verbatim(data, &["PARAMS", "MESSAGE"]),
        lines,
        entity_id: p("CHAT_ENTITY_ID"),
        entity_data_1: p("CHAT_ENTITY_DATA_1"),
        entity_data_2: p("CHAT_ENTITY_DATA_2"),
        language: p("LANGUAGE"),
    }
}
