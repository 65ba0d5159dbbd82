//! The run lease: one named value in the [`MetaStore`] ([`LEASE_NAME`]) saying which invocation
//! polls and until when, so two overlapping invocations (a run still going when the schedule fires
//! again, a retried event, a manual invoke) never poll at once.
//!
//! The value is `{"owner": <request id>, "until": <epoch ms>}`, written by compare-and-set on the
//! store's version: of two invocations that read the same version, one writes and the other gets a
//! conflict and stands back. A lease is free when nothing is stored, when it was released (no
//! owner), or when its `until` has passed — the holder's deadline, which Lambda enforces, so a lease
//! never outlives an invocation that crashed or was killed: the first run after its deadline takes
//! it over. Each pass renews it (the same compare-and-set, which also tells the holder if it was
//! taken from it); the end of a run releases it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use olbridge_core::ports::{MetaPut, MetaStore, StoreError, Versioned};
use serde::{Deserialize, Serialize};

/// The [`MetaStore`] name of the lease.
pub const LEASE_NAME: &str = "poller/lease";

/// What the stored value says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseValue {
    /// The holder's request id; empty once released.
    pub owner: String,
    /// When the lease ends, in epoch milliseconds.
    pub until: i64,
}

impl LeaseValue {
    fn parse(v: &Versioned) -> Result<Self, StoreError> {
        serde_json::from_str(&v.value).map_err(|e| StoreError::Corrupt(format!("{LEASE_NAME}: {e}")))
    }

    fn encode(&self) -> String {
        serde_json::json!({"owner": self.owner, "until": self.until}).to_string()
    }

    /// Whether the lease is free at `now` (released or expired).
    pub fn free_at(&self, now: DateTime<Utc>) -> bool {
        self.owner.is_empty() || self.until <= now.timestamp_millis()
    }
}

/// Why a run did not get the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// Who holds it.
    pub owner: String,
    /// Until when.
    pub until: DateTime<Utc>,
}

/// A lease this invocation holds.
#[derive(Debug)]
pub struct Held {
    owner: String,
    version: u64,
    until: DateTime<Utc>,
}

impl Held {
    /// When the lease ends unless renewed.
    pub fn until(&self) -> DateTime<Utc> {
        self.until
    }
}

/// The lease over a store.
#[derive(Clone)]
pub struct Lease {
    meta: Arc<dyn MetaStore>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("name", &LEASE_NAME).finish_non_exhaustive()
    }
}

impl Lease {
    /// The lease in `meta`.
    pub fn new(meta: Arc<dyn MetaStore>) -> Self {
        Self { meta }
    }

    /// Takes the lease for `owner` until `until`, if it is free at `now` (or already `owner`'s).
    pub async fn acquire(&self, owner: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<Result<Held, Busy>, StoreError> {
        let stored = self.meta.get_value(LEASE_NAME).await?;
        let expected = match &stored {
            None => None,
            Some(v) => {
                let lease = LeaseValue::parse(v)?;
                if !lease.free_at(now) && lease.owner != owner {
                    return Ok(Err(busy(&lease)));
                }
                Some(v.version)
            }
        };
        let value = LeaseValue { owner: owner.to_owned(), until: until.timestamp_millis() };
        match self.meta.put_value(LEASE_NAME, &value.encode(), expected).await? {
            MetaPut::Written(v) => Ok(Ok(Held { owner: owner.to_owned(), version: v.version, until })),
            // Another invocation wrote between our read and our write: it holds the lease now.
            MetaPut::Conflict(Some(v)) => Ok(Err(busy(&LeaseValue::parse(&v)?))),
            MetaPut::Conflict(None) => Ok(Err(Busy { owner: String::new(), until: now })),
        }
    }

    /// Renews `held` until `until`. `Ok(false)`: the lease was taken from us (it had expired and
    /// another invocation took it over); stop polling.
    pub async fn renew(&self, held: &mut Held, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let value = LeaseValue { owner: held.owner.clone(), until: until.timestamp_millis() };
        match self.meta.put_value(LEASE_NAME, &value.encode(), Some(held.version)).await? {
            MetaPut::Written(v) => {
                held.version = v.version;
                held.until = until;
                Ok(true)
            }
            MetaPut::Conflict(_) => Ok(false),
        }
    }

    /// Releases `held` (a no-op when it was taken from us meanwhile).
    pub async fn release(&self, held: Held) -> Result<(), StoreError> {
        let value = LeaseValue { owner: String::new(), until: 0 };
        self.meta.put_value(LEASE_NAME, &value.encode(), Some(held.version)).await.map(|_| ())
    }

    /// What is stored now (for tests and the operator).
    pub async fn current(&self) -> Result<Option<LeaseValue>, StoreError> {
        self.meta.get_value(LEASE_NAME).await?.map(|v| LeaseValue::parse(&v)).transpose()
    }

    /// Writes a lease as a crashed invocation would have left it (tests, and the operator who
    /// wants to stop polling for a while: a lease held by a made-up owner until a given time).
    pub async fn force(&self, value: &LeaseValue) -> Result<(), StoreError> {
        let expected = self.meta.get_value(LEASE_NAME).await?.map(|v| v.version);
        match self.meta.put_value(LEASE_NAME, &value.encode(), expected).await? {
            MetaPut::Written(_) => Ok(()),
            MetaPut::Conflict(_) => Err(StoreError::Backend(format!("{LEASE_NAME} changed while it was being written"))),
        }
    }
}

fn busy(lease: &LeaseValue) -> Busy {
    Busy { owner: lease.owner.clone(), until: DateTime::from_timestamp_millis(lease.until).unwrap_or_default() }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;
    use olbridge_core::memory::MemoryStore;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time")
    }

    #[tokio::test]
    async fn one_holder_at_a_time_an_expired_or_released_lease_is_taken_over() {
        let lease = Lease::new(Arc::new(MemoryStore::new()));
        let mut a = lease.acquire("a", at(0), at(50)).await.expect("store").expect("free");
        let b = lease.acquire("b", at(10), at(60)).await.expect("store");
        assert_eq!(b.expect_err("held"), Busy { owner: "a".into(), until: at(50) });
        assert!(lease.renew(&mut a, at(55)).await.expect("store"));
        assert!(lease.acquire("b", at(52), at(60)).await.expect("store").is_err(), "renewed");
        // a crashed: its lease ends at its deadline and b takes it over; a's renewal then fails.
        let b = lease.acquire("b", at(56), at(100)).await.expect("store").expect("expired");
        assert!(!lease.renew(&mut a, at(70)).await.expect("store"), "taken over");
        lease.release(a).await.expect("a stale release is a no-op");
        assert_eq!(lease.current().await.expect("store").map(|l| l.owner), Some("b".into()));
        lease.release(b).await.expect("release");
        assert!(lease.current().await.expect("store").is_some_and(|l| l.free_at(at(57))));
        assert!(lease.acquire("c", at(57), at(90)).await.expect("store").is_ok(), "released");
    }
}
