//! `AnswerCache` and `UsageCounters`.
//!
//! - A cache entry is `pk = faq#<line>`, `sk = q#<key>` with `body` (the answer's JSON) and the TTL;
//!   the line's knowledge-base version is `pk = faq#<line>`, `sk = version`. A lookup reads both in
//!   one `BatchGetItem`; the expiry is compared on read too, since TTL deletion is lazy.
//! - A counter is `sk = usage#<name>` in its subject's partition (`phone#<phone>` or
//!   `chat#<id>`), so erasing a phone (which deletes its partition and its chats' partitions)
//!   removes its counters with no extra step. An addition is one `UpdateItem`: `ADD count`, `SET
//!   last_token`, conditioned on `last_token` not being this token; a failed condition (a retried
//!   turn) hands back the stored count.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{KeysAndAttributes, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use olbridge_core::ports::{AnswerCache, CacheLookup, CachedAnswer, StoreError, StoreResult, Subject, UsageCounters};

use super::codec::{Fields, Item, ms, n, names, s, to_json, values};
use super::error::{Cond, backend, conditional};
use super::{DynamoStore, chat, key, profile};

const FAQ_PREFIX: &str = "faq#";
const VERSION_SK: &str = "version";
const USAGE_PREFIX: &str = "usage#";

fn entry_key(line: &str, q: &str) -> Item {
    key(format!("{FAQ_PREFIX}{line}"), format!("q#{q}"))
}

fn version_key(line: &str) -> Item {
    key(format!("{FAQ_PREFIX}{line}"), VERSION_SK)
}

fn counter_key(subject: &Subject, name: &str) -> Item {
    let pk = match subject {
        Subject::Phone(p) => format!("{}{}", profile::PREFIX, p.as_str()),
        Subject::Chat(c) => chat::pk(*c),
    };
    key(pk, format!("{USAGE_PREFIX}{name}"))
}

#[async_trait]
impl AnswerCache for DynamoStore {
    async fn lookup(&self, line: &str, q: &str, now: DateTime<Utc>) -> StoreResult<CacheLookup> {
        let keys = KeysAndAttributes::builder()
            .keys(version_key(line))
            .keys(entry_key(line, q))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Backend(format!("BatchGetItem (cache): {e}")))?;
        let out = self.client.batch_get_item().request_items(self.table(), keys).send().await.map_err(|e| backend("BatchGetItem (cache)", e))?;
        if out.unprocessed_keys.as_ref().is_some_and(|u| !u.is_empty()) {
            // Throttled: a miss costs a bot call, never a wrong answer.
            return Ok(CacheLookup::default());
        }
        let items = out.responses.and_then(|mut r| r.remove(self.table())).unwrap_or_default();
        let mut lookup = CacheLookup::default();
        let mut entry = None;
        for item in &items {
            let f = Fields::new(item, "cache item");
            if f.s("sk")? == VERSION_SK {
                lookup.kb_version = Some(f.s("version")?.to_owned());
            } else if f.i64("until")? > ms(now) {
                entry = Some(f.json::<CachedAnswer>("body")?);
            }
        }
        lookup.answer = entry.filter(|a| a.kb_version == lookup.kb_version);
        Ok(lookup)
    }

    async fn set_version(&self, line: &str, version: &str) -> StoreResult<()> {
        let mut item = version_key(line);
        item.insert("version".to_owned(), s(version));
        self.client.put_item().table_name(self.table()).set_item(Some(item)).send().await.map_err(|e| backend("PutItem (cache version)", e))?;
        Ok(())
    }

    async fn store(&self, line: &str, q: &str, answer: &CachedAnswer, _now: DateTime<Utc>, expires_at: DateTime<Utc>) -> StoreResult<()> {
        let mut item = entry_key(line, q);
        item.extend([
            ("body".to_owned(), s(to_json("cached answer", answer)?)),
            ("until".to_owned(), n(ms(expires_at))),
            ("expires_at".to_owned(), n(expires_at.timestamp())),
        ]);
        self.client.put_item().table_name(self.table()).set_item(Some(item)).send().await.map_err(|e| backend("PutItem (cache)", e))?;
        Ok(())
    }
}

#[async_trait]
impl UsageCounters for DynamoStore {
    async fn add(&self, subject: &Subject, name: &str, token: &str, amount: u64, _now: DateTime<Utc>, expires_at: DateTime<Utc>) -> StoreResult<u64> {
        let update = "ADD #count :amount SET #last_token = :token, #expires_at = :expires";
        let condition = "attribute_not_exists(#last_token) OR #last_token <> :token";
        let sent = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(counter_key(subject, name)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[update, condition]))
            .set_expression_attribute_values(values(
                &[update, condition],
                [(":amount", n(amount)), (":token", s(token)), (":expires", n(expires_at.timestamp()))],
            ))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match conditional("UpdateItem (usage)", sent)? {
            Cond::Written(out) => out.attributes.as_ref().map_or(Ok(amount), |a| Fields::new(a, "usage counter").u64("count")),
            Cond::Failed(Some(old)) => Fields::new(&old, "usage counter").u64("count"),
            Cond::Failed(None) => Err(StoreError::Backend("UpdateItem (usage): condition failed on no item".into())),
        }
    }

    async fn count(&self, subject: &Subject, name: &str) -> StoreResult<u64> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(counter_key(subject, name)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem (usage)", e))?;
        out.item.map_or(Ok(0), |item| Fields::new(&item, "usage counter").u64("count"))
    }
}
