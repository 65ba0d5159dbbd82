//! Ports: the capabilities the use cases need, as small traits.
//!
//! Each port has a memory adapter in [`crate::memory`] (tests, and the reference semantics), an
//! embedded SQLite adapter in the `olbridge` crate (the local runner), and later DynamoDB/SQS
//! adapters for the Lambda functions. Every adapter must pass the same contract suite
//! (`crate::contract`, feature `test-util`).
//!
//! Time is always passed in (`now`), never read inside an adapter, so leases and retention are
//! testable without sleeping.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::event::{GroupId, Job};
use crate::domain::ids::{ChatId, DedupKey, Phone, SessionId};
use crate::domain::profile::Profile;
use crate::domain::turn::{TurnOutcome, TurnProgress, TurnRecord};

mod clock;
pub use clock::{Clock, ManualClock, SystemClock};

/// A storage failure. Every variant but `LeaseLost` is worth retrying later; none of them means
/// the data is wrong.
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
}

impl StoreError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Corrupt(_))
    }
}

/// Result alias for the storage ports.
pub type StoreResult<T> = Result<T, StoreError>;

// ---------------------------------------------------------------------------------------------
// Idempotency

/// The answer to a claim on a de-duplication key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody processed this key before: the caller owns it until the lease ends.
    New,
    /// A previous attempt died (its lease expired) after checkpointing: the caller owns the key now
    /// and resumes from this progress.
    Resumed(TurnProgress),
    /// Someone else holds a live lease; try again after `until`.
    InProgress {
        /// When the other lease ends.
        until: DateTime<Utc>,
    },
    /// Already processed; nothing to do.
    Done(TurnOutcome),
}

/// One atomic claim per key with a lease for in-progress work (the Powertools idempotency design:
/// a conditional write, not a read-then-write).
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for `owner` until `now + lease`. Atomic: of two concurrent claims on a new key
    /// exactly one gets `New`. A claim by the lease's own holder renews it and resumes, so an owner
    /// id must name one sequential executor (a worker task, a Lambda invocation), never two attempts
    /// that may run at once. The full semantics are pinned by `crate::contract::idempotency`.
    async fn claim(&self, key: &DedupKey, owner: &str, now: DateTime<Utc>, lease: Duration) -> StoreResult<Claim>;

    /// Saves progress and extends the lease; fails with `LeaseLost` if `owner` no longer holds it.
    async fn checkpoint(&self, key: &DedupKey, owner: &str, progress: &TurnProgress, now: DateTime<Utc>, lease: Duration) -> StoreResult<()>;

    /// Marks the key done with its outcome (kept for the retention period).
    async fn complete(&self, key: &DedupKey, owner: &str, outcome: &TurnOutcome, now: DateTime<Utc>) -> StoreResult<()>;

    /// Gives the key up without completing it (a retryable failure before any side effect), so
    /// the next attempt starts fresh; the saved progress is kept.
    async fn release(&self, key: &DedupKey, owner: &str) -> StoreResult<()>;

    /// Forgets done records completed before `cutoff`; returns how many.
    async fn purge_done_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;
}

// ---------------------------------------------------------------------------------------------
// Queue

/// Whether `enqueue` stored the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored; it will be delivered.
    New,
    /// A job with the same key was enqueued before (push and poll saw the same message, or Bitrix24
    /// and a replay POSTed the same event): nothing stored.
    Duplicate,
}

/// A leased job.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The job.
    pub job: Job,
    /// Identifies this lease for ack/retry/extend.
    pub receipt: Receipt,
    /// How many times the job was delivered, this one included.
    pub attempt: u32,
}

/// A lease handle on a delivered job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt(pub String);

/// What happened to a job given back with `retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeued {
    /// It will be delivered again after the delay.
    Later,
    /// It had used all its attempts and went to the dead-letter store.
    DeadLettered,
}

/// A durable FIFO-per-group queue with visibility leases, like SQS FIFO: at most one job of a
/// group is leased at a time, so one chat's messages are handled in order; a job whose lease runs
/// out (the worker died) is delivered again; after `max_attempts` deliveries a job is dead-lettered
/// instead of blocking its group forever.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Stores a job unless its key was seen before (de-duplication is atomic with the insert).
    async fn enqueue(&self, job: &Job, now: DateTime<Utc>) -> StoreResult<Enqueued>;

    /// Leases up to `max` jobs, each the oldest available job of a group that has no leased job.
    async fn receive(&self, max: usize, now: DateTime<Utc>, visibility: Duration) -> StoreResult<Vec<Delivery>>;

    /// Leases up to `max` further available jobs of `group` that were enqueued after the jobs the
    /// caller holds (the burst window: three quick messages become one turn). Precisely: the due
    /// jobs after the group's last live-leased job, in order, stopping at the first job that is not
    /// due; nothing when no job of the group is leased. See `crate::contract::queue`.
    async fn receive_more(&self, group: &GroupId, max: usize, now: DateTime<Utc>, visibility: Duration) -> StoreResult<Vec<Delivery>>;

    /// Extends a lease (a heartbeat during a long bot call).
    async fn extend(&self, receipt: &Receipt, now: DateTime<Utc>, visibility: Duration) -> StoreResult<()>;

    /// Removes a finished job.
    async fn ack(&self, receipt: &Receipt) -> StoreResult<()>;

    /// Gives a job back to be delivered again after `delay`, or dead-letters it when it has used
    /// `max_attempts` deliveries. `error` is kept for the operator.
    async fn retry(&self, receipt: &Receipt, now: DateTime<Utc>, delay: Duration, max_attempts: u32, error: &str) -> StoreResult<Requeued>;

    /// Jobs waiting or leased (not dead-lettered), for health and metrics.
    async fn depth(&self) -> StoreResult<QueueDepth>;
}

