//! The fault and load harness: N customers write M messages each on the emulated portal while a
//! seeded schedule injects portal faults, bot faults, dropped deliveries and SIGKILL + restart of
//! a real `olbridge serve`; at the end, what the customers wrote is checked against what their
//! WhatsApp shows.
//!
//! - [`check`]: the verdict — lost, duplicated, out of order — from the inboxes alone (the echo
//!   bot's answers name the messages they answer, however the bridge folded them into turns).
//! - [`report`]: the figures, as JSON and Markdown.
//!
//! Everything random comes from one `StdRng` seeded with [`HarnessOptions::seed`]: the customers'
//! gaps, the bot's fault sequence, the portal's fault schedule, the drops and the kill moments. The
//! schedule is reproducible; the interleaving with the bridge's own timing is not (it is a real
//! process on a real clock), so a seed reproduces a run's faults, not its exact trace.

pub use olbridge_harness::{check, report};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use b24_emulator::{Fault, RateLimit};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::{AppOptions, Reply, TestApp};
pub use olbridge_harness::{Report, RunFigures, Verdict, Written};

/// What a harness run does.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// The seed of every random choice.
    pub seed: u64,
    /// Customers (chats).
    pub chats: usize,
    /// Messages per customer, written in sequence.
    pub messages: usize,
    /// A customer's gap between two messages: uniform in this range (ms).
    pub gap_ms: (u64, u64),
    /// SIGKILL + restart this many times (0: no kills).
    pub kills: usize,
    /// Time from a (re)start to the next kill: uniform in this range (ms).
    pub kill_every_ms: (u64, u64),
    /// Share of `ONIMBOTMESSAGEADD` deliveries dropped (never retried: the reconciliation poller
    /// must find them).
    pub drop_ratio: f64,
    /// Share of bot requests that fail (timeout, 500, garbage, slow answer; equally likely).
    pub bot_fault_ratio: f64,
    /// Whether garbage is among the bot faults (garbage is not retried: the chat is handed off).
    pub bot_garbage: bool,
    /// Portal fault episodes (a 503 storm, a 500, slow calls, a slow response) per minute.
    pub portal_faults_per_min: f64,
    /// How long to wait for every message to be answered once the writing and killing is over.
    pub settle: Duration,
    /// `OLBRIDGE_RECONCILE_SEC`.
    pub reconcile_sec: f64,
    /// Report, but do not fail, answers out of order because their event never reached the bridge.
    pub late_order_ok: bool,
    /// The bridge's `RUST_LOG` (default `warn`).
    pub log_level: Option<String>,
    /// Where to keep the bridge's log (every restart's) when the run ends.
    pub keep_log: Option<std::path::PathBuf>,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            chats: 10,
            messages: 10,
            gap_ms: (100, 1500),
            kills: 10,
            kill_every_ms: (100, 900),
            drop_ratio: 0.0,
            bot_fault_ratio: 0.05,
            bot_garbage: false,
            portal_faults_per_min: 6.0,
            settle: Duration::from_secs(120),
            reconcile_sec: 1.0,
            late_order_ok: false,
            log_level: None,
            keep_log: None,
        }
    }
}

/// The bot's per-request base delay (ms), so kills land while it thinks too.
const BOT_THINK_MS: (u64, u64) = (0, 400);
/// The bridge's bot timeout in the harness; a "timeout" fault answers after it.
const BOT_TIMEOUT_SEC: f64 = 2.0;

fn phone(chat: usize) -> String {
    format!("+49157{:07}", 1_000_000 + chat)
}

fn between(rng: &mut StdRng, (lo, hi): (u64, u64)) -> Duration {
    Duration::from_millis(if hi > lo { rng.random_range(lo..=hi) } else { lo })
}

/// The bot's replies, in the order requests arrive: mostly an echo after a short think, sometimes
/// a fault.
fn bot_script(rng: &mut StdRng, opts: &HarnessOptions, n: usize) -> (Vec<Reply>, Vec<bool>) {
    let mut faults = Vec::with_capacity(n);
    let script = (0..n)
        .map(|_| {
            let think = between(rng, BOT_THINK_MS);
            let fault = rng.random_bool(opts.bot_fault_ratio.clamp(0.0, 1.0));
            faults.push(fault);
            if fault {
                let kinds = if opts.bot_garbage { 4 } else { 3 };
                match rng.random_range(0..kinds) {
                    0 => Reply::After(Duration::from_secs_f64(BOT_TIMEOUT_SEC + 1.0), Box::new(Reply::Echo)),
                    1 => Reply::Raw(500, "text/plain", "boom".into()),
                    2 => Reply::After(Duration::from_millis(1500), Box::new(Reply::Echo)),
                    _ => Reply::Raw(200, "application/json", "{not json".into()),
                }
            } else {
                Reply::After(think, Box::new(Reply::Echo))
            }
        })
        .collect();
    (script, faults)
}

