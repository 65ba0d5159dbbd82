//! Attribute conversions: building attribute values and expressions, and reading items back into
//! domain types. Every decoding failure is [`StoreError::Corrupt`], naming the record and the
//! attribute, because it means an item this code did not write (or an incompatible version did).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use olbridge_core::ports::{StoreError, StoreResult};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An item (or a key, or a map of expression values) as the SDK takes and returns it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub(crate) fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Epoch milliseconds: how every instant is stored (the contract's times are whole milliseconds).
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `now + d`, saturating at the latest representable time (a lease of `Duration::MAX` never ends).
pub(crate) fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `now - d`, saturating at the earliest representable time.
pub(crate) fn before(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d).ok().and_then(|d| now.checked_sub_signed(d)).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The TTL attribute's value for a record of time `at` kept for `keep`: epoch **seconds**, as
/// DynamoDB's TTL wants them.
pub(crate) fn expires(at: DateTime<Utc>, keep: Duration) -> AttributeValue {
    n(after(at, keep).timestamp())
}

/// A zero-padded, sortable rendering of an instant's epoch milliseconds for sort keys (instants
/// before 1970 sort as 1970; the exact time is always stored in its own attribute too).
pub(crate) fn sortable_ms(t: DateTime<Utc>) -> String {
    format!("{:015}", ms(t).max(0))
}

/// Serialises a value stored as a JSON string attribute.
pub(crate) fn to_json<T: Serialize>(what: &str, v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("cannot encode {what}: {e}")))
}

/// Every `#name` and `:value` placeholder in `exprs`.
fn placeholders<'a>(exprs: &[&'a str], sigil: char) -> impl Iterator<Item = &'a str> {
    exprs.iter().flat_map(move |e| {
        e.match_indices(sigil).map(move |(i, _)| {
            let rest = &e[i + 1..];
            let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            &e[i..=i + len]
        })
    })
}

/// `ExpressionAttributeNames` for `exprs`: every `#name` placeholder stands for the attribute
/// `name`. All our expressions name attributes this way, so none can collide with DynamoDB's
/// reserved words (`owner`, `value`, ...). `None` when there are none (an empty map is an error).
pub(crate) fn names(exprs: &[&str]) -> Option<HashMap<String, String>> {
    let map: HashMap<String, String> = placeholders(exprs, '#').filter(|p| p.len() > 1).map(|p| (p.to_owned(), p[1..].to_owned())).collect();
    (!map.is_empty()).then_some(map)
}

/// `ExpressionAttributeValues` for `exprs`: the entries of `values` whose placeholder appears in
/// them (DynamoDB rejects unused ones, so one list of values can serve a filter and a condition).
pub(crate) fn values<const N: usize>(exprs: &[&str], values: [(&str, AttributeValue); N]) -> Option<Item> {
    let used: Vec<&str> = placeholders(exprs, ':').collect();
    let map: Item = values.into_iter().filter(|(k, _)| used.contains(k)).map(|(k, v)| (k.to_owned(), v)).collect();
    (!map.is_empty()).then_some(map)
}

/// Reads the attributes of one stored item; errors name `what` (the record) and the attribute.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    item: &'a Item,
    what: &'a str,
}

impl<'a> Fields<'a> {
    /// The attributes of `item`, which is the stored `what` (e.g. `claim k1`).
    pub(crate) fn new(item: &'a Item, what: &'a str) -> Self {
        Self { item, what }
    }

    fn corrupt(&self, name: &str, problem: &str) -> StoreError {
        StoreError::Corrupt(format!("{}: attribute {name} {problem}", self.what))
    }

    /// A string attribute, if present.
    pub(crate) fn opt_s(&self, name: &str) -> StoreResult<Option<&'a str>> {
        match self.item.get(name) {
            None => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v)),
            Some(_) => Err(self.corrupt(name, "is not a string")),
        }
    }

    /// A required string attribute.
    pub(crate) fn s(&self, name: &str) -> StoreResult<&'a str> {
        self.opt_s(name)?.ok_or_else(|| self.corrupt(name, "is missing"))
    }

    /// A required integer attribute.
    pub(crate) fn i64(&self, name: &str) -> StoreResult<i64> {
        match self.item.get(name) {
            Some(AttributeValue::N(v)) => v.parse().map_err(|_| self.corrupt(name, &format!("is not an integer: {v:?}"))),
            Some(_) => Err(self.corrupt(name, "is not a number")),
            None => Err(self.corrupt(name, "is missing")),
        }
    }

    /// A required non-negative integer attribute.
    pub(crate) fn u64(&self, name: &str) -> StoreResult<u64> {
        let v = self.i64(name)?;
        u64::try_from(v).map_err(|_| self.corrupt(name, &format!("is negative: {v}")))
    }

    /// A required instant, stored as epoch milliseconds.
    pub(crate) fn time(&self, name: &str) -> StoreResult<DateTime<Utc>> {
        let v = self.i64(name)?;
        DateTime::<Utc>::from_timestamp_millis(v).ok_or_else(|| self.corrupt(name, &format!("is not a time: {v}")))
    }

    /// A JSON string attribute, decoded.
    pub(crate) fn json<T: DeserializeOwned>(&self, name: &str) -> StoreResult<T> {
        serde_json::from_str(self.s(name)?).map_err(|e| self.corrupt(name, &format!("does not decode: {e}")))
    }

    /// An optional JSON string attribute, decoded.
    pub(crate) fn opt_json<T: DeserializeOwned>(&self, name: &str) -> StoreResult<Option<T>> {
        self.opt_s(name)?.map(|v| serde_json::from_str(v).map_err(|e| self.corrupt(name, &format!("does not decode: {e}")))).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_whole() {
        let (update, cond) = ("SET #owner = :owner, #lease_until = :until", "#owner = :owner2 AND attribute_not_exists(#pk)");
        let found = names(&[update, cond]).expect("names");
        assert_eq!(found.len(), 3);
        assert_eq!(found["#lease_until"], "lease_until");
        let vals = values(&[update, cond], [(":owner", s("a")), (":until", n(1)), (":unused", n(2)), (":owner2", s("b"))]).expect("values");
        let mut keys: Vec<_> = vals.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, [":owner", ":owner2", ":until"]);
        assert_eq!(names(&["attribute_not_exists(pk)"]), None);
    }

    #[test]
    fn fields_name_the_record_and_attribute() {
        let item: Item = [("a".to_owned(), n(-3)), ("b".to_owned(), s("x"))].into();
        let f = Fields::new(&item, "claim k");
        assert_eq!(f.i64("a").expect("a"), -3);
        let err = f.u64("a").expect_err("negative").to_string();
        assert!(err.contains("claim k") && err.contains("attribute a"), "{err}");
        assert!(matches!(f.s("missing"), Err(StoreError::Corrupt(_))));
        assert!(matches!(f.i64("b"), Err(StoreError::Corrupt(_))));
        assert_eq!(f.opt_s("missing").expect("optional"), None);
    }

    #[test]
    fn sort_keys_and_ttls() {
        let t = DateTime::<Utc>::from_timestamp_millis(1_735_689_600_123).expect("time");
        assert_eq!(sortable_ms(t), "001735689600123");
        assert_eq!(expires(t, Duration::from_secs(86_400)), n(1_735_689_600 + 86_400));
        assert_eq!(after(t, Duration::MAX), DateTime::<Utc>::MAX_UTC);
    }
}