/// Queue gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Waiting for a worker.
    pub ready: u64,
    /// Leased by a worker (an expired lease counts until the job is delivered again: `depth` has
    /// no clock).
    pub in_flight: u64,
    /// Gave up on; needs an operator.
    pub dead: u64,
}

// ---------------------------------------------------------------------------------------------
// Chat state

/// Who serves a chat in a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ChatMode {
    /// The bot answers.
    Bot,
    /// A human has the chat for this session; the bot stays silent.
    Human {
        /// Which rule fired (`phrase`, `bot_handoff`, `bot_failure`, `operator_wrote`).
        rule: String,
        /// Since when.
        since: DateTime<Utc>,
    },
}

/// A turn of the conversation, as the bot's history sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryTurn {
    /// `customer`, `bot` or `operator`.
    pub role: String,
    /// What was said.
    pub text: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Per-chat, per-session state: who serves the chat, and the recent conversation.
#[async_trait]
pub trait ChatStore: Send + Sync {
    /// The mode of `chat` in `session` (`Bot` when nothing was recorded). `session = None` is the
    /// chat-wide state used when the session is unknown.
    async fn mode(&self, chat: ChatId, session: Option<SessionId>) -> StoreResult<ChatMode>;

    /// Puts the chat in human mode for `session` (idempotent: the first rule and time are kept).
    async fn set_human(&self, chat: ChatId, session: Option<SessionId>, rule: &str, now: DateTime<Utc>) -> StoreResult<()>;

    /// Hands a chat back to the bot for `session` (an operator command).
    async fn set_bot(&self, chat: ChatId, session: Option<SessionId>) -> StoreResult<()>;

    /// Appends a turn to the chat's history.
    async fn append_history(&self, chat: ChatId, turn: &HistoryTurn) -> StoreResult<()>;

    /// The last `limit` turns, oldest first.
    async fn history(&self, chat: ChatId, limit: usize) -> StoreResult<Vec<HistoryTurn>>;

    /// Drops history older than `cutoff`; returns how many turns.
    async fn purge_history_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;
}

// ---------------------------------------------------------------------------------------------
// Profiles

/// Per-phone profiles.
#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// The profile of `phone`, if any.
    async fn get(&self, phone: &Phone) -> StoreResult<Option<Profile>>;

    /// Stores a profile (insert or replace).
    async fn put(&self, profile: &Profile) -> StoreResult<()>;

    /// Deletes a profile (the customer asked to be forgotten); returns whether one existed.
    async fn delete(&self, phone: &Phone) -> StoreResult<bool>;

    /// Deletes profiles not updated since `cutoff` (the retention period); returns how many.
    async fn purge_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;
}

// ---------------------------------------------------------------------------------------------
// Message log

/// Aggregates over the message log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogStats {
    /// Turns recorded.
    pub turns: u64,
    /// Count per outcome name.
    pub by_outcome: Vec<(String, u64)>,
    /// Median of received → finished, milliseconds.
    pub p50_ms: Option<u64>,
    /// 95th percentile of received → finished, milliseconds.
    pub p95_ms: Option<u64>,
    /// Median of the bridge's own time (received → finished minus the bot's time), milliseconds.
    pub overhead_p50_ms: Option<u64>,
    /// 95th percentile of the bridge's own time, milliseconds.
    pub overhead_p95_ms: Option<u64>,
}

/// The per-message log: one record per turn with timings and outcome.
#[async_trait]
pub trait TurnLog: Send + Sync {
    /// Appends a record.
    async fn record(&self, record: &TurnRecord) -> StoreResult<()>;

    /// The most recent `limit` records, newest first.
    async fn recent(&self, limit: usize) -> StoreResult<Vec<TurnRecord>>;

    /// Aggregates over records whose turn started at or after `since`.
    async fn stats(&self, since: DateTime<Utc>) -> StoreResult<LogStats>;
}

// ---------------------------------------------------------------------------------------------
// The portal, as the worker needs it

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
    pub id: crate::domain::ids::MessageId,
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
    async fn post_reply(&self, dialog: crate::domain::ids::DialogId, text: &str) -> Result<crate::domain::ids::MessageId, PortalError>;

    /// Shows "typing…" in the dialog. Optional work: the adapter may skip it when the rate budget
    /// is short, returning `Ok(false)`.
    async fn typing(&self, dialog: crate::domain::ids::DialogId) -> Result<bool, PortalError>;

    /// Hands the chat to a human operator (`imopenlines.bot.session.operator`, or
    /// `imopenlines.operator.transfer` in operator mode).
    async fn transfer_to_operator(&self, chat: ChatId) -> Result<Transfer, PortalError>;

    /// Messages of the dialog newer than `after`, oldest first: used to check whether a reply whose
    /// post was interrupted did reach the portal before posting it again.
    async fn messages_after(&self, dialog: crate::domain::ids::DialogId, after: crate::domain::ids::MessageId) -> Result<Vec<PortalMessage>, PortalError>;

    /// The user id our replies are posted as (the bot's id, or the service user's).
    fn author_id(&self) -> u64;
}

/// The bot, as the worker needs it.
#[async_trait]
pub trait Bot: Send + Sync {
    /// Asks the bot once. Retries are the caller's (one policy, one budget).
    async fn ask(&self, request: &crate::bot::BotRequest, idempotency_key: &DedupKey) -> Result<crate::bot::BotAnswer, crate::bot::BotError>;
}
