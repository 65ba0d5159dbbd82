//! Load harness: the bridge's own overhead per message.
//!
//! Runs the whole bridge (receiver, SQLite queue and store, workers, REST client) against the
//! emulator with a bot that answers at once, sends many customer messages from many chats, and
//! reports percentiles of:
//! - **overhead**: event received by the bridge → reply confirmed by the portal, minus the time spent
//!   waiting for the bot (from the bridge's own per-message log);
//! - **end to end**: the customer's message written on the portal → the reply in their WhatsApp
//!   inbox (includes the portal's event delivery and the bot).
//!
//! `cargo bench -p olbridge-tests --bench overhead [-- --messages N --chats M --bot-delay-ms D --burst-ms W]`
//! (`--burst-ms` sets the optional quiet window, `OLBRIDGE_BURST_MS`; default 0). The report is printed
//! and written to `target/bench-overhead.md`. Not a test: it asserts nothing about time.

use std::time::{Duration, Instant};

use b24_emulator::RateLimit;
use olbridge_core::ports::TurnLog;
use olbridge_tests::{AppOptions, TestApp};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn summary(name: &str, mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        v.len(),
        percentile(&v, 50.0),
        percentile(&v, 95.0),
        percentile(&v, 99.0),
        v.last().copied().unwrap_or(f64::NAN)
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let messages = arg("--messages", 300);
    let chats = arg("--chats", 30).max(1);
    let bot_delay = Duration::from_millis(arg("--bot-delay-ms", 0) as u64);
    // A portal fast enough that its rate limit is not what we measure.
    let burst_ms = arg("--burst-ms", 0) as u64;
    let opts = AppOptions { portal_rate: RateLimit { per_sec: 1000.0, burst: 1000.0 }, client_rate: (900.0, 900), burst_ms, ..AppOptions::default() };
    let app = TestApp::spawn(opts).await?;
    if !bot_delay.is_zero() {
        app.bot.set_default(olbridge_tests::Reply::After(bot_delay, Box::new(olbridge_tests::Reply::Echo)));
    }
    let started = Instant::now();
    let mut end_to_end = Vec::with_capacity(messages);
    let mut first_of_chat = Vec::with_capacity(chats);
    // Each chat sends its messages one after another (a customer waits for the answer); chats run
    // concurrently.
    let per_chat = messages.div_ceil(chats);
    let mut tasks = tokio::task::JoinSet::new();
    let app = std::sync::Arc::new(app);
    for c in 0..chats {
        let app = std::sync::Arc::clone(&app);
        tasks.spawn(async move {
            let phone = format!("+49151{:07}", 1_000_000 + c);
            let mut samples = Vec::new();
            for i in 0..per_chat {
                let before = app.emulator.customer_inbox(&phone).len();
                let t = Instant::now();
                app.customer_writes(&phone, &format!("question {i} from chat {c}")).await?;
                let inbox = app.wait_inbox(&phone, before + 1, Duration::from_secs(30)).await;
                anyhow::ensure!(inbox.len() > before, "no reply for chat {c} message {i}");
                samples.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>(samples)
        });
    }
    while let Some(r) = tasks.join_next().await {
        let samples = r??;
        // A chat's first message opens a session (the bot joins first): reported on its own too.
        first_of_chat.extend(samples.first().copied());
        end_to_end.extend(samples);
    }
    let wall = started.elapsed();
    let store = app.bridge().map(|b| std::sync::Arc::clone(b.store())).ok_or_else(|| anyhow::anyhow!("no bridge"))?;
    let records = store.recent(messages * 2).await?;
    let overhead: Vec<f64> = records
        .iter()
        .map(|r| ((r.timings.finished_at - r.timings.received_at).num_microseconds().unwrap_or(0) as f64 / 1000.0) - r.timings.bot_ms.unwrap_or(0) as f64)
        .collect();
    let bot: Vec<f64> = records.iter().filter_map(|r| r.timings.bot_ms).map(|v| v as f64).collect();
    let report = format!(
        "# Bridge overhead\n\n{} messages from {} chats in {:.1} s ({:.0} msg/s), bot answering after {} ms, quiet window {} ms, portal limit 1000/s.\n\n| measure (ms) | n | p50 | p95 | p99 | max |\n|---|---|---|---|---|---|\n{}\n{}\n{}\n{}\n\nOverhead = event received by the bridge -> reply confirmed by the portal, minus the bot's time \
         (from the bridge's message log). End to end = customer writes on the portal -> reply in the customer's inbox.\n",
        end_to_end.len(),
        chats,
        wall.as_secs_f64(),
        end_to_end.len() as f64 / wall.as_secs_f64(),
        bot_delay.as_millis(),
        burst_ms,
        summary("bridge overhead", overhead),
        summary("bot call (as measured by the bridge)", bot),
        summary("end to end", end_to_end),
        summary("end to end, a chat's first message", first_of_chat),
    );
    println!("{report}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-overhead.md");
    let _ = std::fs::write(&out, &report);
    if let Ok(app) = std::sync::Arc::try_unwrap(app) {
        app.shutdown().await;
    }
    Ok(())
}
