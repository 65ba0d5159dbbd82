//! `fetch`: pull a Chatbots 2.0 bot's events from its queue on the portal (`imbot.v2.Event.get`,
//! fetch mode) and enqueue them exactly as the receiver would have — the source that needs no
//! public endpoint at all (contract §3.7; Bitrix24 recommends it because pushed events are never
//! retried).
//!
//! One [`Fetcher::tick`] is one read of the queue: the local runner calls it in a loop, a
//! scheduled poller Lambda once or a few times per invocation; nothing here sleeps.
//!
//! # Nothing lost, nothing twice
//! The portal's queue is acknowledged by the *next* read (`offset=N` deletes every event below
//! `N`), so the order of a tick is:
//!
//! 1. read the stored offset (the [`MetaStore`] item [`Fetcher::cursor_name`]): every event below
//!    it is already durably enqueued;
//! 2. `Event.get(offset)` — acknowledges exactly those on the portal, and returns the next page;
//! 3. parse each event with `parse::from_v2_json` and queue it through [`Receiver::accept`] (the
//!    receiver's path: same de-duplication key `<member>:msg:<id>`, same own-message filter,
//!    same operator fast path, [`crate::usecase::receive::enqueue`]);
//! 4. only when all of them are queued, compare-and-set the stored offset to the page's
//!    `nextOffset`.
//!
//! A crash (or a store failure) between 2 and the end of 3 leaves the stored offset where it was:
//! the portal still holds the events (they were not acknowledged), the next tick reads them again.
//! A crash between 3 and 4 does the same, and the events already queued come back as duplicates of
//! their keys: the key decides, so nothing is answered twice. We chose to re-read and let the key
//! decide over keeping per-event progress: the idempotency store already is that record, and two
//! fetchers racing (a runner and a Lambda, two Lambda instances) need no lease for the same reason;
//! the offset's compare-and-set only keeps it from moving backwards.
//!
//! An event that cannot be parsed is logged and skipped (acknowledged with its page): it would
//! never parse, and holding the queue for it would stop every later message.
//!
//! # Which portal
//! Fetched events carry no `auth` block, so the portal's member id (part of every de-duplication
//! key) is the one configured (`B24_MEMBER_ID`) or pinned earlier from a verified pushed event
//! ([`crate::usecase::receive::MemberPin`]); with neither, [`Fetcher::tick`] refuses
//! ([`FetchError::NoMemberId`]) before reading anything. The domain is `B24_WEBHOOK_BASE`'s.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, warn};

use crate::domain::ids::{BotId, PortalDomain};
use crate::domain::message::PortalRef;
use crate::domain::parse;
use crate::ports::{EventFeed, MetaPut, MetaStore, PortalError, StoreError};
use crate::usecase::receive::{ReceiveError, Received, Receiver};

/// Events asked for per read (the portal's default; it allows 1–1000).
pub const DEFAULT_LIMIT: u32 = 100;

/// The least time between two reads while the portal says more are waiting (contract §3.7).
pub const MORE_GAP: Duration = Duration::from_secs(2);

/// Compare-and-set attempts before moving the offset is given up for this tick (other fetchers
/// keep moving it: the events are queued either way, and the next tick tries again).
const ADVANCE_ATTEMPTS: usize = 5;

/// What the fetch loop needs besides its ports.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Our v2 bot: its queue is the one read, and its id names the stored offset.
    pub bot_id: BotId,
    /// The portal's domain (`B24_WEBHOOK_BASE`).
    pub domain: PortalDomain,
    /// Events per read.
    pub limit: u32,
    /// `B24_POLL_SEC`: the wait after a read that emptied the queue.
    pub idle: Duration,
}

