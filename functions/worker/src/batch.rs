//! An SQS event as the worker sees it: each record parsed as a [`Job`] (or set aside), grouped by
//! `MessageGroupId`, in batch order within each group, except that a group's consecutive messages
//! are put in the order they were written (`olbridge_core::domain::event::written_order`): the
//! reconciliation poller queues a message whose event was lost after the ones whose events came,
//! and taken together it is still answered first.
//!
//! A record whose body is not a job is poison: it can never succeed, and reporting it would only
//! have SQS hand it back until the redrive limit, blocking its chat behind it all that time. It is
//! acknowledged, logged at ERROR and counted (`WorkerRecords`, `Result=poison`). One exception: a
//! job written by a newer version of the bridge (`version` above [`Job::VERSION`], during a
//! deployment) is not poison — a newer worker reads it — so it is reported like a failure,
//! holding its group's order.

use aws_lambda_events::sqs::SqsMessage;
use olbridge_core::domain::event::Job;
use serde_json::Value;

/// One record, parsed.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `messageId`: what `batchItemFailures` names.
    pub message_id: String,
    /// For `ChangeMessageVisibility`.
    pub receipt_handle: Option<String>,
    /// `ApproximateReceiveCount` (at least 1): this delivery's number.
    pub receives: u32,
    /// What the body holds.
    pub item: Item,
}

/// What a record's body holds.
#[derive(Debug, Clone)]
pub enum Item {
    /// A job this worker runs.
    Job(Box<Job>),
    /// A job of a newer payload version.
    Unsupported {
        /// Its `version`.
        version: u64,
    },
}

impl Entry {
    /// The job, when this worker can run it.
    pub fn job(&self) -> Option<&Job> {
        match &self.item {
            Item::Job(j) => Some(j),
            Item::Unsupported { .. } => None,
        }
    }
}

/// One message group's records, in batch order.
#[derive(Debug, Clone)]
pub struct Group {
    /// `MessageGroupId` (the job's own group when the attribute is missing).
    pub id: String,
    /// Its records.
    pub entries: Vec<Entry>,
}

/// A record set aside.
#[derive(Debug, Clone)]
pub struct Poison {
    /// Its `messageId`, when it has one.
    pub message_id: Option<String>,
    /// Its `MessageGroupId`, when it has one.
    pub group: Option<String>,
    /// Why it is not a job (never the body itself: it may hold personal data).
    pub why: String,
}

/// A parsed batch.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The groups, in order of their first record.
    pub groups: Vec<Group>,
    /// Records that are not jobs.
    pub poison: Vec<Poison>,
}

/// Parses and groups `records`.
pub fn parse(records: Vec<SqsMessage>) -> Batch {
    let mut batch = Batch::default();
    for record in records {
        let attribute = |name: &str| record.attributes.get(name).cloned();
        let group = attribute("MessageGroupId");
        let Some(message_id) = record.message_id.clone() else {
            batch.poison.push(Poison { message_id: None, group, why: "the record has no messageId".into() });
            continue;
        };
        let item = match read_body(record.body.as_deref()) {
            Ok(item) => item,
            Err(why) => {
                batch.poison.push(Poison { message_id: Some(message_id), group, why });
                continue;
            }
        };
        let receives = attribute("ApproximateReceiveCount").and_then(|c| c.parse::<u32>().ok()).unwrap_or(1).max(1);
        let group = group.or_else(|| match &item {
            Item::Job(j) => Some(j.group.as_str().to_owned()),
            Item::Unsupported { .. } => None,
        });
        let entry = Entry { message_id, receipt_handle: record.receipt_handle.clone(), receives, item };
        let id = group.unwrap_or_default();
        match batch.groups.iter_mut().find(|g| g.id == id) {
            Some(g) => g.entries.push(entry),
            None => batch.groups.push(Group { id, entries: vec![entry] }),
        }
    }
    for group in &mut batch.groups {
        olbridge_core::domain::event::written_order(&mut group.entries, Entry::job);
    }
    batch
}

fn read_body(body: Option<&str>) -> Result<Item, String> {
    let body = body.ok_or("the record has no body")?;
    let value: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON (line {}, column {})", e.line(), e.column()))?;
    let version = value.get("version").and_then(Value::as_u64);
    if let Some(version) = version.filter(|v| *v > u64::from(Job::VERSION)) {
        return Ok(Item::Unsupported { version });
    }
    serde_json::from_value::<Job>(value).map(|j| Item::Job(Box::new(j))).map_err(|e| {
        // serde's "invalid type"/"unknown variant" messages quote the offending value; only the
        // ones naming our own fields are kept.
        let e = e.to_string();
        if e.starts_with("missing field") { format!("the body is not a job ({e})") } else { "the body is JSON but not a job".into() }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use aws_lambda_events::sqs::SqsEvent;

    use super::*;

    fn fixture(json: &str) -> Batch {
        parse(serde_json::from_str::<SqsEvent>(json).expect("an SQS event").records)
    }

    #[test]
    fn records_are_grouped_by_message_group_in_batch_order() {
        let batch = fixture(include_str!("../../../events/sqs-two-groups.json"));
        assert!(batch.poison.is_empty());
        let shape: Vec<(String, Vec<String>)> =
            batch.groups.iter().map(|g| (g.id.clone(), g.entries.iter().map(|e| e.job().expect("a job").key.to_string()).collect())).collect();
        let m = "869e4953d7e841e02de675524e65f51a";
        assert_eq!(shape, [(format!("{m}:chat5"), vec![format!("{m}:msg:17"), format!("{m}:msg:19")]), (format!("{m}:chat7"), vec![format!("{m}:msg:18")])]);
        assert!(batch.groups.iter().flat_map(|g| &g.entries).all(|e| e.receives == 1 && e.receipt_handle.is_some()));
    }

    #[test]
    fn what_is_not_a_job_is_poison_but_a_newer_job_is_not() {
        let batch = fixture(include_str!("../../../events/sqs-poison.json"));
        assert_eq!(batch.poison.len(), 1);
        assert_eq!(batch.poison[0].message_id.as_deref(), Some("0f6e3c1a-5b7d-4e0b-9c1e-000000000001"));
        assert!(batch.poison[0].why.contains("not a job"), "{}", batch.poison[0].why);
        let items: Vec<(usize, bool)> = batch.groups.iter().map(|g| (g.entries.len(), g.entries[0].job().is_some())).collect();
        assert_eq!(items, [(1, true), (1, false)]);
        assert!(matches!(batch.groups[1].entries[0].item, Item::Unsupported { version: 99 }));
    }

    #[test]
    fn bodies_that_are_not_jobs_say_why_without_quoting_them() {
        for (body, why) in [
            (None, "no body"),
            (Some("+4915112345678 wrote"), "not JSON"),
            (Some(r#"{"version": 1, "phone": "+4915112345678"}"#), "not a job"),
            (Some(r#"{"version": 1, "key": 4915112345678}"#), "not a job"),
        ] {
            let e = read_body(body).expect_err("poison");
            assert!(e.contains(why), "{e}");
            assert!(!e.contains("4915112345678"), "the body leaked: {e}");
        }
    }
}
