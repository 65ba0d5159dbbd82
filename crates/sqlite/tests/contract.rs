//! The SQLite adapter against every contract suite of core's storage ports. Each behaviour gets
//! a fresh store in its own directory under one temporary root.

// Test code: a store that cannot be opened is a failed test.
#![allow(clippy::expect_used)]

use std::future::{Ready, ready};
use std::path::Path;

use olbridge_core::contract;
use olbridge_sqlite::SqliteStore;

/// A factory of fresh stores in numbered directories under `root`.
fn fresh(root: &Path) -> impl FnMut() -> Ready<SqliteStore> + '_ {
    let mut n = 0;
    move || {
        n += 1;
        ready(SqliteStore::open(&root.join(n.to_string())).expect("open a fresh store"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_idempotency_contract() {
    let root = tempfile::tempdir().expect("tempdir");
    contract::idempotency::run_all(fresh(root.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_queue_contract() {
    let root = tempfile::tempdir().expect("tempdir");
    contract::queue::run_all(fresh(root.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_chat_contract() {
    let root = tempfile::tempdir().expect("tempdir");
    contract::chat::run_all(fresh(root.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_profile_contract() {
    let root = tempfile::tempdir().expect("tempdir");
    contract::profile::run_all(fresh(root.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_log_contract() {
    let root = tempfile::tempdir().expect("tempdir");
    contract::log::run_all(fresh(root.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_meta_contract() {
    let root = tempfile::tempdir().expect("tempdir");
    contract::meta::run_all(fresh(root.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_privacy_contract() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut fresh = fresh(root.path());
    contract::privacy::run_all(&mut fresh).await;
    contract::privacy::jobs_carrying_the_phone_are_exported_and_erased(&fresh().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_cost_contract() {
    let root = tempfile::tempdir().expect("tempdir");
    contract::cost::run_all(fresh(root.path())).await;
}

#[tokio::test]
async fn sqlite_timeline_contract() {
    let root = tempfile::tempdir().expect("tempdir");
    contract::timeline::run_all(fresh(root.path())).await;
}