/// One portal fault episode.
fn portal_fault(rng: &mut StdRng) -> (&'static str, Fault) {
    match rng.random_range(0..4) {
        0 => ("503 storm", Fault::error("*", rng.random_range(5..30), "QUERY_LIMIT_EXCEEDED", "Too many requests", 503)),
        1 => ("500", Fault::error("imbot.message.add", 1, "INTERNAL_SERVER_ERROR", "Internal server error", 500)),
        2 => ("slow calls", Fault::delay("*", rng.random_range(1..5), between(rng, (500, 3000)))),
        _ => ("slow response", Fault::delay_response("imbot.message.add", 1, between(rng, (500, 3000)))),
    }
}

/// The bridge's settings in the harness: push mode, reconciliation on (a delivery that reached a
/// dead bridge, or was dropped, is only ever found by it), a short bot timeout.
pub fn app_options(opts: &HarnessOptions) -> AppOptions {
    AppOptions {
        portal_rate: RateLimit { per_sec: 50.0, burst: 100.0 },
        client_rate: (45.0, 90),
        bot_timeout_sec: Some(BOT_TIMEOUT_SEC),
        bot_max_attempts: 3,
        extra_env: vec![
            ("OLBRIDGE_RECONCILE_SEC".into(), opts.reconcile_sec.to_string()),
            ("OLBRIDGE_RECONCILE_GRACE_SEC".into(), "1".into()),
            // The harness's customers write far faster and longer than the cost controls allow a
            // real one (20 messages a minute, 200 bot calls a day): off, so every message is the
            // bot's to answer and a rate-limited turn is not mistaken for a lost one.
            ("OLBRIDGE_RATE_LIMIT_MESSAGES".into(), "0".into()),
            ("OLBRIDGE_DAILY_BOT_CALLS".into(), "0".into()),
        ]
        .into_iter()
        .chain(opts.log_level.clone().map(|level| ("RUST_LOG".to_owned(), level)))
        .collect(),
        ..AppOptions::default()
    }
}

/// First sight of each bot message in each inbox (for latency), polled every 25 ms.
type Seen = Arc<Mutex<HashMap<u64, Instant>>>;

async fn watch_inboxes(app: &TestApp, phones: &[String], seen: Seen, stop: &tokio::sync::Notify) {
    loop {
        let now = Instant::now();
        for p in phones {
            for m in app.emulator.customer_inbox(p).into_iter().filter(|m| m.author_id == app.bot_id) {
                check::lock(&seen).entry(m.message_id).or_insert(now);
            }
        }
        tokio::select! {
            () = stop.notified() => return,
            () = tokio::time::sleep(Duration::from_millis(25)) => {}
        }
    }
}

