//! Opportunistic `batch`: essential calls that wait for the same rate budget go to the portal
//! together, up to 50 in one request (contract §2.3: a batch costs one slot of the leaky bucket).
//!
//! When the budget is free, a call goes at once and alone, exactly as without coalescing. When it
//! is short (a campaign makes 500 customers write at once), calls queue here instead of each
//! waiting for its own slot, and whoever gets the next slot takes up to 50 of them: the portal's
//! 2 requests/s become up to 100 replies/s.
//!
//! Every call keeps the semantics it has alone, so nothing above the client changes:
//!
//! - **Per-chat order**: a caller's call is answered before it sends its next one (a turn posts
//!   its parts one after another), and a batch runs its commands in order (`halt=0`).
//! - **Exactly once**: a command's error comes back to its caller as if the call had been sent
//!   alone, and the caller's retry rules apply to it ([`super::client::Replay`]). When the batch's
//!   own response is lost (a timeout, a 5xx), no command is known to have run, so each caller gets
//!   that failure: a creating call (`IfNotApplied`) is not replayed, and its caller reconciles as
//!   after a lost single post (did the message land?). A refused batch (`QUERY_LIMIT_EXCEEDED`)
//!   surely ran nothing and every command is retried.
//! - **One slot per request**: the driver that sends a batch takes one slot for it. A caller
//!   whose call was taken by another driver costs nothing.
//!
//! Up to [`MAX_IN_FLIGHT`] drivers run at once, so one slow request does not hold up the others.
//!
//! **Riders.** Background calls (the pollers' reads, the CRM timeline's comments) wait for headroom
//! in the budget as before, but meanwhile they also wait here: a batch being sent for essential calls
//! takes them along when it has room, so a timeline comment written while replies go out costs no
//! request of its own. A rider whose headroom comes first drives a request itself: it takes the
//! essential calls waiting (they come first), then fills the batch with the other riders, so a pass
//! of 50 timeline comments costs one request, not 50. Alone, it goes alone as without coalescing.
//! The rider's slot is a background one (taken only with headroom above the reserve), so riders
//! never take the reserve the replies need.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tracing::Instrument;
use tracing::instrument::WithSubscriber;

use super::batch::Batch;
use super::client::{B24Client, Page, text};
use super::error::{B24Error, ErrorKind, codes};
use super::ratelimit::Priority;

/// Requests sent at once by the coalescer.
pub const MAX_IN_FLIGHT: usize = 4;

/// A call waiting for a slot.
struct Pending {
    /// Tells a rider's own entry from the others.
    id: u64,
    method: String,
    params: Value,
    reply: oneshot::Sender<Answer>,
}

/// A call's answer, and whether its caller pays for the request that carried it: the first call
/// of each request does, so the requests counted by every turn's [`super::usage`] add up to the
/// requests the portal saw.
type Answer = (Result<Page<Value>, B24Error>, bool);

/// The queue of calls waiting for a slot, and the drivers that send them.
#[derive(Default)]
pub(crate) struct Coalescer {
    queue: Mutex<VecDeque<Pending>>,
    /// Background calls that may ride along in a batch sent for essential ones.
    riders: Mutex<VecDeque<Pending>>,
    next_id: AtomicU64,
    drivers: AtomicUsize,
    /// Requests sent and commands carried, for metrics and benchmarks.
    requests: AtomicUsize,
    commands: AtomicUsize,
}

