//! Folding (`receive_more`), and concurrent callers.

use std::collections::HashSet;
use std::sync::Arc;

use super::{DELAY, VIS, ack, counts, depth, failed, group, keys, send_all};
use crate::contract::{all_at_once, job, t};
use crate::domain::event::GroupId;
use crate::ports::{Delivery, WorkQueue};

/// `receive_more` leases the group's next due jobs after the ones the caller holds.
pub async fn receive_more_extends_a_held_group<Q: WorkQueue + ?Sized>(q: &Q) {
    send_all(q, &[("a", "q:a1"), ("a", "q:a2"), ("b", "q:b1"), ("a", "q:a3"), ("a", "q:a4")]).await;
    assert!(q.receive_more(&group("a"), 10, t(0), VIS).await.expect("more").is_empty(), "a is not held yet");
    let head = q.receive(1, t(0), VIS).await.expect("receive");
    assert_eq!(keys(&head), ["q:a1"]);
    let more = q.receive_more(&group("a"), 2, t(1), VIS).await.expect("more");
    assert_eq!(keys(&more), ["q:a2", "q:a3"]);
    assert!(more.iter().all(|d| d.interruptions == 0 && d.failures == 0));
    assert_eq!(keys(&q.receive_more(&group("a"), 10, t(1), VIS).await.expect("more")), ["q:a4"]);
    assert!(q.receive_more(&group("a"), 10, t(1), VIS).await.expect("more").is_empty());
    assert!(q.receive_more(&group("b"), 10, t(1), VIS).await.expect("more").is_empty(), "b is not held");
    q.send(&job("a", "q:a5"), t(2)).await.expect("send");
    assert_eq!(keys(&q.receive_more(&group("a"), 10, t(2), VIS).await.expect("more")), ["q:a5"]);
    assert_eq!(keys(&q.receive(10, t(2), VIS).await.expect("receive")), ["q:b1"], "a is held");
    let receipts: HashSet<_> = head.iter().chain(&more).map(|d| d.receipt.clone()).collect();
    assert_eq!(receipts.len(), 3, "receipts are unique");
}

/// `receive_more` stops at a job that is not due, so a delayed job holds back the ones after it.
pub async fn receive_more_stops_at_a_delayed_job<Q: WorkQueue + ?Sized>(q: &Q) {
    send_all(q, &[("a", "q:a1"), ("a", "q:a2"), ("a", "q:a3")]).await;
    let head = q.receive(10, t(0), VIS).await.expect("receive");
    let more = q.receive_more(&group("a"), 1, t(0), VIS).await.expect("more");
    assert_eq!(keys(&more), ["q:a2"]);
    q.settle(&more[0].receipt, &failed(DELAY, "e"), t(1)).await.expect("retry");
    assert!(q.receive_more(&group("a"), 10, t(2), VIS).await.expect("more").is_empty(), "a2 is delayed, a3 waits");
    ack(q, &head[0].receipt).await;
    assert!(q.receive(10, t(2), VIS).await.expect("receive").is_empty(), "the delayed a2 is the head now");
    assert_eq!(keys(&q.receive(10, t(11), VIS).await.expect("receive")), ["q:a2"]);
}

/// Burst jobs of a dead worker are delivered again, in order, with the next attempt.
pub async fn receive_more_redelivers_expired_burst<Q: WorkQueue + ?Sized>(q: &Q) {
    send_all(q, &[("a", "q:a1"), ("a", "q:a2"), ("a", "q:a3")]).await;
    q.receive(10, t(0), VIS).await.expect("receive");
    assert_eq!(q.receive_more(&group("a"), 10, t(0), VIS).await.expect("more").len(), 2);
    let head = q.receive(10, t(30), VIS).await.expect("receive");
    assert_eq!((keys(&head), head[0].interruptions), (vec!["q:a1"], 1));
    let more = q.receive_more(&group("a"), 10, t(31), VIS).await.expect("more");
    assert_eq!(keys(&more), ["q:a2", "q:a3"]);
    assert!(more.iter().all(|d| d.interruptions == 1));
}

/// A group stays held while any of its jobs has a live lease, even when the head's lease expired.
pub async fn any_live_lease_holds_the_group<Q: WorkQueue + ?Sized>(q: &Q) {
    send_all(q, &[("a", "q:a1"), ("a", "q:a2"), ("a", "q:a3")]).await;
    q.receive(10, t(0), VIS).await.expect("receive");
    let more = q.receive_more(&group("a"), 1, t(0), VIS).await.expect("more");
    q.extend(&more[0].receipt, t(20), VIS).await.expect("extend the burst job only");
    assert!(q.receive(10, t(30), VIS).await.expect("receive").is_empty(), "a2's lease (to t+50) holds a");
    assert_eq!(keys(&q.receive(10, t(50), VIS).await.expect("receive")), ["q:a1"]);
}

/// The same job sent by many tasks at once is stored once.
pub async fn concurrent_sends_store_one_job<Q: WorkQueue + ?Sized + 'static>(q: Arc<Q>) {
    all_at_once(q.clone(), 32, |q, _| async move { q.send(&job("g", "q:race"), t(0)).await.expect("send") }).await;
    assert_eq!(counts(q.depth(t(0)).await.expect("depth")), depth(1, 0, 0));
}

/// Many receivers at once never share a job or lease two jobs of one group.
pub async fn concurrent_receivers_share_nothing<Q: WorkQueue + ?Sized + 'static>(q: Arc<Q>) {
    for n in 0..4 {
        for g in 0..5 {
            q.send(&job(&format!("g{g}"), &format!("q:g{g}-{n}")), t(0)).await.expect("send");
        }
    }
    let batches = all_at_once(q.clone(), 16, |q, _| async move { q.receive(3, t(0), VIS).await.expect("receive") }).await;
    let all: Vec<&Delivery> = batches.iter().flatten().collect();
    let groups: HashSet<&GroupId> = all.iter().map(|d| &d.job.group).collect();
    assert_eq!(all.len(), 5, "one head per group: {:?}", all.iter().map(|d| d.job.key.as_str()).collect::<Vec<_>>());
    assert_eq!(groups.len(), 5);
    assert!(all.iter().all(|d| d.job.key.as_str().ends_with("-0")), "heads only");
}
