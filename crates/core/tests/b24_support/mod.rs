//! Shared helpers of the Bitrix24 client tests: an emulator on port 0, clients with test-sized rate
//! plans and retry schedules, and a tracing subscriber that captures everything it is given.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use b24_emulator::{DemoPortal, Emulator, EmulatorConfig, RateLimit, RecordedCall};
use olbridge_core::b24::{B24Client, ClientOptions, RatePlan, WebhookBase};
use olbridge_core::retry::RetryPolicy;

/// An emulator with the demo portal seeded.
pub async fn emulator(rate: RateLimit) -> (Emulator, DemoPortal) {
    let emu = Emulator::start(EmulatorConfig { rate, ..Default::default() }).await.expect("emulator starts");
    let demo = emu.seed_demo();
    (emu, demo)
}

/// A client on `url` with this plan and retry schedule.
pub fn client(url: &str, rate: RatePlan, retry: RetryPolicy) -> B24Client {
    let webhook = WebhookBase::parse(url).expect("webhook URL");
    B24Client::new(webhook, ClientOptions { rate, retry, timeout: Duration::from_secs(10), ..Default::default() }).expect("client")
}

/// [`client`] that sends every call alone (no `batch` coalescing): for tests of the limiter and the
/// retries of single requests.
pub fn single_client(url: &str, rate: RatePlan, retry: RetryPolicy) -> B24Client {
    let webhook = WebhookBase::parse(url).expect("webhook URL");
    let options = ClientOptions { rate, retry, timeout: Duration::from_secs(10), coalesce: false, ..Default::default() };
    B24Client::new(webhook, options).expect("client")
}

/// A client with no practical client-side limit and three quick attempts.
pub fn fast_client(url: &str) -> B24Client {
    client(url, RatePlan::new(1_000.0, 1_000), RetryPolicy::new(vec![ms(20), ms(20)]))
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Recorded top-level calls (not batch commands) of `method`.
pub fn calls_of(emu: &Emulator, method: &str) -> Vec<RecordedCall> {
    emu.calls().into_iter().filter(|c| c.method == method && !c.in_batch).collect()
}

/// The webhook code inside a webhook URL.
pub fn code_of(url: &str) -> String {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned()
}

/// A subscriber that writes every span field, record and event field into one string, so a test can
/// search the whole tracing output for a secret.
#[derive(Clone)]
pub struct Capture {
    pub out: Arc<Mutex<String>>,
    next: Arc<AtomicU64>,
}

impl Default for Capture {
    fn default() -> Self {
        listen::listen_through_scoped_subscribers();
        Self { out: Arc::default(), next: Arc::default() }
    }
}

/// The listening global default (`olbridge_core::testing::listen_through_scoped_subscribers`),
/// included by path: this test crate builds the library without its `test-util` feature.
#[path = "../../src/testing/listen.rs"]
mod listen;

impl Capture {
    pub fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut out = self.out.lock().unwrap();
        let _ = write!(out, "\n[span {}] ", span.metadata().name());
        span.record(&mut Fields(&mut out));
        tracing::span::Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.out.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut out = self.out.lock().unwrap();
        let _ = write!(out, "\n[{} {}] ", event.metadata().level(), event.metadata().target());
        event.record(&mut Fields(&mut out));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
