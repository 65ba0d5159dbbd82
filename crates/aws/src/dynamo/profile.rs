//! `ProfileStore`: one item per phone (`pk = phone#<phone>`, `sk = profile`), the profile as a JSON
//! string (it has free-form `extra` keys, which DynamoDB attributes would only make harder to read
//! back exactly) beside a numeric `version` that every write compares in its condition.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use olbridge_core::domain::ids::Phone;
use olbridge_core::domain::profile::Profile;
use olbridge_core::ports::{ProfileStore, StoreResult};

use super::codec::{Fields, Item, expires, ms, n, names, s, to_json, values};
use super::error::{Cond, backend, conditional};
use super::{DynamoStore, key, write_id};

pub(super) const PREFIX: &str = "phone#";
const SK: &str = "profile";

fn profile_key(phone: &Phone) -> Item {
    key(format!("{PREFIX}{}", phone.as_str()), SK)
}

impl DynamoStore {
    /// `put` as the write `id` (a repeated write carries its first attempt's id).
    pub(super) async fn put_profile_as(&self, profile: &Profile, id: &str) -> StoreResult<bool> {
        // Version 0: only if none is stored; otherwise only over the version it was read at.
        let condition = if profile.version == 0 { "attribute_not_exists(#pk)" } else { "#version = :expected" };
        let mut item = profile_key(&profile.phone);
        item.extend([
            ("body".to_owned(), s(to_json("profile", profile)?)),
            ("version".to_owned(), n(profile.version.saturating_add(1))),
            ("updated_at".to_owned(), n(ms(profile.updated_at))),
            ("expires_at".to_owned(), expires(profile.updated_at, self.retention.profiles)),
            ("write_id".to_owned(), s(id)),
        ]);
        let sent = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .set_expression_attribute_values(values(&[condition], [(":expected", n(profile.version))]))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(match conditional("PutItem (profile)", sent)? {
            Cond::Written(_) => true,
            // The SDK repeated our own write after losing its answer.
            Cond::Failed(Some(old)) => Fields::new(&old, "profile").opt_s("write_id")? == Some(id),
            Cond::Failed(None) => false,
        })
    }
}

#[async_trait]
impl ProfileStore for DynamoStore {
    async fn get(&self, phone: &Phone) -> StoreResult<Option<Profile>> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(profile_key(phone)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem (profile)", e))?;
        let Some(item) = out.item else { return Ok(None) };
        let what = format!("profile {}", phone.as_str());
        let f = Fields::new(&item, &what);
        let mut profile: Profile = f.json("body")?;
        profile.version = f.u64("version")?;
        Ok(Some(profile))
    }

    async fn put(&self, profile: &Profile) -> StoreResult<bool> {
        self.put_profile_as(profile, &write_id()).await
    }

    async fn delete(&self, phone: &Phone) -> StoreResult<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(profile_key(phone)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| backend("DeleteItem (profile)", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        self.purge(
            "purge profiles",
            "begins_with(#pk, :prefix) AND #sk = :sk",
            "#updated_at < :cutoff",
            [(":prefix", s(PREFIX)), (":sk", s(SK)), (":cutoff", n(ms(cutoff)))],
        )
        .await
    }
}
