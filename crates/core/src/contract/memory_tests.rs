//! The memory adapter against every contract suite.

use crate::memory::MemoryStore;

async fn fresh() -> MemoryStore {
    MemoryStore::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_idempotency() {
    super::idempotency::run_all(fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_queue() {
    super::queue::run_all(fresh).await;
}

#[tokio::test]
async fn memory_chat() {
    super::chat::run_all(fresh).await;
}

#[tokio::test]
async fn memory_profile() {
    super::profile::run_all(fresh).await;
}

#[tokio::test]
async fn memory_log() {
    super::log::run_all(fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_meta() {
    super::meta::run_all(fresh).await;
}

#[tokio::test]
async fn memory_privacy() {
    super::privacy::run_all(fresh).await;
    super::privacy::jobs_carrying_the_phone_are_exported_and_erased(&fresh().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_cost() {
    super::cost::run_all(fresh).await;
}

#[tokio::test]
async fn memory_timeline() {
    super::timeline::run_all(|| async { crate::memory::MemoryOutbox::new() }).await;
}
