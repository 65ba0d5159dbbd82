//! Scenario harness: how the bridge behaves in the situations the hardening issue measured, with a
//! report (not a test: it asserts nothing about time).
//!
//! - `burst`: each of N customers writes once, then three follow-ups while the bot (1.5 s) thinks
//!   about the first. Reports turns (bot calls) per customer and the time to the last answer.
//!   Compare `--burst-ms 0` (the default: answer at once, fold the follow-ups into the next turn)
//!   with `--burst-ms 800` (the old fixed quiet window).
//! - `recovery`: the portal fails the reply — once with a 500, or with 503s for `--storm-s` seconds
//!   (longer than the REST client's own retries) — and recovers; reports the time from recovery to
//!   the reply in the customer's inbox, and whether it came once.
//!
//! - `modes`: the REST budget of each way messages reach the bridge, on a portal at its standard 2
//!   requests/s (burst 50) and the bridge's default pace (2/s, burst 40): requests per minute in
//!   operator mode (polling every 2 s, from `im.recent.list` or from the `im.v2.Event.get` log) and
//!   in push mode (with reconciliation every 30 s) and in Chatbots 2.0 fetch mode, idle and
//!   with `--chats` active chats (each customer writes every `--every-s` seconds and waits for the
//!   answer; the bot takes 0.5 s), split into polling, replies and the rest; and the time from the
//!   customer's message to the answer in their WhatsApp.
//!
//! - `throughput`: `--chats` customers (500) write at once to a portal at Bitrix24's standard limit
//!   (2 requests/s, burst 50), the bot answers at once; the same run with `B24_BATCH_REQUESTS=false`
//!   and `true` side by side: answers per second, time to the answer (p50/p95/p99), portal requests
//!   per answer, refusals, and whether every customer got exactly one answer.
//! - `crm`: the REST cost of CRM timeline writes: the `throughput` run with `--chats` (200) chats,
//!   each bound to a lead, with `OLBRIDGE_CRM_TIMELINE` off, `turn` and `session`, batching off and
//!   on, side by side: portal requests per answered message, the extra over the timeline off, and
//!   the `crm.timeline.comment.add` commands landed (and how many rode in a batch).
//! - `flood`: one phone floods (`--flood-per-s` messages a second) while `--chats` other customers
//!   each write every `--every-s` seconds and wait for the answer, on a portal at its standard 2
//!   requests/s (burst 50), the bot taking 0.5 s. Three runs side by side, `--active-s` each: no
//!   flood; the flood with the default rate limit (20 messages per 60 s per phone); the flood with
//!   the limit off. Reports the other chats' time to answer (p50, p95, max) and what the flood cost
//!   (bot calls, posts, notices).
//!
//! `cargo bench -p olbridge-tests --bench scenarios -- burst [--customers N] [--burst-ms W]`
//! `cargo bench -p olbridge-tests --bench scenarios -- throughput [--chats 500]`
//! `cargo bench -p olbridge-tests --bench scenarios -- crm [--chats 200]`
//! `cargo bench -p olbridge-tests --bench scenarios -- recovery [--storm-s S]`
//! `cargo bench -p olbridge-tests --bench scenarios -- modes [--idle-s 60] [--active-s 120] [--chats 50] [--every-s 60]`
//! `cargo bench -p olbridge-tests --bench scenarios -- flood [--active-s 60] [--chats 10] [--every-s 20] [--flood-per-s 20]`
//! Reports are printed and written to `target/bench-<scenario>.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use b24_emulator::{Fault, RateLimit, RecordedCall};
use olbridge_tests::{AppOptions, Chatbot, Reply, Setup, TestApp};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(f64::NAN)
}

fn fast_portal(burst_ms: u64) -> AppOptions {
    AppOptions { portal_rate: RateLimit { per_sec: 1000.0, burst: 1000.0 }, client_rate: (900.0, 900), burst_ms, ..AppOptions::default() }
}

/// A customer who writes every `every` (first after `offset`) until `active` has passed since
/// `started`, waiting up to `wait` for each answer: the steady load of `modes` and `flood`.
struct Steady {
    every: Duration,
    offset: Duration,
    started: Instant,
    active: Duration,
    wait: Duration,
}

