//! `poll`: finding messages by reading the portal instead of being told — operator mode's only
//! source, and push mode's safety net (reconciliation; Bitrix24 never resends a lost event).
//!
//! One traversal engine, two policies ([`Policy`]):
//!
//! ```text
//!   recent chats (im.recent.list, newest activity first, down to the last pass)
//!     -> for each Open Lines chat with a message after its cursor: the messages after it
//!        (im.dialog.messages.get with FIRST_ID, several chats in one batch)
//!     -> each message, oldest first: decoded like a push event, judged by the policy,
//!        enqueued through `receive::enqueue` with the push path's key (member id + message id)
//!     -> the chat's cursor moves past everything decided (never past a message still waiting)
//! ```
//!
//! Operator mode can use the webhook user's `im.v2.Event.get` log instead of the recent list
//! ([`Poller::events_pass`]: one call per poll whatever the number of chats), with a periodic
//! traversal as the safety net; see `events`.
//!
//! # Keys, cursors and restarts
//! A message is enqueued through `receive::enqueue`, the one way every source enqueues, so a
//! message seen by push and by a poller is admitted once. A cursor only moves after what it passes
//! is enqueued; a crash in between finds the messages again and their keys already admitted. An
//! admitted key whose job was lost (a crash between the admission and the send: the record stays
//! `Queued`) is sent again once it has been queued for the grace period; until then the cursor
//! waits before it. Cursors live in the [`MetaStore`] (memory, SQLite,
//! DynamoDB), per policy and chat; a chat reconciliation has not seen yet starts from operator
//! mode's cursor, so moving from operator to push mode never re-answers what the service user did.
//!
//! Messages written before the bridge's first start are never answered, unless they are within
//! `backfill` of it. "Before" is decided by message id (ids grow portal-wide; the newest id the
//! portal showed at the first start is kept), so neither clock's skew matters.
//!
//! # Which portal
//! The key's member id is the pinned one (`B24_MEMBER_ID`, or learned from the first verified
//! event: [`MemberPin`]). Polling receives no event to learn it from, and no REST call an
//! incoming webhook may make returns it, so until one is known operator mode keys its messages
//! with a stand-in named after the webhook's domain ([`MemberId::stand_in`]), not pinned; set
//! `B24_MEMBER_ID` before running push and polling on the same chats. Reconciliation waits for a
//! known member id (an unknown one could not match the keys push gives).

mod cursor;
mod events;
mod policy;
mod traverse;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use policy::{Policy, Verdict, judge, pace};

use self::cursor::Cursors;
use crate::domain::event::{Job, PortalEvent};
use crate::domain::ids::{ChatId, MemberId, PortalDomain};
use crate::domain::message::{AuthorKind, InboundMessage, PortalRef};
use crate::ports::{ChatFeed, ChatStore, Clock, IdempotencyStore, JobSink, MetaStore, PortalError, RecordPhase, StoreError};
use crate::usecase::receive::{self, MemberPin, ReceiveError, Received};

/// How the poller runs.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// What a pass does with what it finds.
    pub policy: Policy,
    /// Reconciliation: how old a message must be before it is judged. Both policies: how long an
    /// admitted key may stay queued before its job is taken for lost and sent again.
    pub grace: Duration,
    /// Messages this long before the bridge's first start are still answered (default none).
    pub backfill: Duration,
    /// How far before the previous pass a pass reads the recent list again (clock skew, late
    /// writes).
    pub overlap: Duration,
    /// The most chats one pass looks at.
    pub max_chats: usize,
    /// The portal's domain (the stand-in member id is named after it).
    pub domain: PortalDomain,
}

impl PollSettings {
    /// Sensible defaults for `policy` on `domain`.
    pub fn new(policy: Policy, domain: PortalDomain) -> Self {
        Self { policy, grace: Duration::from_secs(20), backfill: Duration::ZERO, overlap: Duration::from_secs(300), max_chats: 500, domain }
    }

    /// The settings the configuration describes for `policy` (both runtimes build them here);
    /// `None` without a webhook.
    pub fn from_config(config: &crate::config::Config, policy: Policy) -> Option<Self> {
        let domain = config.portal.webhook.as_ref()?.domain().clone();
        Some(Self { grace: config.sources.reconcile_grace, backfill: config.sources.backfill, ..Self::new(policy, domain) })
    }
}

/// What a pass did, for the log and `/health`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Open Lines chats looked at.
    pub chats: usize,
    /// Chats whose messages were read.
    pub read: usize,
    /// Messages newly enqueued.
    pub enqueued: usize,
    /// Messages whose key was known (push, or an earlier pass, had them).
    pub duplicates: usize,
    /// Admitted keys whose job was lost, sent again.
    pub resent: usize,
    /// Messages left for a later pass (younger than the grace period, or their job still queued).
    pub waiting: usize,
    /// Chats whose messages the portal would not read this time (they are tried again next pass;
    /// a catch-up with any is not complete).
    pub unread: usize,
    /// Why the pass did nothing, when it did nothing on purpose.
    pub skipped: Option<&'static str>,
}

