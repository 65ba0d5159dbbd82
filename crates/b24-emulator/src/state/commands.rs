//! A customer pressing a keyboard button with a `COMMAND` (contract §4.7): `ONIMCOMMANDADD` with
//! `COMMAND_CONTEXT=KEYBOARD` to the command's `EVENT_COMMAND_ADD` URL, or for a Chatbots 2.0 bot
//! `ONIMBOTV2COMMANDADD` with `command.context = keyboard`. The customer presses a button they see: one
//! with that `COMMAND` and `COMMAND_PARAMS` on the bot's latest message carrying it. Whether keyboards
//! reach WhatsApp at all is UNCONFIRMED (the evidence says no: contract §4.7, open question 6), so by
//! default a WhatsApp chat's customer sees no buttons and cannot press any
//! (`EmulatorConfig::keyboards_reach_whatsapp`).

use super::Portal;
use crate::events;
use crate::rest::errors::ApiError;
use serde_json::Value;

fn has_button(keyboard: &Value, command: &str, params: &str) -> bool {
    let list = keyboard.get("BUTTONS").unwrap_or(keyboard);
    let text = |b: &Value, k: &str| b.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).unwrap_or_default();
    list.as_array().is_some_and(|a| a.iter().any(|b| text(b, "COMMAND") == command && text(b, "COMMAND_PARAMS").trim() == params.trim()))
}

/// Whether a connector id is a WhatsApp one: `whatsapp…`, `…whatsapp…`, or one with a `wa` part
/// (`olchat_wa_connector_2`).
pub(crate) fn is_whatsapp(connector_id: &str) -> bool {
    let c = connector_id.to_ascii_lowercase();
    c.contains("whatsapp") || c.split(|ch: char| !ch.is_ascii_alphanumeric()).any(|part| part == "wa")
}

impl Portal {
    /// Whether the customer of a chat on `connector_id` sees keyboard buttons.
    pub(crate) fn shows_keyboards(&self, connector_id: &str) -> bool {
        self.ident.keyboards_reach_whatsapp || !is_whatsapp(connector_id)
    }

    pub fn customer_presses(&mut self, chat_id: u64, bot_id: u64, command: &str, params: &str) -> Result<(), ApiError> {
        let chat = self.chats.get(&chat_id).ok_or_else(|| ApiError::new(404, "CHAT_NOT_FOUND", "Chat not found"))?;
        let lines = chat.lines.as_ref().ok_or_else(|| ApiError::bad("CHAT_TYPE", "Not an Open Lines chat"))?;
        if !self.shows_keyboards(&lines.connector_id) {
            return Err(ApiError::bad("KEYBOARD_NOT_SHOWN", "The customer's messenger shows no keyboard buttons (WhatsApp connector)"));
        }
        let customer = lines.customer_id;
        let cmd = self
            .commands
            .values()
            .find(|c| c.bot_id == bot_id && c.command == command)
            .cloned()
            .ok_or_else(|| ApiError::new(404, "COMMAND_NOT_FOUND", "The bot has no such command"))?;
        if !chat.is_member(bot_id) && !cmd.common {
            return Err(ApiError::bad("BOT_NOT_IN_CHAT", "The bot is not a member of this chat"));
        }
        if self.ident.enforce_extranet_support && !cmd.extranet_support {
            return Err(ApiError::forbidden("EXTRANET_NOT_SUPPORTED", "Command is not available to extranet users"));
        }
        let msg = chat
            .message_ids
            .iter()
            .rev()
            .filter_map(|id| self.messages.get(id))
            .filter(|m| m.author_id == bot_id)
            .find(|m| m.keyboard.as_ref().is_some_and(|k| has_button(k, command, params)))
            .cloned()
            .ok_or_else(|| ApiError::bad("BUTTON_NOT_FOUND", "No message of the bot in this chat shows that button"))?;
        let user = self.user(customer).cloned().ok_or_else(ApiError::internal)?;
        if self.bots.get(&bot_id).is_some_and(|b| b.v2.is_some()) {
            // ONIMBOTV2COMMANDADD: the pressed button as a message "/command params" by the customer.
            let pressed = super::model::Message { author_id: user.id, text: format!("/{} {}", cmd.command, params).trim_end().to_owned(), ..msg };
            let params = params.to_owned();
            self.emit_v2(bot_id, "ONIMBOTV2COMMANDADD", |p, fetch| events::v2::command_data(p, bot_id, &cmd, &params, &pressed, fetch));
        } else if let Some(ev) = events::v1::command_add(self, cmd.id, params, &msg, &user) {
            self.events.push(ev);
        }
        Ok(())
    }
}
