//! The `Privacy` contract: export finds everything stored about a phone (profile, linked chats
//! and their history and modes, their turn log records, jobs and idempotency records that carry
//! the phone), erase removes exactly that, and another customer's records stay.

use std::time::Duration;

use serde_json::json;

use super::{job, key, run_each, t};
use crate::domain::event::{Job, PortalEvent};
use crate::domain::ids::{ChatId, DialogId, MessageId, Phone};
use crate::domain::profile::Profile;
use crate::domain::turn::{TurnOutcome, TurnProgress, TurnRecord, TurnTimings};
use crate::ports::{ChatMode, ChatStore, HistoryTurn, IdempotencyStore, JobSink, Privacy, ProfileStore, TurnLog, WorkQueue, dialog_of};

/// The customer who asks to be forgotten.
pub const PHONE: &str = "+5511912345678";
/// Another customer, who must keep everything.
pub const OTHER: &str = "+4917600000001";

const LEASE: Duration = Duration::from_secs(30);

fn phone(raw: &str) -> Phone {
    Phone::parse(raw).expect("phone")
}

fn chat(n: u64) -> ChatId {
    ChatId::new(n).expect("chat id")
}

/// A job for a message in `chat_n` from `raw` (the phone in the Open Lines context and, without
/// the `+`, in the user code, as WhatsApp connectors put it).
pub fn job_from(raw: &str, key_name: &str, chat_n: u64) -> Job {
    let mut j = job(&format!("chat{chat_n}"), key_name);
    if let PortalEvent::Message(m) = &mut j.event {
        m.chat_id = chat(chat_n);
        m.dialog_id = DialogId::Chat(chat(chat_n));
        m.lines.phone = Some(phone(raw));
        let digits = raw.trim_start_matches('+');
        m.lines.user_code = Some(format!("whatsappbyedna|3|{digits}|{digits}"));
    }
    j
}

fn turn(chat_n: u64, secs: i64) -> TurnRecord {
    TurnRecord {
        keys: vec![key(&format!("privacy:{chat_n}:{secs}"))],
        dialog: dialog_of(chat(chat_n)),
        session_id: Some(7),
        outcome: TurnOutcome::Answered { reply_ids: MessageId::new(9).into_iter().collect() },
        timings: TurnTimings { received_at: t(secs), started_at: t(secs), bot_ms: Some(5), finished_at: t(secs + 1) },
        bot_attempts: 1,
        trace: Default::default(),
    }
}

fn said(text: &str, secs: i64) -> HistoryTurn {
    HistoryTurn { role: "customer".into(), text: text.into(), at: t(secs) }
}

/// Stores, for `raw`: a profile, chat `chat_n` linked with two history turns, a human mode and a
/// turn log record.
async fn customer<S>(s: &S, raw: &str, chat_n: u64)
where
    S: ChatStore + ProfileStore + TurnLog + ?Sized,
{
    let mut p = Profile::new(phone(raw), t(0));
    p.merge(&json!({"name": "Ana", "consent": true, "tier": "gold"}), t(0));
    assert!(s.put(&p).await.expect("put profile"));
    s.link_phone(chat(chat_n), &phone(raw), t(1)).await.expect("link");
    s.append_history(chat(chat_n), &said("olá", 1)).await.expect("history");
    s.append_history(chat(chat_n), &said("quero um humano", 2)).await.expect("history");
    s.set_human(chat(chat_n), None, "phrase", t(2)).await.expect("human");
    s.record(&turn(chat_n, 1)).await.expect("turn");
}

/// A claim in progress whose checkpoint carries a merged message from `raw` in `chat_n` (a chat
/// with no link: reached through the claim).
async fn claim_carrying<S: IdempotencyStore + ?Sized>(s: &S, raw: &str, key_name: &str, chat_n: u64) {
    let k = key(key_name);
    s.claim(&k, "w1", t(3), LEASE).await.expect("claim");
    let PortalEvent::Message(m) = job_from(raw, key_name, chat_n).event else { panic!("a message job") };
    let progress = TurnProgress { merged: vec![m], ..TurnProgress::default() };
    s.checkpoint(&k, "w1", &progress, t(3), LEASE).await.expect("checkpoint");
}

