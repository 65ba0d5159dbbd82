//! `olbridge canary`: one synthetic canary (`olbridge_core::usecase::canary`) through the canary
//! dialog; exit code 0 when the bot replied, 1 when it did not (or replied with the fallback
//! message), with one line saying the latency or why. `olbridge serve` runs the same canary every
//! `OLBRIDGE_CANARY_EVERY_SEC` when that is set ([`every`]).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use olbridge_core::b24::{B24Client, ClientOptions};
use olbridge_core::config::Config;
use olbridge_core::usecase::canary::{self, CanaryResult, CanarySettings};

/// Runs one canary with the configuration's dialog and timeout.
pub async fn once(config: &Config) -> anyhow::Result<CanaryResult> {
    let settings = CanarySettings::from_config(config)
        .context("no canary dialog: set B24_BOT_ID (the canary writes to the bot's private dialog) or OLBRIDGE_CANARY_DIALOG")?;
    let webhook = config.portal.webhook.clone().context("B24_WEBHOOK_BASE is not set: the canary writes as the webhook's user")?;
    let client = B24Client::new(webhook, ClientOptions::default())?;
    Ok(canary::run(&client, &settings, &canary::nonce()).await)
}

/// `olbridge canary`.
pub async fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let result = once(config).await?;
    if result.passed() {
        crate::outln!("{}", result.line())?;
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{}", result.line());
        Ok(ExitCode::FAILURE)
    }
}

/// Inside `olbridge serve`: a canary every `period`, each result one log line (INFO passed, ERROR
/// failed). Runs until the task is aborted.
pub async fn every(config: Config, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: give the bridge a period to come up first.
    tick.tick().await;
    loop {
        tick.tick().await;
        match once(&config).await {
            Ok(r) if r.passed() => tracing::info!(canary = "passed", "{}", r.line()),
            Ok(r) => tracing::error!(canary = "failed", "{}", r.line()),
            Err(e) => tracing::error!(canary = "failed", "canary could not run: {e:#}"),
        }
    }
}
