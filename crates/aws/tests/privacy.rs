//! `Privacy` on DynamoDB against moto: core's contract suite, then the erase's promise checked on
//! the table itself: after `erase`, no item holds the phone (every item of the table scanned,
//! every attribute, for the digits, which every stored form of the number contains).
//!
//! Needs a moto server (`AWS_ENDPOINT_URL`; see `olbridge_aws::testing`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly by design

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use olbridge_aws::dynamo::{DynamoStore, Retention};
use olbridge_aws::testing::{config, fresh_table};
use olbridge_core::contract::privacy::{OTHER, PHONE, job_from};
use olbridge_core::contract::{self, key, t};
use olbridge_core::domain::event::PortalEvent;
use olbridge_core::domain::ids::{ChatId, Phone};
use olbridge_core::domain::profile::Profile;
use olbridge_core::domain::turn::{TurnOutcome, TurnProgress, TurnRecord, TurnTimings};
use olbridge_core::ports::{ChatStore, HistoryTurn, IdempotencyStore, Privacy, ProfileStore, TurnLog, dialog_of};

async fn fresh(cfg: &SdkConfig) -> DynamoStore {
    DynamoStore::from_config(cfg, fresh_table(cfg).await, Retention::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_contract() {
    let cfg = config().await;
    contract::privacy::run_all(|| fresh(&cfg)).await;
}

/// Every item of the table (all pages), as its debug text: every attribute's value is in it.
async fn items_with(cfg: &SdkConfig, table: &str, needle: &str) -> Vec<String> {
    let client = Client::new(cfg);
    let mut pages = client.scan().table_name(table).consistent_read(true).into_paginator().items().send();
    let mut hits = Vec::new();
    while let Some(item) = pages.next().await {
        let text = format!("{:?}", item.unwrap());
        if text.contains(needle) {
            hits.push(text);
        }
    }
    hits
}

/// A profile quoting the number, a linked chat whose history quotes it, a human mode, a turn log
/// record, and a claim whose checkpoint carries a merged message with the phone.
async fn customer(store: &DynamoStore, raw: &str, chat: u64) {
    let phone = Phone::parse(raw).unwrap();
    let mut p = Profile::new(phone.clone(), t(0));
    p.merge(&serde_json::json!({"name": "Ana", "note": format!("call me on {raw}")}), t(0));
    assert!(store.put(&p).await.unwrap());
    let chat_id = ChatId::new(chat).unwrap();
    store.link_phone(chat_id, &phone, t(1)).await.unwrap();
    store.append_history(chat_id, &HistoryTurn { role: "customer".into(), text: format!("my number is {raw}"), at: t(1) }).await.unwrap();
    store.set_human(chat_id, None, "phrase", t(2)).await.unwrap();
    let record = TurnRecord {
        keys: vec![key(&format!("{raw}:turn"))],
        dialog: dialog_of(chat_id),
        session_id: None,
        outcome: TurnOutcome::Silent,
        timings: TurnTimings { received_at: t(1), started_at: t(1), bot_ms: None, finished_at: t(2) },
        bot_attempts: 0,
        trace: Default::default(),
    };
    store.record(&record).await.unwrap();
    let claim = key(&format!("claim:{chat}"));
    store.claim(&claim, "w1", t(3), Duration::from_secs(30)).await.unwrap();
    let PortalEvent::Message(m) = job_from(raw, "merged", chat).event else { panic!("a message") };
    store.checkpoint(&claim, "w1", &TurnProgress { merged: vec![m], ..TurnProgress::default() }, t(3), Duration::from_secs(30)).await.unwrap();
}

#[tokio::test]
async fn erase_leaves_no_item_with_the_phone() {
    let cfg = config().await;
    let store = fresh(&cfg).await;
    customer(&store, PHONE, 1763).await;
    customer(&store, OTHER, 1764).await;
    let digits = PHONE.trim_start_matches('+');
    let phone = Phone::parse(PHONE).unwrap();
    assert!(!items_with(&cfg, store.table(), digits).await.is_empty(), "the scan sees the phone before the erase");
    let before = store.export(&phone).await.unwrap();
    assert!(before.profile.is_some() && before.chats.len() == 1 && before.turns.len() == 1 && before.claims.len() == 1, "{before:?}");

    let erased = store.erase(&phone).await.unwrap();
    assert_eq!((erased.profiles, erased.chats, erased.history, erased.turns, erased.claims), (1, 1, 1, 1, 1), "{erased:?}");
    assert_eq!(items_with(&cfg, store.table(), digits).await, Vec::<String>::new(), "no item holds the phone's digits");
    assert!(store.export(&phone).await.unwrap().is_empty());

    // The other customer keeps everything, and the scan would see them.
    assert!(!items_with(&cfg, store.table(), OTHER.trim_start_matches('+')).await.is_empty());
    let other = store.export(&Phone::parse(OTHER).unwrap()).await.unwrap();
    assert!(other.profile.is_some() && other.chats.len() == 1 && other.turns.len() == 1 && other.claims.len() == 1, "{other:?}");
}
