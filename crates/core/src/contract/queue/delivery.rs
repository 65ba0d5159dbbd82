//! Delivery, order, leases, settling and dead letters.

use super::{DELAY, VIS, ack, counts, depth, failed, keys, send_all};
use crate::contract::{job, key, t};
use crate::ports::{DeadLetters, Settle, StoreError, WorkQueue};

/// A job comes back exactly as sent, with no failures or interruptions.
pub async fn delivers_the_job_as_enqueued<Q: WorkQueue + ?Sized>(q: &Q) {
    let j = job("g1", "q:one");
    q.send(&j, t(0)).await.expect("send");
    let d0 = q.depth(t(0)).await.expect("depth");
    assert_eq!((counts(d0), d0.oldest_received_at), (depth(1, 0, 0), Some(j.received_at)));
    let d = q.receive(10, t(0), VIS).await.expect("receive");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].job, j);
    assert_eq!((d[0].failures, d[0].interruptions, d[0].last_error.clone()), (0, 0, None));
    assert_eq!(counts(q.depth(t(0)).await.expect("depth")), depth(0, 1, 0));
    ack(q, &d[0].receipt).await;
    let d1 = q.depth(t(0)).await.expect("depth");
    assert_eq!((counts(d1), d1.oldest_received_at), (depth(0, 0, 0), None));
    assert!(q.receive(10, t(1), VIS).await.expect("receive").is_empty());
}

/// A copy of a job still in the queue (waiting, leased or dead) is dropped; once acked, the key can
/// be sent again.
pub async fn send_drops_a_copy_of_a_queued_job<Q: WorkQueue + DeadLetters + ?Sized>(q: &Q) {
    send_all(q, &[("g1", "q:acked"), ("g2", "q:dead"), ("g3", "q:leased"), ("g4", "q:waiting")]).await;
    let d = q.receive(3, t(0), VIS).await.expect("receive");
    assert_eq!(keys(&d), ["q:acked", "q:dead", "q:leased"]);
    ack(q, &d[0].receipt).await;
    q.settle(&d[1].receipt, &Settle::DeadLetter { reason: "boom".into() }, t(1)).await.expect("dead-letter");
    for k in ["q:dead", "q:leased", "q:waiting"] {
        q.send(&job("other-group", k), t(5)).await.expect("send");
    }
    assert_eq!(counts(q.depth(t(5)).await.expect("depth")), depth(1, 1, 1), "no copies");
    q.send(&job("g1", "q:acked"), t(5)).await.expect("send");
    assert_eq!(keys(&q.receive(10, t(5), VIS).await.expect("receive")), ["q:waiting", "q:acked"], "an acked key is a new job");
}

/// One group is served one job at a time, in enqueue order.
pub async fn groups_are_fifo<Q: WorkQueue + ?Sized>(q: &Q) {
    send_all(q, &[("a", "q:a1"), ("a", "q:a2"), ("a", "q:a3")]).await;
    for (i, expected) in ["q:a1", "q:a2", "q:a3"].into_iter().enumerate() {
        let now = t(i as i64);
        let d = q.receive(10, now, VIS).await.expect("receive");
        assert_eq!(keys(&d), [expected]);
        assert!(q.receive(10, now, VIS).await.expect("receive").is_empty(), "the group is held");
        ack(q, &d[0].receipt).await;
    }
}

/// Groups are served oldest head first, at most `max` per call, skipping held groups.
pub async fn groups_are_served_oldest_head_first<Q: WorkQueue + ?Sized>(q: &Q) {
    send_all(q, &[("b", "q:b1"), ("a", "q:a1"), ("b", "q:b2"), ("c", "q:c1"), ("a", "q:a2"), ("d", "q:d1")]).await;
    let first = q.receive(2, t(0), VIS).await.expect("receive");
    assert_eq!(keys(&first), ["q:b1", "q:a1"]);
    let second = q.receive(10, t(0), VIS).await.expect("receive");
    assert_eq!(keys(&second), ["q:c1", "q:d1"]);
    ack(q, &first[1].receipt).await;
    assert_eq!(keys(&q.receive(10, t(1), VIS).await.expect("receive")), ["q:a2"]);
    assert_eq!(q.receive(0, t(1), VIS).await.expect("receive"), vec![]);
}

