//! `Privacy` on the table: what carries a phone, found with two `Scan`s and one `Query` per
//! chat, and erased item by item.
//!
//! - A `Scan` filtered to the phone's partition (its profile and its chat links), every chat link
//!   (another customer's link to an erased chat goes too) and the claims whose `progress` or
//!   `outcome` contains the phone's digits;
//! - a `Query` of each chat's partition (history turns and modes);
//! - a `Scan` of the turn log (`turns#<day>`), kept when the record's `dialog` is an erased chat.
//!
//! Erase deletes each found item with a `DeleteItem`. The queue is SQS: its messages cannot be
//! searched or deleted one by one, so `jobs` is always empty here (see `docs/privacy.md`, which
//! says how long SQS keeps them). Scans read the whole table: an erase is a rare operator command,
//! and a table at this scale scans in seconds; an index per phone would cost a write on every turn.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use olbridge_core::domain::ids::{ChatId, DedupKey, Phone};
use olbridge_core::domain::turn::{TurnOutcome, TurnProgress, TurnRecord};
use olbridge_core::ports::{ChatData, Erased, HistoryTurn, PhoneData, Privacy, StoreResult, StoredClaim, dialog_of, phone_digits};

use super::codec::{Fields, Item, names, s, values};
use super::error::backend;
use super::{DynamoStore, chat, key, profile};

const CLAIM_PREFIX: &str = "key#";
const TURNS_PREFIX: &str = "turns#";
const TURN_DAYS: &str = "turns#days";

/// The key of the link between `phone` and `chat`.
pub(super) fn link_key(phone: &Phone, chat: ChatId) -> Item {
    key(format!("{}{}", profile::PREFIX, phone.as_str()), chat::pk(chat))
}

/// What a phone reaches, with the keys erase deletes.
struct Found {
    data: PhoneData,
    keys: Vec<(String, String)>,
}

fn chat_of(sk: &str) -> Option<ChatId> {
    sk.strip_prefix(chat::PREFIX).and_then(|id| id.parse::<u64>().ok()).and_then(|id| ChatId::new(id).ok())
}

impl DynamoStore {
    /// Every item matching `filter`, all pages.
    async fn scan_all<const N: usize>(&self, op: &str, filter: &str, vals: [(&str, AttributeValue); N]) -> StoreResult<Vec<Item>> {
        let mut pages = self
            .client
            .scan()
            .table_name(self.table())
            .filter_expression(filter)
            .set_expression_attribute_names(names(&[filter]))
            .set_expression_attribute_values(values(&[filter], vals))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while let Some(item) = pages.next().await {
            items.push(item.map_err(|e| backend(&format!("Scan ({op})"), e))?);
        }
        Ok(items)
    }

    /// Every item of one partition.
    async fn partition(&self, pk: &str) -> StoreResult<Vec<Item>> {
        let condition = "#pk = :pk";
        let mut pages = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .set_expression_attribute_values(values(&[condition], [(":pk", s(pk))]))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while let Some(item) = pages.next().await {
            items.push(item.map_err(|e| backend("Query (privacy)", e))?);
        }
        Ok(items)
    }

