//! The [`Portal`] port over the REST client, one adapter per mode:
//!
//! - [`BotPortal`]: a v1 Open Lines bot registered through the webhook (`imbot.*` with `BOT_ID` and
//!   `CLIENT_ID`). The bridge's main mode.
//! - [`OperatorPortal`]: the webhook's own user acting as an operator (operator mode): it posts
//!   with `im.message.add` and hands chats on with `imopenlines.operator.transfer`, or tells the
//!   human who already holds a chat with a `SYSTEM=Y` message.
//!
//! Both read messages back with `im.dialog.messages.get`, which Bitrix24 allows only to members of
//! the chat: in bot mode the webhook's user must be able to read the Open Lines chat (an
//! administrator or a line operator), or `messages_after` fails with `ACCESS_ERROR`.

use async_trait::async_trait;

use super::client::B24Client;
use super::error::{B24Error, ErrorKind, codes};
use super::im::{MessagesQuery, OutgoingMessage};
use super::imopenlines::{DialogLookup, TransferTarget};
use crate::domain::ids::{BotId, ChatId, DialogId, MessageId, UserId};
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

    async fn post_with_keyboard(&self, dialog: DialogId, text: &str, keyboard: &serde_json::Value) -> Result<MessageId, PortalError> {
        let m = OutgoingMessage { keyboard: Some(keyboard.clone()), ..OutgoingMessage::new(dialog, text) };
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

/// The portal as the webhook's own user, serving chats as an operator, sees it (operator mode).
///
/// Who holds the Open Lines session decides what a handoff does (`imopenlines.dialog.get` names the
/// holder as `owner`):
/// - the service user itself, or nobody (the chat waits in the queue): the chat is transferred with
///   `imopenlines.operator.transfer` to the configured target, else to the chat's own line's queue.
///   Never to the service user itself: Bitrix24 refuses that (`OPERATOR_WRONG`), and a queue
///   transfer skips the transferring operator.
/// - a human: the chat stays with them ([`Transfer::AlreadyHuman`]) and they are told, with a
///   `SYSTEM=Y` message in the chat, which operators see and the customer's messenger never
///   receives (contract §6.1, §11 item 7), that the customer asked for a human and the assistant is
///   silent from now on.
#[derive(Debug, Clone)]
pub struct OperatorPortal {
    client: B24Client,
    target: Option<TransferTarget>,
    holder_notice: String,
}

impl OperatorPortal {
    /// What the human holding a chat is told when the customer asks for a human.
    pub const HOLDER_NOTICE: &'static str =
        "[olbridge] The customer asked for a human operator. The AI assistant stays silent in this conversation until the session ends.";

    /// An operator portal; `target` forces where handed-over chats go (an operator, or a line's
    /// queue) instead of the chat's own line's queue.
    pub fn new(client: B24Client, target: Option<TransferTarget>) -> Self {
        Self { client, target, holder_notice: Self::HOLDER_NOTICE.to_owned() }
    }

    /// Replaces what the human holding a chat is told on a handoff.
    pub fn with_holder_notice(mut self, text: impl Into<String>) -> Self {
        self.holder_notice = text.into();
        self
    }

    /// The service user our replies are posted as.
    pub fn service_user(&self) -> UserId {
        self.client.webhook().user_id()
    }

    /// The underlying client.
    pub fn client(&self) -> &B24Client {
        &self.client
    }

    /// Tells the human holding `chat`, in a message only operators see. A failure is logged, not
    /// returned: the silence is what matters, and retrying the handoff could post the note twice.
    async fn tell_holder(&self, chat: ChatId, holder: u64) {
        let note = OutgoingMessage { system: true, ..OutgoingMessage::new(DialogId::Chat(chat), self.holder_notice.clone()) };
        match self.client.im_message_add(&note).await {
            Ok(_) => tracing::info!(chat = %chat, holder, "a human holds the chat: told them (SYSTEM message) and the assistant goes silent"),
            Err(e) => {
                tracing::warn!(chat = %chat, holder, code = %e.code, "could not tell the chat's holder about the handoff; the assistant goes silent anyway")
            }
        }
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
        let me = self.service_user();
        if dialog.owner != 0 && dialog.owner != me.get() {
            self.tell_holder(chat, dialog.owner).await;
            return Ok(Transfer::AlreadyHuman);
        }
        let target = match self.target {
            Some(TransferTarget::User(u)) if u == me => None,
            other => other,
        };
        let target = target
            .or_else(|| dialog.line_id().map(TransferTarget::Queue))
            .ok_or_else(|| B24Error::local(METHOD, ErrorKind::Permanent, codes::UNEXPECTED_RESULT, "the chat's line is unknown"))?;
        self.client.imopenlines_operator_transfer(chat, target).await?;
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

/// What the worker posts as, for the configured mode: the bot (v1 or Chatbots 2.0, by
/// `OLBRIDGE_BOT_API`) in push and fetch mode, the webhook's user in operator mode (handing chats
/// over to `B24_TRANSFER_TO` when set). The local runner and the worker Lambda both build their
/// portal here, so the two runtimes cannot answer a mode differently. The error names the missing
/// variable.
pub fn for_mode(config: &crate::config::Config, client: B24Client) -> Result<std::sync::Arc<dyn Portal>, String> {
    use crate::config::vars::{B24_BOT_CLIENT_ID, B24_BOT_ID};
    use crate::config::{BotApi, Mode, TransferTo};
    Ok(match config.mode() {
        Mode::Push | Mode::Fetch => {
            let bot_id = config.portal.bot_id.ok_or_else(|| format!("{B24_BOT_ID} is not set"))?;
            let client_id = config.portal.bot_client_id.clone().ok_or_else(|| format!("{B24_BOT_CLIENT_ID} is not set"))?;
            match config.chatbot.api {
                BotApi::V1 => std::sync::Arc::new(BotPortal::new(client, bot_id, client_id)),
                BotApi::V2 => std::sync::Arc::new(super::BotV2Portal::new(client, bot_id, client_id)),
            }
        }
        Mode::Operator => {
            let target = config.sources.transfer_to.map(|t| match t {
                TransferTo::User(u) => TransferTarget::User(u),
                TransferTo::Queue(l) => TransferTarget::Queue(l),
            });
            std::sync::Arc::new(OperatorPortal::new(client, target))
        }
    })
}