impl Steady {
    /// Writes as the customer of `phone`; the time to each answer that came, in ms.
    async fn customer(&self, app: &TestApp, phone: &str) -> anyhow::Result<Vec<f64>> {
        tokio::time::sleep(self.offset).await;
        let mut times = Vec::new();
        let mut n = 0;
        while self.started.elapsed() < self.active {
            let t = Instant::now();
            app.customer_writes(phone, &format!("question {n}")).await?;
            n += 1;
            let answered = olbridge_tests::poll_until(self.wait, || async { app.bot_messages(phone).len() }, |k| *k >= n).await;
            if answered >= n {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            tokio::time::sleep(self.every.saturating_sub(t.elapsed())).await;
        }
        Ok(times)
    }
}

fn write_report(name: &str, report: &str) {
    println!("{report}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/bench-{name}.md"));
    let _ = std::fs::write(out, report);
}

async fn burst() -> anyhow::Result<()> {
    let customers = arg("--customers", 20) as usize;
    let burst_ms = arg("--burst-ms", 0);
    let app = Arc::new(TestApp::spawn(fast_portal(burst_ms)).await?);
    app.bot.set_default(Reply::After(Duration::from_millis(1500), Box::new(Reply::Echo)));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..customers {
        let app = Arc::clone(&app);
        tasks.spawn(async move {
            let phone = format!("+49152{:07}", 1_000_000 + c);
            let t = Instant::now();
            app.customer_writes(&phone, "where is my order?").await?;
            // The follow-ups come while the bot thinks about the first message.
            tokio::time::sleep(Duration::from_millis(300)).await;
            for text in ["it is EX-1234", "I ordered on Monday", "hello??"] {
                app.customer_writes(&phone, text).await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Every text answered (the echo bot repeats what it was asked).
            let done = olbridge_tests::poll_until(
                Duration::from_secs(60),
                || async { app.bot_messages(&phone).join("\n") },
                |all| ["where is my order?", "it is EX-1234", "I ordered on Monday", "hello??"].iter().all(|q| all.contains(q)),
            )
            .await;
            anyhow::ensure!(done.contains("hello??"), "customer {c} was not answered");
            Ok::<_, anyhow::Error>((app.bot_messages(&phone).len(), t.elapsed().as_secs_f64() * 1000.0))
        });
    }
    let (mut turns, mut last) = (Vec::new(), Vec::new());
    while let Some(r) = tasks.join_next().await {
        let (n, ms) = r??;
        turns.push(n as f64);
        last.push(ms);
    }
    let total: f64 = turns.iter().sum();
    let report = format!(
        "# Burst: a message, then three follow-ups while the bot thinks\n\n{customers} customers, bot 1.5 s, quiet window {burst_ms} ms.\n\n| measure | value |\n|---|---|\n| answers per customer (4 messages each), mean | {:.2} |\n| answers per customer, median | {:.0} |\n| time to the last answer, median | {:.0} ms |\n",
        total / customers as f64,
        median(turns),
        median(last),
    );
    write_report("burst", &report);
    if let Ok(app) = Arc::try_unwrap(app) {
        app.shutdown().await;
    }
    Ok(())
}

async fn one_recovery(storm: Option<Duration>) -> anyhow::Result<(f64, usize)> {
    let app = TestApp::spawn(fast_portal(0)).await?;
    let phone = "+4915300000001";
    match storm {
        None => app.emulator.inject_fault(Fault::error("imbot.message.add", 1, "INTERNAL_SERVER_ERROR", "Internal server error", 500)),
        Some(_) => {
            for method in ["imbot.message.add", "im.dialog.messages.get"] {
                app.emulator.inject_fault(Fault::error(method, 1_000_000, "SERVICE_UNAVAILABLE", "Service unavailable", 503));
            }
        }
    }
    app.customer_writes(phone, "hello").await?;
    let recovered = match storm {
        None => Instant::now(),
        Some(d) => {
            tokio::time::sleep(d).await;
            app.emulator.clear_faults();
            Instant::now()
        }
    };
    app.wait_inbox(phone, 1, Duration::from_secs(120)).await;
    let ms = recovered.elapsed().as_secs_f64() * 1000.0;
    app.emulator.wait_idle(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let replies = app.bot_messages(phone).len();
    app.shutdown().await;
    Ok((ms, replies))
}

async fn recovery() -> anyhow::Result<()> {
    let storm = Duration::from_secs(arg("--storm-s", 60));
    let (after_500, n500) = one_recovery(None).await?;
    let (after_storm, nstorm) = one_recovery(Some(storm)).await?;
    let report = format!(
        "# Recovery after portal errors\n\n| fault | reply after the portal recovered | replies |\n|---|---|---|\n| one 500 on the reply | {after_500:.0} ms after the customer wrote | {n500} |\n| 503 on every post and read for {} s | {after_storm:.0} ms after the storm ended | {nstorm} |\n",
        storm.as_secs()
    );
    write_report("recovery", &report);
    Ok(())
}

/// Requests the portal counted (a batch is one), per minute, by what they were for.
#[derive(Debug, Default, Clone, Copy)]
struct Budget {
    total: f64,
    polling: f64,
    replies: f64,
    typing: f64,
    other: f64,
    refused: usize,
}

impl Budget {
    fn of(calls: &[RecordedCall], over: Duration) -> Self {
        let per_min = 60.0 / over.as_secs_f64();
        let mut b = Self::default();
        for c in calls.iter().filter(|c| !c.in_batch) {
            match c.method.as_str() {
                "im.recent.list" | "batch" | "im.v2.Event.get" | "imbot.v2.Event.get" | "im.dialog.messages.get" => b.polling += per_min,
                "im.message.add" | "imbot.message.add" | "imbot.v2.Chat.Message.send" => b.replies += per_min,
                "im.dialog.writing" | "imbot.chat.sendTyping" | "imbot.v2.Chat.InputAction.notify" => b.typing += per_min,
                _ => b.other += per_min,
            }
            b.total += per_min;
            b.refused += usize::from(c.error.as_deref() == Some("QUERY_LIMIT_EXCEEDED"));
        }
        b
    }

    fn row(&self, mode: &str, phase: &str) -> String {
        format!(
            "| {mode} | {phase} | {:.1} | {:.0}% | {:.1} | {:.1} | {:.1} | {:.1} | {} |\n",
            self.total,
            self.total / 120.0 * 100.0,
            self.polling,
            self.replies,
            self.typing,
            self.other,
            self.refused
        )
    }
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Extra environment of a run.
type Env = &'static [(&'static str, &'static str)];

/// One mode: idle, then active; the budgets and the reply times.
async fn one_mode(
    setup: Setup,
    chatbot: Chatbot,
    env: &[(&str, &str)],
    idle: Duration,
    active: Duration,
    chats: usize,
    every: Duration,
) -> anyhow::Result<(Budget, Budget, Vec<f64>)> {
    let mut extra_env = vec![("B24_POLL_SEC".to_owned(), "2".to_owned())];
    extra_env.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let opts = AppOptions { setup, chatbot, portal_rate: RateLimit { per_sec: 2.0, burst: 50.0 }, client_rate: (2.0, 40), extra_env, ..AppOptions::default() };
    let app = Arc::new(TestApp::spawn(opts).await?);
    app.bot.set_default(Reply::After(Duration::from_millis(500), Box::new(Reply::Echo)));
    // Steady state: one conversation first, so push mode has pinned the portal's member id
    // (reconciliation waits for it) and both modes have passed their first start.
    app.customer_writes("+4915400000000", "warm-up").await?;
    olbridge_tests::poll_until(Duration::from_secs(30), || async { app.bot_messages("+4915400000000").len() }, |n| *n >= 1).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    app.emulator.clear_recordings();
    let started = Instant::now();
    tokio::time::sleep(idle).await;
    let idle_budget = Budget::of(&app.emulator.calls(), started.elapsed());

    app.emulator.clear_recordings();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..chats {
        let app = Arc::clone(&app);
        let phone = format!("+49154{:07}", 1_000_000 + c);
        let steady = Steady { every, offset: every.mul_f64(c as f64 / chats as f64), started, active, wait: Duration::from_secs(60) };
        tasks.spawn(async move { steady.customer(&app, &phone).await });
    }
    tokio::time::sleep(active).await;
    let active_budget = Budget::of(&app.emulator.calls(), started.elapsed());
    let mut times = Vec::new();
    while let Some(r) = tasks.join_next().await {
        times.extend(r??);
    }
    if let Ok(app) = Arc::try_unwrap(app) {
        app.shutdown().await;
    }
    Ok((idle_budget, active_budget, times))
}

async fn modes() -> anyhow::Result<()> {
    let idle = Duration::from_secs(arg("--idle-s", 60));
    let active = Duration::from_secs(arg("--active-s", 120));
    let chats = arg("--chats", 50) as usize;
    let every = Duration::from_secs(arg("--every-s", 60));
    let mut table = String::from(
        "| mode | phase | requests/min | of the 2 req/s budget | polling | replies | typing | other | refused |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut latency = String::from("| mode | replies | p50 | p95 | max |\n|---|---|---|---|---|\n");
    let operator = Setup::Operator { service_first: true };
    let runs: [(&str, Setup, Chatbot, Env); 4] = [
        ("operator, im.recent.list every 2 s", operator, Chatbot::V1, &[]),
        ("operator, im.v2.Event.get every 2 s + 60 s sweep", operator, Chatbot::V1, &[("OLBRIDGE_POLL_SOURCE", "events")]),
        ("push (v1 bot) + recovery every 30 s", Setup::Push, Chatbot::V1, &[]),
        ("fetch (Chatbots 2.0, imbot.v2.Event.get every 2 s) + recovery every 30 s", Setup::Push, Chatbot::V2Fetch, &[]),
    ];
    for (name, setup, chatbot, env) in runs {
        let (i, a, times) = one_mode(setup, chatbot, env, idle, active, chats, every).await?;
        table.push_str(&i.row(name, "idle"));
        table.push_str(&a.row(name, &format!("{chats} active chats")));
        let max = times.iter().copied().fold(0.0, f64::max);
        latency.push_str(&format!(
            "| {name} | {} | {:.0} ms | {:.0} ms | {max:.0} ms |\n",
            times.len(),
            percentile(times.clone(), 0.5),
            percentile(times, 0.95)
        ));
    }
    let report = format!(
        "# REST budget and time to reply per mode\n\nPortal: 2 requests/s, burst 50 (Bitrix24's standard plan); bridge pace 2/s, burst 40. Bot: 0.5 s.\n\
         Idle {} s; active {} s with {chats} chats, each customer writing every {} s and waiting for the answer.\n\n\
         Requests as the portal counts them (a batch is one), per minute:\n\n{table}\nTime from the customer's message to the answer in their WhatsApp (includes the bot's 0.5 s):\n\n{latency}",
        idle.as_secs(),
        active.as_secs(),
        every.as_secs()
    );
    write_report("modes", &report);
    Ok(())
}

/// What one throughput run measured.
struct Throughput {
    answers: usize,
    exactly_once: bool,
    per_sec: f64,
    latency_ms: Vec<f64>,
    requests: usize,
    refused: usize,
    span_s: f64,
    /// `crm.timeline.comment.add` commands that succeeded, inside a batch or alone.
    comments: usize,
    /// Of those, the ones sent as a request of their own (not riding in a batch).
    comments_alone: usize,
    /// The requests by method (a batch as `batch`).
    by_method: std::collections::BTreeMap<String, usize>,
}

const COMMENT_ADD: &str = "crm.timeline.comment.add";

async fn one_throughput(batch: bool, chats: usize, timeline: Option<&str>) -> anyhow::Result<Throughput> {
    let mut extra_env = vec![("B24_BATCH_REQUESTS".to_owned(), batch.to_string())];
    if let Some(mode) = timeline {
        // Session comments are written after a quiet period: short, so they land within the run.
        extra_env.extend([("OLBRIDGE_CRM_TIMELINE".to_owned(), mode.to_owned()), ("OLBRIDGE_CRM_TIMELINE_QUIET_SEC".to_owned(), "5".to_owned())]);
    }
    let opts = AppOptions { portal_rate: RateLimit::STANDARD, client_rate: (2.0, 40), workers: 128, extra_env, ..AppOptions::default() };
    let app = Arc::new(TestApp::spawn(opts).await?);
    // Steady state first: one conversation, and the bucket drained, so start-up calls do not count.
    app.customer_writes("+4915900000000", "warm up").await?;
    app.wait_inbox("+4915900000000", 1, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let before = app.emulator.calls().len();
    let phones: Vec<String> = (0..chats).map(|i| format!("+49160{:07}", 1_000_000 + i)).collect();
    let start = chrono::Utc::now();
    let mut writes = tokio::task::JoinSet::new();
    for p in &phones {
        let (app, p) = (Arc::clone(&app), p.clone());
        writes.spawn(async move {
            let at = chrono::Utc::now();
            app.customer_writes(&p, "hello").await.map(|m| (format!("chat{}", m.chat_id), at))
        });
    }
    // When each chat's customer wrote, by the dialog the answer is posted to.
    let mut written = std::collections::HashMap::new();
    while let Some(r) = writes.join_next().await {
        let (dialog, at) = r??;
        written.insert(dialog, at);
    }
    app.wait_turns(chats + 1, Duration::from_secs(900)).await;
    // Every chat is bound to a lead (the default line creates one per session): with the timeline
    // on, wait for one comment per chat, so the requests counted include all of them.
    if timeline.is_some_and(|m| m != "off") {
        let landed = || async { app.emulator.calls()[before..].iter().filter(|c| c.method == COMMENT_ADD && c.error.is_none()).count() };
        olbridge_tests::poll_until(Duration::from_secs(900), landed, |n| *n >= chats).await;
    }
    app.emulator.wait_idle(Duration::from_secs(5)).await;
    let calls = app.emulator.calls();
    let window = &calls[before..];
    let posts: Vec<&RecordedCall> = window.iter().filter(|c| c.method == "imbot.message.add" && c.error.is_none()).collect();
    let exactly_once = phones.iter().all(|p| app.bot_messages(p) == ["echo: hello"]);
    // Time to the answer: each customer's message to the post of the answer into its chat.
    let latency_ms: Vec<f64> = posts
        .iter()
        .filter_map(|post| {
            let dialog = post.params.get("DIALOG_ID").map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned))?;
            written.get(&dialog).map(|at| (post.at - *at).num_milliseconds() as f64)
        })
        .collect();
    let last = posts.iter().map(|c| c.at).max().unwrap_or(start);
    let span_s = (last - start).num_milliseconds() as f64 / 1000.0;
    let requests = window.iter().filter(|c| !c.in_batch).count();
    let refused = window.iter().filter(|c| c.error.as_deref() == Some("QUERY_LIMIT_EXCEEDED")).count();
    let comments = window.iter().filter(|c| c.method == COMMENT_ADD && c.error.is_none()).count();
    let comments_alone = window.iter().filter(|c| c.method == COMMENT_ADD && !c.in_batch).count();
    let mut by_method = std::collections::BTreeMap::new();
    for c in window.iter().filter(|c| !c.in_batch) {
        *by_method.entry(c.method.clone()).or_insert(0) += 1;
    }
    if let Ok(app) = Arc::try_unwrap(app) {
        app.shutdown().await;
    }
    Ok(Throughput {
        answers: posts.len(),
        exactly_once,
        per_sec: posts.len() as f64 / span_s.max(0.001),
        latency_ms,
        requests,
        refused,
        span_s,
        comments,
        comments_alone,
        by_method,
    })
}

async fn throughput() -> anyhow::Result<()> {
    let chats = arg("--chats", 500) as usize;
    let mut rows = String::new();
    for batch in [false, true] {
        let t = one_throughput(batch, chats, None).await?;
        let p = |q| percentile(t.latency_ms.clone(), q) / 1000.0;
        rows.push_str(&format!(
            "| {} | {} | {} | {:.1} s | {:.1} | {:.1} s | {:.1} s | {:.1} s | {} | {:.3} | {} |\n",
            if batch { "on" } else { "off" },
            t.answers,
            if t.exactly_once { "yes" } else { "NO" },
            t.span_s,
            t.per_sec,
            p(0.50),
            p(0.95),
            p(0.99),
            t.requests,
            t.requests as f64 / t.answers.max(1) as f64,
            t.refused,
        ));
    }
    let report = format!(
        "# Throughput: {chats} customers write at once\n\nPortal: 2 requests/s, burst 50 (Bitrix24's standard plan). Bridge: 2/s, burst 40, 128 workers. Bot: answers at once.\n\n\
| batching | answers | each exactly once | last answer after | answers/s | p50 | p95 | p99 | portal requests | requests per answer | refused |\n|---|---|---|---|---|---|---|---|---|---|---|\n{rows}"
    );
    write_report("throughput", &report);
    Ok(())
}

/// `crm`: the REST cost of CRM timeline writes. The `throughput` run (every chat bound to a lead)
/// with `OLBRIDGE_CRM_TIMELINE` off, `turn` and `session` (quiet period 5 s), batching off and on.
async fn crm() -> anyhow::Result<()> {
    let chats = arg("--chats", 200) as usize;
    let mut rows = String::new();
    let mut methods = String::new();
    for batch in [false, true] {
        let mut base = None;
        for mode in ["off", "turn", "session"] {
            let t = one_throughput(batch, chats, Some(mode)).await?;
            let per_answer = t.requests as f64 / t.answers.max(1) as f64;
            let base_per_answer = *base.get_or_insert(per_answer);
            rows.push_str(&format!(
                "| {} | {mode} | {} | {} | {:.1} s | {} | {:.3} | {:+.3} | {} | {} | {} |\n",
                if batch { "on" } else { "off" },
                t.answers,
                if t.exactly_once { "yes" } else { "NO" },
                t.span_s,
                t.requests,
                per_answer,
                per_answer - base_per_answer,
                t.comments,
                t.comments - t.comments_alone,
                t.refused,
            ));
            let list: Vec<String> = t.by_method.iter().map(|(m, n)| format!("`{m}` {n}")).collect();
            methods.push_str(&format!("| {} | {mode} | {} |\n", if batch { "on" } else { "off" }, list.join(", ")));
        }
    }
    let report = format!(
        "# CRM timeline writes: REST requests per answered message\n\n{chats} customers write once at once, each chat bound to a new lead; portal 2 requests/s, burst 50; bridge 2/s, burst 40, 128 workers; bot answers at once. `session`: quiet period 5 s. Requests are HTTP requests to the portal (a batch counts once), from the first message until the last comment landed; the extra is against the same batching with the timeline off.\n\n\
| batching | timeline | answers | each exactly once | last answer after | portal requests | requests per answer | extra per answer | comments landed | of them inside a batch | refused |\n|---|---|---|---|---|---|---|---|---|---|---|\n{rows}\n\
The requests by method (a `batch` counts once, under `batch`):\n\n| batching | timeline | requests |\n|---|---|---|\n{methods}"
    );
    write_report("crm", &report);
    Ok(())
}

/// What one flood run measured.
struct FloodRun {
    /// The other chats' times from message to answer, ms.
    times: Vec<f64>,
    /// Messages the flooding phone sent.
    flood_sent: usize,
    /// Bot calls for the flooding phone.
    flood_bot_calls: usize,
    /// Messages posted into the flooding chat.
    flood_posts: usize,
    /// Portal requests refused for its rate limit.
    refused: usize,
}

const FLOOD_PHONE: &str = "+4915500000000";
const FLOOD_NOTICE: &str = "Please slow down; we will answer your next message.";

async fn one_flood(flood_per_s: Option<u64>, limit: bool, active: Duration, chats: usize, every: Duration) -> anyhow::Result<FloodRun> {
    let mut extra_env = vec![("OLBRIDGE_RATE_LIMIT_NOTICE".to_owned(), FLOOD_NOTICE.to_owned()), ("OLBRIDGE_FAQ_CACHE_TTL_SEC".to_owned(), "0".to_owned())];
    if !limit {
        extra_env.push(("OLBRIDGE_RATE_LIMIT_MESSAGES".to_owned(), "0".to_owned()));
    }
    let opts = AppOptions { portal_rate: RateLimit { per_sec: 2.0, burst: 50.0 }, client_rate: (2.0, 40), extra_env, ..AppOptions::default() };
    let app = Arc::new(TestApp::spawn(opts).await?);
    app.bot.set_default(Reply::After(Duration::from_millis(500), Box::new(Reply::Echo)));
    app.customer_writes("+4915400000000", "warm-up").await?;
    olbridge_tests::poll_until(Duration::from_secs(30), || async { app.bot_messages("+4915400000000").len() }, |n| *n >= 1).await;
    app.emulator.clear_recordings();
    let bot_before = app.bot.received().len();
    let started = Instant::now();
    let flood = flood_per_s.map(|per_s| {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let gap = Duration::from_secs_f64(1.0 / per_s.max(1) as f64);
            let mut n = 0;
            while started.elapsed() < active {
                app.customer_writes(FLOOD_PHONE, &format!("flood {n}")).await?;
                n += 1;
                tokio::time::sleep(gap).await;
            }
            Ok::<_, anyhow::Error>(n)
        })
    });
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..chats {
        let app = Arc::clone(&app);
        let phone = format!("+49156{:07}", 1_000_000 + c);
        let steady = Steady { every, offset: every.mul_f64(c as f64 / chats as f64), started, active, wait: Duration::from_secs(120) };
        tasks.spawn(async move { steady.customer(&app, &phone).await });
    }
    let mut times = Vec::new();
    while let Some(r) = tasks.join_next().await {
        times.extend(r??);
    }
    let flood_sent = match flood {
        Some(task) => task.await??,
        None => 0,
    };
    let received = app.bot.received();
    let flood_bot_calls = received[bot_before..].iter().filter(|r| r.body["phone"] == FLOOD_PHONE).count();
    let flood_posts = app.bot_messages(FLOOD_PHONE).len();
    let refused = app.emulator.calls().iter().filter(|c| c.status == 503 || c.error.as_deref() == Some("QUERY_LIMIT_EXCEEDED")).count();
    if let Ok(app) = Arc::try_unwrap(app) {
        app.shutdown().await;
    }
    Ok(FloodRun { times, flood_sent, flood_bot_calls, flood_posts, refused })
}

async fn flood() -> anyhow::Result<()> {
    let active = Duration::from_secs(arg("--active-s", 60));
    let chats = arg("--chats", 10) as usize;
    let every = Duration::from_secs(arg("--every-s", 20));
    let per_s = arg("--flood-per-s", 20);
    let mut table = String::from(
        "| run | other chats' replies | p50 | p95 | max | flood messages | flood bot calls | posts into the flood chat | portal refusals |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let runs: [(&str, Option<u64>, bool); 3] =
        [("no flood", None, true), ("flood, rate limit on (20 per 60 s, the default)", Some(per_s), true), ("flood, rate limit off", Some(per_s), false)];
    for (name, flood_per_s, limit) in runs {
        let r = one_flood(flood_per_s, limit, active, chats, every).await?;
        let max = r.times.iter().copied().fold(0.0, f64::max);
        table.push_str(&format!(
            "| {name} | {} | {:.0} ms | {:.0} ms | {max:.0} ms | {} | {} | {} | {} |\n",
            r.times.len(),
            percentile(r.times.clone(), 0.5),
            percentile(r.times, 0.95),
            r.flood_sent,
            r.flood_bot_calls,
            r.flood_posts,
            r.refused,
        ));
    }
    let report = format!(
        "# One phone flooding: the other chats' time to answer\n\nPortal: 2 requests/s, burst 50; bridge pace 2/s, burst 40. Bot: 0.5 s. {} s per run; {chats} other customers, each writing every {} s and waiting for the answer; the flood: one phone, {per_s} messages/s.\n\n{table}",
        active.as_secs(),
        every.as_secs(),
    );
    write_report("flood", &report);
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let scenario =
        std::env::args().skip(1).find(|a| !a.starts_with('-') && matches!(a.as_str(), "burst" | "recovery" | "modes" | "throughput" | "crm" | "flood"));
    match scenario.as_deref() {
        Some("burst") => burst().await,
        Some("recovery") => recovery().await,
        Some("modes") => modes().await,
        Some("throughput") => throughput().await,
        Some("crm") => crm().await,
        Some("flood") => flood().await,
        _ => anyhow::bail!("usage: cargo bench -p olbridge-tests --bench scenarios -- burst|recovery|modes|throughput|crm|flood [options]"),
    }
}