/// Why a tick failed. Nothing was acknowledged that is not durably queued.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Neither `B24_MEMBER_ID` nor a pinned member id: fetched events could not be keyed.
    #[error(
        "fetch mode needs the portal's member id: fetched events carry no auth block, so set B24_MEMBER_ID \
         (see docs/bitrix24-setup.md, \"Chatbots 2.0\", for where to find it)"
    )]
    NoMemberId,
    /// `imbot.v2.Event.get` failed.
    #[error(transparent)]
    Portal(#[from] PortalError),
    /// The store failed (reading the offset, queueing an event, writing the offset).
    #[error("storage failed while fetching: {0}")]
    Store(#[from] StoreError),
}

impl FetchError {
    /// Whether the next tick may succeed without anyone changing the configuration.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NoMemberId => false,
            Self::Portal(e) => e.is_retryable(),
            Self::Store(e) => e.is_retryable(),
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    /// Events read.
    pub fetched: usize,
    /// Newly queued.
    pub enqueued: usize,
    /// Already queued before (a re-read after a crash, or another fetcher's work).
    pub duplicates: usize,
    /// Genuine but not acted on (other event types, our own messages).
    pub ignored: usize,
    /// Could not be parsed: logged and acknowledged.
    pub skipped: usize,
    /// The stored offset after the tick.
    pub offset: Option<u64>,
    /// The portal has more events waiting.
    pub has_more: bool,
}

impl Tick {
    /// How long to wait before the next read: [`MORE_GAP`] while more are waiting, else `idle`.
    pub fn wait(&self, idle: Duration) -> Duration {
        if self.has_more { MORE_GAP } else { idle }
    }
}

/// The fetch use case with its dependencies, built once per process (or Lambda instance).
#[derive(Clone)]
pub struct Fetcher {
    /// The bot's queue.
    pub feed: Arc<dyn EventFeed>,
    /// Where the offset is kept.
    pub meta: Arc<dyn MetaStore>,
    /// The receiver's enqueue path (de-duplication, queue, chat modes, member pin).
    pub receiver: Receiver,
    /// Bot, domain, page size.
    pub settings: FetchSettings,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").field("settings", &self.settings).field("receiver", &self.receiver).finish_non_exhaustive()
    }
}

impl Fetcher {
    /// The [`MetaStore`] item holding the offset: every event of this bot below it is queued.
    pub fn cursor_name(bot: BotId) -> String {
        format!("fetch.v2.{bot}.offset")
    }

    /// The portal fetched events belong to: `B24_MEMBER_ID` or the pinned member id, and the
    /// configured domain. Call it at start to refuse early with [`FetchError::NoMemberId`].
    pub async fn portal(&self) -> Result<PortalRef, FetchError> {
        let member_id = self.receiver.pin.current().await?.ok_or(FetchError::NoMemberId)?;
        Ok(PortalRef { member_id, domain: self.settings.domain.clone() })
    }

    /// Reads one page of the queue, queues its events, then stores the offset that acknowledges
    /// them (see the module docs for the order and why).
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Tick, FetchError> {
        let portal = self.portal().await?;
        let name = Self::cursor_name(self.settings.bot_id);
        let stored = self.meta.get_value(&name).await?;
        let offset = match &stored {
            None => None,
            Some(v) => Some(v.value.parse::<u64>().map_err(|_| StoreError::Corrupt(format!("{name} is not an offset")))?),
        };
        let page = self.feed.fetch(offset, self.settings.limit).await?;
        let mut tick = Tick { fetched: page.events.len(), offset, has_more: page.has_more, ..Tick::default() };
        for event in &page.events {
            let parsed = match parse::from_v2_json(&event.raw, &portal) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => {
                    tick.ignored += 1;
                    continue;
                }
                Err(e) => {
                    warn!(event_id = event.id, error = %e, "a fetched event could not be parsed; skipping it");
                    tick.skipped += 1;
                    continue;
                }
            };
            match self.receiver.accept(parsed, now).await {
                Ok(Received::Enqueued(_)) => tick.enqueued += 1,
                Ok(Received::Duplicate(_)) => tick.duplicates += 1,
                Ok(Received::Ignored(_)) => tick.ignored += 1,
                // Nothing after this event is queued, nothing is acknowledged: the next tick
                // reads the page again.
                Err(ReceiveError::Store(e)) => return Err(e.into()),
                Err(e) => {
                    warn!(event_id = event.id, error = %e, "a fetched event was refused; skipping it");
                    tick.skipped += 1;
                }
            }
        }
        if let Some(ack) = page.ack_offset().filter(|a| offset.is_none_or(|o| *a > o)) {
            tick.offset = Some(self.advance(&name, stored.map(|v| v.version), ack).await?);
        }
        debug!(fetched = tick.fetched, enqueued = tick.enqueued, duplicates = tick.duplicates, offset = ?tick.offset, "fetched bot events");
        Ok(tick)
    }

    /// Moves the stored offset forward to `ack` (never backwards, whoever else writes it).
    async fn advance(&self, name: &str, mut expected: Option<u64>, ack: u64) -> Result<u64, FetchError> {
        for _ in 0..ADVANCE_ATTEMPTS {
            match self.meta.put_value(name, &ack.to_string(), expected).await? {
                MetaPut::Written(_) => return Ok(ack),
                MetaPut::Conflict(Some(current)) => {
                    let theirs = current.value.parse::<u64>().map_err(|_| StoreError::Corrupt(format!("{name} is not an offset")))?;
                    if theirs >= ack {
                        return Ok(theirs);
                    }
                    expected = Some(current.version);
                }
                MetaPut::Conflict(None) => expected = None,
            }
        }
        Err(StoreError::Backend(format!("{name} kept changing under {ADVANCE_ATTEMPTS} attempts to move it to {ack}")).into())
    }
}

#[cfg(test)]
mod tests;
