//! The [`Portal`] and [`EventFeed`] ports for a Chatbots 2.0 Open Lines bot registered through the
//! webhook (`imbot.v2.*` with `botId` + `botToken`).
//!
//! Chatbots 2.0 is Bitrix24's current bot API (v1 `imbot.*` is deprecated, contract §11 item 1).
//! The worker's needs map one to one onto it:
//!
//! | need | v2 call | failure the worker acts on |
//! |---|---|---|
//! | reply | `imbot.v2.Chat.Message.send` (`fields.message`) | `ACCESS_DENIED`: the bot is no longer in the chat → permanent → handoff |
//! | typing | `imbot.v2.Chat.InputAction.notify` (optional: skipped when the rate budget is short) | — |
//! | handoff | `imopenlines.bot.session.operator` with `CLIENT_ID = botToken` (§4.8, §5.3) | `WRONG_CHAT`: a human has it already → [`Transfer::AlreadyHuman`] |
//! | read back | `im.dialog.messages.get` as the webhook's user, as for v1 | — |
//! | fetch mode | `imbot.v2.Event.get` (offset-acknowledged queue, §3.7) | — |
//!
//! A wrong `botToken` (`BOT_OWNERSHIP_ERROR`), a missing one or a deleted bot (`BOT_NOT_FOUND`)
//! are authorisation failures ([`crate::b24::ErrorKind::Auth`]): the turn is retried until an
//! admin fixes `B24_BOT_CLIENT_ID`, instead of every chat being handed to a human.

use async_trait::async_trait;
use serde_json::json;

use super::client::B24Client;
use super::im::OutgoingMessage;
use super::portal::messages_after;
use crate::domain::ids::{BotId, ChatId, DialogId, MessageId};
use crate::domain::secret::Secret;
use crate::ports::{EventFeed, FeedEvent, FeedPage, Portal, PortalError, PortalMessage, Transfer};

/// The portal as a Chatbots 2.0 bot registered through the webhook sees it.
#[derive(Debug, Clone)]
pub struct BotV2Portal {
    client: B24Client,
    bot_id: BotId,
    bot_token: Secret,
}

impl BotV2Portal {
    /// A v2 bot portal: `bot_token` is the `botToken` the bot was registered with
    /// (`B24_BOT_CLIENT_ID`).
    pub fn new(client: B24Client, bot_id: BotId, bot_token: Secret) -> Self {
        Self { client, bot_id, bot_token }
    }

    /// The underlying client.
    pub fn client(&self) -> &B24Client {
        &self.client
    }

    /// The bot.
    pub fn bot_id(&self) -> BotId {
        self.bot_id
    }
}

#[async_trait]
impl Portal for BotV2Portal {
    async fn post_reply(&self, dialog: DialogId, text: &str) -> Result<MessageId, PortalError> {
        let m = OutgoingMessage::new(dialog, text);
        Ok(self.client.imbot_v2_chat_message_send(self.bot_id, &self.bot_token, &m).await?)
    }

    async fn typing(&self, dialog: DialogId) -> Result<bool, PortalError> {
        Ok(self.client.imbot_v2_chat_input_action_notify(self.bot_id, &self.bot_token, dialog).await?.unwrap_or(false))
    }

    async fn transfer_to_operator(&self, chat: ChatId) -> Result<Transfer, PortalError> {
        match self.client.imopenlines_bot_session_operator(chat, Some(&self.bot_token)).await {
            Ok(_) => Ok(Transfer::Done),
            // "Operator is not a bot": a human already has the chat, which is the state we wanted.
            Err(e) if e.code == "WRONG_CHAT" => Ok(Transfer::AlreadyHuman),
            Err(e) => Err(e.into()),
        }
    }

    async fn messages_after(&self, dialog: DialogId, after: MessageId) -> Result<Vec<PortalMessage>, PortalError> {
        Ok(messages_after(&self.client, dialog, after).await?)
    }

    fn author_id(&self) -> u64 {
        self.bot_id.get()
    }
}

#[async_trait]
impl EventFeed for BotV2Portal {
    async fn fetch(&self, offset: Option<u64>, limit: u32) -> Result<FeedPage, PortalError> {
        let page = self.client.imbot_v2_event_get(self.bot_id, &self.bot_token, offset, Some(limit)).await?;
        let events = page
            .events
            .into_iter()
            .map(|e| FeedEvent { id: e.event_id, raw: json!({"eventId": e.event_id, "type": e.kind, "date": e.date, "data": e.data}) })
            .collect();
        Ok(FeedPage { events, next_offset: page.next_offset, has_more: page.has_more })
    }
}
