//! `TimelineOutbox`: the CRM timeline comments waiting to be written.
//!
//! - A comment's header is `pk = timeline`, `sk = c#<comment key>`: `entity_type`, `entity_id`,
//!   `due_at` (ms), `attempts`, `last_error`, and `appends` (a counter every append adds to). All
//!   headers share one partition, so `due` is one `Query` (filtered on `due_at`): the outbox holds
//!   seconds to minutes of backlog, a handful of items.
//! - A line is `pk = timeline#<comment key>`, `sk = l#<turn key>`: `id`, `text`, `at`. Keyed by the
//!   turn, so a resumed turn appending again meets its own line in a conditional `PutItem`
//!   (`attribute_not_exists`) and changes nothing. The line's `id` (the port's `i64`) is derived from
//!   the turn: its time in ms times 10⁶ plus a hash of the turn key, so lines sort by time (ties
//!   by hash, not by append order).
//! - Every item carries a TTL 14 days after it was written: a safety net, never relied on (a
//!   comment written, or given up on, is deleted by the drain).
//!
//! Atomicity without transactions: `append` writes the line, then one `UpdateItem` upserts the
//! header and adds 1 to `appends` (a second, conditional `UpdateItem` moves `due_at` on when the
//! comment is neither waiting out a failure nor already due). `written` reads the header's
//! `appends`, deletes the written lines, and deletes the header only if no line is left and
//! `appends` is unchanged: a line appended meanwhile either shows in the lines or has changed the
//! counter, so no line is ever left without its header.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ReturnValue, Select};
use chrono::{DateTime, Utc};
use olbridge_core::domain::message::CrmBinding;
use olbridge_core::ports::{PendingComment, StoreResult, TimelineLine, TimelineOutbox};

use super::codec::{Fields, Item, expires, ms, n, names, s, values};
use super::error::{Cond, backend, conditional};
use super::{DAY, DynamoStore, key};

const HEADERS: &str = "timeline";
const LINES: &str = "timeline#";
const KEEP: Duration = Duration::from_secs(DAY.as_secs() * 14);

fn header_key(comment: &str) -> Item {
    key(HEADERS, format!("c#{comment}"))
}

fn line_key(comment: &str, turn: &str) -> Item {
    key(format!("{LINES}{comment}"), format!("l#{turn}"))
}

/// A line's id: the turn's time in ms (from 1970 on) times 10⁶, plus six digits of a hash of its
/// key (FNV-1a, stable across processes and builds). Deterministic, so every attempt of a turn
/// names the same line.
fn line_id(turn_key: &str, at: DateTime<Utc>) -> i64 {
    let hash = turn_key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let low = i64::try_from(hash % 1_000_000).unwrap_or(0);
    ms(at).max(0).saturating_mul(1_000_000).saturating_add(low)
}

impl DynamoStore {
    /// The lines of a comment, oldest first: (sk, id, text).
    async fn timeline_lines(&self, comment: &str) -> StoreResult<Vec<(String, i64, String)>> {
        let condition = "#pk = :pk";
        let mut pages = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .set_expression_attribute_values(values(&[condition], [(":pk", s(format!("{LINES}{comment}")))]))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let what = format!("timeline line of {comment}");
        let mut lines = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| backend("Query (timeline lines)", e))?;
            let f = Fields::new(&item, &what);
            lines.push((f.s("sk")?.to_owned(), f.i64("id")?, f.s("text")?.to_owned()));
        }
        lines.sort_by_key(|(_, id, _)| *id);
        Ok(lines)
    }

    /// Every comment header: (comment key, entity, due_at ms, attempts).
    async fn timeline_headers(&self) -> StoreResult<Vec<(String, CrmBinding, i64, u32)>> {
        let condition = "#pk = :pk";
        let mut pages = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .set_expression_attribute_values(values(&[condition], [(":pk", s(HEADERS))]))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut headers = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| backend("Query (timeline)", e))?;
            let f = Fields::new(&item, "timeline comment");
            let comment = f.s("sk")?.strip_prefix("c#").unwrap_or_default().to_owned();
            let entity = CrmBinding { entity_type: f.s("entity_type")?.to_owned(), entity_id: f.u64("entity_id")? };
            headers.push((comment, entity, f.i64("due_at")?, u32::try_from(f.u64("attempts")?).unwrap_or(u32::MAX)));
        }
        Ok(headers)
    }
}

