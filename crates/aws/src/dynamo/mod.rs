//! Every storage port but the queue on one DynamoDB table: [`DynamoStore`].
//!
//! One file per port (`idempotency`, `chat`, `profile`, `log`, `meta`, `privacy`, `timeline`; `cost` for the answer cache and the usage counters), `codec` (attribute
//! conversions and expressions) and `error` (SDK errors to `StoreError`, in one place). Every
//! port passes core's contract suites against moto (`crates/aws/tests/dynamo.rs`). Operators read
//! the same design in `docs/aws-table.md`.
//!
//! # The table
//! `pk` (S) and `sk` (S), on-demand, TTL attribute `expires_at` (epoch seconds); no indexes
//! (`infra/resources.json`). Every item type lives in its own `pk` prefix:
//!
//! | item | `pk` | `sk` | other attributes | TTL (`expires_at`) |
//! |---|---|---|---|---|
//! | claim (idempotency record and its checkpoint) | `key#<dedup key>` | `claim` | `phase` (`queued`, `leased`, `released`, `done`), `owner`, `lease_until` (ms), `queued_at` (ms), `done_at` (ms), `outcome` (JSON), `progress` (JSON), `write_id` | queued and done: their time + `Retention::keys`; leased and released: none |
//! | chat mode | `chat#<chat id>` | `mode#<session id, 0 for none>` | `rule`, `since` (ms) | none |
//! | history turn | `chat#<chat id>` | `hist#<at, ms, 15 digits>#<stamp>` | `role`, `text`, `at` (ms) | `at` + `Retention::history` |
//! | profile | `phone#<phone>` | `profile` | `body` (the profile's JSON), `version`, `updated_at` (ms), `write_id` | `updated_at` + `Retention::profiles` |
//! | phone link (the chat serves this phone; for `Privacy`) | `phone#<phone>` | `chat#<chat id>` | `seen_at` (ms) | `seen_at` + `Retention::history` |
//! | turn log record | `turns#<yyyy-mm-dd of finished_at>` | `<finished_at, ms, 15 digits>#<stamp>` | `body` (JSON), `started_at` (ms), `outcome`, `total_ms`, `overhead_ms` | `finished_at` + `Retention::turns` |
//! | turn log day | `turns#days` | `<yyyy-mm-dd>` | | the day's end + `Retention::turns` |
//! | meta value | `meta#<name>` | `meta` | `value`, `version`, `write_id` | none |
//! | FAQ cache entry | `faq#<line id>` | `q#<question key>` | `body` (JSON `CachedAnswer`), `until` (ms) | `until` (`OLBRIDGE_FAQ_CACHE_TTL_SEC`) |
//! | FAQ knowledge-base version | `faq#<line id>` | `version` | `version` | none |
//! | usage counter (rate limit window, daily bot calls) | `phone#<phone>` or `chat#<chat id>` | `usage#<win#index or day#yyyy-mm-dd>` | `count`, `last_token` | the period's end |
//! | CRM timeline comment (outbox header) | `timeline` | `c#<comment key>` | `entity_type`, `entity_id`, `due_at` (ms), `attempts`, `last_error`, `appends` | its last append + 14 days |
//! | CRM timeline line (outbox) | `timeline#<comment key>` | `l#<turn key>` | `id`, `text`, `at` (ms) | `at` + 14 days |
//!
//! `<stamp>` is `<20-digit counter>#<8 random hex digits>`: the counter is the writer's clock in
//! nanoseconds, forced to increase within the process, so items written in one process at the same
//! millisecond sort in write order (the contracts' tie rule), and the random part keeps items of
//! different writers apart.
//!
//! Why this layout:
//! - A chat's mode and history share a partition, so one `Query` reads the recent history; a
//!   history page is `Query pk = chat#<id>, begins_with(sk, "hist#"), newest first, Limit n`.
//! - The turn log is bucketed **by the day a turn finished**, with the finish time leading the sort
//!   key, and the days that have records are listed under `turns#days`. So `recent(n)` reads the
//!   day list newest first and then each day newest first until it has `n`: exact (a bucket holds
//!   exactly the turns that finished that day, so buckets never overlap in time), and with no clock
//!   and no walk over empty days. (The obvious alternative, buckets by the day a turn started,
//!   walked back from today's, cannot be exact, since a turn started yesterday may finish after
//!   one started today; it needs the clock, which the ports never read, and an arbitrary stop after
//!   so many empty days.) `stats(since)` queries the days from the day before `since` on (a turn
//!   finishes after it starts; the day before absorbs clock skew between the two instants) and
//!   filters on `started_at >= since`. Every read is a `Query`.
//! - The day list costs one extra `PutItem` per day per process (each process remembers the days it
//!   has listed), not one per turn. A day's records share a partition: DynamoDB serves 1,000 writes
//!   per second per partition, far above one portal's turns.
//! - Profiles and meta values carry their version as a number attribute, compared in the write's
//!   condition (optimistic concurrency, one request).
//!
//! Room for later: the pollers' cursors and leases are meta values (`meta#poll:<source>:cursor`,
//! `meta#lease:<name>`), written by compare-and-set; a lease is a value holding its owner and end,
//! taken over by a CAS once its end has passed. Meta items never expire. Other item types must
//! take a new `pk` prefix and say so here.
//!
//! # Idempotency: the Powertools design
//! `claim` is **one** `UpdateItem` whose condition admits exactly the records that
//! [`ClaimRecord::decide`](olbridge_core::ports::ClaimRecord::decide) answers `New` or `Resumed`
//! for (no item, queued, released, leased and expired, leased by this owner), with
//! `ReturnValues = ALL_OLD` on success and `ReturnValuesOnConditionCheckFailure = ALL_OLD` on
//! failure: either way the old item comes back in the same round trip, is decoded into a
//! `ClaimRecord`, and `decide` gives the answer (`Resumed` with its progress, or `Done` /
//! `InProgress` from a failed condition). Leases are epoch milliseconds compared in the condition:
//! TTL deletion is lazy (up to days late; never on moto), so correctness never rests on it, and
//! leased or released claims have no TTL at all. `purge_before` is the correctness path for
//! retention (a paginated `Scan` with a filter, then a conditional `DeleteItem` per match); TTL is
//! only the cleanup that makes it rarely find anything.
//!
//! # Requests per call
//! Every port call is one DynamoDB request, except: `TurnLog::record` (two on the first record
//! of a day in a process: the day list), `recent` and `stats` (one `Query` for the day list plus
//! one per day read, more when a page passes 1 MB), and the purges (a `Scan` plus one `DeleteItem`
//! per purged item), and the timeline outbox (`append`: a conditional `PutItem` and one or two
//! `UpdateItem`s; `due`: a `Query` of the headers plus one per due comment; `written`: a read, a
//! `Query`, a delete per line and one for the header; see `timeline`). So a turn's writes are its port calls: a claim, a checkpoint per step (the
//! composition, the bot's answer, each posted chunk before and after, the transfer), a history turn
//! per message and one for the reply, a profile write (again on a version conflict), a log record
//! and a `complete` per answered key — around ten single-item writes for a one-chunk answer, each
//! under 1 KB unless the checkpoint carries a long answer (a 200 KB answer still fits the 400 KB
//! item limit; see the tests).
//!
//! # Retries and lost answers
//! The SDK retries throttling, 5xx and network failures with backoff. A write whose answer was lost
//! and which the SDK repeated can find its own first attempt: so `admit`, profile writes and meta
//! writes carry a random `write_id`, and a failed condition whose old item holds the caller's own
//! `write_id` is the first attempt's success (without it a repeated `admit` would answer
//! `Duplicate` and the message would never be enqueued). A repeated `claim` finds its own lease and
//! answers `Resumed` (safe: a resumed turn looks before it posts); a repeated `complete` or
//! `release` is accepted, as the contract requires of the owner.
//!
//! # Reads
//! Single-item reads and queries are strongly consistent: a worker must see the mode, history and
//! profile the previous turn wrote, whichever Lambda wrote them.

