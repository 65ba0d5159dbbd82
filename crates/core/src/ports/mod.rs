//! Ports: the capabilities the use cases need, as small traits, one file per port.
//!
//! | port | what for | adapters |
//! |---|---|---|
//! | [`IdempotencyStore`] | one atomic claim per message key, with a lease and the turn's checkpoint; the receiver's de-duplication (`admit`) | memory, SQLite, DynamoDB |
//! | [`JobSink`] | the producer side of the queue: the receiver and the pollers send verified jobs | memory, SQLite, SQS FIFO |
//! | [`WorkQueue`] | the lease-based consumer side, used only by the local runner (SQS is consumed by Lambda's event source instead) | memory, SQLite |
//! | [`DeadLetters`] | jobs set aside after giving up, and putting them back | SQLite, SQS dead-letter queue |
//! | [`ChatStore`] | who serves a chat in a session, the recent conversation, which phone a chat belongs to | memory, SQLite, DynamoDB |
//! | [`ProfileStore`] | per-phone profiles | memory, SQLite, DynamoDB |
//! | [`TurnLog`] | the per-message log and its statistics | memory, SQLite, DynamoDB |
//! | [`Privacy`] | export and erase everything stored about a phone number | memory, SQLite, DynamoDB |
//! | [`AnswerCache`] | the FAQ answer cache: normalised question → the bot's cacheable reply, with the line's knowledge-base version | memory, SQLite, DynamoDB |
//! | [`UsageCounters`] | atomic, idempotent counters per phone or chat (rate limits, the daily bot-call cap) | memory, SQLite, DynamoDB |
//! | [`MetaStore`] | small named values with compare-and-set (the pinned portal, poller cursors) | memory, SQLite, DynamoDB |
//! | [`CrmPortal`] | the chat's CRM binding, creating a lead, timeline comments | [`crate::b24::crm::RestCrm`] |
//! | [`TimelineOutbox`] | timeline comments waiting to be written, durably | memory, SQLite |
//! | [`Portal`] | what the worker does on Bitrix24 | the REST client's adapters in [`crate::b24`] |
//! | [`ChatFeed`] | what the pollers read on Bitrix24: recent chats, messages after a cursor, the user's event log | [`crate::b24::feed::RestFeed`] |
//! | [`EventFeed`] | a Chatbots 2.0 bot's event queue, read by offset (fetch mode) | [`crate::b24::BotV2Portal`] |
//! | [`Bot`] | the bot, with its request and answer types | [`crate::bot::http::HttpBot`] |
//! | [`Clock`] | time | system, manual |
//!
//! Every storage adapter must pass the same contract suite (`crate::contract`, feature
//! `test-util`); the memory adapter is the reference semantics.
//!
//! Time is always passed in (`now`), never read inside an adapter, so leases and retention are
//! testable without sleeping.

mod bot;
mod bot_events;
mod cache;
mod chat;
mod clock;
mod crm;
mod feed;
mod idempotency;
mod log;
mod meta;
mod portal;
mod privacy;
mod profile;
mod queue;
mod usage;

pub use bot::{Bot, BotAnswer, BotCrm, BotError, BotRequest};
pub use bot_events::{EventFeed, FeedEvent, FeedPage};
pub use cache::{AnswerCache, CacheLookup, CachedAnswer};
pub use chat::{ChatMode, ChatStore, HistoryTurn};
pub use clock::{Clock, ManualClock, SystemClock};
pub use crm::{CrmPortal, DialogCrm, PendingComment, TimelineLine, TimelineOutbox};
pub use feed::{ChatFeed, ChatMessages, EventPage, FeedChat, FeedMessage, FeedUser, MessagesWanted, Pressure};
pub use idempotency::{Admission, Claim, ClaimRecord, IdempotencyStore, RecordPhase};
pub use log::{LogStats, TurnLog};
pub use meta::{MetaPut, MetaStore, Versioned};
pub use portal::{Portal, PortalError, PortalErrorKind, PortalMessage, Transfer};
pub use privacy::{ChatData, Erased, PhoneData, Privacy, StoredClaim, StoredJob, carries_phone, dialog_of, phone_digits};
pub use profile::ProfileStore;
pub use queue::{DeadLetter, DeadLetters, Delivery, JobSink, QueueAge, QueueDepth, QueueGauge, Receipt, Settle, WorkQueue, WorkQueueAge};
pub use usage::{Subject, UsageCounters};

/// A storage failure. Every variant but `Corrupt` and `TooLarge` is worth retrying later; none of
/// them means the data is wrong.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, a locked database, a network error to DynamoDB...).
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// A stored record could not be decoded (written by an incompatible version?).
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// The caller's claim or lease was taken over by someone else (it expired).
    #[error("lease lost: another worker owns this item now")]
    LeaseLost,
    /// The record is larger than the backend takes (an SQS message, a DynamoDB item): sending it
    /// again gets the same answer.
    #[error("record too large for the backend: {0}")]
    TooLarge(String),
}

impl StoreError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Corrupt(_) | Self::TooLarge(_))
    }

    /// What kind of failure, without the backend's text (for reports shown outside the logs).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Backend(_) => "the storage backend failed",
            Self::Corrupt(_) => "a stored record is corrupt",
            Self::LeaseLost => "a lease was lost",
            Self::TooLarge(_) => "a record is too large",
        }
    }
}

/// Result alias for the storage ports.
pub type StoreResult<T> = Result<T, StoreError>;