/// An expired lease makes the job due again, counted as an interruption (not a failure), with a new
/// receipt; the old receipt is then `LeaseLost`.
pub async fn expired_lease_redelivers_as_an_interruption<Q: WorkQueue + ?Sized>(q: &Q) {
    send_all(q, &[("a", "q:a1"), ("a", "q:a2")]).await;
    let first = q.receive(10, t(0), VIS).await.expect("receive");
    assert!(q.receive(10, t(29), VIS).await.expect("receive").is_empty(), "lease still live");
    assert_eq!(counts(q.depth(t(30)).await.expect("depth")), depth(2, 0, 0), "an expired lease is not in flight");
    let second = q.receive(10, t(30), VIS).await.expect("receive");
    assert_eq!(keys(&second), ["q:a1"]);
    assert_eq!((second[0].interruptions, second[0].failures), (1, 0));
    assert_ne!(second[0].receipt, first[0].receipt);
    let old = &first[0].receipt;
    assert!(matches!(q.settle(old, &Settle::Ack, t(31)).await, Err(StoreError::LeaseLost)));
    assert!(matches!(q.extend(old, t(31), VIS).await, Err(StoreError::LeaseLost)));
    assert!(matches!(q.settle(old, &failed(DELAY, "late"), t(31)).await, Err(StoreError::LeaseLost)));
    assert_eq!(counts(q.depth(t(31)).await.expect("depth")), depth(1, 1, 0), "the stale receipt changed nothing");
    ack(q, &second[0].receipt).await;
    assert_eq!(keys(&q.receive(10, t(31), VIS).await.expect("receive")), ["q:a2"]);
}

/// `extend` renews a lease from `now`, even after it expired as long as nobody received the job.
pub async fn extend_keeps_the_lease<Q: WorkQueue + ?Sized>(q: &Q) {
    send_all(q, &[("a", "q:a1")]).await;
    let d = q.receive(10, t(0), VIS).await.expect("receive");
    q.extend(&d[0].receipt, t(20), VIS).await.expect("extend");
    assert!(q.receive(10, t(40), VIS).await.expect("receive").is_empty(), "extended to t+50");
    q.extend(&d[0].receipt, t(60), VIS).await.expect("extend after expiry, not taken over");
    assert!(q.receive(10, t(89), VIS).await.expect("receive").is_empty(), "extended to t+90");
    let again = q.receive(10, t(90), VIS).await.expect("receive");
    assert_eq!(again[0].interruptions, 1);
    assert!(matches!(q.extend(&d[0].receipt, t(91), VIS).await, Err(StoreError::LeaseLost)));
}

/// `Ack` removes the job; a second settle of the same receipt is `LeaseLost` (the job is gone).
pub async fn ack_removes_the_job<Q: WorkQueue + ?Sized>(q: &Q) {
    send_all(q, &[("a", "q:a1")]).await;
    let d = q.receive(10, t(0), VIS).await.expect("receive");
    ack(q, &d[0].receipt).await;
    assert!(matches!(q.settle(&d[0].receipt, &Settle::Ack, t(1)).await, Err(StoreError::LeaseLost)));
    assert!(q.receive(10, t(100), VIS).await.expect("receive").is_empty());
    assert_eq!(counts(q.depth(t(100)).await.expect("depth")), depth(0, 0, 0));
}

