//! `olbridge-aws privacy export|erase --phone` against moto: the binary as an operator runs it,
//! on a table holding one customer's profile, linked chat and history.
//!
//! Needs `AWS_ENDPOINT_URL` (see `olbridge_aws::testing`): without it these tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use olbridge_aws::dynamo::{DynamoStore, Retention};
use olbridge_aws::testing;
use olbridge_core::contract::t;
use olbridge_core::domain::ids::{ChatId, Phone};
use olbridge_core::domain::profile::Profile;
use olbridge_core::ports::{ChatStore, HistoryTurn, ProfileStore};

const PHONE: &str = "+5511912345678";

fn admin(table: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_olbridge-aws")).args(args).env("OLBRIDGE_TABLE", table).output().unwrap()
}

#[tokio::test]
async fn export_then_erase_through_the_admin_binary() {
    let cfg = testing::config().await;
    let table = testing::fresh_table(&cfg).await;
    let store = DynamoStore::from_config(&cfg, table.clone(), Retention::default());
    let phone = Phone::parse(PHONE).unwrap();
    assert!(store.put(&Profile::new(phone.clone(), t(0))).await.unwrap());
    let chat = ChatId::new(1763).unwrap();
    store.link_phone(chat, &phone, t(1)).await.unwrap();
    store.append_history(chat, &HistoryTurn { role: "customer".into(), text: "olá".into(), at: t(1) }).await.unwrap();

    let out = admin(&table, &["privacy", "export", "--phone", PHONE]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let data: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(data["profile"]["phone"], PHONE);
    assert_eq!(data["chats"][0]["history"][0]["text"], "olá");

    let out = admin(&table, &["privacy", "erase", "--phone", PHONE]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 profile(s), 1 chat(s) with 1 history turn(s)"), "{stdout}");
    assert!(!stdout.contains("5511912345678"), "the output redacts the phone: {stdout}");

    let out = admin(&table, &["privacy", "export", "--phone", PHONE]);
    let data: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(data["profile"].is_null() && data["chats"] == serde_json::json!([]), "{data:#}");
}
