//! The queue on SQS FIFO: [`SqsSink`] (the receiver's and the pollers' [`JobSink`]) and
//! [`SqsDeadLetters`] (the [`DeadLetters`] port over the FIFO dead-letter queue).
//!
//! # Sending
//! One message per job: the body is the versioned [`Job`] as JSON, `MessageGroupId` is the job's
//! group (its chat, so one chat's messages are handled in order) and `MessageDeduplicationId` is
//! [`dedup_id`], the SHA-256 hex of the job's key (64 characters; SQS takes at most 128, and the key
//! itself may not fit or may carry characters SQS refuses). SQS drops a copy sent within five
//! minutes; after that the idempotency store (not the queue) tells the copy apart, as the port says.
//! The key also travels as the message attribute [`KEY_ATTRIBUTE`], so a dead letter can be chosen
//! for redrive even when its body can no longer be decoded (written by a newer version, say). The
//! group needs no attribute: it is the message's own `MessageGroupId`.
//!
//! A message is at most [`MAX_MESSAGE_BYTES`] (256 KiB: body plus attributes), checked here before
//! any network call, so an oversized job fails at once with [`StoreError::TooLarge`] naming its key
//! and size rather than with a generic `InvalidParameterValue`. SQS accepts larger messages on
//! queues configured for them (moto's default is 1 MiB); we keep to 256 KiB so any queue takes our
//! messages and a batch of ten stays far below Lambda's 6 MB invocation payload. The receiver caps an
//! event body at 256 KiB (`OLBRIDGE_MAX_BODY_BYTES`), and a job's JSON is usually smaller than the
//! form it came from, so this limit is a guard, not a routine path.
//!
//! # Dead letters: what SQS can and cannot do
//! - **SQS cannot list without receiving.** [`SqsDeadLetters::dead_letters`] receives with a short
//!   visibility timeout ([`HOLD`]) and gives every message back (visibility 0) before returning, so
//!   nothing is consumed. Each listing still counts one receive on every message, and a listing
//!   that dies midway leaves messages hidden for up to [`HOLD`].
//! - **FIFO groups block.** While messages of a group are held, SQS returns no later message of that
//!   group, so a listing sees what the first receive of each group returned (up to ten per call) and
//!   may show fewer than there are; a chosen message behind ten unchosen ones of its group cannot be
//!   reached by [`SqsDeadLetters::redrive`] (redrive the group's earlier ones first, or all).
//! - **SQS keeps no reason or counters.** A [`DeadLetter`] carries what the message does:
//!   `failures` is its `ApproximateReceiveCount` (every receive counts, listings too; the count moves
//!   to the dead-letter queue with the message), `interruptions` is 0 (unknown), `dead_at` is its
//!   `SentTimestamp` (when it was first sent: SQS does not say when it moved it), and `reason` says
//!   so. The worker's logs hold the real reason, under the job's key.
//!
//! # Redrive
//! A chosen message is sent to the main queue with its own group and a fresh de-duplication id
//! (derived from the dead-letter message's id, so a redrive repeated after a crash is de-duplicated
//! by SQS within five minutes), then deleted from the dead-letter queue. A crash between the two
//! leaves it in both queues: at-least-once is fine, the idempotency store decides (and
//! `olbridge_core::usecase::job::redrive` reopens the keys before moving the messages).
//!
//! Every SDK error becomes a [`StoreError::Backend`] in one place, `backend`.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use chrono::{DateTime, Utc};
use olbridge_core::domain::event::Job;
use olbridge_core::domain::ids::DedupKey;
use olbridge_core::ports::{DeadLetter, DeadLetters, JobSink, QueueAge, QueueGauge, StoreError, StoreResult};
use sha2::{Digest, Sha256};

/// The largest message we send: body plus message attributes, as SQS counts them.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The message attribute carrying the job's de-duplication key.
pub const KEY_ATTRIBUTE: &str = "olbridge-key";

/// How long a dead-letter listing or redrive holds the messages it received before giving back the
/// ones it leaves (if it dies, that is how long they stay hidden).
pub const HOLD: Duration = Duration::from_secs(30);

/// The `MessageDeduplicationId` of a job: the SHA-256 hex of its key (64 characters).
pub fn dedup_id(key: &DedupKey) -> String {
    hex::encode(Sha256::digest(key.as_str().as_bytes()))
}

/// The size SQS counts for a message with this body and key attribute: the body, plus each
/// attribute's name, data type and value.
fn message_bytes(body: &str, key: &str) -> usize {
    body.len() + KEY_ATTRIBUTE.len() + "String".len() + key.len()
}

/// The size of `job` as an SQS message (what is compared with [`MAX_MESSAGE_BYTES`]).
pub fn job_message_bytes(job: &Job) -> StoreResult<usize> {
    Ok(message_bytes(&encode(job)?, job.key.as_str()))
}

fn encode(job: &Job) -> StoreResult<String> {
    serde_json::to_string(job).map_err(|e| StoreError::Corrupt(format!("job {} cannot be encoded: {e}", job.key)))
}

