//! Outbound events, delivered like Bitrix24's queue server does it.
//!
//! State changes build an [`OutEvent`] while the portal lock is held and push it into an unbounded channel
//! ([`EventSink::push`] never blocks). A dispatcher task fans events out to one worker per ordering key (a bot's
//! app), so each bot receives its events in order while a slow handler cannot hold up another bot. Each POST has
//! the configured timeout and is **never retried** (contract §3.3); every attempt, including injected drops, is
//! recorded. [`Idle`] lets tests wait until everything queued has been attempted instead of sleeping.
//!
//! Payload builders: [`v1`] (`ONIMBOT*`, `ONIMCOMMANDADD`), [`v2`] (`ONIMBOTV2*`); encoding: [`form`].

pub(crate) mod form;
pub(crate) mod v1;
pub(crate) mod v2;

use crate::faults::OutageFailure;
use crate::record::EventDelivery;
use crate::shared::Shared;
use chrono::Utc;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

/// One event to POST.
#[derive(Clone, Debug)]
pub(crate) struct OutEvent {
    pub event: String,
    pub handler_id: Option<u64>,
    pub data: Value,
    pub auth: Value,
    pub url: String,
    pub bot_id: u64,
    /// Events with the same key are delivered in order, one at a time.
    pub key: String,
}

impl OutEvent {
    /// The form body, with `ts` set now (the time the event "leaves the queue").
    pub fn body(&self) -> String {
        let event = json!(self.event);
        let ts = json!(Utc::now().timestamp().to_string());
        let handler = self.handler_id.map(|h| json!(h.to_string()));
        let mut fields: Vec<(&str, &Value)> = vec![("event", &event)];
        if let Some(h) = &handler {
            fields.push(("event_handler_id", h));
        }
        fields.push(("data", &self.data));
        fields.push(("ts", &ts));
        fields.push(("auth", &self.auth));
        form::build_query(&fields)
    }
}

/// Counts queued-but-unattempted events.
#[derive(Debug, Default)]
pub(crate) struct Idle {
    pending: AtomicUsize,
    notify: Notify,
}

impl Idle {
    fn done(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.notify.notify_waiters();
        }
    }

    /// Resolves once every queued event has been attempted.
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
}

/// The producer side, held by the portal.
#[derive(Clone, Debug)]
pub(crate) struct EventSink {
    tx: mpsc::UnboundedSender<OutEvent>,
    idle: Arc<Idle>,
}

impl EventSink {
    pub(crate) fn push(&self, ev: OutEvent) {
        self.idle.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(ev).is_err() {
            self.idle.done();
        }
    }
}

/// Creates the channel.
pub(crate) fn channel() -> (EventSink, mpsc::UnboundedReceiver<OutEvent>, Arc<Idle>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let idle = Arc::new(Idle::default());
    (EventSink { tx, idle: idle.clone() }, rx, idle)
}

/// The dispatcher task: one ordered worker per key. Dropping (aborting) it aborts the workers.
pub(crate) async fn run_dispatcher(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<OutEvent>) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap_or_default();
    let mut workers: HashMap<String, mpsc::UnboundedSender<OutEvent>> = HashMap::new();
    let mut set = JoinSet::new();
    while let Some(ev) = rx.recv().await {
        let tx = workers.entry(ev.key.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            set.spawn(worker(shared.clone(), client.clone(), rx));
            tx
        });
        if tx.send(ev).is_err() {
            shared.idle.done();
        }
    }
}

async fn worker(shared: Arc<Shared>, client: reqwest::Client, mut rx: mpsc::UnboundedReceiver<OutEvent>) {
    while let Some(ev) = rx.recv().await {
        deliver(&shared, &client, ev).await;
        shared.idle.done();
    }
}

async fn deliver(shared: &Shared, client: &reqwest::Client, ev: OutEvent) {
    let body = ev.body();
    let at = Utc::now();
    let mut rec = EventDelivery { event: ev.event.clone(), url: ev.url.clone(), body: body.clone(), status: None, error: None, at, bot_id: ev.bot_id };
    if shared.faults.take_drop(&ev.event) {
        rec.error = Some("dropped by fault injection".to_owned());
        shared.recorder.delivery(rec);
        return;
    }
    if let Some(n) = shared.faults.nth_drop(&ev.event) {
        rec.error = Some(format!("dropped by fault injection (one in every {n} deliveries)"));
        shared.recorder.delivery(rec);
        return;
    }
    // The handler is offline: the attempt fails without reaching it, and is not retried.
    if let Some(failure) = shared.faults.outage_for(&ev.url, shared.clock.secs()) {
        match failure {
            OutageFailure::ConnectionRefused => rec.error = Some("transport error: connection refused (handler offline)".to_owned()),
            OutageFailure::Status(code) => {
                rec.status = Some(code);
                rec.error = Some(format!("handler answered HTTP {code}"));
            }
        }
        shared.recorder.delivery(rec);
        return;
    }
    let sent = client
        .post(&ev.url)
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(reqwest::header::USER_AGENT, "Bitrix24 Webhook Engine")
        .timeout(shared.config.delivery_timeout)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            rec.status = Some(resp.status().as_u16());
            if !resp.status().is_success() {
                rec.error = Some(format!("handler answered HTTP {}", resp.status().as_u16()));
            }
        }
        Err(e) if e.is_timeout() => rec.error = Some("timeout".to_owned()),
        Err(e) => rec.error = Some(format!("transport error: {e}")),
    }
    tracing::debug!(event = %rec.event, url = %rec.url, status = ?rec.status, error = ?rec.error, "event delivery");
    shared.recorder.delivery(rec);
}