impl Coalescer {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn riders(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.riders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes up to 50 calls whose callers still wait (a caller that gave up is dropped here, so
    /// its call is never sent): essential ones first, then riders to fill the batch. Riders alone
    /// make no batch.
    fn take(&self) -> Vec<Pending> {
        let mut out = Vec::new();
        fill(&mut self.queue(), &mut out);
        if !out.is_empty() {
            fill(&mut self.riders(), &mut out);
        }
        out
    }

    /// For a rider that got a slot: its own call `id` first (`None` when a driver took it
    /// meanwhile), then the essential calls waiting, then the other riders, up to 50.
    fn take_for(&self, id: u64) -> Option<Vec<Pending>> {
        let mine = {
            let mut riders = self.riders();
            riders.iter().position(|p| p.id == id).and_then(|i| riders.remove(i))?
        };
        let mut out = vec![mine];
        fill(&mut self.queue(), &mut out);
        fill(&mut self.riders(), &mut out);
        Some(out)
    }
}

/// Moves calls whose callers still wait from `queue` to `out`, up to a batch's 50.
fn fill(queue: &mut VecDeque<Pending>, out: &mut Vec<Pending>) {
    while out.len() < Batch::MAX_COMMANDS {
        let Some(p) = queue.pop_front() else { break };
        if !p.reply.is_closed() {
            out.push(p);
        }
    }
}

/// What the coalescer has sent: requests, and calls carried by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CoalesceStats {
    /// Requests sent (single calls and batches).
    pub requests: usize,
    /// Calls carried by them.
    pub calls: usize,
}

impl B24Client {
    /// Sends `method` through the coalescer, once (the caller retries): answered as if sent alone.
    pub(crate) async fn coalesced(&self, coalescer: &Coalescer, method: &str, params: &Value) -> Result<Page<Value>, B24Error> {
        let (reply, answer) = oneshot::channel();
        let id = coalescer.next_id.fetch_add(1, Ordering::Relaxed);
        coalescer.queue().push_back(Pending { id, method: method.to_owned(), params: params.clone(), reply });
        self.kick(coalescer);
        settle(method, answer.await)
    }

    /// Sends background call `method` once: with a batch sent for essential calls if one has room
    /// before the budget has headroom for it, else in a batch of its own that carries the other
    /// calls waiting (see the module's "Riders").
    pub(crate) async fn ride(&self, coalescer: &Coalescer, method: &str, params: &Value) -> Result<Page<Value>, B24Error> {
        let (reply, mut answer) = oneshot::channel();
        let id = coalescer.next_id.fetch_add(1, Ordering::Relaxed);
        coalescer.riders().push_back(Pending { id, method: method.to_owned(), params: params.clone(), reply });
        tokio::select! {
            biased;
            carried = &mut answer => return settle(method, carried),
            _ = self.limiter().acquire(Priority::Background) => {}
        }
        // Headroom came first. Let the calls started together with this one (a timeline pass
        // writes its comments at once) queue before the batch is made.
        tokio::task::yield_now().await;
        let sent_at = self.limiter().now();
        let Some(calls) = coalescer.take_for(id) else {
            // A driver took it meanwhile: the slot was not needed.
            self.limiter().refund().await;
            return settle(method, answer.await);
        };
        coalescer.requests.fetch_add(1, Ordering::Relaxed);
        coalescer.commands.fetch_add(calls.len(), Ordering::Relaxed);
        if calls.len() == 1 {
            return self.post(method, params, 1, sent_at).await;
        }
        self.send_batch(calls, sent_at).await;
        // The request was counted for this task by `post`; its own answer (the batch's first
        // command, so marked as paying) must not count it twice.
        match answer.await {
            Ok((result, _)) => result,
            Err(e) => settle(method, Err(e)),
        }
    }

