//! `IdempotencyStore`: one item per key (`pk = key#<dedup key>`, `sk = claim`), every call one
//! conditional write. The decision table is core's [`ClaimRecord::decide`]; the claim's condition
//! is that table's `New`/`Resumed` rows written as a `ConditionExpression`, and the old item that
//! comes back either way (`ALL_OLD`) is what `decide` reads. See the module docs of `dynamo`.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use olbridge_core::domain::ids::DedupKey;
use olbridge_core::domain::turn::{TurnOutcome, TurnProgress};
use olbridge_core::ports::{Admission, Claim, ClaimRecord, IdempotencyStore, RecordPhase, StoreError, StoreResult};

use super::codec::{Fields, Item, after, expires, ms, n, names, s, to_json, values};
use super::error::{Cond, backend, conditional};
use super::{DynamoStore, key, write_id};

const PREFIX: &str = "key#";
const SK: &str = "claim";

const QUEUED: &str = "queued";
const LEASED: &str = "leased";
const RELEASED: &str = "released";
const DONE: &str = "done";

/// The claim's condition: exactly the records `ClaimRecord::decide` answers `New` or `Resumed` for.
/// A lease is live while `lease_until > now`, so it can be taken over from `lease_until <= now`.
const CLAIMABLE: &str = "attribute_not_exists(#pk) OR #phase IN (:queued, :released) OR (#phase = :leased AND (#lease_until <= :now OR #owner = :owner))";

fn claim_key(k: &DedupKey) -> Item {
    key(format!("{PREFIX}{}", k.as_str()), SK)
}

/// Decodes a stored claim.
fn decode(k: &DedupKey, item: &Item) -> StoreResult<ClaimRecord> {
    let what = format!("claim {}", k.as_str());
    let f = Fields::new(item, &what);
    let phase = match f.s("phase")? {
        QUEUED => RecordPhase::Queued { at: f.time("queued_at")? },
        LEASED => RecordPhase::Leased { until: f.time("lease_until")? },
        RELEASED => RecordPhase::Released,
        DONE => RecordPhase::Done { outcome: f.json("outcome")?, at: f.time("done_at")? },
        other => return Err(StoreError::Corrupt(format!("{what}: unknown phase {other:?}"))),
    };
    Ok(ClaimRecord { owner: f.opt_s("owner")?.unwrap_or_default().to_owned(), phase, progress: f.opt_json("progress")? })
}

impl DynamoStore {
    /// `admit` as the write `id` (a repeated write carries its first attempt's id).
    pub(super) async fn admit_as(&self, key: &DedupKey, now: DateTime<Utc>, id: &str) -> StoreResult<Admission> {
        let condition = "attribute_not_exists(#pk)";
        let mut item = claim_key(key);
        item.extend([
            ("phase".to_owned(), s(QUEUED)),
            ("queued_at".to_owned(), n(ms(now))),
            ("expires_at".to_owned(), expires(now, self.retention.keys)),
            ("write_id".to_owned(), s(id)),
        ]);
        let sent = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(match conditional("PutItem (admit)", sent)? {
            Cond::Written(_) => Admission::New,
            // The SDK repeated our own write after losing its answer: it was admitted by us.
            Cond::Failed(Some(old)) if Fields::new(&old, "claim").opt_s("write_id")? == Some(id) => Admission::New,
            Cond::Failed(_) => Admission::Duplicate,
        })
    }
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn admit(&self, key: &DedupKey, now: DateTime<Utc>) -> StoreResult<Admission> {
        self.admit_as(key, now, &write_id()).await
    }