/// The one mapping of SDK errors: the operation, the queue and a safe description of the error
/// (never the raw response: a received body is a customer's message).
pub(crate) fn backend<E: ProvideErrorMetadata, R>(operation: &str, queue_url: &str, e: SdkError<E, R>) -> StoreError {
    StoreError::Backend(format!("SQS {operation} on {queue_url}: {}", crate::sdk_error::describe(&e)))
}

fn key_attribute(key: &str) -> StoreResult<MessageAttributeValue> {
    MessageAttributeValue::builder().data_type("String").string_value(key).build().map_err(|e| StoreError::Backend(format!("SQS message attribute: {e}")))
}

/// Sends one job message; `dedup` is its de-duplication id.
async fn send_message(client: &Client, queue_url: &str, group: &str, key: &str, body: String, dedup: String) -> StoreResult<()> {
    let size = message_bytes(&body, key);
    if size > MAX_MESSAGE_BYTES {
        return Err(StoreError::TooLarge(format!("job {key} is {size} bytes as an SQS message, over the {MAX_MESSAGE_BYTES}-byte limit; it was not queued")));
    }
    client
        .send_message()
        .queue_url(queue_url)
        .message_group_id(group)
        .message_deduplication_id(dedup)
        .message_attributes(KEY_ATTRIBUTE, key_attribute(key)?)
        .message_body(body)
        .send()
        .await
        .map_err(|e| backend("SendMessage", queue_url, e))?;
    Ok(())
}

/// [`JobSink`] on an SQS FIFO queue (`OLBRIDGE_QUEUE_URL`).
#[derive(Debug, Clone)]
pub struct SqsSink {
    client: Client,
    queue_url: String,
}

impl SqsSink {
    /// A sink sending to `queue_url` (a FIFO queue).
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }

    /// The queue it sends to.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

#[async_trait]
impl JobSink for SqsSink {
    async fn send(&self, job: &Job, _now: DateTime<Utc>) -> StoreResult<()> {
        send_message(&self.client, &self.queue_url, job.group.as_str(), job.key.as_str(), encode(job)?, dedup_id(&job.key)).await
    }
}

/// The deep health check's view of the queue: how many messages wait or are in flight
/// (`ApproximateNumberOfMessages`, `...NotVisible`, `...Delayed`). SQS reports the age of the
/// oldest message only to CloudWatch (`ApproximateAgeOfOldestMessage`, which the stack's
/// `queue-age` alarm watches), not as a queue attribute, so the gauge has no age.
#[async_trait]
impl QueueAge for SqsSink {
    async fn gauge(&self, _now: DateTime<Utc>) -> StoreResult<QueueGauge> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| backend("GetQueueAttributes", &self.queue_url, e))?;
        let attributes = out.attributes.unwrap_or_default();
        let pending = attributes.values().filter_map(|v| v.parse::<u64>().ok()).sum();
        Ok(QueueGauge { pending: Some(pending), oldest_received_at: None })
    }
}

/// [`DeadLetters`] over the FIFO dead-letter queue (`OLBRIDGE_DLQ_URL`) of the main queue
/// (`OLBRIDGE_QUEUE_URL`). See the module docs for what SQS allows.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
    dlq_url: String,
    wait: Duration,
}

/// A message received from the dead-letter queue.
#[derive(Debug)]
struct Held {
    receipt: String,
    message_id: String,
    group: Option<String>,
    key: Option<String>,
    body: String,
    receive_count: u32,
    sent_at: Option<DateTime<Utc>>,
}

impl Held {
    fn from_message(m: Message) -> Option<Self> {
        let attr = |name: MessageSystemAttributeName| m.attributes().and_then(|a| a.get(&name)).cloned();
        let group = attr(MessageSystemAttributeName::MessageGroupId);
        let receive_count = attr(MessageSystemAttributeName::ApproximateReceiveCount).and_then(|v| v.parse().ok()).unwrap_or(0);
        let sent_at = attr(MessageSystemAttributeName::SentTimestamp).and_then(|v| v.parse::<i64>().ok()).and_then(DateTime::from_timestamp_millis);
        let key = m.message_attributes().and_then(|a| a.get(KEY_ATTRIBUTE)).and_then(|v| v.string_value()).map(str::to_owned);
        Some(Self { receipt: m.receipt_handle?, message_id: m.message_id?, group, key, body: m.body.unwrap_or_default(), receive_count, sent_at })
    }

    fn job(&self) -> Option<Job> {
        serde_json::from_str(&self.body).ok()
    }

    /// The job's key: the attribute, else the decoded body's.
    fn key(&self) -> Option<DedupKey> {
        self.key.clone().map(DedupKey::from_stored).or_else(|| self.job().map(|j| j.key))
    }
}

