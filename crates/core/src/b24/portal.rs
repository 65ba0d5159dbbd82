//! The [`Portal`] port over the REST client, one adapter per mode:
//!
//! - [`BotPortal`]: a v1 Open Lines bot registered through the webhook (`imbot.*` with `BOT_ID` and
//!   `CLIENT_ID`). The bridge's main mode.
//! - [`OperatorPortal`]: the webhook's own user acting as an operator (polling mode): it posts with
//!   `im.message.add` and hands chats on with `imopenlines.operator.transfer`.
//!
//! Both read messages back with `im.dialog.messages.get`, which Bitrix24 allows only to members of
//! the chat: in bot mode the webhook's user must be able to read the Open Lines chat (an
//! administrator or a line operator), or `messages_after` fails with `ACCESS_ERROR`.

use async_trait::async_trait;

use super::client::B24Client;
use super::error::{B24Error, ErrorKind, codes};
use super::im::{MessagesQuery, OutgoingMessage};
use super::imopenlines::{DialogLookup, TransferTarget};
use crate::domain::ids::{BotId, ChatId, DialogId, LineId, MessageId, UserId};
use crate::domain::secret::Secret;
use crate::ports::{Portal, PortalError, PortalMessage, Transfer};

/// A page of `im.dialog.messages.get` holds at most this many messages.
const PAGE: u32 = 50;
/// `messages_after` stops after this many pages (5,000 messages): it checks recent replies, it is
/// not an export.
const MAX_PAGES: usize = 100;

/// The portal as a v1 bot registered through the webhook sees it.
#[derive(Debug, Clone)]
pub struct BotPortal {
    client: B24Client,
    bot_id: BotId,
    client_id: Secret,
}

impl BotPortal {
    /// A bot portal: `client_id` is the `CLIENT_ID` the bot was registered with.
    pub fn new(client: B24Client, bot_id: BotId, client_id: Secret) -> Self {
        Self { client, bot_id, client_id }
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
impl Portal for BotPortal {
    async fn post_reply(&self, dialog: DialogId, text: &str) -> Result<MessageId, PortalError> {
        let m = OutgoingMessage::new(dialog, text);
        Ok(self.client.imbot_message_add(self.bot_id, &m, &self.client_id).await?)
    }

    async fn typing(&self, dialog: DialogId) -> Result<bool, PortalError> {
        let sent = self.client.imbot_chat_send_typing(self.bot_id, dialog, &self.client_id).await?;
        Ok(sent.unwrap_or(false))
    }

    async fn transfer_to_operator(&self, chat: ChatId) -> Result<Transfer, PortalError> {
        match self.client.imopenlines_bot_session_operator(chat, Some(&self.client_id)).await {
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

/// The portal as the webhook's own user, serving chats as an operator, sees it.
///
/// `transfer_to_operator` sends the chat to a line's queue with `imopenlines.operator.transfer`
/// (the configured line, or the chat's own line read from `imopenlines.dialog.get`). What that
/// method answers when the service user no longer serves the chat is not documented, so no error is
/// mapped to [`Transfer::AlreadyHuman`] here: if the chat's owner is already someone else, the
/// adapter says so without calling the transfer.
#[derive(Debug, Clone)]
pub struct OperatorPortal {
    client: B24Client,
    queue: Option<LineId>,
}

impl OperatorPortal {
    /// An operator portal; `queue` forces the line whose queue gets transferred chats.
    pub fn new(client: B24Client, queue: Option<LineId>) -> Self {
        Self { client, queue }
    }

    /// The service user our replies are posted as.
    pub fn service_user(&self) -> UserId {
        self.client.webhook().user_id()
    }
}

#[async_trait]
impl Portal for OperatorPortal {
    async fn post_reply(&self, dialog: DialogId, text: &str) -> Result<MessageId, PortalError> {
        Ok(self.client.im_message_add(&OutgoingMessage::new(dialog, text)).await?)
    }

    async fn typing(&self, dialog: DialogId) -> Result<bool, PortalError> {
        Ok(self.client.im_dialog_writing(dialog).await?.unwrap_or(false))
    }

    async fn transfer_to_operator(&self, chat: ChatId) -> Result<Transfer, PortalError> {
        const METHOD: &str = "imopenlines.operator.transfer";
        let dialog = self.client.imopenlines_dialog_get(&DialogLookup::Chat(chat)).await?;
        if dialog.owner != 0 && dialog.owner != self.service_user().get() {
            return Ok(Transfer::AlreadyHuman);
        }
        let line = self
            .queue
            .or_else(|| dialog.line_id())
            .ok_or_else(|| B24Error::local(METHOD, ErrorKind::Permanent, codes::UNEXPECTED_RESULT, "the chat's line is unknown"))?;
        self.client.imopenlines_operator_transfer(chat, TransferTarget::Queue(line)).await?;
        Ok(Transfer::Done)
    }

    async fn messages_after(&self, dialog: DialogId, after: MessageId) -> Result<Vec<PortalMessage>, PortalError> {
        Ok(messages_after(&self.client, dialog, after).await?)
    }

    fn author_id(&self) -> u64 {
        self.service_user().get()
    }
}

/// Every message of `dialog` newer than `after`, oldest first, following `FIRST_ID` page by page.
pub async fn messages_after(client: &B24Client, dialog: DialogId, after: MessageId) -> Result<Vec<PortalMessage>, B24Error> {
    let mut out: Vec<PortalMessage> = Vec::new();
    let mut cursor = after;
    for _ in 0..MAX_PAGES {
        let q = MessagesQuery { first_id: Some(cursor), last_id: None, limit: Some(PAGE) };
        let page = client.im_dialog_messages_get(dialog, q).await?;
        let returned = page.messages.len();
        let mut fresh: Vec<PortalMessage> = page
            .messages
            .into_iter()
            .filter(|m| m.id > cursor.get())
            .filter_map(|m| Some(PortalMessage { id: MessageId::new(m.id).ok()?, author_id: m.author_id, text: m.text }))
            .collect();
        fresh.sort_by_key(|m| m.id);
        let Some(last) = fresh.last().map(|m| m.id) else { break };
        cursor = last;
        out.extend(fresh);
        if returned < PAGE as usize {
            break;
        }
    }
    out.sort_by_key(|m| m.id);
    out.dedup_by_key(|m| m.id);
    Ok(out)
}
