//! Tests that need the adapter's insides (the contract suites and the rest are in
//! `tests/dynamo.rs`). They run against moto, like every AWS test.

use olbridge_core::contract::{key, t};
use olbridge_core::domain::ids::Phone;
use olbridge_core::domain::profile::Profile;
use olbridge_core::ports::{Admission, IdempotencyStore, MetaPut, MetaStore, ProfileStore, Versioned};

use super::{DynamoStore, Retention, stamp};
use crate::testing::{config, fresh_table};

async fn fresh() -> DynamoStore {
    let cfg = config().await;
    DynamoStore::from_config(&cfg, fresh_table(&cfg).await, Retention::default())
}

/// A write the SDK repeated after losing its answer finds its own first attempt (same write id)
/// and reports the success it was; another writer's attempt is still refused.
#[tokio::test]
async fn a_repeated_write_recognises_its_first_attempt() {
    let s = fresh().await;
    let k = key("repeat:admit");
    assert_eq!(s.admit_as(&k, t(0), "first").await.unwrap(), Admission::New);
    assert_eq!(s.admit_as(&k, t(0), "first").await.unwrap(), Admission::New, "the SDK's repeat");
    assert_eq!(s.admit(&k, t(1)).await.unwrap(), Admission::Duplicate, "another receiver");

    let p = Profile::new(Phone::parse("+4917612345678").unwrap(), t(0));
    assert!(s.put_profile_as(&p, "first").await.unwrap());
    assert!(s.put_profile_as(&p, "first").await.unwrap(), "the SDK's repeat");
    assert!(!s.put(&p).await.unwrap(), "another writer at the same version");
    assert_eq!(s.get(&p.phone).await.unwrap().map(|p| p.version), Some(1));

    let one = Versioned { value: "one".into(), version: 1 };
    assert_eq!(s.put_value_as("repeat", "one", None, "first").await.unwrap(), MetaPut::Written(one.clone()));
    assert_eq!(s.put_value_as("repeat", "one", None, "first").await.unwrap(), MetaPut::Written(one.clone()), "the SDK's repeat");
    assert_eq!(s.put_value("repeat", "two", None).await.unwrap(), MetaPut::Conflict(Some(one)), "another writer");
}

/// Stamps increase within the process, so ties sort in write order, and differ across writers.
#[test]
fn stamps_increase() {
    let stamps: Vec<String> = (0..1000).map(|_| stamp()).collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]));
}
