//! The fault harness on the AWS path (see `tests/lambda/harness.rs`): N customers write M
//! messages each; the receiver's and the worker's handlers run in process against moto (DynamoDB,
//! SQS FIFO) and the emulator, and a seeded schedule kills worker invocations (the handler's future
//! dropped mid-invocation, or the records left undeleted, or part-deleted, after it finished); then
//! every message is checked answered exactly once, in order. Exits non-zero if anything was lost,
//! duplicated, out of order or misrouted. Not a test: the latency figures are reported, never
//! asserted.
//!
//! Needs a moto server: `.venv/bin/moto_server -H 127.0.0.1 -p 5123 &` and
//! `export AWS_ENDPOINT_URL=http://127.0.0.1:5123 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
//! AWS_REGION=eu-central-1`, then
//! `cargo bench -p olbridge-worker --bench harness_aws -- [--seed S] [--chats N] [--messages M]
//!   [--gap-ms LO,HI] [--kills K] [--kill-every-ms LO,HI] [--kill-after-ms LO,HI] [--pollers P]
//!   [--visibility-s V] [--lambda-timeout-ms T] [--think-ms LO,HI] [--settle-s S] [--report STEM]`
//! The report is printed and written to `target/<STEM>.json` and `.md` (`harness-aws-report` unless
//! `--report` says otherwise; `target` is `CARGO_TARGET_DIR` when set). `RUST_LOG` (e.g.
//! `olbridge_core=debug`) logs the handlers to stderr.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

// The Lambda tests' world and the harness itself, shared with the test binary (which runs a small
// seeded instance of it); the bench uses part of the world only.
#[allow(dead_code)]
#[path = "../tests/lambda/support.rs"]
mod support;

#[path = "../tests/lambda/harness.rs"]
mod harness;

use std::time::Duration;

use harness::AwsHarnessOptions;
use olbridge_harness::args::{num, range, value};

fn options(args: &[String]) -> anyhow::Result<AwsHarnessOptions> {
    let d = AwsHarnessOptions::default();
    Ok(AwsHarnessOptions {
        seed: num(args, "--seed", d.seed)?,
        chats: num(args, "--chats", d.chats)?,
        messages: num(args, "--messages", d.messages)?,
        gap_ms: range(args, "--gap-ms", d.gap_ms)?,
        kills: num(args, "--kills", d.kills)?,
        kill_every_ms: range(args, "--kill-every-ms", d.kill_every_ms)?,
        kill_after_ms: range(args, "--kill-after-ms", d.kill_after_ms)?,
        pollers: num(args, "--pollers", d.pollers)?,
        visibility_s: num(args, "--visibility-s", d.visibility_s)?,
        lambda_timeout: Duration::from_millis(num(args, "--lambda-timeout-ms", d.lambda_timeout.as_millis() as u64)?),
        think_ms: range(args, "--think-ms", d.think_ms)?,
        settle: Duration::from_secs(num(args, "--settle-s", d.settle.as_secs())?),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_writer(std::io::stderr).init();
    // `cargo bench` passes `--bench`; everything after `--` is ours.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let opts = options(&args)?;
    anyhow::ensure!(opts.lambda_timeout.as_secs() < u64::from(opts.visibility_s), "--lambda-timeout-ms must be shorter than --visibility-s (AWS requires it)");
    let command = format!("cargo bench -p olbridge-worker --bench harness_aws -- {}", args.join(" "));
    let report = harness::run(&opts).await?;
    let md = report.markdown(command.trim_end());
    println!("{md}");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(target, std::path::PathBuf::from);
    let stem = value(&args, "--report").unwrap_or_else(|| "harness-aws-report".to_owned());
    std::fs::write(target.join(format!("{stem}.md")), &md)?;
    std::fs::write(target.join(format!("{stem}.json")), serde_json::to_string_pretty(&report)?)?;
    anyhow::ensure!(report.ok(), "lost, duplicated, out-of-order or misrouted messages: see the report");
    Ok(())
}
