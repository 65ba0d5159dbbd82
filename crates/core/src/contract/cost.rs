//! The `AnswerCache` and `UsageCounters` contracts.
//!
//! Cache semantics pinned here: a stored entry is found on its line and key until it expires; an
//! entry of another knowledge-base version than the line's current one is a miss (the line's
//! version is answered either way), and storing again replaces it; lines are independent.
//! Counter semantics: additions accumulate per subject and name; the same token twice in a row
//! counts once; concurrent additions with distinct tokens all count; erasing a phone's data
//! ([`Privacy::erase`]) removes that phone's counters and those of its chats, and no other.

use std::sync::Arc;

use super::{all_at_once, run_each, t};
use crate::domain::ids::{ChatId, Phone};
use crate::ports::{AnswerCache, CacheLookup, CachedAnswer, ChatStore, Privacy, Subject, UsageCounters};

fn answer(text: &str, version: Option<&str>) -> CachedAnswer {
    CachedAnswer { chunks: vec![text.to_owned(), "— olá, привет".to_owned()], kb_version: version.map(str::to_owned) }
}

/// Found until it expires; lines and keys are independent.
pub async fn entries_are_found_until_they_expire<S: AnswerCache + ?Sized>(s: &S) {
    assert_eq!(s.lookup("1", "k", t(0)).await.expect("lookup"), CacheLookup::default(), "empty");
    s.store("1", "k", &answer("open 9–18", None), t(0), t(100)).await.expect("store");
    assert_eq!(s.lookup("1", "k", t(99)).await.expect("lookup").answer, Some(answer("open 9–18", None)));
    assert_eq!(s.lookup("1", "k", t(100)).await.expect("lookup").answer, None, "expired");
    assert_eq!(s.lookup("2", "k", t(0)).await.expect("lookup").answer, None, "another line");
    assert_eq!(s.lookup("1", "other", t(0)).await.expect("lookup").answer, None, "another key");
    s.store("1", "k", &answer("open 8–20", None), t(0), t(200)).await.expect("replace");
    assert_eq!(s.lookup("1", "k", t(150)).await.expect("lookup").answer, Some(answer("open 8–20", None)));
}

/// A new knowledge-base version makes older entries misses; the next store under it hits.
pub async fn a_new_version_invalidates<S: AnswerCache + ?Sized>(s: &S) {
    s.set_version("1", "v1").await.expect("version");
    s.store("1", "k", &answer("old", Some("v1")), t(0), t(100)).await.expect("store");
    s.store("2", "k", &answer("unversioned", None), t(0), t(100)).await.expect("store");
    let found = s.lookup("1", "k", t(0)).await.expect("lookup");
    assert_eq!((found.answer, found.kb_version.as_deref()), (Some(answer("old", Some("v1"))), Some("v1")));
    s.set_version("1", "v2").await.expect("version");
    let found = s.lookup("1", "k", t(0)).await.expect("lookup");
    assert_eq!((found.answer, found.kb_version.as_deref()), (None, Some("v2")), "a v1 entry under v2 is a miss");
    s.store("1", "k", &answer("new", Some("v2")), t(0), t(100)).await.expect("store");
    assert_eq!(s.lookup("1", "k", t(0)).await.expect("lookup").answer, Some(answer("new", Some("v2"))));
    assert_eq!(s.lookup("2", "k", t(0)).await.expect("lookup").answer, Some(answer("unversioned", None)), "line 2 has no version");
}

fn phone(raw: &str) -> Subject {
    Subject::Phone(Phone::parse(raw).expect("phone"))
}

fn chat(n: u64) -> Subject {
    Subject::Chat(ChatId::new(n).expect("chat"))
}

/// Additions accumulate per subject and name; a repeated token counts once.
pub async fn counters_add_once_per_token<S: UsageCounters + ?Sized>(s: &S) {
    let (p, c) = (phone("+5511912345678"), chat(1763));
    assert_eq!(s.count(&p, "win#1").await.expect("count"), 0);
    assert_eq!(s.add(&p, "win#1", "a", 1, t(0), t(60)).await.expect("add"), 1);
    assert_eq!(s.add(&p, "win#1", "b", 3, t(0), t(60)).await.expect("add"), 4);
    assert_eq!(s.add(&p, "win#1", "b", 3, t(0), t(60)).await.expect("add"), 4, "a retried turn counts once");
    assert_eq!(s.add(&p, "win#2", "b", 2, t(0), t(120)).await.expect("add"), 2, "another name");
    assert_eq!(s.add(&c, "win#1", "c", 1, t(0), t(60)).await.expect("add"), 1, "another subject");
    assert_eq!(s.count(&p, "win#1").await.expect("count"), 4);
}

/// Concurrent additions with distinct tokens all count.
pub async fn concurrent_additions_all_count<S: UsageCounters + ?Sized + 'static>(s: Arc<S>) {
    let p = phone("+5511912345678");
    let totals = all_at_once(s.clone(), 16, |s, i| {
        let p = p.clone();
        async move { s.add(&p, "day#2025-01-01", &format!("turn{i}"), 1, t(0), t(86_400)).await.expect("add") }
    })
    .await;
    let mut sorted = totals.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=16).collect::<Vec<u64>>(), "every addition saw its own total: {totals:?}");
    assert_eq!(s.count(&p, "day#2025-01-01").await.expect("count"), 16);
}

/// Erase reaches the phone's counters and its linked chats'; other counters stay.
pub async fn erase_reaches_counters<S: UsageCounters + ChatStore + Privacy + ?Sized>(s: &S) {
    let raw = "+5511912345678";
    let (p, other) = (phone(raw), phone("+4917600000001"));
    s.link_phone(ChatId::new(1763).expect("chat"), &Phone::parse(raw).expect("phone"), t(0)).await.expect("link");
    s.add(&p, "win#1", "a", 5, t(0), t(60)).await.expect("add");
    s.add(&p, "day#2025-01-01", "a", 1, t(0), t(86_400)).await.expect("add");
    s.add(&chat(1763), "win#1", "a", 2, t(0), t(60)).await.expect("add");
    s.add(&other, "win#1", "a", 7, t(0), t(60)).await.expect("add");
    s.add(&chat(1764), "win#1", "a", 3, t(0), t(60)).await.expect("add");
    s.erase(&Phone::parse(raw).expect("phone")).await.expect("erase");
    assert_eq!(s.count(&p, "win#1").await.expect("count"), 0);
    assert_eq!(s.count(&p, "day#2025-01-01").await.expect("count"), 0);
    assert_eq!(s.count(&chat(1763), "win#1").await.expect("count"), 0, "the phone's chat");
    assert_eq!(s.count(&other, "win#1").await.expect("count"), 7);
    assert_eq!(s.count(&chat(1764), "win#1").await.expect("count"), 3);
}

/// Runs every cache and counter behaviour, each on a fresh store.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: AnswerCache + UsageCounters + ChatStore + Privacy + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    run_each!(fresh: entries_are_found_until_they_expire, a_new_version_invalidates, counters_add_once_per_token, erase_reaches_counters);
    run_each!(fresh => arc: concurrent_additions_all_count);
}