mod chat;
mod codec;
mod cost;
mod error;
mod idempotency;
mod log;
mod meta;
mod privacy;
mod profile;
mod timeline;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use olbridge_core::ports::StoreResult;

use codec::{Fields, Item, names, s, values};
use error::{Cond, backend, conditional};

const DAY: Duration = Duration::from_secs(86_400);

/// How long each kind of record is kept: the TTL each item is written with. The defaults are the
/// local store's (`olbridge-sqlite`'s `Retention`): de-duplication records well past the furthest
/// any source looks back, history as long as a conversation can plausibly resume, profiles as the
/// configuration's default (`OLBRIDGE_PROFILE_RETENTION_DAYS`), the turn log a quarter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Done idempotency records, and admissions whose job never came.
    pub keys: Duration,
    /// Conversation history.
    pub history: Duration,
    /// Profiles not updated for this long.
    pub profiles: Duration,
    /// The turn log.
    pub turns: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self { keys: DAY * 14, history: DAY * 30, profiles: DAY * 365, turns: DAY * 90 }
    }
}

/// Every storage port but the queue, on one DynamoDB table (see the module docs for the key
/// design). Cheap to clone: clones share the client and the turn log's day cache.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: Arc<str>,
    retention: Retention,
    /// The turn log days this process has listed under `turns#days`.
    listed_days: Arc<Mutex<BTreeSet<String>>>,
}

