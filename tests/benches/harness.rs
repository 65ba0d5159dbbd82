//! The fault and load harness (see `olbridge_tests::harness`): N customers write M messages each
//! while a seeded schedule drops deliveries, fails and slows the portal and the bot, and SIGKILLs
//! and restarts `olbridge serve`; then every message is checked answered exactly once, in order.
//! Exits non-zero if anything was lost, duplicated, out of order or misrouted. Not a test: the
//! latency figures are reported, never asserted.
//!
//! `cargo build --release -p olbridge --bin olbridge` first (the bench runs `target/release/olbridge`), then
//! `cargo bench -p olbridge-tests --bench harness -- [--seed S] [--chats N] [--messages M]
//!   [--gap-ms LO,HI] [--kills K] [--kill-every-ms LO,HI] [--drop-ratio R] [--bot-fault-ratio R]
//!   [--bot-garbage] [--portal-faults-per-min F] [--reconcile-sec S] [--settle-s S] [--late-order-ok] [--report STEM]
//!   [--log RUST_LOG] [--keep-log FILE]`
//! The report is printed and written to `target/<STEM>.json` and `target/<STEM>.md` (`harness-report` unless
//! `--report` says otherwise; `target` is `CARGO_TARGET_DIR` when set).

use std::time::Duration;

use olbridge_harness::args::{num, range, value};
use olbridge_tests::harness::{self, HarnessOptions};

fn options(args: &[String]) -> anyhow::Result<HarnessOptions> {
    let d = HarnessOptions::default();
    Ok(HarnessOptions {
        seed: num(args, "--seed", d.seed)?,
        chats: num(args, "--chats", d.chats)?,
        messages: num(args, "--messages", d.messages)?,
        gap_ms: range(args, "--gap-ms", d.gap_ms)?,
        kills: num(args, "--kills", d.kills)?,
        kill_every_ms: range(args, "--kill-every-ms", d.kill_every_ms)?,
        drop_ratio: num(args, "--drop-ratio", d.drop_ratio)?,
        bot_fault_ratio: num(args, "--bot-fault-ratio", d.bot_fault_ratio)?,
        bot_garbage: args.iter().any(|a| a == "--bot-garbage"),
        portal_faults_per_min: num(args, "--portal-faults-per-min", d.portal_faults_per_min)?,
        reconcile_sec: num(args, "--reconcile-sec", d.reconcile_sec)?,
        settle: Duration::from_secs(num(args, "--settle-s", d.settle.as_secs())?),
        late_order_ok: args.iter().any(|a| a == "--late-order-ok"),
        log_level: value(args, "--log"),
        keep_log: value(args, "--keep-log").map(std::path::PathBuf::from),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; everything after `--` is ours.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let opts = options(&args)?;
    let command = format!("cargo bench -p olbridge-tests --bench harness -- {}", args.join(" "));
    let report = harness::run(opts).await?;
    let md = report.markdown(command.trim_end());
    println!("{md}");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(target, std::path::PathBuf::from);
    let stem = value(&args, "--report").unwrap_or_else(|| "harness-report".to_owned());
    std::fs::write(target.join(format!("{stem}.md")), &md)?;
    std::fs::write(target.join(format!("{stem}.json")), serde_json::to_string_pretty(&report)?)?;
    anyhow::ensure!(report.ok(), "lost, duplicated, out-of-order or misrouted messages: see the report");
    Ok(())
}
