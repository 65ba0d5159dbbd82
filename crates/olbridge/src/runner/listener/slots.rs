//! The connection slots: what each connection is waiting for, and which one gives way at the cap.
//!
//! A connection is either waiting on its client (for a request head, on a new or kept-alive
//! connection, or for the rest of a body) or busy on our side (the use case runs, the response is
//! written). A genuine client — Bitrix24, a health probe, a reverse proxy — keeps its connection in
//! the first state for the milliseconds it takes to send a request; a slow-loris keeps it there for
//! as long as the timeouts let it. So when every slot is taken and a new connection arrives, the one
//! that has been waiting on its client the longest is closed to make room: almost surely an
//! attacker, never a request we are working on.
//!
//! A connection younger than [`EVICTION_GRACE`] never gives way: a genuine client's request is in
//! its socket before we first read it, and the grace covers the moment between accepting it and
//! that first read. It also bounds the churn an attacker that reconnects at once can cause: each
//! slot changes hands at most once per grace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use tokio::task::{AbortHandle, Id};
use tokio::time::{Duration, Instant};

/// How long a new or just-answered connection is safe from eviction.
pub(super) const EVICTION_GRACE: Duration = Duration::from_millis(250);

/// What a connection is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// For the client: a request head (new connection, kept alive, or partly sent).
    Head,
    /// For the client: the rest of a request body.
    Body,
    /// For us: the handler runs or the response is being written.
    Busy,
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// When the connection started waiting on its client (head and body count as one wait).
    since: Instant,
    /// Requests answered on this connection.
    served: u64,
    /// The idle timer closed it.
    idle_expired: bool,
    /// The current request's body timer fired.
    body_expired: bool,
}

/// One connection's state, shared by its task, its I/O wrapper and the accept loop.
#[derive(Debug)]
pub(super) struct ConnState {
    inner: Mutex<Inner>,
    /// Tells the accept loop a busy slot became evictable.
    waiting: Arc<Notify>,
}

impl ConnState {
    pub(super) fn new(now: Instant, waiting: Arc<Notify>) -> Arc<Self> {
        let inner = Inner { phase: Phase::Head, since: now, served: 0, idle_expired: false, body_expired: false };
        Arc::new(Self { inner: Mutex::new(inner), waiting })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The critical sections only assign fields: a poisoned lock still holds consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn phase(&self) -> Phase {
        self.lock().phase
    }

    /// When it started waiting on its client, if it is.
    pub(super) fn waiting_since(&self) -> Option<Instant> {
        let inner = self.lock();
        (inner.phase != Phase::Busy).then_some(inner.since)
    }

    /// The head is in; the body follows unless `body_complete`.
    pub(super) fn head_received(&self, body_complete: bool) {
        let mut inner = self.lock();
        inner.phase = if body_complete { Phase::Busy } else { Phase::Body };
        inner.body_expired = false;
    }

    /// The whole body is in.
    pub(super) fn body_received(&self) {
        self.lock().phase = Phase::Busy;
    }

    /// The body timer fired.
    pub(super) fn body_expired(&self) {
        let mut inner = self.lock();
        inner.body_expired = true;
        inner.phase = Phase::Busy;
    }

    /// Whether the current request's body timer fired.
    pub(super) fn body_timed_out(&self) -> bool {
        self.lock().body_expired
    }

    /// The response is ready: from now on the connection waits for its client's next request.
    pub(super) fn responded(&self, now: Instant) {
        {
            let mut inner = self.lock();
            inner.phase = Phase::Head;
            inner.since = now;
            inner.served += 1;
        }
        self.waiting.notify_one();
    }

    pub(super) fn idle_expired(&self) {
        self.lock().idle_expired = true;
    }

    /// Closed by the idle timer before it sent any request.
    pub(super) fn was_silent(&self) -> bool {
        let inner = self.lock();
        inner.idle_expired && inner.served == 0
    }
}

#[derive(Debug)]
struct Slot {
    state: Arc<ConnState>,
    abort: AbortHandle,
}

/// The live connections (evicted ones leave at once; the accept loop counts their tasks until they
/// have ended).
#[derive(Debug)]
pub(super) struct Slots {
    live: HashMap<Id, Slot>,
    waiting: Arc<Notify>,
}

impl Slots {
    pub(super) fn new() -> Self {
        Self { live: HashMap::new(), waiting: Arc::new(Notify::new()) }
    }

    /// Notified when a busy connection starts waiting on its client again (it can then give way).
    pub(super) fn waiting(&self) -> &Arc<Notify> {
        &self.waiting
    }

    /// When the connection that has waited on its client the longest may give way; `None` when every
    /// connection is busy on our side.
    pub(super) fn next_eviction(&self) -> Option<Instant> {
        self.live.values().filter_map(|s| s.state.waiting_since()).min().map(|since| since + EVICTION_GRACE)
    }

    pub(super) fn insert(&mut self, state: Arc<ConnState>, abort: AbortHandle) {
        self.live.insert(abort.id(), Slot { state, abort });
    }

    pub(super) fn remove(&mut self, id: Id) {
        self.live.remove(&id);
    }

    /// Closes the connection that has waited on its client the longest, if it is past the grace;
    /// false if there is none.
    pub(super) fn evict_oldest(&mut self, now: Instant) -> bool {
        let oldest = self.live.iter().filter_map(|(id, s)| s.state.waiting_since().map(|since| (since, *id))).min();
        let due = oldest.filter(|(since, _)| *since + EVICTION_GRACE <= now);
        match due.and_then(|(_, id)| self.live.remove(&id)) {
            Some(slot) => {
                slot.abort.abort();
                true
            }
            None => false,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use tokio::task::JoinSet;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_connection_waiting_longest_on_its_client_gives_way_and_busy_ones_never_do() {
        let mut tasks = JoinSet::new();
        let mut slots = Slots::new();
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(10);
        let mut open = |slots: &mut Slots, since: Instant| {
            let state = ConnState::new(since, Arc::clone(slots.waiting()));
            slots.insert(Arc::clone(&state), tasks.spawn(std::future::pending::<()>()));
            state
        };
        let busy_oldest = open(&mut slots, t0);
        busy_oldest.head_received(true);
        let body = open(&mut slots, t0 + Duration::from_secs(1));
        body.head_received(false);
        let head = open(&mut slots, t0 + Duration::from_secs(2));
        assert_eq!(slots.next_eviction(), Some(t0 + Duration::from_secs(1) + EVICTION_GRACE));
        assert!(!slots.evict_oldest(t0 + Duration::from_secs(1)), "not within the grace");

        assert!(slots.evict_oldest(later), "the slow body goes first: it has waited on its client since t0+1s");
        assert_eq!(slots.len(), 2);
        assert!(slots.evict_oldest(later), "then the head");
        assert_eq!(slots.next_eviction(), None, "a busy connection never gives way");
        assert!(!slots.evict_oldest(later));

        // Once it has answered, the busy one waits for its client's next request like any other.
        busy_oldest.responded(t0 + Duration::from_secs(3));
        assert_eq!(slots.next_eviction(), Some(t0 + Duration::from_secs(3) + EVICTION_GRACE));
        let aborted = std::iter::from_fn(|| tasks.try_join_next()).count();
        tokio::task::yield_now().await;
        let aborted = aborted + std::iter::from_fn(|| tasks.try_join_next()).count();
        assert_eq!(aborted, 2, "the evicted connections' tasks were stopped");
        drop(head);
    }
}