impl DynamoStore {
    /// A store on `table` through `client`, writing TTLs from `retention`.
    pub fn new(client: Client, table: impl Into<String>, retention: Retention) -> Self {
        Self { client, table: Arc::from(table.into()), retention, listed_days: Arc::default() }
    }

    /// A store on `table` with a client built from `config` (see [`crate::sdk_config`]).
    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>, retention: Retention) -> Self {
        Self::new(Client::new(config), table, retention)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The retention the TTLs are written with.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// Deletes every item that matches `scope` (which items are of this kind) and `condition` (which
    /// of them go), and returns how many. A paginated `Scan` finds them; each is deleted with
    /// `condition` again, so an item changed since the scan read it (a queued key claimed meanwhile,
    /// a profile updated) stays, and one already gone (TTL) is not counted.
    async fn purge<const N: usize>(&self, op: &str, scope: &str, condition: &str, vals: [(&str, AttributeValue); N]) -> StoreResult<u64> {
        let filter = format!("({scope}) AND ({condition})");
        let projection = "#pk, #sk";
        let mut found = self
            .client
            .scan()
            .table_name(self.table())
            .filter_expression(&filter)
            .projection_expression(projection)
            .set_expression_attribute_names(names(&[&filter, projection]))
            .set_expression_attribute_values(values(&[&filter], vals.clone()))
            .into_paginator()
            .items()
            .send();
        let mut purged = 0;
        while let Some(item) = found.next().await {
            let item = item.map_err(|e| backend(&format!("Scan ({op})"), e))?;
            let (pk, sk) = (Fields::new(&item, op).s("pk")?, Fields::new(&item, op).s("sk")?);
            let sent = self
                .client
                .delete_item()
                .table_name(self.table())
                .set_key(Some(key(pk, sk)))
                .condition_expression(condition)
                .set_expression_attribute_names(names(&[condition]))
                .set_expression_attribute_values(values(&[condition], vals.clone()))
                .send()
                .await;
            if let Cond::Written(_) = conditional(&format!("DeleteItem ({op})"), sent)? {
                purged += 1;
            }
        }
        Ok(purged)
    }
}

/// An item's key.
fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    [("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))].into()
}

/// A random id for a write, so a repeated write can recognise its own first attempt.
fn write_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A sort-key suffix unique across writers and increasing within this process (see the module
/// docs). The clock is read only to order ties; the instants the ports are given come first in
/// every sort key.
fn stamp() -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let next = |last: u64| now.max(last.saturating_add(1));
    let last = LAST.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(next(last))).unwrap_or_else(|last| last);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{:020}#{}", next(last), &random[..8])
}

/// Takes a lock, recovering it if a previous holder panicked (no critical section here can panic
/// halfway through a change).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
