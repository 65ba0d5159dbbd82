//! `TurnLog`: records bucketed by the UTC day they finished (`pk = turns#<yyyy-mm-dd>`,
//! `sk = <finished ms>#<stamp>`), and the list of days that have records (`pk = turns#days`,
//! `sk = <yyyy-mm-dd>`), so `recent` and `stats` are Queries over the days they need, newest first
//! (a turn is recorded once: its record is written in one transaction with a marker item
//! `pk = turnlog#<digest of the first key>` that must not exist yet),
//! or from `since` on; see the module docs of `dynamo` for why finished, not started. The
//! statistics' definitions are core's `domain::stats`; the per-turn numbers are computed once, when
//! the record is written, and read back without the body.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use olbridge_core::domain::stats::{durations, nearest_rank};
use olbridge_core::domain::turn::TurnRecord;
use olbridge_core::ports::{LogStats, StoreError, StoreResult, TurnLog};
use sha2::{Digest as _, Sha256};

use super::codec::{Fields, after, before, expires, ms, n, names, s, sortable_ms, to_json, values};
use super::error::backend;
use super::{DAY, DynamoStore, key, lock, stamp};

const PREFIX: &str = "turns#";
const DAYS: &str = "turns#days";
/// A turn's "recorded" marker: `pk = turnlog#<SHA-256 of the turn's first key>`, `sk = turn` (a
/// digest: a key may name a customer, and the marker outlives no erase).
const MARKER: &str = "turnlog#";

/// Whether a log transaction was cancelled because the turn's marker exists.
fn already_recorded<R>(e: &SdkError<TransactWriteItemsError, R>) -> bool {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
            c.cancellation_reasons().first().and_then(|r| r.code()) == Some("ConditionalCheckFailed")
        }
        _ => false,
    }
}

/// The UTC day of an instant, as the bucket names it (sorts as text).
fn day(t: DateTime<Utc>) -> String {
    t.date_naive().to_string()
}

impl DynamoStore {
    /// Lists `day` under `turns#days` unless this process already did. The listing outlives every
    /// record of the day: it expires a turn-retention after the day's end.
    async fn list_day(&self, t: DateTime<Utc>) -> StoreResult<()> {
        let day = day(t);
        if lock(&self.listed_days).contains(&day) {
            return Ok(());
        }
        let day_end = t.date_naive().and_hms_opt(0, 0, 0).map_or(t, |d| after(d.and_utc(), DAY));
        let mut item = key(DAYS, &day);
        item.insert("expires_at".to_owned(), expires(day_end, self.retention.turns));
        self.client.put_item().table_name(self.table()).set_item(Some(item)).send().await.map_err(|e| backend("PutItem (log day)", e))?;
        lock(&self.listed_days).insert(day);
        Ok(())
    }

    /// The listed days from `from` on (all when `None`), newest first.
    async fn days(&self, from: Option<String>) -> StoreResult<Vec<String>> {
        let condition = if from.is_some() { "#pk = :pk AND #sk >= :from" } else { "#pk = :pk" };
        let mut pages = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .set_expression_attribute_values(values(&[condition], [(":pk", s(DAYS)), (":from", s(from.unwrap_or_default()))]))
            .scan_index_forward(false)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut days = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| backend("Query (log days)", e))?;
            days.push(Fields::new(&item, "log day").s("sk")?.to_owned());
        }
        Ok(days)
    }
}

