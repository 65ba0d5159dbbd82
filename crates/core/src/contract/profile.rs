//! The `ProfileStore` contract: a map by phone with optimistic concurrency (`put` writes only over
//! the version it was read at) and a retention purge on `updated_at`.

use serde_json::json;

use std::sync::Arc;

use super::{all_at_once, run_each, t};
use crate::domain::ids::Phone;
use crate::domain::profile::Profile;
use crate::ports::ProfileStore;

fn phone(raw: &str) -> Phone {
    Phone::parse(raw).expect("phone")
}

/// A profile with every field set, so a lossy serialisation shows.
fn full(raw: &str, updated_secs: i64) -> Profile {
    let mut p = Profile::new(phone(raw), t(0));
    p.merge(
        &json!({
            "name": "José Ñúñez", "language": "pt-BR", "location": "São Paulo", "last_context": "asked about prices",
            "consent": true, "tier": "gold", "orders": [1, 2, 3], "nested": {"a": null, "b": 1.5}
        }),
        t(updated_secs),
    );
    p
}

/// An unknown phone has no profile; a stored one comes back equal, field for field.
pub async fn put_then_get_round_trips<S: ProfileStore + ?Sized>(s: &S) {
    assert_eq!(s.get(&phone("+5511912345678")).await.expect("get"), None);
    let p = full("+5511912345678", 5);
    assert!(s.put(&p).await.expect("put"));
    assert_eq!(s.get(&p.phone).await.expect("get"), Some(Profile { version: 1, ..p }));
    assert_eq!(s.get(&phone("+5511900000000")).await.expect("get"), None);
}

/// `put` over the version it was read at replaces the whole profile; over a stale version it
/// writes nothing and says so.
pub async fn put_replaces_only_the_version_it_read<S: ProfileStore + ?Sized>(s: &S) {
    let p = full("+4917612345678", 5);
    assert!(s.put(&p).await.expect("put"));
    assert!(!s.put(&p).await.expect("put"), "version 0 is stale once a profile is stored");
    let mut newer = Profile::new(p.phone.clone(), t(0));
    newer.merge(&json!({"name": "Ana"}), t(9));
    newer.version = 1;
    assert!(s.put(&newer).await.expect("put"));
    assert!(!s.put(&newer).await.expect("put"), "version 1 is stale now");
    assert_eq!(s.get(&p.phone).await.expect("get"), Some(Profile { version: 2, ..newer }));
}

/// Many writers of one profile read at the same version: exactly one wins.
pub async fn concurrent_puts_have_one_winner<S: ProfileStore + ?Sized + 'static>(s: Arc<S>) {
    let results = all_at_once(s.clone(), 16, |s, i| async move {
        let mut p = full("+4917600000000", 1);
        p.merge(&json!({"writer": i}), t(2));
        s.put(&p).await.expect("put")
    })
    .await;
    assert_eq!(results.iter().filter(|w| **w).count(), 1, "{results:?}");
}

/// `delete` says whether a profile existed, and forgets it.
pub async fn delete_forgets<S: ProfileStore + ?Sized>(s: &S) {
    let p = full("+4917612345678", 5);
    assert!(s.put(&p).await.expect("put"));
    assert!(s.delete(&p.phone).await.expect("delete"));
    assert_eq!(s.get(&p.phone).await.expect("get"), None);
    assert!(!s.delete(&p.phone).await.expect("delete again"));
}

/// `purge_before` deletes profiles with `updated_at` strictly before the cutoff.
pub async fn purge_deletes_stale_profiles<S: ProfileStore + ?Sized>(s: &S) {
    let (old, edge, fresh) = (full("+71111111111", 10), full("+72222222222", 20), full("+73333333333", 30));
    for p in [&old, &edge, &fresh] {
        s.put(p).await.expect("put");
    }
    assert_eq!(s.purge_before(t(20)).await.expect("purge"), 1);
    assert_eq!(s.get(&old.phone).await.expect("get"), None);
    assert_eq!(s.get(&edge.phone).await.expect("get"), Some(Profile { version: 1, ..edge }));
    assert_eq!(s.get(&fresh.phone).await.expect("get"), Some(Profile { version: 1, ..fresh }));
}

/// Runs every behaviour of this module, each on a fresh adapter from `fresh`.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: ProfileStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    run_each!(fresh: put_then_get_round_trips, put_replaces_only_the_version_it_read, delete_forgets, purge_deletes_stale_profiles);
    run_each!(fresh => arc: concurrent_puts_have_one_winner);
}
