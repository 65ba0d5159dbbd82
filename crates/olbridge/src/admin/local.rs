//! Reports and requests on the local store: `olbridge stats` and `olbridge forget`.
//!
//! They open the store next to a running bridge (SQLite in WAL mode allows it) without taking the
//! bridge's exclusive lock and without recovering its in-flight work.

use std::process::ExitCode;

use chrono::{Duration, Utc};
use olbridge_core::config::Config;
use olbridge_core::domain::ids::Phone;
use olbridge_core::ports::{ProfileStore, TurnLog};

use olbridge_sqlite::SqliteStore;

/// `olbridge stats`: the last day's turns by outcome, latency percentiles, and recent turns.
pub async fn stats(config: &Config, recent: usize) -> anyhow::Result<ExitCode> {
    let store = SqliteStore::open_for_admin(&config.runner.data_dir)?;
    let since = Utc::now() - Duration::hours(24);
    let s = store.stats(since).await?;
    crate::outln!("last 24 h: {} turns", s.turns)?;
    for (outcome, n) in &s.by_outcome {
        crate::outln!("  {outcome:<12} {n}")?;
    }
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} ms"));
    crate::outln!("received -> answered   p50 {}  p95 {}", ms(s.p50_ms), ms(s.p95_ms))?;
    crate::outln!("bridge's own overhead  p50 {}  p95 {}", ms(s.overhead_p50_ms), ms(s.overhead_p95_ms))?;
    let rows = store.recent(recent).await?;
    if !rows.is_empty() {
        crate::outln!("\nrecent turns (newest first):")?;
    }
    for r in rows {
        let total = (r.timings.finished_at - r.timings.received_at).num_milliseconds();
        crate::outln!(
            "  {}  {:<10} {:<10} {:>6} ms (bot {} ms, {} call(s))",
            r.timings.received_at.format("%Y-%m-%d %H:%M:%S"),
            r.dialog,
            r.outcome.name(),
            total,
            r.timings.bot_ms.unwrap_or(0),
            r.bot_attempts
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `olbridge dead-letters`: jobs that used all their attempts, with their last error.
pub async fn dead_letters(config: &Config) -> anyhow::Result<ExitCode> {
    let store = SqliteStore::open_for_admin(&config.runner.data_dir)?;
    let dead = store.dead_letters().await?;
    if dead.is_empty() {
        crate::outln!("no dead letters")?;
    }
    for d in dead {
        crate::outln!("{}  {}  after {} deliveries: {}", d.dead_at.format("%Y-%m-%d %H:%M:%S"), d.key, d.attempt, d.error)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `olbridge forget <phone>`: deletes the stored profile of a phone number.
pub async fn forget(config: &Config, phone: &str) -> anyhow::Result<ExitCode> {
    let phone = Phone::parse(phone).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = SqliteStore::open_for_admin(&config.runner.data_dir)?;
    if store.delete(&phone).await? {
        crate::outln!("deleted the profile of {}", phone.redacted())?;
    } else {
        crate::outln!("no profile stored for {}", phone.redacted())?;
    }
    Ok(ExitCode::SUCCESS)
}