/// Why a pass failed (it is tried again at the next tick; nothing was lost).
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Reading the portal failed.
    #[error(transparent)]
    Portal(#[from] PortalError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pass ran, but the portal would not read this many chats' messages.
    #[error("the portal would not read {0} chat(s)' messages")]
    Incomplete(usize),
}

impl From<ReceiveError> for PollError {
    fn from(e: ReceiveError) -> Self {
        match e {
            ReceiveError::Store(s) => Self::Store(s),
            other => Self::Store(StoreError::Backend(other.to_string())),
        }
    }
}

/// What the poller needs, as ports.
#[derive(Clone)]
pub struct PollDeps {
    /// The portal, read as the webhook's user.
    pub feed: Arc<dyn ChatFeed>,
    /// De-duplication (`admit`) and the lost-job check (`phase`).
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Where jobs go.
    pub sink: Arc<dyn JobSink>,
    /// Chat modes (an operator's message silences the bot at once, as in the receiver).
    pub chats: Arc<dyn ChatStore>,
    /// Cursors.
    pub meta: Arc<dyn MetaStore>,
    /// The portal's member id.
    pub pin: MemberPin,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PollDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollDeps").field("pin", &self.pin).finish_non_exhaustive()
    }
}

/// The poller: one per process (or Lambda instance), passes run one at a time.
pub struct Poller {
    deps: PollDeps,
    settings: PollSettings,
    cursors: Cursors,
    last_pass: Mutex<Option<DateTime<Utc>>>,
    warned_stand_in: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// What was there before the bridge's first start, and is never answered. Message ids grow
/// portal-wide, so the id the portal showed as its newest at the first start separates old from
/// new without trusting either clock; the time only serves the backfill window.
#[derive(Debug, Clone, Copy)]
struct Horizon {
    /// The newest message id at the first start.
    message: u64,
    /// The first start, less the backfill.
    since: DateTime<Utc>,
}

impl Horizon {
    /// Whether a message is from before the first start and outside the backfill window. The
    /// portal's dates have whole seconds, so a message of the same second counts as after.
    fn before(self, id: u64, sent_at: DateTime<Utc>) -> bool {
        id <= self.message && sent_at + chrono::Duration::seconds(1) <= self.since
    }
}

/// What one message came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Enqueued,
    Duplicate,
    Resent,
    Wait,
    Skipped,
}

impl PassReport {
    fn count(&mut self, o: Outcome) {
        match o {
            Outcome::Enqueued => self.enqueued += 1,
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::Resent => self.resent += 1,
            Outcome::Wait => self.waiting += 1,
            Outcome::Skipped => {}
        }
    }
}

impl Poller {
    /// The name under which the bridge's first start is kept.
    pub const FIRST_START: &'static str = "poll.first_start";
    /// The name under which the newest message id at the first start is kept.
    pub const FIRST_MESSAGE: &'static str = "poll.first_message";

    /// A poller.
    pub fn new(deps: PollDeps, settings: PollSettings) -> Self {
        let cursors = Cursors::new(Arc::clone(&deps.meta));
        Self { deps, settings, cursors, last_pass: Mutex::new(None), warned_stand_in: std::sync::atomic::AtomicBool::new(false) }
    }

    /// The settings.
    pub fn settings(&self) -> &PollSettings {
        &self.settings
    }

    /// How long to wait after a pass, given the configured interval: longer while the portal's
    /// operating-time counter for the polled methods is high ([`pace`]).
    pub fn pace(&self, base: Duration) -> Duration {
        pace(base, self.deps.feed.pressure(), self.deps.clock.now())
    }

