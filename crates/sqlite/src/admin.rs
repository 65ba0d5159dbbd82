//! Retention purges (the dead-letter list is the `DeadLetters` port, in `queue`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use olbridge_core::ports::{ChatStore, IdempotencyStore, ProfileStore, StoreResult};

use super::{SqliteStore, ms};

/// How long each kind of record is kept. The defaults keep de-duplication records well past the
/// furthest any source looks back (polling and reconciliation revisit hours, not weeks), history as
/// long as a conversation can plausibly resume, and profiles as the configuration's default says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Done idempotency records, and admissions whose job never came.
    pub keys: Duration,
    /// Conversation history.
    pub history: Duration,
    /// Profiles not updated for this long (`OLBRIDGE_PROFILE_RETENTION_DAYS`).
    pub profiles: Duration,
    /// The turn log.
    pub turns: Duration,
}

const DAY: Duration = Duration::from_secs(86_400);

impl Default for Retention {
    fn default() -> Self {
        Self { keys: DAY * 14, history: DAY * 30, profiles: DAY * 365, turns: DAY * 90 }
    }
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Idempotency records: done ones, and admissions whose job was lost.
    pub keys: u64,
    /// History turns.
    pub history: u64,
    /// Profiles.
    pub profiles: u64,
    /// Turn log records.
    pub turns: u64,
}

/// `now - d`, saturating at the earliest representable time.
fn before(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d).ok().and_then(|d| now.checked_sub_signed(d)).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl SqliteStore {
    /// Deletes turn log records of turns started before `cutoff`; returns how many.
    pub async fn purge_turns_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let cutoff = ms(cutoff);
        self.run(move |c| Ok(c.execute("DELETE FROM turns WHERE started_at < ?1", [cutoff])? as u64)).await
    }

    /// Applies `retention` at `now`: every kind of record older than its period goes. Dead letters
    /// are never purged here; they wait for an operator.
    pub async fn purge(&self, retention: &Retention, now: DateTime<Utc>) -> StoreResult<Purged> {
        let keys_cutoff = before(now, retention.keys);
        Ok(Purged {
            keys: IdempotencyStore::purge_before(self, keys_cutoff).await?,
            history: self.purge_history_before(before(now, retention.history)).await?,
            profiles: ProfileStore::purge_before(self, before(now, retention.profiles)).await?,
            turns: self.purge_turns_before(before(now, retention.turns)).await?,
        })
    }
}