impl SqsDeadLetters {
    /// Dead letters of `dlq_url`, redriven to `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>, dlq_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into(), dlq_url: dlq_url.into(), wait: Duration::from_secs(1) }
    }

    /// Sets the long-poll wait of each receive (default 1 s: long polling asks every SQS server, a
    /// short poll only a sample, which can miss messages). The last receive of a listing waits this
    /// long for nothing.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Receives up to `max` messages (at most 10), holding them for [`HOLD`].
    async fn receive(&self, max: usize) -> StoreResult<Vec<Held>> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .visibility_timeout(secs(HOLD))
            .wait_time_seconds(secs(self.wait))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| backend("ReceiveMessage", &self.dlq_url, e))?;
        Ok(out.messages.unwrap_or_default().into_iter().filter_map(Held::from_message).collect())
    }

    /// Receives until `limit` messages are held or the queue shows no more. A message received
    /// twice (a pass longer than [`HOLD`]) is kept once, with its newest receipt.
    async fn receive_all(&self, limit: usize) -> StoreResult<Vec<Held>> {
        let mut held: Vec<Held> = Vec::new();
        while held.len() < limit {
            let batch = self.receive(limit - held.len()).await?;
            if batch.is_empty() {
                break;
            }
            absorb(&mut held, batch);
        }
        Ok(held)
    }

    /// Makes held messages visible again at once. Best effort: a message that cannot be given back
    /// (its receipt expired) becomes visible by itself after [`HOLD`].
    async fn give_back(&self, held: &[Held]) {
        for h in held {
            let result = self.client.change_message_visibility().queue_url(&self.dlq_url).receipt_handle(&h.receipt).visibility_timeout(0).send().await;
            if let Err(e) = result {
                let e = backend("ChangeMessageVisibility", &self.dlq_url, e);
                tracing::warn!(message_id = %h.message_id, error = %e, "dead letter not given back; it reappears within the hold time");
            }
        }
    }

    /// Puts one held message back on the main queue and deletes it from the dead-letter queue.
    async fn move_back(&self, h: &Held, key: &DedupKey) -> StoreResult<()> {
        let group = h
            .group
            .clone()
            .or_else(|| h.job().map(|j| j.group.as_str().to_owned()))
            .ok_or_else(|| StoreError::Corrupt(format!("dead letter {} (key {key}) has no message group and an undecodable body", h.message_id)))?;
        let dedup = hex::encode(Sha256::digest(format!("redrive:{}", h.message_id).as_bytes()));
        send_message(&self.client, &self.queue_url, &group, key.as_str(), h.body.clone(), dedup).await?;
        self.client
            .delete_message()
            .queue_url(&self.dlq_url)
            .receipt_handle(&h.receipt)
            .send()
            .await
            .map_err(|e| backend("DeleteMessage", &self.dlq_url, e))?;
        Ok(())
    }
}

/// Adds `batch` to `held`, replacing a message received again (its old receipt is stale).
fn absorb(held: &mut Vec<Held>, batch: Vec<Held>) {
    for h in batch {
        match held.iter_mut().find(|x| x.message_id == h.message_id) {
            Some(old) => *old = h,
            None => held.push(h),
        }
    }
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn dead_letter(h: &Held, job: Job) -> DeadLetter {
    DeadLetter {
        job,
        reason: format!("moved to the dead-letter queue by SQS after {} receives (SQS keeps no reason: see the worker's logs for this key)", h.receive_count),
        failures: h.receive_count,
        interruptions: 0,
        dead_at: h.sent_at.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
    }
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        let held = self.receive_all(limit).await?;
        self.give_back(&held).await;
        let mut out = Vec::new();
        for h in &held {
            match h.job() {
                Some(job) => out.push(dead_letter(h, job)),
                None => {
                    tracing::warn!(message_id = %h.message_id, key = h.key.as_deref().unwrap_or("?"), "dead letter with an undecodable body left out of the listing")
                }
            }
        }
        // Oldest first; receive order (per group, FIFO) breaks ties.
        out.sort_by_key(|d| d.dead_at);
        Ok(out)
    }

    /// Receives batch after batch, moving the chosen messages at once (which frees their group for
    /// the next receive) and holding the others until the queue shows no more; then gives those back.
    async fn redrive(&self, keys: Option<&[DedupKey]>, _now: DateTime<Utc>) -> StoreResult<Vec<DedupKey>> {
        let mut moved = Vec::new();
        let mut left: Vec<Held> = Vec::new();
        let result = loop {
            let batch = match self.receive(10).await {
                Ok(b) if b.is_empty() => break Ok(()),
                Ok(b) => b,
                Err(e) => break Err(e),
            };
            let mut failed = None;
            for h in batch {
                match h.key().filter(|k| keys.is_none_or(|only| only.contains(k))) {
                    Some(key) if failed.is_none() => match self.move_back(&h, &key).await {
                        Ok(()) => moved.push(key),
                        Err(e) => {
                            failed = Some(e);
                            absorb(&mut left, vec![h]);
                        }
                    },
                    _ => absorb(&mut left, vec![h]),
                }
            }
            if let Some(e) = failed {
                break Err(e);
            }
        };
        self.give_back(&left).await;
        result.map(|()| moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_id_is_the_sha256_hex_of_the_key() {
        // printf 'member:msg:42' | sha256sum
        let id = dedup_id(&DedupKey::from_stored("member:msg:42".into()));
        assert_eq!(id, "2f38be11f8431d05cac90e398b6f09a4028b8e2c2f481ffff0076ae7b516a61b");
        assert_eq!(id.len(), 64);
    }
}