    async fn unadmit(&self, key: &DedupKey) -> StoreResult<()> {
        let condition = "#phase = :queued";
        let sent = self
            .client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(claim_key(key)))
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .set_expression_attribute_values(values(&[condition], [(":queued", s(QUEUED))]))
            .send()
            .await;
        // A claimed, done or unknown key is left alone.
        conditional("DeleteItem (unadmit)", sent).map(|_| ())
    }

    async fn claim(&self, key: &DedupKey, owner: &str, now: DateTime<Utc>, lease: Duration) -> StoreResult<Claim> {
        // The progress is kept: a resumed turn needs it.
        let update = "SET #owner = :owner, #phase = :leased, #lease_until = :until REMOVE #queued_at, #expires_at";
        let sent = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(claim_key(key)))
            .update_expression(update)
            .condition_expression(CLAIMABLE)
            .set_expression_attribute_names(names(&[update, CLAIMABLE]))
            .set_expression_attribute_values(values(
                &[update, CLAIMABLE],
                [
                    (":owner", s(owner)),
                    (":leased", s(LEASED)),
                    (":until", n(ms(after(now, lease)))),
                    (":queued", s(QUEUED)),
                    (":released", s(RELEASED)),
                    (":now", n(ms(now))),
                ],
            ))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let (won, old) = match conditional("UpdateItem (claim)", sent)? {
            Cond::Written(out) => (true, out.attributes),
            Cond::Failed(old) => (false, old),
        };
        let record = old.as_ref().map(|item| decode(key, item)).transpose()?;
        let answer = ClaimRecord::decide(record.as_ref(), owner, now);
        if won != matches!(answer, Claim::New | Claim::Resumed(_)) {
            // The condition and the decision table disagree: a bug, never data. Retryable: a retry
            // by the same owner resumes (if it won) or reads the record again.
            return Err(StoreError::Backend(format!(
                "claim {}: the conditional write {} but the decision is {answer:?} (record {record:?})",
                key.as_str(),
                if won { "succeeded" } else { "failed" }
            )));
        }
        Ok(answer)
    }

    async fn checkpoint(&self, key: &DedupKey, owner: &str, progress: &TurnProgress, now: DateTime<Utc>, lease: Duration) -> StoreResult<()> {
        let (update, condition) = ("SET #progress = :progress, #lease_until = :until", "#owner = :owner AND #phase = :leased");
        let sent = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(claim_key(key)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[update, condition]))
            .set_expression_attribute_values(values(
                &[update, condition],
                [(":progress", s(to_json("progress", progress)?)), (":until", n(ms(after(now, lease)))), (":owner", s(owner)), (":leased", s(LEASED))],
            ))
            .send()
            .await;
        match conditional("UpdateItem (checkpoint)", sent)? {
            Cond::Written(_) => Ok(()),
            Cond::Failed(_) => Err(StoreError::LeaseLost),
        }
    }

    async fn complete(&self, key: &DedupKey, owner: &str, outcome: &TurnOutcome, now: DateTime<Utc>) -> StoreResult<()> {
        // The checkpoint is no longer needed once the outcome is final.
        let update = "SET #phase = :done, #outcome = :outcome, #done_at = :at, #expires_at = :expires REMOVE #lease_until, #progress";
        let condition = "#owner = :owner AND #phase = :leased";
        let sent = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(claim_key(key)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[update, condition]))
            .set_expression_attribute_values(values(
                &[update, condition],
                [
                    (":done", s(DONE)),
                    (":outcome", s(to_json("outcome", outcome)?)),
                    (":at", n(ms(now))),
                    (":expires", expires(now, self.retention.keys)),
                    (":owner", s(owner)),
                    (":leased", s(LEASED)),
                ],
            ))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match conditional("UpdateItem (complete)", sent)? {
            Cond::Written(_) => Ok(()),
            // A retried complete whose first attempt went through.
            Cond::Failed(Some(old)) if decode(key, &old).is_ok_and(|r| r.owner == owner && matches!(r.phase, RecordPhase::Done { .. })) => Ok(()),
            Cond::Failed(_) => Err(StoreError::LeaseLost),
        }
    }

    async fn release(&self, key: &DedupKey, owner: &str) -> StoreResult<()> {
        // Released again by its owner: a retried release.
        let (update, condition) = ("SET #phase = :released REMOVE #lease_until", "#owner = :owner AND #phase IN (:leased, :released)");
        let sent = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(claim_key(key)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[update, condition]))
            .set_expression_attribute_values(values(&[update, condition], [(":released", s(RELEASED)), (":owner", s(owner)), (":leased", s(LEASED))]))
            .send()
            .await;
        match conditional("UpdateItem (release)", sent)? {
            Cond::Written(_) => Ok(()),
            Cond::Failed(_) => Err(StoreError::LeaseLost),
        }
    }

    async fn reopen(&self, key: &DedupKey) -> StoreResult<()> {
        let (update, condition) = ("SET #phase = :released REMOVE #lease_until, #outcome, #done_at, #expires_at", "#phase IN (:leased, :done)");
        let sent = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(claim_key(key)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[update, condition]))
            .set_expression_attribute_values(values(&[update, condition], [(":released", s(RELEASED)), (":leased", s(LEASED)), (":done", s(DONE))]))
            .send()
            .await;
        // Queued and unknown keys are left alone.
        conditional("UpdateItem (reopen)", sent).map(|_| ())
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        self.purge(
            "purge claims",
            "begins_with(#pk, :prefix) AND #sk = :sk",
            "(#phase = :done AND #done_at < :cutoff) OR (#phase = :queued AND #queued_at < :cutoff)",
            [(":prefix", s(PREFIX)), (":sk", s(SK)), (":done", s(DONE)), (":queued", s(QUEUED)), (":cutoff", n(ms(cutoff)))],
        )
        .await
    }

    async fn phase(&self, key: &DedupKey) -> StoreResult<Option<RecordPhase>> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(claim_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem (claim)", e))?;
        Ok(out.item.map(|item| decode(key, &item)).transpose()?.map(|r| r.phase))
    }
}