#[async_trait]
impl TurnLog for DynamoStore {
    async fn record(&self, record: &TurnRecord) -> StoreResult<()> {
        let finished = record.timings.finished_at;
        // Listed first: a day listed without records is harmless, records without a listed day
        // would be invisible.
        self.list_day(finished).await?;
        let (total, overhead) = durations(record);
        let mut item = key(format!("{PREFIX}{}", day(finished)), format!("{}#{}", sortable_ms(finished), stamp()));
        item.extend([
            ("body".to_owned(), s(to_json("turn record", record)?)),
            ("started_at".to_owned(), n(ms(record.timings.started_at))),
            ("outcome".to_owned(), s(record.outcome.name())),
            ("total_ms".to_owned(), n(total)),
            ("overhead_ms".to_owned(), n(overhead)),
            ("expires_at".to_owned(), expires(finished, self.retention.turns)),
        ]);
        let Some(turn) = record.keys.first() else {
            self.client.put_item().table_name(self.table()).set_item(Some(item)).send().await.map_err(|e| backend("PutItem (log)", e))?;
            return Ok(());
        };
        // Once per turn: the record goes with a marker named after the turn's first key, in one
        // transaction that fails if the marker exists (a resumed turn recording itself again).
        let mut marker = key(format!("{MARKER}{}", hex::encode(Sha256::digest(turn.as_str().as_bytes()))), "turn");
        marker.insert("expires_at".to_owned(), expires(finished, self.retention.turns));
        let condition = "attribute_not_exists(#pk)";
        let put_marker = Put::builder()
            .table_name(self.table())
            .set_item(Some(marker))
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .build()
            .map_err(|e| StoreError::Backend(format!("DynamoDB TransactWriteItems (log): {e}")))?;
        let put_record = Put::builder()
            .table_name(self.table())
            .set_item(Some(item))
            .build()
            .map_err(|e| StoreError::Backend(format!("DynamoDB TransactWriteItems (log): {e}")))?;
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put_marker).build())
            .transact_items(TransactWriteItem::builder().put(put_record).build())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if already_recorded(&e) => Ok(()),
            Err(e) => Err(backend("TransactWriteItems (log)", e)),
        }
    }

    async fn recent(&self, limit: usize) -> StoreResult<Vec<TurnRecord>> {
        let mut out = Vec::with_capacity(limit.min(100));
        if limit == 0 {
            return Ok(out);
        }
        let condition = "#pk = :pk";
        for d in self.days(None).await? {
            let mut pages = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression(condition)
                .projection_expression("#body")
                .set_expression_attribute_names(names(&[condition, "#body"]))
                .set_expression_attribute_values(values(&[condition], [(":pk", s(format!("{PREFIX}{d}")))]))
                .scan_index_forward(false)
                .consistent_read(true)
                .into_paginator()
                .page_size(i32::try_from(limit - out.len()).unwrap_or(i32::MAX))
                .items()
                .send();
            while out.len() < limit {
                let Some(item) = pages.next().await else { break };
                let item = item.map_err(|e| backend("Query (log)", e))?;
                out.push(Fields::new(&item, "turn record").json("body")?);
            }
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    async fn stats(&self, since: DateTime<Utc>) -> StoreResult<LogStats> {
        let (condition, filter, projection) = ("#pk = :pk", "#started_at >= :since", "#outcome, #total_ms, #overhead_ms");
        let mut by_outcome: BTreeMap<String, u64> = BTreeMap::new();
        let (mut totals, mut overheads) = (Vec::new(), Vec::new());
        // A turn finishes after it starts; the day before absorbs clock skew between the two.
        for d in self.days(Some(day(before(since, DAY)))).await? {
            let mut pages = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression(condition)
                .filter_expression(filter)
                .projection_expression(projection)
                .set_expression_attribute_names(names(&[condition, filter, projection]))
                .set_expression_attribute_values(values(&[condition, filter], [(":pk", s(format!("{PREFIX}{d}"))), (":since", n(ms(since)))]))
                .consistent_read(true)
                .into_paginator()
                .items()
                .send();
            while let Some(item) = pages.next().await {
                let item = item.map_err(|e| backend("Query (log stats)", e))?;
                let f = Fields::new(&item, "turn record");
                *by_outcome.entry(f.s("outcome")?.to_owned()).or_default() += 1;
                totals.push(f.u64("total_ms")?);
                overheads.push(f.u64("overhead_ms")?);
            }
        }
        totals.sort_unstable();
        overheads.sort_unstable();
        Ok(LogStats {
            turns: totals.len() as u64,
            by_outcome: by_outcome.into_iter().collect(),
            p50_ms: nearest_rank(&totals, 50),
            p95_ms: nearest_rank(&totals, 95),
            overhead_p50_ms: nearest_rank(&overheads, 50),
            overhead_p95_ms: nearest_rank(&overheads, 95),
        })
    }
}