    /// Starts a driver if fewer than [`MAX_IN_FLIGHT`] run.
    fn kick(&self, coalescer: &Coalescer) {
        let started = coalescer.drivers.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_IN_FLIGHT).then_some(n + 1));
        if started.is_ok() {
            let client = self.clone();
            // The driver carries the span and the subscriber of the call that started it, so its
            // `b24.call` spans log where that caller's would have.
            let driver = async move { client.drive().await }.instrument(tracing::Span::current()).with_current_subscriber();
            tokio::spawn(driver);
        }
    }

    /// A driver: while calls wait, takes a slot and sends up to 50 of them.
    async fn drive(&self) {
        let Some(coalescer) = self.coalescer() else { return };
        loop {
            if coalescer.queue().is_empty() {
                coalescer.drivers.fetch_sub(1, Ordering::AcqRel);
                // A call queued between the check and the decrement found every driver busy.
                if !coalescer.queue().is_empty() {
                    self.kick(coalescer);
                }
                return;
            }
            self.limiter().acquire(Priority::Essential).await;
            let sent_at = self.limiter().now();
            let calls = coalescer.take();
            if calls.is_empty() {
                // Another driver took them while this one waited for its slot.
                self.limiter().refund().await;
                continue;
            }
            coalescer.requests.fetch_add(1, Ordering::Relaxed);
            coalescer.commands.fetch_add(calls.len(), Ordering::Relaxed);
            if let [one] = calls.as_slice() {
                let result = self.post(&one.method, &one.params, 1, sent_at).await;
                if let Some(one) = calls.into_iter().next() {
                    let _ = one.reply.send((result, true));
                }
                continue;
            }
            self.send_batch(calls, sent_at).await;
        }
    }

    async fn send_batch(&self, calls: Vec<Pending>, sent_at: f64) {
        let ids: Vec<String> = (0..calls.len()).map(|i| format!("c{i}")).collect();
        let mut batch = Batch::new();
        for (id, call) in ids.iter().zip(&calls) {
            batch.add(id.clone(), &call.method, &call.params);
        }
        let cmd: Map<String, Value> = ids.iter().filter_map(|id| batch.command(id).map(|c| (id.clone(), Value::String(c)))).collect();
        let body = serde_json::json!({ "halt": 0, "cmd": cmd });
        tracing::debug!(calls = calls.len(), "coalesced calls into one batch");
        match self.post("batch", &body, 1, sent_at).await {
            Err(e) => {
                for (i, call) in calls.into_iter().enumerate() {
                    let _ = call.reply.send((Err(B24Error { method: call.method.clone(), ..e.clone() }), i == 0));
                }
            }
            Ok(page) => {
                let result = page.result;
                let by_id = |key: &str| per_command(result.get(key).cloned(), &ids);
                let (results, errors, times) = (by_id("result"), by_id("result_error"), by_id("result_time"));
                let (totals, nexts) = (by_id("result_total"), by_id("result_next"));
                let find = |list: &[(String, Value)], id: &str| list.iter().find(|(k, _)| k == id).map(|(_, v)| v.clone());
                for (i, (id, call)) in ids.iter().zip(calls).enumerate() {
                    if let Some(time) = find(&times, id) {
                        self.record_operating(&call.method, Some(&time));
                    }
                    let answer = if let Some(e) = find(&errors, id) {
                        let code = e.get("error").map(text).unwrap_or_default();
                        let description = e.get("error_description").map(text).unwrap_or_default();
                        Err(B24Error::from_envelope(&call.method, None, &code, &description, None))
                    } else if let Some(result) = find(&results, id) {
                        let count = |v: Option<Value>| v.as_ref().and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
                        Ok(Page { result, total: count(find(&totals, id)), next: count(find(&nexts, id)) })
                    } else {
                        // The portal answered the batch but says nothing of this command: it is
                        // not known to have run, like a lost response.
                        Err(B24Error::local(&call.method, ErrorKind::Retryable, codes::NOT_AN_ENVELOPE, "the batch answered nothing for this command"))
                    };
                    let _ = call.reply.send((answer, i == 0));
                }
            }
        }
    }

    /// What the coalescer has sent so far (zeros when coalescing is off).
    pub fn coalesce_stats(&self) -> CoalesceStats {
        self.coalescer()
            .map_or_else(CoalesceStats::default, |c| CoalesceStats { requests: c.requests.load(Ordering::Relaxed), calls: c.commands.load(Ordering::Relaxed) })
    }
}

/// A call's result from its answer, counting the request for the caller's turn when it pays.
fn settle(method: &str, answer: Result<Answer, oneshot::error::RecvError>) -> Result<Page<Value>, B24Error> {
    let (result, pays) = answer
        .unwrap_or_else(|_| (Err(B24Error::local(method, ErrorKind::Retryable, codes::NOT_AN_ENVELOPE, "the request was dropped before an answer")), false));
    if pays {
        super::usage::add(1);
    }
    result
}

/// A per-command map of a batch response. PHP writes an empty map as `[]`, and a map whose keys are
/// 0, 1, 2... as an array; array positions are mapped back to command ids.
fn per_command(v: Option<Value>, ids: &[String]) -> Vec<(String, Value)> {
    match v {
        Some(Value::Object(m)) => m.into_iter().collect(),
        Some(Value::Array(a)) => a.into_iter().enumerate().map(|(i, v)| (ids.get(i).cloned().unwrap_or_else(|| i.to_string()), v)).collect(),
        _ => Vec::new(),
    }
}
