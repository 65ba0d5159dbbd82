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
//! `cargo bench -p olbridge-tests --bench scenarios -- burst [--customers N] [--burst-ms W]`
//! `cargo bench -p olbridge-tests --bench scenarios -- recovery [--storm-s S]`
//! Reports are printed and written to `target/bench-<scenario>.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use b24_emulator::{Fault, RateLimit};
use olbridge_tests::{AppOptions, Reply, TestApp};

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

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let scenario = std::env::args().skip(1).find(|a| !a.starts_with('-') && (a == "burst" || a == "recovery"));
    match scenario.as_deref() {
        Some("burst") => burst().await,
        Some("recovery") => recovery().await,
        _ => anyhow::bail!("usage: cargo bench -p olbridge-tests --bench scenarios -- burst|recovery [options]"),
    }
}
