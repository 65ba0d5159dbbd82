//! The CRM as the worker needs it: which entity a chat is bound to, creating a lead for an unbound
//! chat, and writing a comment on an entity's timeline; and the durable outbox the timeline
//! comments wait in, so a CRM failure never holds up a customer's reply.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PortalError, StoreResult};
use crate::domain::ids::{ChatId, SessionId};
use crate::domain::message::CrmBinding;

/// What `imopenlines.dialog.get` says about a chat's session and its CRM binding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialogCrm {
    /// The current session (field 6 of `entity_data_1`).
    pub session_id: Option<SessionId>,
    /// The bound entity, if any (`entity_data_1` fields 2–3, else the first of `entity_data_2`).
    pub binding: Option<CrmBinding>,
}

/// CRM calls on the portal. Implemented over the REST client
/// ([`crate::b24::crm::RestCrm`]); every call is an ordinary REST call, so the client's rate
/// budget and (where it coalesces concurrent writes) its `batch` apply.
#[async_trait]
pub trait CrmPortal: Send + Sync {
    /// The chat's session and bound entity (`imopenlines.dialog.get`).
    async fn binding(&self, chat: ChatId) -> Result<DialogCrm, PortalError>;

    /// Asks the portal to create a lead for the chat (`imopenlines.crm.lead.create`; Bitrix24
    /// allows it only to the session's current operator).
    async fn create_lead(&self, chat: ChatId) -> Result<(), PortalError>;

    /// Writes a comment on the entity's timeline (`crm.timeline.comment.add`), at background
    /// priority: replies go first. Returns the comment id.
    async fn timeline_comment(&self, entity: &CrmBinding, text: &str) -> Result<u64, PortalError>;
}

/// One line for an entity's timeline, as a finished turn leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineLine {
    /// The comment it belongs to: every line with the same key is written as one comment (a
    /// turn's own key in `turn` mode; chat, session and entity in `session` mode).
    pub comment_key: String,
    /// The turn that wrote it (a resumed turn appending again is ignored).
    pub turn_key: String,
    /// Where it goes.
    pub entity: CrmBinding,
    /// The text.
    pub text: String,
    /// When the turn finished.
    pub at: DateTime<Utc>,
}

/// A comment ready to be written: its lines in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingComment {
    /// Its key.
    pub comment_key: String,
    /// Where it goes.
    pub entity: CrmBinding,
    /// The lines' store ids and texts, oldest first.
    pub lines: Vec<(i64, String)>,
    /// Failed writes so far.
    pub attempts: u32,
}

/// The durable outbox of timeline comments (SQLite in the local runner; memory in tests).
#[async_trait]
pub trait TimelineOutbox: Send + Sync {
    /// Appends a line to its comment, once per (comment, turn). The comment becomes due at
    /// `due_at`, unless it is waiting out a failure's backoff or is already due at the line's
    /// time, which keep their own.
    async fn append(&self, line: &TimelineLine, due_at: DateTime<Utc>) -> StoreResult<()>;

    /// Comments due at `now`, at most `limit`, the longest waiting first.
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<PendingComment>>;

    /// The listed lines were written: they are removed (lines appended meanwhile stay, due again).
    async fn written(&self, comment_key: &str, line_ids: &[i64]) -> StoreResult<()>;

    /// A write failed: try again at `retry_at`.
    async fn failed(&self, comment_key: &str, retry_at: DateTime<Utc>, error: &str) -> StoreResult<()>;

    /// Lines waiting, for status and tests.
    async fn pending(&self) -> StoreResult<u64>;
}
