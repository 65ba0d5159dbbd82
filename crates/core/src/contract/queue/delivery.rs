//! Delivery, order, leases, acks and retries.

use super::{DELAY, VIS, depth, enqueue_all, keys};
use crate::contract::{job, t};
use crate::ports::{Enqueued, JobQueue, QueueDepth, Requeued, StoreError};

/// A job comes back exactly as enqueued, on its first attempt.
pub async fn delivers_the_job_as_enqueued<Q: JobQueue + ?Sized>(q: &Q) {
    let j = job("g1", "q:one");
    assert_eq!(q.enqueue(&j, t(0)).await.expect("enqueue"), Enqueued::New);
    assert_eq!(q.depth().await.expect("depth"), depth(1, 0, 0));
    let d = q.receive(10, t(0), VIS).await.expect("receive");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].job, j);
    assert_eq!(d[0].attempt, 1);
    assert_eq!(q.depth().await.expect("depth"), depth(0, 1, 0));
    q.ack(&d[0].receipt).await.expect("ack");
    assert_eq!(q.depth().await.expect("depth"), depth(0, 0, 0));
    assert!(q.receive(10, t(1), VIS).await.expect("receive").is_empty());
}

/// A key seen before is a duplicate whatever happened to its job: waiting, leased, acked or dead.
pub async fn enqueue_dedups_on_key_in_every_state<Q: JobQueue + ?Sized>(q: &Q) {
    enqueue_all(q, &[("g1", "q:acked"), ("g2", "q:dead"), ("g3", "q:leased"), ("g4", "q:waiting")]).await;
    let d = q.receive(3, t(0), VIS).await.expect("receive");
    assert_eq!(keys(&d), ["q:acked", "q:dead", "q:leased"]);
    q.ack(&d[0].receipt).await.expect("ack");
    assert_eq!(q.retry(&d[1].receipt, t(1), DELAY, 1, "boom").await.expect("retry"), Requeued::DeadLettered);
    for k in ["q:acked", "q:dead", "q:leased", "q:waiting"] {
        let mut again = job("other-group", k);
        again.received_at = t(5);
        assert_eq!(q.enqueue(&again, t(5)).await.expect("enqueue"), Enqueued::Duplicate, "{k}");
    }
    assert_eq!(q.depth().await.expect("depth"), depth(1, 1, 1));
}

/// One group is served one job at a time, in enqueue order.
pub async fn groups_are_fifo<Q: JobQueue + ?Sized>(q: &Q) {
    enqueue_all(q, &[("a", "q:a1"), ("a", "q:a2"), ("a", "q:a3")]).await;
    for (i, expected) in ["q:a1", "q:a2", "q:a3"].into_iter().enumerate() {
        let now = t(i as i64);
        let d = q.receive(10, now, VIS).await.expect("receive");
        assert_eq!(keys(&d), [expected]);
        assert!(q.receive(10, now, VIS).await.expect("receive").is_empty(), "the group is held");
        q.ack(&d[0].receipt).await.expect("ack");
    }
}

/// Groups are served oldest head first, at most `max` per call, skipping held groups.
pub async fn groups_are_served_oldest_head_first<Q: JobQueue + ?Sized>(q: &Q) {
    enqueue_all(q, &[("b", "q:b1"), ("a", "q:a1"), ("b", "q:b2"), ("c", "q:c1"), ("a", "q:a2"), ("d", "q:d1")]).await;
    let first = q.receive(2, t(0), VIS).await.expect("receive");
    assert_eq!(keys(&first), ["q:b1", "q:a1"]);
    let second = q.receive(10, t(0), VIS).await.expect("receive");
    assert_eq!(keys(&second), ["q:c1", "q:d1"]);
    q.ack(&first[1].receipt).await.expect("ack a1");
    assert_eq!(keys(&q.receive(10, t(1), VIS).await.expect("receive")), ["q:a2"]);
    assert_eq!(q.receive(0, t(1), VIS).await.expect("receive"), vec![]);
}

/// An expired lease makes the job due again with the next attempt and a new receipt; the old
/// receipt is then `LeaseLost` for ack, extend and retry.
pub async fn expired_lease_redelivers_with_new_receipt<Q: JobQueue + ?Sized>(q: &Q) {
    enqueue_all(q, &[("a", "q:a1"), ("a", "q:a2")]).await;
    let first = q.receive(10, t(0), VIS).await.expect("receive");
    assert!(q.receive(10, t(29), VIS).await.expect("receive").is_empty(), "lease still live");
    let second = q.receive(10, t(30), VIS).await.expect("receive");
    assert_eq!(keys(&second), ["q:a1"]);
    assert_eq!(second[0].attempt, 2);
    assert_ne!(second[0].receipt, first[0].receipt);
    let old = &first[0].receipt;
    assert!(matches!(q.ack(old).await, Err(StoreError::LeaseLost)));
    assert!(matches!(q.extend(old, t(31), VIS).await, Err(StoreError::LeaseLost)));
    assert!(matches!(q.retry(old, t(31), DELAY, 5, "late").await, Err(StoreError::LeaseLost)));
    assert_eq!(q.depth().await.expect("depth"), depth(1, 1, 0), "the stale receipt changed nothing");
    q.ack(&second[0].receipt).await.expect("ack");
    assert_eq!(keys(&q.receive(10, t(31), VIS).await.expect("receive")), ["q:a2"]);
}

