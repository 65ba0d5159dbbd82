//! `SqsSink` and `SqsDeadLetters` against moto (FIFO queue + FIFO dead-letter queue built from
//! `infra/resources.json`). Needs `AWS_ENDPOINT_URL` (see `olbridge_aws::testing`): without it these
//! tests fail, they do not skip.
//!
//! moto deviations kept in mind (reference notes §7): FIFO redelivery order after a visibility
//! timeout is not faithful, so no test asserts it; sequence numbers are random, so order is taken
//! from the order of receives, never from `SequenceNumber`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use olbridge_aws::sqs::{KEY_ATTRIBUTE, MAX_MESSAGE_BYTES, SqsDeadLetters, SqsSink, dedup_id, job_message_bytes};
use olbridge_aws::testing;
use olbridge_core::contract::{job, key, t};
use olbridge_core::domain::event::{Job, PortalEvent};
use olbridge_core::ports::{DeadLetters, JobSink, StoreError};
use sha2::{Digest, Sha256};

/// A received message: group, dedup id, key attribute, job.
#[derive(Debug)]
struct Got {
    group: String,
    dedup: String,
    key_attr: String,
    job: Job,
}

async fn setup(visibility: Option<u32>) -> (Client, String, String) {
    let cfg = testing::config().await;
    let (queue, dlq) = testing::fresh_queues(&cfg, visibility).await;
    (Client::new(&cfg), queue, dlq)
}

