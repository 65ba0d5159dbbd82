//! `MetaStore`: one item per name (`pk = meta#<name>`, `sk = meta`) with a numeric `version`; a
//! compare-and-set is one conditional `PutItem` whose failure hands back what is stored (`ALL_OLD`),
//! so a conflict costs no second read.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use olbridge_core::ports::{MetaPut, MetaStore, StoreResult, Versioned};

use super::codec::{Fields, Item, n, names, s, values};
use super::error::{Cond, backend, conditional};
use super::{DynamoStore, key, write_id};

fn meta_key(name: &str) -> Item {
    key(format!("meta#{name}"), "meta")
}

fn decode(name: &str, item: &Item) -> StoreResult<Versioned> {
    let what = format!("meta value {name}");
    let f = Fields::new(item, &what);
    Ok(Versioned { value: f.s("value")?.to_owned(), version: f.u64("version")? })
}

impl DynamoStore {
    /// `put_value` as the write `id` (a repeated write carries its first attempt's id).
    pub(super) async fn put_value_as(&self, name: &str, value: &str, expected: Option<u64>, id: &str) -> StoreResult<MetaPut> {
        let condition = if expected.is_some() { "#version = :expected" } else { "attribute_not_exists(#pk)" };
        let written = Versioned { value: value.to_owned(), version: expected.unwrap_or(0).saturating_add(1) };
        let mut item = meta_key(name);
        item.extend([("value".to_owned(), s(value)), ("version".to_owned(), n(written.version)), ("write_id".to_owned(), s(id))]);
        let sent = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .set_expression_attribute_values(values(&[condition], [(":expected", n(expected.unwrap_or(0)))]))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(match conditional("PutItem (meta)", sent)? {
            Cond::Written(_) => MetaPut::Written(written),
            // The SDK repeated our own write after losing its answer.
            Cond::Failed(Some(old)) if Fields::new(&old, "meta value").opt_s("write_id")? == Some(id) => MetaPut::Written(written),
            Cond::Failed(old) => MetaPut::Conflict(old.map(|item| decode(name, &item)).transpose()?),
        })
    }
}

#[async_trait]
impl MetaStore for DynamoStore {
    async fn get_value(&self, name: &str) -> StoreResult<Option<Versioned>> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(meta_key(name)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem (meta)", e))?;
        out.item.map(|item| decode(name, &item)).transpose()
    }

    async fn put_value(&self, name: &str, value: &str, expected: Option<u64>) -> StoreResult<MetaPut> {
        self.put_value_as(name, value, expected, &write_id()).await
    }
}
