//! Operator helpers for the admin CLI: the dead-letter list and retention purges.

use std::time::Duration;

use chrono::{DateTime, Utc};
use olbridge_core::domain::event::{GroupId, Job};
use olbridge_core::domain::ids::DedupKey;
use olbridge_core::ports::{ChatStore, IdempotencyStore, ProfileStore, StoreResult};

use super::{Fail, SqliteStore, from_ms, ms};

/// A job that used all its attempts and waits for an operator.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Its de-duplication key.
    pub key: DedupKey,
    /// Its FIFO group (the chat).
    pub group: GroupId,
    /// Deliveries made.
    pub attempt: u32,
    /// The error given with the last `retry`.
    pub error: String,
    /// When it was dead-lettered.
    pub dead_at: DateTime<Utc>,
    /// The job itself.
    pub job: Job,
}

/// How long each kind of record is kept. The defaults keep de-duplication records well past the
/// furthest any source looks back (polling and reconciliation revisit hours, not weeks), history as
/// long as a conversation can plausibly resume, and profiles as the configuration's default says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Done idempotency records and the queue's keys of acked jobs.
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
    /// Done idempotency records.
    pub done_keys: u64,
    /// Queue de-duplication records of acked jobs.
    pub queue_keys: u64,
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
    /// Dead-lettered jobs, oldest first, with their last error.
    pub async fn dead_letters(&self) -> StoreResult<Vec<DeadLetter>> {
        self.run(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT key, grp, attempt, COALESCE(last_error, ''), dead_at, payload FROM jobs
                 WHERE dead_at IS NOT NULL ORDER BY dead_at, seq",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?, r.get::<_, i64>(4)?, r.get::<_, String>(5)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (key, group, attempt, error, dead_at, payload) = row?;
                out.push(DeadLetter {
                    attempt: u32::try_from(attempt).map_err(|_| Fail::Corrupt(format!("job {key} has attempt {attempt}")))?,
                    key: DedupKey::from_stored(key),
                    group: GroupId::from_stored(group),
                    error,
                    dead_at: from_ms(dead_at)?,
                    job: serde_json::from_str(&payload)?,
                });
            }
            Ok(out)
        })
        .await
    }

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
            done_keys: self.purge_done_before(keys_cutoff).await?,
            queue_keys: self.purge_queue_keys_before(keys_cutoff).await?,
            history: self.purge_history_before(before(now, retention.history)).await?,
            profiles: self.purge_before(before(now, retention.profiles)).await?,
            turns: self.purge_turns_before(before(now, retention.turns)).await?,
        })
    }
}
