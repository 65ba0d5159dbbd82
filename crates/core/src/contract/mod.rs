//! The contract suites: one per storage port, run against every adapter.
//!
//! Each behaviour is a public async function generic over the port (`&S` where `S: Port + ?Sized`),
//! so an adapter's tests can run one behaviour alone while debugging; each port module also has a
//! `run_all` that takes a factory of fresh, empty adapters and runs every behaviour on its own
//! adapter. The memory adapter runs them in this crate's tests; the SQLite adapter runs them in
//! `olbridge/tests/contract_sqlite.rs`; the AWS adapters will run them against local emulators.
//!
//! # Conventions
//! - Time is explicit: every call takes `now`, built with [`t()`](crate::contract::t) from a fixed origin. Nothing sleeps.
//! - Times are whole milliseconds, because adapters may store timestamps as integer milliseconds.
//! - A failing behaviour panics with a message naming what was expected; `run_all` prints the name
//!   of each behaviour before running it, so the failing one is the last name in the test output.
//! - Concurrency behaviours take an `Arc` and spawn tasks on the current Tokio runtime; run them on
//!   a multi-threaded runtime so the calls really overlap.

// A contract suite is test code: a failed call is a failed test, so `expect` is the right tool.
#![allow(clippy::expect_used)]

pub mod chat;
pub mod cost;
pub mod idempotency;
pub mod log;
pub mod meta;
pub mod privacy;
pub mod profile;
pub mod queue;
pub mod timeline;

#[cfg(test)]
mod memory_tests;

use chrono::{DateTime, Utc};

use crate::domain::event::{GroupId, Job, PortalEvent};
use crate::domain::ids::{ChatId, DedupKey, DialogId, MemberId, MessageId, PortalDomain};
use crate::domain::message::{Author, AuthorKind, InboundMessage, LinesContext, PortalRef, Source};

/// The suites' time origin (2025-01-01T00:00:00Z).
pub const ORIGIN_MS: i64 = 1_735_689_600_000;

/// The origin plus `secs` seconds.
pub fn t(secs: i64) -> DateTime<Utc> {
    t_ms(secs * 1000)
}

/// The origin plus `ms` milliseconds.
pub fn t_ms(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::milliseconds(ORIGIN_MS + ms)
}

/// A de-duplication key as the suites name them.
pub fn key(name: &str) -> DedupKey {
    DedupKey::from_stored(name.to_owned())
}

/// A job with the given group and key, carrying a realistic message (non-ASCII text, optional
/// fields set) so adapters that serialise payloads are exercised.
pub fn job(group: &str, key_name: &str) -> Job {
    let chat = ChatId::new(1763).expect("chat id");
    let message = InboundMessage {
        source: Source::BotPushV1,
        portal: PortalRef {
            member_id: MemberId::parse("contract").expect("member id"),
            domain: PortalDomain::parse("contract.bitrix24.test").expect("domain"),
        },
        message_id: MessageId::new(42).expect("message id"),
        chat_id: chat,
        dialog_id: DialogId::Chat(chat),
        author: Author { id: None, name: "Ana Müller".into(), kind: AuthorKind::Customer },
        text: format!("message {key_name} — olá, привет"),
        system: false,
        lines: LinesContext::default(),
        bot_id: None,
        language: Some("pt".into()),
        sent_at: t(0),
    };
    Job { version: Job::VERSION, key: key(key_name), group: GroupId::from_stored(group.to_owned()), received_at: t(0), event: PortalEvent::Message(message) }
}

/// Prints the behaviour's name, then runs it on a fresh adapter.
macro_rules! run_each {
    ($fresh:ident: $($behaviour:ident),+ $(,)?) => {
        $(
            eprintln!("contract: {}::{}", module_path!(), stringify!($behaviour));
            $behaviour(&$fresh().await).await;
        )+
    };
    ($fresh:ident => arc: $($behaviour:ident),+ $(,)?) => {
        $(
            eprintln!("contract: {}::{}", module_path!(), stringify!($behaviour));
            $behaviour(std::sync::Arc::new($fresh().await)).await;
        )+
    };
}
use run_each;

/// Runs `n` copies of `call` at once (released together by a barrier) and returns their results
/// in spawn order.
async fn all_at_once<S, T, F, Fut>(store: std::sync::Arc<S>, n: usize, call: F) -> Vec<T>
where
    S: ?Sized + Send + Sync + 'static,
    T: Send + 'static,
    F: Fn(std::sync::Arc<S>, usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let fut = call(store.clone(), i);
            tokio::spawn(async move {
                barrier.wait().await;
                fut.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(task.await.expect("a concurrent task panicked"));
    }
    out
}