/// A retry delays the job, which keeps its place and holds its group until due; a failure is
/// counted with its text, a retry without one counts nothing.
pub async fn retry_delays_holds_the_group_and_counts_failures<Q: WorkQueue + ?Sized>(q: &Q) {
    send_all(q, &[("a", "q:a1"), ("a", "q:a2"), ("b", "q:b1")]).await;
    let d = q.receive(1, t(0), VIS).await.expect("receive");
    q.settle(&d[0].receipt, &failed(DELAY, "portal 503"), t(1)).await.expect("retry");
    assert!(matches!(q.settle(&d[0].receipt, &Settle::Ack, t(1)).await, Err(StoreError::LeaseLost)), "retry ends the lease");
    assert_eq!(counts(q.depth(t(1)).await.expect("depth")), depth(3, 0, 0));
    assert_eq!(keys(&q.receive(10, t(10), VIS).await.expect("receive")), ["q:b1"], "a is held by its delayed head");
    let again = q.receive(10, t(11), VIS).await.expect("receive");
    assert_eq!(keys(&again), ["q:a1"]);
    assert_eq!((again[0].failures, again[0].interruptions, again[0].last_error.as_deref()), (1, 0, Some("portal 503")));
    q.settle(&again[0].receipt, &Settle::Retry { delay: DELAY, failure: None }, t(12)).await.expect("busy");
    let third = q.receive(10, t(22), VIS).await.expect("receive");
    assert_eq!((third[0].failures, third[0].last_error.as_deref()), (1, Some("portal 503")), "waiting is not failing");
}

/// A dead letter no longer blocks its group and is never delivered; it is listed with its reason
/// and counters, and `redrive` puts it back as new, ahead of the later jobs of its group.
pub async fn dead_letter_unblocks_the_group_and_redrive_puts_it_back<Q: WorkQueue + DeadLetters + ?Sized>(q: &Q) {
    send_all(q, &[("a", "q:a1"), ("a", "q:a2"), ("a", "q:a3"), ("b", "q:b1")]).await;
    let first = q.receive(1, t(0), VIS).await.expect("receive");
    q.settle(&first[0].receipt, &failed(DELAY, "e1"), t(1)).await.expect("retry");
    let second = q.receive(1, t(11), VIS).await.expect("receive");
    assert_eq!(keys(&second), ["q:a1"]);
    q.settle(&second[0].receipt, &Settle::DeadLetter { reason: "gave up".into() }, t(12)).await.expect("dead-letter");
    assert!(matches!(q.settle(&second[0].receipt, &Settle::Ack, t(12)).await, Err(StoreError::LeaseLost)));
    assert_eq!(counts(q.depth(t(12)).await.expect("depth")), depth(3, 0, 1));
    let next = q.receive(10, t(12), VIS).await.expect("receive");
    assert_eq!(keys(&next), ["q:a2", "q:b1"], "the dead job no longer blocks its group");
    ack(q, &next[0].receipt).await;
    ack(q, &next[1].receipt).await;

    let dead = q.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].job.key.as_str(), dead[0].reason.as_str(), dead[0].failures, dead[0].dead_at), ("q:a1", "gave up", 1, t(12)));
    assert!(q.redrive(Some(&[key("q:other")]), t(20)).await.expect("redrive").is_empty(), "only the keys asked for");
    assert_eq!(q.redrive(None, t(20)).await.expect("redrive"), vec![key("q:a1")]);
    assert!(q.dead_letters(10).await.expect("dead letters").is_empty());
    let back = q.receive(10, t(20), VIS).await.expect("receive");
    assert_eq!(keys(&back), ["q:a1"], "back at the head of its group, before a3");
    assert_eq!((back[0].failures, back[0].interruptions, back[0].last_error.clone()), (0, 0, None));
}

/// `next_due` says when a dispatcher should look again.
pub async fn next_due_says_when_to_look_again<Q: WorkQueue + ?Sized>(q: &Q) {
    assert_eq!(q.next_due(t(0)).await.expect("next due"), None);
    send_all(q, &[("a", "q:a1"), ("a", "q:a2")]).await;
    assert_eq!(q.next_due(t(0)).await.expect("next due"), Some(t(0)), "a waiting head is due now");
    let d = q.receive(10, t(0), VIS).await.expect("receive");
    assert_eq!(q.next_due(t(1)).await.expect("next due"), Some(t(30)), "the lease's end");
    q.settle(&d[0].receipt, &failed(DELAY, "e"), t(5)).await.expect("retry");
    assert_eq!(q.next_due(t(5)).await.expect("next due"), Some(t(15)), "the delayed head");
}
