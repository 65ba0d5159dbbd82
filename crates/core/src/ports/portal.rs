//! The portal as the worker needs it: post, type, hand over, read back. One adapter per mode in
//! [`crate::b24`] (a v1 bot, a v2 bot, the service user in operator mode).

use async_trait::async_trait;

use crate::domain::ids::{ChatId, DialogId, MessageId};

/// How a portal call failed, classified once by the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalErrorKind {
    /// The portal's rate limit (`QUERY_LIMIT_EXCEEDED`, `OPERATION_TIME_LIMIT`): retry later.
    RateLimited,
    /// A transient failure (5xx, a timeout, a dropped connection): retry with backoff.
    Retryable,
    /// Authentication or authorisation (`NO_AUTH_FOUND`, `insufficient_scope`, `expired_token`):
    /// retrying will not help until the configuration is fixed.
    Auth,
    /// The request itself was refused (`WRONG_REQUEST`, `ACCESS_DENIED`, ...).
    Permanent,
}

/// A failed portal call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{method} failed ({code}): {description}")]
pub struct PortalError {
    /// Classification.
    pub kind: PortalErrorKind,
    /// The REST method.
    pub method: String,
    /// Bitrix24's error code (may be empty: some CRM methods send none).
    pub code: String,
    /// Bitrix24's description, or the transport error.
    pub description: String,
}

impl PortalError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, PortalErrorKind::RateLimited | PortalErrorKind::Retryable)
    }
}

/// The result of asking the portal to hand a chat to a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// The chat went to the operator queue.
    Done,
    /// A human already had the chat (`WRONG_CHAT`): nothing to do, same end state.
    AlreadyHuman,
}

/// A message read back from the portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalMessage {
    /// Its id.
    pub id: MessageId,
    /// Its author (0 = system).
    pub author_id: u64,
    /// Its text.
    pub text: String,
}

/// What the worker does on the portal. Implemented over the REST client for each mode (a v1 bot,
/// a v2 bot, the service user in operator mode).
#[async_trait]
pub trait Portal: Send + Sync {
    /// Posts a reply in the dialog as the bot (or the service user); returns the message id.
    async fn post_reply(&self, dialog: DialogId, text: &str) -> Result<MessageId, PortalError>;

    /// Posts a reply with a `KEYBOARD` (`{"BUTTONS": [...]}`) whose buttons send the bot's commands.
    /// Only a v1 bot has registered commands; the other adapters post the text alone.
    async fn post_with_keyboard(&self, dialog: DialogId, text: &str, keyboard: &serde_json::Value) -> Result<MessageId, PortalError> {
        let _ = keyboard;
        self.post_reply(dialog, text).await
    }

    /// Shows "typing…" in the dialog. Optional work: the adapter may skip it when the rate budget
    /// is short, returning `Ok(false)`.
    async fn typing(&self, dialog: DialogId) -> Result<bool, PortalError>;

    /// Hands the chat to a human operator (`imopenlines.bot.session.operator`, or
    /// `imopenlines.operator.transfer` in operator mode).
    async fn transfer_to_operator(&self, chat: ChatId) -> Result<Transfer, PortalError>;

    /// Messages of the dialog newer than `after`, oldest first: used to check whether a reply whose
    /// post was interrupted did reach the portal before posting it again.
    async fn messages_after(&self, dialog: DialogId, after: MessageId) -> Result<Vec<PortalMessage>, PortalError>;

    /// The user id our replies are posted as (the bot's id, or the service user's).
    fn author_id(&self) -> u64;
}
