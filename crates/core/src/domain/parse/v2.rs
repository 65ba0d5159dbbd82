//! Chatbots 2.0 events (`ONIMBOTV2*`): camelCase `data[bot]`, `data[message]`, `data[chat]`,
//! `data[user]`, `data[language]`, delivered form-encoded (webhook mode, every scalar a string) or
//! as JSON (fetch mode, real types). Written once over [`Node`], so both decode alike.

use super::node::{self, Node};
use super::{Ctx, Kind, Names, ParseError, RawMessage, TIME, command_word, rfc3339};
use crate::domain::event::PortalEvent;
use crate::domain::ids::{BotId, DialogId, MessageId};

const NAMES: Names = Names { message_id: "data[message][id]", chat: "data[chat][id]", dialog: "data[chat][dialogId]", author: "data[message][authorId]" };

pub(super) fn decode<N: Node>(kind: Kind, data: &N, mut ctx: Ctx) -> Result<Option<PortalEvent>, ParseError> {
    ctx.bot_id = match node::first(data, &[&["bot", "id"], &["botId"]]) {
        Some(raw) => Some(BotId::parse(&raw).map_err(|e| ParseError::invalid("data[bot][id]", e))?),
        None => None,
    };
    if ctx.sent_at.is_none() {
        ctx.sent_at = node::text(data, &["message", "date"]).map(|d| rfc3339(&d, "data[message][date]")).transpose()?;
    }
    let bot_required = || ctx.bot_id.ok_or(ParseError::Missing("data[bot][id]"));
    let sent_at = || ctx.sent_at.ok_or(ParseError::Missing(TIME));
    match kind {
        Kind::Message => raw_message(data).into_message(&NAMES, &ctx).map(|m| Some(PortalEvent::Message(m))),
        Kind::Join => {
            let bot_id = bot_required()?;
            let raw = raw_message(data);
            if raw.chat_id.is_none() && matches!(raw.dialog_id.as_deref().map(DialogId::parse), Some(Ok(DialogId::User(_)))) {
                return Ok(None); // joined a private dialog: not a chat the bridge serves
            }
            let (chat_id, dialog_id) = raw.chat_and_dialog(&NAMES)?;
            let lines = raw.lines_context();
            Ok(Some(PortalEvent::BotJoined { portal: ctx.portal.clone(), bot_id, chat_id, dialog_id, lines, sent_at: sent_at()? }))
        }
        Kind::Command => {
            let bot_id = bot_required()?;
            let command = node::text(data, &["command", "command"]).ok_or(ParseError::Missing("data[command][command]"))?;
            let raw = raw_message(data);
            let raw_id = raw.message_id.as_deref().ok_or(ParseError::Missing(NAMES.message_id))?;
            let message_id = MessageId::parse(raw_id).map_err(|e| ParseError::invalid(NAMES.message_id, e))?;
            let (chat_id, dialog_id) = raw.chat_and_dialog(&NAMES)?;
            Ok(Some(PortalEvent::Command {
                portal: ctx.portal.clone(),
                bot_id,
                chat_id,
                dialog_id,
                command: command_word(&command),
                params: node::verbatim(data, &["command", "params"]).trim().to_owned(),
                message_id,
                author: raw.author(&NAMES, Some(bot_id))?,
                lines: raw.lines_context(),
                sent_at: sent_at()?,
            }))
        }
        Kind::Delete => Ok(Some(PortalEvent::BotDeleted { portal: ctx.portal.clone(), bot_id: bot_required()?, sent_at: sent_at()? })),
    }
}

fn raw_message<N: Node>(data: &N) -> RawMessage<'_> {
    let chat = |k: &str| node::text(data, &["chat", k]);
    let lines = chat("entityType").is_some_and(|t| t.eq_ignore_ascii_case("LINES"))
        || chat("type").is_some_and(|t| t.eq_ignore_ascii_case("lines") || t.eq_ignore_ascii_case("openline"));
    let name = node::text(data, &["user", "name"]).map(|n| n.into_owned()).unwrap_or_else(|| {
        let first = node::verbatim(data, &["user", "firstName"]);
        let last = node::verbatim(data, &["user", "lastName"]);
        format!("{} {}", first.trim(), last.trim()).trim().to_owned()
    });
    RawMessage {
        message_id: node::text(data, &["message", "id"]),
        chat_id: node::first(data, &[&["chat", "id"], &["message", "chatId"]]),
        dialog_id: node::first(data, &[&["chat", "dialogId"], &["dialogId"]]),
        author_id: node::first(data, &[&["message", "authorId"], &["user", "id"]]),
        author_name: name,
        author_connector: node::flag_if_present(data, &["user", "connector"]),
        author_bot: node::flag(data, &["user", "bot"]),
        system: node::flag(data, &["message", "isSystem"]),
        text: node::verbatim(data, &["message", "text"]),
        lines,
        entity_id: chat("entityId"),
        entity_data_1: chat("entityData1"),
        entity_data_2: chat("entityData2"),
        language: node::text(data, &["language"]),
    }
}