    async fn find(&self, phone: &Phone) -> StoreResult<Found> {
        let phone_pk = format!("{}{}", profile::PREFIX, phone.as_str());
        let filter = "#pk = :ppk OR (begins_with(#pk, :phones) AND begins_with(#sk, :chat)) \
                      OR (begins_with(#pk, :claims) AND (contains(#progress, :digits) OR contains(#outcome, :digits)))";
        let items = self
            .scan_all(
                "privacy",
                filter,
                [
                    (":ppk", s(&phone_pk)),
                    (":phones", s(profile::PREFIX)),
                    (":chat", s(chat::PREFIX)),
                    (":claims", s(CLAIM_PREFIX)),
                    (":digits", s(phone_digits(phone))),
                ],
            )
            .await?;
        let mut profile = None;
        let mut chats: BTreeSet<ChatId> = BTreeSet::new();
        let mut claims = Vec::new();
        let mut keys = Vec::new();
        let mut other_links = Vec::new();
        for item in &items {
            let f = Fields::new(item, "privacy scan");
            let (pk, sk) = (f.s("pk")?, f.s("sk")?);
            if pk == phone_pk && sk == "profile" {
                profile = Some(f.json("body")?);
            } else if pk == phone_pk {
                chats.extend(chat_of(sk));
            } else if let Some(k) = pk.strip_prefix(CLAIM_PREFIX) {
                let progress: Option<TurnProgress> = f.opt_json("progress")?;
                let outcome: Option<TurnOutcome> = f.opt_json("outcome")?;
                chats.extend(progress.iter().flat_map(|p| p.merged.iter().chain(p.head.as_deref()).map(|m| m.chat_id)));
                claims.push(StoredClaim { key: DedupKey::from_stored(k.to_owned()), progress, outcome });
            } else {
                other_links.push((pk.to_owned(), sk.to_owned()));
                continue;
            }
            keys.push((pk.to_owned(), sk.to_owned()));
        }
        claims.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        // Another phone's link to a chat erased here would lead nowhere but to nothing: it goes.
        keys.extend(other_links.into_iter().filter(|(_, sk)| chat_of(sk).is_some_and(|c| chats.contains(&c))));
        let mut chat_data = Vec::with_capacity(chats.len());
        for chat in &chats {
            let pk = chat::pk(*chat);
            let mut history = Vec::new();
            for item in self.partition(&pk).await? {
                let f = Fields::new(&item, "chat item");
                let sk = f.s("sk")?.to_owned();
                if sk.starts_with(chat::HISTORY) {
                    history.push(HistoryTurn { role: f.s("role")?.to_owned(), text: f.s("text")?.to_owned(), at: f.time("at")? });
                }
                keys.push((pk.clone(), sk));
            }
            chat_data.push(ChatData { chat: *chat, history });
        }
        let mut turns = Vec::new();
        if !chats.is_empty() {
            let dialogs: BTreeSet<String> = chats.iter().map(|c| dialog_of(*c)).collect();
            let filter = "begins_with(#pk, :turns) AND #pk <> :days";
            for item in self.scan_all("privacy turns", filter, [(":turns", s(TURNS_PREFIX)), (":days", s(TURN_DAYS))]).await? {
                let f = Fields::new(&item, "turn log record");
                let record: TurnRecord = f.json("body")?;
                if dialogs.contains(&record.dialog) {
                    keys.push((f.s("pk")?.to_owned(), f.s("sk")?.to_owned()));
                    turns.push(record);
                }
            }
        }
        turns.sort_by_key(|r| r.timings.finished_at);
        Ok(Found { data: PhoneData { phone: phone.clone(), profile, chats: chat_data, turns, jobs: Vec::new(), claims }, keys })
    }
}

#[async_trait]
impl Privacy for DynamoStore {
    async fn export(&self, phone: &Phone) -> StoreResult<PhoneData> {
        Ok(self.find(phone).await?.data)
    }

    async fn erase(&self, phone: &Phone) -> StoreResult<Erased> {
        let found = self.find(phone).await?;
        for (pk, sk) in &found.keys {
            self.client
                .delete_item()
                .table_name(self.table())
                .set_key(Some(key(pk.as_str(), sk.as_str())))
                .send()
                .await
                .map_err(|e| backend("DeleteItem (privacy)", e))?;
        }
        let d = &found.data;
        Ok(Erased {
            profiles: u64::from(d.profile.is_some()),
            chats: d.chats.len() as u64,
            history: d.chats.iter().map(|c| c.history.len() as u64).sum(),
            turns: d.turns.len() as u64,
            jobs: 0,
            claims: d.claims.len() as u64,
        })
    }
}