/// Receives and deletes everything in `queue`, in receive order.
async fn drain(client: &Client, queue: &str) -> Vec<Got> {
    let mut out = Vec::new();
    loop {
        let r = client
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        let messages = r.messages.unwrap_or_default();
        if messages.is_empty() {
            return out;
        }
        for m in messages {
            let attrs = m.attributes().unwrap();
            out.push(Got {
                group: attrs[&MessageSystemAttributeName::MessageGroupId].clone(),
                dedup: attrs[&MessageSystemAttributeName::MessageDeduplicationId].clone(),
                key_attr: m.message_attributes().unwrap()[KEY_ATTRIBUTE].string_value().unwrap().to_owned(),
                job: serde_json::from_str(m.body().unwrap()).unwrap(),
            });
            client.delete_message().queue_url(queue).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
}

fn keys_of(got: &[Got], group: &str) -> Vec<String> {
    got.iter().filter(|g| g.group == group).map(|g| g.job.key.as_str().to_owned()).collect()
}

async fn dlq_depth(client: &Client, dlq: &str) -> usize {
    let a = client.get_queue_attributes().queue_url(dlq).attribute_names(QueueAttributeName::ApproximateNumberOfMessages).send().await.unwrap();
    a.attributes().unwrap()[&QueueAttributeName::ApproximateNumberOfMessages].parse().unwrap()
}

/// Sends `jobs` and receives them until SQS moves them to the dead-letter queue (the queue's
/// visibility timeout is 0, so each receive is a failed delivery), as a worker that keeps failing
/// would.
async fn bury(client: &Client, queue: &str, dlq: &str, jobs: &[Job]) {
    let sink = SqsSink::new(client.clone(), queue);
    for j in jobs {
        sink.send(j, t(0)).await.unwrap();
    }
    for _ in 0..60 {
        let r = client.receive_message().queue_url(queue).max_number_of_messages(10).visibility_timeout(0).send().await.unwrap();
        if r.messages.unwrap_or_default().is_empty() && dlq_depth(client, dlq).await == jobs.len() {
            return;
        }
    }
    panic!("moto did not move the jobs to the dead-letter queue");
}

fn with_text(mut j: Job, text: String) -> Job {
    if let PortalEvent::Message(m) = &mut j.event {
        m.text = text;
    }
    j
}

#[tokio::test]
async fn send_and_receive_preserve_group_and_order() {
    let (client, queue, _) = setup(None).await;
    let sink = SqsSink::new(client.clone(), &queue);
    let sent = [job("chat-a", "a1"), job("chat-b", "b1"), job("chat-a", "a2"), job("chat-b", "b2"), job("chat-a", "a3")];
    for j in &sent {
        sink.send(j, t(0)).await.unwrap();
    }
    let got = drain(&client, &queue).await;
    assert_eq!(got.len(), sent.len(), "{got:?}");
    assert_eq!(keys_of(&got, "chat-a"), ["a1", "a2", "a3"]);
    assert_eq!(keys_of(&got, "chat-b"), ["b1", "b2"]);
    for g in &got {
        let original = sent.iter().find(|s| s.key == g.job.key).unwrap();
        assert_eq!(&g.job, original, "the job comes back as sent");
        assert_eq!(g.group, original.group.as_str());
        assert_eq!(g.key_attr, original.key.as_str());
    }
}

#[tokio::test]
async fn the_dedup_id_is_the_key_hash_and_a_copy_is_dropped() {
    let (client, queue, _) = setup(None).await;
    let sink = SqsSink::new(client.clone(), &queue);
    // A key longer than SQS's 128-character limit for de-duplication ids still gives a valid one.
    let long = job("chat-a", &"k".repeat(300));
    let j = job("chat-a", "member:msg:42");
    sink.send(&j, t(0)).await.unwrap();
    sink.send(&j, t(1)).await.unwrap();
    sink.send(&long, t(2)).await.unwrap();
    let got = drain(&client, &queue).await;
    assert_eq!(got.len(), 2, "the copy sent within five minutes is dropped by SQS: {got:?}");
    let expected = hex::encode(Sha256::digest(b"member:msg:42"));
    assert_eq!(dedup_id(&j.key), expected);
    assert_eq!(got[0].dedup, expected);
    assert_eq!(got[1].dedup.len(), 64);
}

#[tokio::test]
async fn a_job_over_256_kib_is_refused_before_sending_with_a_clear_error() {
    let (client, queue, _) = setup(None).await;
    let sink = SqsSink::new(client.clone(), &queue);
    let base = job_message_bytes(&with_text(job("chat-a", "big"), String::new())).unwrap();
    let fits = with_text(job("chat-a", "big"), "x".repeat(MAX_MESSAGE_BYTES - base));
    assert_eq!(job_message_bytes(&fits).unwrap(), MAX_MESSAGE_BYTES);
    sink.send(&fits, t(0)).await.unwrap();
    let too_big = with_text(job("chat-b", "bog"), "x".repeat(MAX_MESSAGE_BYTES - base + 1));
    assert_eq!(job_message_bytes(&too_big).unwrap(), MAX_MESSAGE_BYTES + 1);
    let err = sink.send(&too_big, t(0)).await.unwrap_err();
    assert!(matches!(err, StoreError::TooLarge(_)), "{err:?}");
    assert!(!err.is_retryable(), "sending it again gets the same answer");
    let text = err.to_string();
    assert!(text.contains("job bog") && text.contains("262145 bytes") && text.contains("262144-byte limit"), "{text}");
    let got = drain(&client, &queue).await;
    assert_eq!(got.len(), 1, "only the job that fits was queued");
    assert_eq!(got[0].job, fits, "a job of exactly the limit arrives whole");
}

#[tokio::test]
async fn listing_dead_letters_does_not_consume_them() {
    let (client, queue, dlq) = setup(Some(0)).await;
    let jobs = [job("chat-a", "d1"), job("chat-a", "d2"), job("chat-b", "d3")];
    bury(&client, &queue, &dlq, &jobs).await;
    let dead = SqsDeadLetters::new(client.clone(), &queue, &dlq);
    for round in 0..2 {
        let listed = dead.dead_letters(10).await.unwrap();
        let keys: BTreeSet<&str> = listed.iter().map(|d| d.job.key.as_str()).collect();
        assert_eq!(keys, BTreeSet::from(["d1", "d2", "d3"]), "round {round}");
        let in_a: Vec<&str> = listed.iter().filter(|d| d.job.group.as_str() == "chat-a").map(|d| d.job.key.as_str()).collect();
        assert_eq!(in_a, ["d1", "d2"], "a group's dead letters keep their order");
        for d in &listed {
            assert_eq!(&d.job, jobs.iter().find(|j| j.key == d.job.key).unwrap());
            assert!(d.failures > 10, "the receive count travels with the message: {}", d.failures);
            assert!(d.reason.contains("receives") && d.reason.contains("SQS keeps no reason"), "{}", d.reason);
        }
    }
    assert_eq!(dead.dead_letters(2).await.unwrap().len(), 2, "the limit holds");
    assert_eq!(dlq_depth(&client, &dlq).await, 3, "still all there");
}

#[tokio::test]
async fn redrive_moves_back_exactly_the_chosen_ones() {
    let (client, queue, dlq) = setup(Some(0)).await;
    let jobs = [job("chat-a", "d1"), job("chat-a", "d2"), job("chat-b", "d3")];
    bury(&client, &queue, &dlq, &jobs).await;
    let dead = SqsDeadLetters::new(client.clone(), &queue, &dlq);

    let moved = dead.redrive(Some(&[key("d2"), key("not-dead")]), t(0)).await.unwrap();
    assert_eq!(moved, [key("d2")]);
    let back = drain(&client, &queue).await;
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!((back[0].group.as_str(), &back[0].job), ("chat-a", &jobs[1]), "same group, same job");
    let left: BTreeSet<String> = dead.dead_letters(10).await.unwrap().into_iter().map(|d| d.job.key.as_str().to_owned()).collect();
    assert_eq!(left, BTreeSet::from(["d1".to_owned(), "d3".to_owned()]));

    let moved: BTreeSet<String> = dead.redrive(None, t(0)).await.unwrap().into_iter().map(|k| k.as_str().to_owned()).collect();
    assert_eq!(moved, BTreeSet::from(["d1".to_owned(), "d3".to_owned()]));
    assert!(dead.dead_letters(10).await.unwrap().is_empty());
    let back: BTreeSet<String> = drain(&client, &queue).await.into_iter().map(|g| g.job.key.as_str().to_owned()).collect();
    assert_eq!(back, BTreeSet::from(["d1".to_owned(), "d3".to_owned()]));
}