    /// The portal the keys name: the pinned member id; in operator mode, until one is known, the
    /// stand-in; `None` for reconciliation until one is known.
    async fn portal(&self) -> Result<Option<PortalRef>, PollError> {
        let domain = self.settings.domain.clone();
        if let Some(member_id) = self.deps.pin.current().await? {
            return Ok(Some(PortalRef { member_id, domain }));
        }
        if self.settings.policy != Policy::Operator {
            return Ok(None);
        }
        let member_id = MemberId::stand_in(&domain);
        if !self.warned_stand_in.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(member_id = %member_id, "B24_MEMBER_ID is not set and no event pinned one: messages are keyed with a stand-in named after the portal's domain. Set B24_MEMBER_ID before running push and polling on the same chats (see docs/migration.md)");
        }
        Ok(Some(PortalRef { member_id, domain }))
    }

    /// The bridge's first start (kept once), minus the backfill.
    async fn first_start(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, PollError> {
        let first = self.cursors.once(Self::FIRST_START, u64::try_from(now.timestamp_millis()).unwrap_or(0)).await?;
        let first = DateTime::from_timestamp_millis(i64::try_from(first).unwrap_or(0)).unwrap_or(now);
        Ok(first - chrono::Duration::from_std(self.settings.backfill).unwrap_or(chrono::Duration::zero()))
    }

    /// What existed at the first start: the newest message id the portal showed then (kept once;
    /// `newest` is what it shows now) and the first start's time less the backfill.
    async fn horizon(&self, since: DateTime<Utc>, newest: u64) -> Result<Horizon, PollError> {
        let message = self.cursors.once(Self::FIRST_MESSAGE, newest).await?;
        Ok(Horizon { message, since })
    }

    fn cursor_name(policy: Policy, chat: ChatId) -> String {
        format!("poll.{}.chat{chat}", policy.name())
    }

    /// The chat's cursor under the current policy; reconciliation starts a chat it has not seen
    /// from operator mode's cursor, if there is one.
    async fn cursor(&self, chat: ChatId) -> Result<Option<u64>, PollError> {
        let own = self.cursors.get(&Self::cursor_name(self.settings.policy, chat)).await?;
        if own.is_some() || self.settings.policy == Policy::Operator {
            return Ok(own);
        }
        Ok(self.cursors.get(&Self::cursor_name(Policy::Operator, chat)).await?)
    }

    async fn advance(&self, chat: ChatId, to: u64) -> Result<(), PollError> {
        Ok(self.cursors.advance(&Self::cursor_name(self.settings.policy, chat), to).await?)
    }

    /// Our own replies in operator mode are the webhook user's: never answered, never an
    /// operator's takeover.
    fn own(&self, mut m: InboundMessage) -> InboundMessage {
        if self.settings.policy == Policy::Operator && m.author.id.map(|u| u.get()) == Some(self.deps.feed.self_id().get()) {
            m.author.kind = AuthorKind::Bot;
        }
        m
    }

    /// Judges one message and acts: enqueue through its key, or say it must wait. What was written
    /// before `down_until` (a catch-up pass) has no grace period.
    async fn take(&self, m: InboundMessage, now: DateTime<Utc>, down_until: Option<DateTime<Utc>>) -> Result<Outcome, PollError> {
        let grace = if down_until.is_some_and(|d| m.sent_at <= d) { Duration::ZERO } else { self.settings.grace };
        match judge(self.settings.policy, &m, now, grace) {
            Verdict::Skip => return Ok(Outcome::Skipped),
            Verdict::Wait => return Ok(Outcome::Wait),
            Verdict::Enqueue => {}
        }
        if m.author.kind == AuthorKind::Operator && m.lines.user_code.is_some() {
            // As the receiver does: the bot's running turn re-checks the mode before each send.
            self.deps.chats.set_human(m.chat_id, m.lines.session_id, "operator_wrote", now).await?;
        }
        let job = Job::new(PortalEvent::Message(m), now);
        match receive::enqueue(self.deps.idempotency.as_ref(), self.deps.sink.as_ref(), &job, now).await? {
            Received::Enqueued(key) => {
                tracing::info!(key = %key, policy = self.settings.policy.name(), "poller enqueued a message");
                Ok(Outcome::Enqueued)
            }
            Received::Duplicate(_) | Received::Ignored(_) => self.lost_job(&job, now, down_until).await,
        }
    }

    /// A known key: if its record has stayed queued for the grace period, the job that should
    /// have followed the admission was lost; send it again (a copy of a job still queued is
    /// harmless: it finds its key done). A key queued more recently makes the cursor wait, unless
    /// it was admitted before `down_until` by a process that is gone.
    async fn lost_job(&self, job: &Job, now: DateTime<Utc>, down_until: Option<DateTime<Utc>>) -> Result<Outcome, PollError> {
        let Some(RecordPhase::Queued { at }) = self.deps.idempotency.phase(&job.key).await? else { return Ok(Outcome::Duplicate) };
        let gone = down_until.is_some_and(|d| at <= d);
        if !gone && (now - at).to_std().unwrap_or_default() < self.settings.grace {
            return Ok(Outcome::Wait);
        }
        self.deps.sink.send(job, now).await?;
        tracing::warn!(key = %job.key, "an admitted message had no job (the process stopped between admitting and queueing it): queued it again");
        Ok(Outcome::Resent)
    }

    fn last_pass_name(&self) -> String {
        format!("poll.{}.last_pass", self.settings.policy.name())
    }

    /// When the previous successful traversal started (kept in the store, so the first pass after
    /// a restart reads the recent list back to there, not to the first start).
    async fn previous_pass(&self) -> Result<Option<DateTime<Utc>>, PollError> {
        if let Some(at) = *self.last_pass.lock().unwrap_or_else(PoisonError::into_inner) {
            return Ok(Some(at));
        }
        let stored = self.cursors.get(&self.last_pass_name()).await?;
        Ok(stored.and_then(|ms| DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(0))))
    }

    async fn set_pass_started(&self, at: DateTime<Utc>) -> Result<(), PollError> {
        *self.last_pass.lock().unwrap_or_else(PoisonError::into_inner) = Some(at);
        self.cursors.advance(&self.last_pass_name(), u64::try_from(at.timestamp_millis()).unwrap_or(0)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
