//! The worker's handler against the emulator: answers, FIFO groups, faults, duplicates, crashes.

use std::time::Duration;

use b24_emulator::Fault;
use olbridge_core::ports::Clock as _;

use crate::support::World;

const ANNA: &str = "+4915111111111";
const BORIS: &str = "+4915122222222";

#[tokio::test]
async fn a_customer_message_is_answered_through_the_receiver_and_the_worker() {
    let w = World::start().await;
    let job = w.customer_writes(ANNA, "do you deliver on Sundays?").await;
    let (_, record) = w.record(&job, 1);
    assert_eq!(w.work(World::batch([record]), "req-1").await, Vec::<String>::new());
    assert_eq!(w.bot_messages(ANNA), ["echo: do you deliver on Sundays?"]);
    assert_eq!((w.worker_metric("Turns", "answered"), w.worker_metric("WorkerRecords", "done")), (1, 1));
    let enqueued = w.receiver_metrics.readings().into_iter().filter(|r| r.name == "Events" && r.dimensions == [("Result".into(), "enqueued".into())]).count();
    assert_eq!(enqueued, 2, "the bot joining the new chat, and the message");
}

#[tokio::test]
async fn two_chats_in_one_batch_are_both_answered() {
    let w = World::start().await;
    let anna = w.customer_writes(ANNA, "hello from Anna").await;
    let boris = w.customer_writes(BORIS, "hello from Boris").await;
    assert_ne!(anna.group, boris.group);
    let batch = World::batch([w.record(&anna, 1).1, w.record(&boris, 1).1]);
    assert_eq!(w.work(batch, "req-1").await, Vec::<String>::new());
    assert_eq!(w.bot_messages(ANNA), ["echo: hello from Anna"]);
    assert_eq!(w.bot_messages(BORIS), ["echo: hello from Boris"]);
    assert_eq!(w.worker_metric("Turns", "answered"), 2);
}

#[tokio::test]
async fn a_portal_failure_in_one_chat_reports_that_chat_and_nothing_of_the_other() {
    let w = World::start().await;
    let first = w.customer_writes(ANNA, "first").await;
    let second = w.customer_writes(ANNA, "second").await;
    let boris = w.customer_writes(BORIS, "silent please").await;
    // The one reply posted in this batch is Anna's (Boris's bot answer is "send nothing").
    w.emulator.inject_fault(Fault::error("imbot.message.add", 1, "INTERNAL_SERVER_ERROR", "Internal server error", 503));
    let (a1, r1) = w.record(&first, 1);
    let (b1, rb) = w.record(&boris, 1);
    let (a2, r2) = w.record(&second, 1);
    let failed = w.work(World::batch([r1, rb, r2]), "req-1").await;
    assert_eq!(failed, [a1.clone(), a2.clone()], "Anna's record and her later one; not Boris's ({b1})");
    assert!(w.bot_messages(ANNA).is_empty());
    assert_eq!(w.worker_metric("Turns", "silent"), 1, "Boris's turn finished");
    let changed: Vec<String> = w.visibility.0.lock().expect("lock").iter().map(|(r, _)| r.clone()).collect();
    assert_eq!(changed.len(), 2, "both of Anna's records come back after the policy's delay: {changed:?}");

    // SQS redelivers Anna's two records, in order: one answer to both.
    w.emulator.clear_faults();
    let again = World::batch([w.record(&first, 2).1, w.record(&second, 2).1]);
    assert_eq!(w.work(again, "req-2").await, Vec::<String>::new());
    assert_eq!(w.bot_messages(ANNA), ["echo: first\nsecond"]);
    assert!(w.bot_messages(BORIS).is_empty());
}

#[tokio::test]
async fn the_same_event_delivered_twice_at_once_is_answered_once() {
    let w = World::start().await;
    let job = w.customer_writes(ANNA, "slow question").await;
    let (id1, r1) = w.record(&job, 1);
    let (id2, r2) = w.record(&job, 1);
    let (f1, f2) = tokio::join!(w.work(World::batch([r1]), "req-1"), w.work(World::batch([r2]), "req-2"));
    assert_eq!(w.bot_messages(ANNA), ["echo: slow question"]);
    let reported: Vec<&String> = f1.iter().chain(&f2).collect();
    assert!(reported.len() <= 1 && reported.iter().all(|id| **id == id1 || **id == id2), "{reported:?}");
    // The copy that found the turn busy comes back, and finds it done.
    if let Some(id) = reported.first() {
        assert_eq!(w.worker_metric("WorkerRecords", "busy"), 1, "{id} was reported as busy");
        let (_, copy) = w.record(&job, 2);
        assert_eq!(w.work(World::batch([copy]), "req-3").await, Vec::<String>::new());
    }
    assert_eq!(w.bot_messages(ANNA), ["echo: slow question"]);
    assert_eq!(w.worker_metric("Turns", "answered"), 1);
}

#[tokio::test]
async fn a_redelivery_after_a_crash_mid_post_never_duplicates_the_reply() {
    let w = World::start().await;
    let job = w.customer_writes(ANNA, "are you open today?").await;
    // The portal applies the post at once but answers 5 s later: the invocation dies meanwhile.
    w.emulator.inject_fault(Fault::delay_response("imbot.message.add", 1, Duration::from_secs(5)));
    let (_, record) = w.record(&job, 1);
    let (worker, invocation) = (w.worker.clone(), w.invocation("req-crashed"));
    let crashed = tokio::spawn(async move { olbridge_worker::handle(&worker, World::batch([record]), &invocation).await });
    let inbox = wait_for_replies(&w, 1).await;
    assert_eq!(inbox, ["echo: are you open today?"], "the post reached the customer");
    crashed.abort();
    assert!(crashed.await.is_err_and(|e| e.is_cancelled()), "killed mid-turn");

    // Redelivered while the dead invocation's lease runs: busy, nothing posted.
    let (id, again) = w.record(&job, 2);
    assert_eq!(w.work(World::batch([again]), "req-2").await, [id]);
    // Once the lease (bounded by the dead invocation's 60 s deadline) is over: resumed, and the
    // post that reached the portal is found there instead of being sent again.
    w.clock.advance(Duration::from_secs(61));
    let (_, last) = w.record(&job, 3);
    assert_eq!(w.work(World::batch([last]), "req-3").await, Vec::<String>::new());
    assert_eq!(w.bot_messages(ANNA), ["echo: are you open today?"]);
    assert_eq!(w.bot_calls.load(std::sync::atomic::Ordering::SeqCst), 1, "the bot's saved answer was reused");
    assert_eq!(w.worker_metric("Turns", "answered"), 1);
    assert!(w.clock.now() > job.received_at);
}

/// Waits (up to 10 s) until the customer sees `n` messages from our bot.
async fn wait_for_replies(w: &World, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let messages = w.bot_messages(ANNA);
        if messages.len() >= n || tokio::time::Instant::now() >= deadline {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
