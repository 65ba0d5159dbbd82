//! Reports and requests on the local store: `olbridge dead-letters` and `privacy`
//! (`export`, `erase`, and `forget`, erase's alias); `stats` and `report` are in `kpi` and `report`.
//!
//! They open the store next to a running bridge (SQLite in WAL mode allows it) without taking the
//! bridge's exclusive lock and without recovering its in-flight work.

use std::process::ExitCode;

use chrono::Utc;
use olbridge_core::config::Config;
use olbridge_core::domain::ids::{DedupKey, Phone};
use olbridge_core::ports::{DeadLetters, Privacy};

use olbridge_sqlite::{Compacted, SqliteStore};

/// `olbridge dead-letters`: turns that were given up, with why; `--redrive` puts them back (their
/// keys reopened), so they are processed again once the cause is fixed.
pub async fn dead_letters(config: &Config, redrive: Option<Redrive>) -> anyhow::Result<ExitCode> {
    let store = SqliteStore::open_for_admin(&config.runner.data_dir)?;
    let Some(which) = redrive else {
        let dead = store.dead_letters(usize::MAX).await?;
        if dead.is_empty() {
            crate::outln!("no dead letters")?;
        }
        for d in dead {
            crate::outln!(
                "{}  {}  ({} failure(s), {} interruption(s)): {}",
                d.dead_at.format("%Y-%m-%d %H:%M:%S"),
                d.job.key,
                d.failures,
                d.interruptions,
                d.reason
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let keys = match which {
        Redrive::All => None,
        Redrive::Key(k) => Some(vec![DedupKey::from_stored(k)]),
    };
    let back = olbridge_core::usecase::job::redrive(&store, &store, &store, keys.as_deref(), Utc::now()).await?;
    match back.len() {
        0 => crate::outln!("nothing to put back (no such dead letter)"),
        n => crate::outln!("put {n} job(s) back on the queue; a running bridge picks them up within seconds"),
    }?;
    for k in back {
        crate::outln!("  {k}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Which dead letters `--redrive` puts back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redrive {
    /// Every one.
    All,
    /// The one with this key.
    Key(String),
}

/// `olbridge privacy export --phone P`: everything stored about the phone, as JSON on stdout.
pub async fn privacy_export(config: &Config, phone: &str) -> anyhow::Result<ExitCode> {
    let phone = Phone::parse(phone).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = SqliteStore::open_for_admin(&config.runner.data_dir)?;
    let data = store.export(&phone).await?;
    crate::outln!("{}", serde_json::to_string_pretty(&data)?)?;
    Ok(ExitCode::SUCCESS)
}

/// `olbridge privacy erase --phone P` (and its alias `olbridge forget`): deletes everything
/// `export` shows, then compacts the database so the deleted bytes leave the files.
pub async fn privacy_erase(config: &Config, phone: &str) -> anyhow::Result<ExitCode> {
    let phone = Phone::parse(phone).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = SqliteStore::open_for_admin(&config.runner.data_dir)?;
    let (e, compacted) = store.erase_and_compact(&phone).await?;
    crate::outln!(
        "erased for {}: {} profile(s), {} chat(s) with {} history turn(s), {} turn log record(s), {} job(s), {} idempotency record(s)",
        phone.redacted(),
        e.profiles,
        e.chats,
        e.history,
        e.turns,
        e.jobs,
        e.claims
    )?;
    match compacted {
        Compacted::Yes => crate::outln!("database compacted: no deleted data is left in its files"),
        Compacted::Busy => crate::outln!(
            "the running bridge kept the database from being compacted: deleted data may linger in {}-wal until its next checkpoint; run erase again, or stop the bridge first",
            olbridge_sqlite::DB_FILE
        ),
    }?;
    Ok(ExitCode::SUCCESS)
}
