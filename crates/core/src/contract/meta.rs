//! The `MetaStore` contract.
//!
//! Semantics pinned here: `get` of an unknown name is `None`; `put(expected: None)` writes only when
//! the name does not exist (version 1); `put(expected: Some(v))` writes only when the stored
//! version is `v` (version `v + 1`); a failed condition changes nothing and answers what is stored;
//! of concurrent writers expecting the same version exactly one wins.

use std::sync::Arc;

use super::{all_at_once, run_each};
use crate::ports::{MetaPut, MetaStore, Versioned};

fn v(value: &str, version: u64) -> Versioned {
    Versioned { value: value.into(), version }
}

/// Create-only and compare-and-set.
pub async fn put_is_conditional<S: MetaStore + ?Sized>(s: &S) {
    assert_eq!(s.get_value("meta:a").await.expect("get"), None);
    assert_eq!(s.put_value("meta:a", "one", None).await.expect("put"), MetaPut::Written(v("one", 1)));
    assert_eq!(s.put_value("meta:a", "other", None).await.expect("put"), MetaPut::Conflict(Some(v("one", 1))), "exists");
    assert_eq!(s.put_value("meta:a", "two", Some(2)).await.expect("put"), MetaPut::Conflict(Some(v("one", 1))), "stale version");
    assert_eq!(s.put_value("meta:a", "two", Some(1)).await.expect("put"), MetaPut::Written(v("two", 2)));
    assert_eq!(s.get_value("meta:a").await.expect("get"), Some(v("two", 2)));
    assert_eq!(s.put_value("meta:b", "x", Some(1)).await.expect("put"), MetaPut::Conflict(None), "nothing to compare with");
    assert_eq!(s.get_value("meta:b").await.expect("get"), None);
}

/// Many writers expecting the same version: one wins.
pub async fn concurrent_puts_have_one_winner<S: MetaStore + ?Sized + 'static>(s: Arc<S>) {
    let results = all_at_once(s.clone(), 16, |s, i| async move { s.put_value("meta:race", &format!("w{i}"), None).await.expect("put") }).await;
    assert_eq!(results.iter().filter(|r| matches!(r, MetaPut::Written(_))).count(), 1, "{results:?}");
}

/// Runs every behaviour of this module, each on a fresh adapter from `fresh`.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: MetaStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    run_each!(fresh: put_is_conditional);
    run_each!(fresh => arc: concurrent_puts_have_one_winner);
}