/// Export finds the profile, the linked chat's history, its turn log record, the claim that
/// carries the phone and the chat that claim names; nothing of the other customer.
pub async fn export_finds_everything_about_the_phone<S>(s: &S)
where
    S: ChatStore + ProfileStore + TurnLog + IdempotencyStore + Privacy + ?Sized,
{
    assert!(s.export(&phone(PHONE)).await.expect("export").is_empty(), "nothing stored yet");
    customer(s, PHONE, 1763).await;
    customer(s, OTHER, 1764).await;
    claim_carrying(s, PHONE, "privacy:claim", 1765).await;
    s.append_history(chat(1765), &said("second chat", 4)).await.expect("history");

    let data = s.export(&phone(PHONE)).await.expect("export");
    assert_eq!(data.phone, phone(PHONE));
    assert_eq!(data.profile.as_ref().and_then(|p| p.name.as_deref()), Some("Ana"));
    assert_eq!(data.profile.as_ref().and_then(|p| p.consent), Some(true));
    let chats: Vec<(u64, usize)> = data.chats.iter().map(|c| (c.chat.get(), c.history.len())).collect();
    assert_eq!(chats, vec![(1763, 2), (1765, 1)], "the linked chat and the one the claim names");
    assert_eq!(data.chats[0].history, vec![said("olá", 1), said("quero um humano", 2)]);
    assert_eq!(data.turns, vec![turn(1763, 1)]);
    assert_eq!(data.claims.len(), 1, "{:?}", data.claims);
    assert_eq!(data.claims[0].key, key("privacy:claim"));
    assert!(data.claims[0].progress.as_ref().is_some_and(|p| p.merged.len() == 1));
    assert!(!serde_json::to_string(&data).expect("json").contains(OTHER.trim_start_matches('+')), "nothing of the other customer");
}

/// Erase removes what export found (profile, history, mode, link, turn record, claim) and
/// leaves the other customer's records; export is empty afterwards, and a second erase finds
/// nothing.
pub async fn erase_removes_everything_and_only_that<S>(s: &S)
where
    S: ChatStore + ProfileStore + TurnLog + IdempotencyStore + Privacy + ?Sized,
{
    customer(s, PHONE, 1763).await;
    customer(s, OTHER, 1764).await;
    claim_carrying(s, PHONE, "privacy:claim", 1765).await;
    let before_other = s.export(&phone(OTHER)).await.expect("export other");

    let erased = s.erase(&phone(PHONE)).await.expect("erase");
    assert_eq!((erased.profiles, erased.chats, erased.history, erased.turns, erased.claims), (1, 2, 2, 1, 1), "{erased:?}");
    assert!(s.export(&phone(PHONE)).await.expect("export").is_empty());
    assert_eq!(s.get(&phone(PHONE)).await.expect("get"), None);
    assert_eq!(s.history(chat(1763), 10).await.expect("history"), vec![]);
    assert_eq!(s.mode(chat(1763), None).await.expect("mode"), ChatMode::Bot);
    assert_eq!(s.phase(&key("privacy:claim")).await.expect("phase"), None);

    assert_eq!(s.export(&phone(OTHER)).await.expect("export other"), before_other, "the other customer keeps everything");
    assert_eq!(s.history(chat(1764), 10).await.expect("history").len(), 2);
    assert!(matches!(s.mode(chat(1764), None).await.expect("mode"), ChatMode::Human { .. }));
    assert_eq!(s.recent(10).await.expect("recent"), vec![turn(1764, 1)]);
    assert_eq!(s.erase(&phone(PHONE)).await.expect("erase again"), crate::ports::Erased::default());
}

/// A link goes with the history's retention: purged links no longer lead to the chat.
pub async fn links_expire_with_history<S>(s: &S)
where
    S: ChatStore + Privacy + ?Sized,
{
    s.link_phone(chat(1763), &phone(PHONE), t(1)).await.expect("link");
    s.link_phone(chat(1763), &phone(PHONE), t(1)).await.expect("link twice is one link");
    assert_eq!(s.export(&phone(PHONE)).await.expect("export").chats.len(), 1);
    s.purge_history_before(t(10)).await.expect("purge");
    assert!(s.export(&phone(PHONE)).await.expect("export").is_empty());
}

/// Runs every behaviour on a fresh store each.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: ChatStore + ProfileStore + TurnLog + IdempotencyStore + Privacy + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    run_each!(fresh: export_finds_everything_about_the_phone, erase_removes_everything_and_only_that, links_expire_with_history);
}

/// For stores that hold the queue too (memory, SQLite): queued and dead-lettered jobs that carry
/// the phone are exported and erased; another customer's job is still delivered.
pub async fn jobs_carrying_the_phone_are_exported_and_erased<S>(s: &S)
where
    S: JobSink + WorkQueue + Privacy + ?Sized,
{
    s.send(&job_from(PHONE, "privacy:job", 1763), t(0)).await.expect("send");
    s.send(&job_from(OTHER, "privacy:other", 1764), t(0)).await.expect("send");
    let data = s.export(&phone(PHONE)).await.expect("export");
    assert_eq!(data.jobs.len(), 1, "{:?}", data.jobs);
    assert_eq!(data.jobs[0].job, job_from(PHONE, "privacy:job", 1763));
    assert_eq!(data.chats.iter().map(|c| c.chat.get()).collect::<Vec<_>>(), vec![1763], "the job's chat");
    assert_eq!(s.erase(&phone(PHONE)).await.expect("erase").jobs, 1);
    assert!(s.export(&phone(PHONE)).await.expect("export").is_empty());
    let left = s.receive(10, t(1), LEASE).await.expect("receive");
    assert_eq!(left.iter().map(|d| d.job.key.clone()).collect::<Vec<_>>(), vec![key("privacy:other")]);
}
