//! A customer pressing a keyboard button with a `COMMAND` (contract §4.7): `ONIMCOMMANDADD` with
//! `COMMAND_CONTEXT=KEYBOARD` to the command's `EVENT_COMMAND_ADD` URL, or for a Chatbots 2.0 bot
//! `ONIMBOTV2COMMANDADD` with `command.context = keyboard`. Whether keyboards reach WhatsApp at all is
//! UNCONFIRMED (the evidence says no); this models what Bitrix24 does when the button is pressed.

use super::Portal;
use crate::events;
use crate::rest::errors::ApiError;
use serde_json::Value;

fn has_button(keyboard: &Value, command: &str) -> bool {
    let list = keyboard.get("BUTTONS").unwrap_or(keyboard);
    list.as_array().is_some_and(|a| a.iter().any(|b| b.get("COMMAND").and_then(Value::as_str) == Some(command)))
}

impl Portal {
    pub fn customer_presses(&mut self, chat_id: u64, bot_id: u64, command: &str, params: &str) -> Result<(), ApiError> {
        let chat = self.chats.get(&chat_id).ok_or_else(|| ApiError::new(404, "CHAT_NOT_FOUND", "Chat not found"))?;
        let customer = chat.lines.as_ref().map(|l| l.customer_id).ok_or_else(|| ApiError::bad("CHAT_TYPE", "Not an Open Lines chat"))?;
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
        let by_bot = chat.message_ids.iter().rev().filter_map(|id| self.messages.get(id)).filter(|m| m.author_id == bot_id);
        let msg = by_bot
            .clone()
            .find(|m| m.keyboard.as_ref().is_some_and(|k| has_button(k, command)))
            .or_else(|| by_bot.clone().next())
            .cloned()
            .ok_or_else(|| ApiError::bad("MESSAGE_NOT_FOUND", "The bot has not written in this chat"))?;
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