/// Runs the harness once; the report says what happened, [`Report::ok`] whether it held.
pub async fn run(opts: HarnessOptions) -> anyhow::Result<Report> {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let app = TestApp::spawn_process(app_options(&opts)).await?;
    let (script, bot_faults) = bot_script(&mut rng, &opts, opts.chats * opts.messages * 4 + 1000);
    app.bot.script(script);
    app.bot.set_default(Reply::Echo);

    let phones: Vec<String> = (0..opts.chats).map(phone).collect();
    // Each customer's gaps and drops, drawn up front so the writers' interleaving does not change them.
    let plans: Vec<Vec<(Duration, bool)>> = phones
        .iter()
        .map(|_| (0..opts.messages).map(|_| (between(&mut rng, opts.gap_ms), rng.random_bool(opts.drop_ratio.clamp(0.0, 1.0)))).collect())
        .collect();
    let kill_gaps: Vec<Duration> = (0..opts.kills).map(|_| between(&mut rng, opts.kill_every_ms)).collect();
    let write_span_ms = plans.iter().map(|p| p.iter().map(|(g, _)| g.as_millis()).sum::<u128>()).max().unwrap_or(0);
    let kill_span_ms: u128 = kill_gaps.iter().map(Duration::as_millis).sum();
    let span_min = (write_span_ms.max(kill_span_ms) as f64 / 60_000.0).max(0.1);
    let episodes = (opts.portal_faults_per_min * span_min).round() as usize;
    let mut portal_plan: Vec<(Duration, &'static str, Fault)> = (0..episodes)
        .map(|_| {
            let at = Duration::from_millis(rng.random_range(0..=write_span_ms.max(kill_span_ms) as u64));
            let (name, f) = portal_fault(&mut rng);
            (at, name, f)
        })
        .collect();
    portal_plan.sort_by_key(|(at, _, _)| *at);

    let started = Instant::now();
    let written: Arc<Mutex<Vec<Written>>> = Arc::default();
    let seen: Seen = Arc::default();
    let stop_watch = tokio::sync::Notify::new();

    let writers = futures::future::join_all(plans.iter().enumerate().map(|(chat, plan)| {
        let (app, written, phone) = (&app, Arc::clone(&written), &phones[chat]);
        async move {
            for (k, (gap, drop)) in plan.iter().enumerate() {
                tokio::time::sleep(*gap).await;
                if *drop {
                    app.emulator.inject_fault(Fault::drop_delivery("ONIMBOTMESSAGEADD", 1));
                }
                let text = format!("c{chat}m{k}");
                let at = Instant::now();
                let m = app.customer_writes(phone, &text).await?;
                check::lock(&written).push(Written { chat, seq: k, text, message_id: m.message_id, at });
            }
            Ok::<_, anyhow::Error>(())
        }
    }));
    let killer = async {
        let mut done = 0usize;
        for gap in &kill_gaps {
            tokio::time::sleep(*gap).await;
            app.sigkill().await?;
            app.start_again().await?;
            done += 1;
        }
        Ok::<_, anyhow::Error>(done)
    };
    let injector = async {
        let mut counts: HashMap<&'static str, usize> = HashMap::new();
        for (at, name, fault) in portal_plan {
            tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
            app.emulator.inject_fault(fault);
            *counts.entry(name).or_default() += 1;
        }
        counts
    };
    let load = async {
        let (w, k, p) = tokio::join!(writers, killer, injector);
        stop_watch.notify_one();
        (w, k, p)
    };
    let ((writes, kills, portal_faults), ()) = tokio::join!(load, watch_inboxes(&app, &phones, Arc::clone(&seen), &stop_watch));
    writes.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let kills = kills?;
    let load_s = started.elapsed().as_secs_f64();

    // Quiescence: every message answered (or its chat handed off), then one more reconciliation
    // pass and idle deliveries, so a late duplicate has the chance to show.
    let written = check::lock(&written).clone();
    let seen_clone = Arc::clone(&seen);
    let settle = async { crate::poll_until(opts.settle, || async { verdict(&app, &phones, &written, &check::lock(&seen_clone)) }, |v| v.settled()).await };
    let watching = tokio::sync::Notify::new();
    let (_, ()) = tokio::join!(
        async {
            let v = settle.await;
            watching.notify_one();
            v
        },
        watch_inboxes(&app, &phones, Arc::clone(&seen), &watching)
    );
    app.emulator.wait_idle(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs_f64(opts.reconcile_sec * 2.0 + 1.0)).await;
    let verdict = verdict(&app, &phones, &written, &check::lock(&seen));
    let report = local_report(&opts, &app, verdict, kills, &bot_faults, portal_faults, load_s, started.elapsed().as_secs_f64());
    if let Some(path) = &opts.keep_log {
        // The bridge's log across every restart, for a failed run's post-mortem.
        std::fs::write(path, app.serve_log())?;
    }
    app.shutdown().await;
    Ok(report)
}

/// Judges the inboxes of `phones` on the app's portal (see `check::verdict_on`).
fn verdict(app: &TestApp, phones: &[String], written: &[Written], seen: &HashMap<u64, Instant>) -> Verdict {
    check::verdict_on(&app.emulator, app.bot_id, phones, written, seen)
}

/// The report of a local run: its figures gathered from the app at the end.
#[allow(clippy::too_many_arguments)] // one call site, each figure named
fn local_report(
    opts: &HarnessOptions,
    app: &TestApp,
    verdict: Verdict,
    kills: usize,
    bot_faults: &[bool],
    portal_faults: HashMap<&'static str, usize>,
    load_s: f64,
    total_s: f64,
) -> Report {
    let bot_requests = app.bot.received().len();
    let run = RunFigures {
        runtime: "local",
        seed: opts.seed,
        chats: opts.chats,
        messages: opts.messages,
        late_order_ok: opts.late_order_ok,
        kills,
        counters: BTreeMap::new(),
        bot_requests,
        bot_faults: bot_faults.iter().take(bot_requests).filter(|f| **f).count(),
        portal_faults: portal_faults.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        load_s,
        total_s,
    };
    Report::from_run(run, &app.emulator, verdict)
}