/// `extend` renews a lease from `now`, even after it expired as long as nobody received the job.
pub async fn extend_keeps_the_lease<Q: JobQueue + ?Sized>(q: &Q) {
    enqueue_all(q, &[("a", "q:a1")]).await;
    let d = q.receive(10, t(0), VIS).await.expect("receive");
    q.extend(&d[0].receipt, t(20), VIS).await.expect("extend");
    assert!(q.receive(10, t(40), VIS).await.expect("receive").is_empty(), "extended to t+50");
    q.extend(&d[0].receipt, t(60), VIS).await.expect("extend after expiry, not taken over");
    assert!(q.receive(10, t(89), VIS).await.expect("receive").is_empty(), "extended to t+90");
    let again = q.receive(10, t(90), VIS).await.expect("receive");
    assert_eq!(again[0].attempt, 2);
    assert!(matches!(q.extend(&d[0].receipt, t(91), VIS).await, Err(StoreError::LeaseLost)));
}

/// `ack` removes the job; a second ack of the same receipt is `LeaseLost` (the job is gone).
pub async fn ack_removes_the_job<Q: JobQueue + ?Sized>(q: &Q) {
    enqueue_all(q, &[("a", "q:a1")]).await;
    let d = q.receive(10, t(0), VIS).await.expect("receive");
    q.ack(&d[0].receipt).await.expect("ack");
    assert!(matches!(q.ack(&d[0].receipt).await, Err(StoreError::LeaseLost)));
    assert!(q.receive(10, t(100), VIS).await.expect("receive").is_empty());
    assert_eq!(q.depth().await.expect("depth"), QueueDepth::default());
}

/// `retry` delays the job, which keeps its place and holds its group until due.
pub async fn retry_delays_and_holds_the_group<Q: JobQueue + ?Sized>(q: &Q) {
    enqueue_all(q, &[("a", "q:a1"), ("a", "q:a2"), ("b", "q:b1")]).await;
    let d = q.receive(1, t(0), VIS).await.expect("receive");
    assert_eq!(q.retry(&d[0].receipt, t(1), DELAY, 5, "bot 503").await.expect("retry"), Requeued::Later);
    assert!(matches!(q.ack(&d[0].receipt).await, Err(StoreError::LeaseLost)), "retry ends the lease");
    assert_eq!(q.depth().await.expect("depth"), depth(3, 0, 0));
    assert_eq!(keys(&q.receive(10, t(10), VIS).await.expect("receive")), ["q:b1"], "a is held by its delayed head");
    let again = q.receive(10, t(11), VIS).await.expect("receive");
    assert_eq!(keys(&again), ["q:a1"]);
    assert_eq!(again[0].attempt, 2);
}

/// After `max_attempts` deliveries `retry` dead-letters the job, and its group moves on.
pub async fn retry_dead_letters_after_max_attempts<Q: JobQueue + ?Sized>(q: &Q) {
    enqueue_all(q, &[("a", "q:a1"), ("a", "q:a2")]).await;
    let first = q.receive(10, t(0), VIS).await.expect("receive");
    assert_eq!(q.retry(&first[0].receipt, t(1), DELAY, 2, "e1").await.expect("retry"), Requeued::Later);
    let second = q.receive(10, t(11), VIS).await.expect("receive");
    assert_eq!((keys(&second), second[0].attempt), (vec!["q:a1"], 2));
    assert_eq!(q.retry(&second[0].receipt, t(12), DELAY, 2, "e2").await.expect("retry"), Requeued::DeadLettered);
    assert_eq!(q.depth().await.expect("depth"), depth(1, 0, 1));
    assert!(matches!(q.ack(&second[0].receipt).await, Err(StoreError::LeaseLost)));
    let next = q.receive(10, t(12), VIS).await.expect("receive");
    assert_eq!(keys(&next), ["q:a2"], "the dead job no longer blocks its group");
    q.ack(&next[0].receipt).await.expect("ack");
    assert!(q.receive(10, t(1000), VIS).await.expect("receive").is_empty(), "dead jobs are never delivered");
    assert_eq!(q.depth().await.expect("depth"), depth(0, 0, 1));
}
