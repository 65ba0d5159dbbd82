//! `erase` leaves no trace of the phone in the store's files: the database, its WAL and its
//! shared-memory file are scanned byte for byte (for the digits, with and without `+`, which
//! covers every stored form), after `erase_and_compact` (secure delete, `VACUUM`, truncating
//! checkpoint; see the adapter's `privacy` module).

// Test code: a failed call is a failed test.
#![allow(clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use olbridge_core::contract::privacy::{OTHER, PHONE, job_from};
use olbridge_core::domain::event::PortalEvent;
use olbridge_core::domain::ids::{ChatId, DedupKey, Phone};
use olbridge_core::domain::profile::Profile;
use olbridge_core::domain::turn::TurnProgress;
use olbridge_core::ports::{ChatStore, HistoryTurn, IdempotencyStore, JobSink, Privacy, ProfileStore, Settle, WorkQueue};
use olbridge_sqlite::{Compacted, SqliteStore};

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + secs, 0).single().expect("time")
}

/// Which of the store's files contain `needle`.
fn files_with(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read file");
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            hits.push(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        }
    }
    hits
}

/// Everything a customer leaves: a profile, a linked chat whose history quotes the number, a job
/// delivered and acknowledged (deleted without zeroing), a job still queued, a claim whose
/// checkpoint carries a merged message.
async fn customer(store: &SqliteStore, raw: &str, chat: u64) {
    let phone = Phone::parse(raw).expect("phone");
    let mut p = Profile::new(phone.clone(), at(0));
    p.merge(&serde_json::json!({"name": "Ana", "note": format!("call me on {raw}")}), at(0));
    assert!(store.put(&p).await.expect("profile"));
    let chat_id = ChatId::new(chat).expect("chat");
    store.link_phone(chat_id, &phone, at(1)).await.expect("link");
    store.append_history(chat_id, &HistoryTurn { role: "customer".into(), text: format!("my number is {raw}"), at: at(1) }).await.expect("history");
    store.send(&job_from(raw, &format!("{raw}:done"), chat), at(1)).await.expect("send");
    let delivered = store.receive(10, at(2), Duration::from_secs(30)).await.expect("receive");
    for d in delivered {
        store.settle(&d.receipt, &Settle::Ack, at(2)).await.expect("ack");
    }
    store.send(&job_from(raw, &format!("{raw}:queued"), chat), at(3)).await.expect("send");
    let key = DedupKey::from_stored(format!("{raw}:claim"));
    store.claim(&key, "w1", at(3), Duration::from_secs(30)).await.expect("claim");
    let PortalEvent::Message(m) = job_from(raw, "merged", chat).event else { panic!("a message") };
    store.checkpoint(&key, "w1", &TurnProgress { merged: vec![m], ..TurnProgress::default() }, at(3), Duration::from_secs(30)).await.expect("checkpoint");
}

#[tokio::test]
async fn erase_leaves_no_trace_in_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    customer(&store, PHONE, 1763).await;
    customer(&store, OTHER, 1764).await;
    let digits = PHONE.trim_start_matches('+');
    assert!(!files_with(dir.path(), digits).is_empty(), "the scan finds the phone before the erase");
    let phone = Phone::parse(PHONE).expect("phone");
    assert!(!store.export(&phone).await.expect("export").is_empty());

    let (erased, compacted) = store.erase_and_compact(&phone).await.expect("erase");
    assert_eq!(compacted, Compacted::Yes);
    assert_eq!((erased.profiles, erased.chats, erased.history, erased.jobs, erased.claims), (1, 1, 1, 1, 1), "{erased:?}");
    assert!(store.export(&phone).await.expect("export").is_empty());
    assert_eq!(files_with(dir.path(), digits), Vec::<String>::new(), "no file holds the phone's digits");

    // The other customer is untouched, and the scan would see them.
    assert!(!files_with(dir.path(), OTHER.trim_start_matches('+')).is_empty());
    assert!(store.get(&Phone::parse(OTHER).expect("phone")).await.expect("get").is_some());
}