#[async_trait]
impl TimelineOutbox for DynamoStore {
    async fn append(&self, line: &TimelineLine, due_at: DateTime<Utc>) -> StoreResult<()> {
        let comment = &line.comment_key;
        let condition = "attribute_not_exists(#pk)";
        let mut item = line_key(comment, &line.turn_key);
        item.extend([
            ("id".to_owned(), n(line_id(&line.turn_key, line.at))),
            ("text".to_owned(), s(&line.text)),
            ("at".to_owned(), n(ms(line.at))),
            ("expires_at".to_owned(), expires(line.at, KEEP)),
        ]);
        let sent = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .send()
            .await;
        let added = matches!(conditional("PutItem (timeline line)", sent)?, Cond::Written(_));
        let vals = [
            (":entity_type", s(&line.entity.entity_type)),
            (":entity_id", n(line.entity.entity_id)),
            (":due", n(ms(due_at))),
            (":zero", n(0)),
            (":one", n(1)),
            (":expires", expires(line.at, KEEP)),
            (":at", n(ms(line.at))),
        ];
        let upsert = "SET #entity_type = :entity_type, #entity_id = :entity_id, #due_at = if_not_exists(#due_at, :due), \
                      #attempts = if_not_exists(#attempts, :zero), #expires_at = :expires ADD #appends :one";
        // The turn's line was there already: a resumed turn changes nothing, except recreating a
        // header lost to a crash between the line and its header.
        let only_if_missing = (!added).then_some("attribute_not_exists(#pk)");
        let exprs: Vec<&str> = [Some(upsert), only_if_missing].into_iter().flatten().collect();
        let sent = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(header_key(comment)))
            .update_expression(upsert)
            .set_condition_expression(only_if_missing.map(str::to_owned))
            .set_expression_attribute_names(names(&exprs))
            .set_expression_attribute_values(values(&exprs, vals.clone()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let Cond::Written(out) = conditional("UpdateItem (timeline comment)", sent)? else { return Ok(()) };
        let Some(header) = out.attributes else { return Ok(()) };
        let f = Fields::new(&header, "timeline comment");
        let (current, attempts) = (f.i64("due_at")?, f.i64("attempts")?);
        // Waiting out a failure, or already due (a handoff flushed it): it keeps its time.
        if current == ms(due_at) || attempts > 0 || current <= ms(line.at) {
            return Ok(());
        }
        let (update, condition) = ("SET #due_at = :due", "#attempts = :zero AND #due_at > :at");
        let sent = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(header_key(comment)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[update, condition]))
            .set_expression_attribute_values(values(&[update, condition], vals))
            .send()
            .await;
        conditional("UpdateItem (timeline due)", sent).map(|_| ())
    }

    async fn due(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<PendingComment>> {
        let mut due: Vec<_> = self.timeline_headers().await?.into_iter().filter(|(_, _, at, _)| *at <= ms(now)).collect();
        due.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
        let mut out = Vec::new();
        for (comment_key, entity, _, attempts) in due {
            if out.len() == limit {
                break;
            }
            let lines: Vec<(i64, String)> = self.timeline_lines(&comment_key).await?.into_iter().map(|(_, id, text)| (id, text)).collect();
            if !lines.is_empty() {
                out.push(PendingComment { comment_key, entity, lines, attempts });
            }
        }
        Ok(out)
    }

    async fn written(&self, comment_key: &str, line_ids: &[i64]) -> StoreResult<()> {
        let header = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(header_key(comment_key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem (timeline comment)", e))?;
        let appends = header.item.as_ref().map(|h| Fields::new(h, "timeline comment").i64("appends")).transpose()?;
        let mut left = 0;
        for (sk, id, _) in self.timeline_lines(comment_key).await? {
            if !line_ids.contains(&id) {
                left += 1;
                continue;
            }
            self.client
                .delete_item()
                .table_name(self.table())
                .set_key(Some(key(format!("{LINES}{comment_key}"), sk)))
                .send()
                .await
                .map_err(|e| backend("DeleteItem (timeline line)", e))?;
        }
        let Some(appends) = appends else { return Ok(()) };
        // A failed condition: a line arrived meanwhile (the header stays), or the header is gone.
        if left == 0 {
            let condition = "#appends = :appends";
            let sent = self
                .client
                .delete_item()
                .table_name(self.table())
                .set_key(Some(header_key(comment_key)))
                .condition_expression(condition)
                .set_expression_attribute_names(names(&[condition]))
                .set_expression_attribute_values(values(&[condition], [(":appends", n(appends))]))
                .send()
                .await;
            conditional("DeleteItem (timeline comment)", sent)?;
        } else {
            let (update, condition) = ("SET #attempts = :zero REMOVE #last_error", "attribute_exists(#pk)");
            let sent = self
                .client
                .update_item()
                .table_name(self.table())
                .set_key(Some(header_key(comment_key)))
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_names(names(&[update, condition]))
                .set_expression_attribute_values(values(&[update], [(":zero", n(0))]))
                .send()
                .await;
            conditional("UpdateItem (timeline comment)", sent)?;
        }
        Ok(())
    }

    async fn failed(&self, comment_key: &str, retry_at: DateTime<Utc>, error: &str) -> StoreResult<()> {
        let (update, condition) = ("SET #due_at = :retry, #last_error = :error ADD #attempts :one", "attribute_exists(#pk)");
        let sent = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(header_key(comment_key)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[update, condition]))
            .set_expression_attribute_values(values(&[update], [(":retry", n(ms(retry_at))), (":error", s(error)), (":one", n(1))]))
            .send()
            .await;
        conditional("UpdateItem (timeline failed)", sent).map(|_| ())
    }

    async fn pending(&self) -> StoreResult<u64> {
        let condition = "#pk = :pk";
        let mut total = 0;
        for (comment, ..) in self.timeline_headers().await? {
            let mut pages = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression(condition)
                .set_expression_attribute_names(names(&[condition]))
                .set_expression_attribute_values(values(&[condition], [(":pk", s(format!("{LINES}{comment}")))]))
                .select(Select::Count)
                .consistent_read(true)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| backend("Query (timeline pending)", e))?;
                total += u64::try_from(page.count).unwrap_or(0);
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ids_are_the_turns_and_sort_by_time() {
        let at = |ms| DateTime::<Utc>::from_timestamp_millis(ms).expect("time");
        assert_eq!(line_id("k1", at(1_000)), line_id("k1", at(1_000)), "every attempt of a turn names the same line");
        assert_ne!(line_id("k1", at(1_000)), line_id("k2", at(1_000)));
        assert!(line_id("zz", at(1_000)) < line_id("aa", at(1_001)), "time first");
        assert!(line_id("k", at(1_800_000_000_000)) > 0, "no overflow for present-day times");
    }
}
