//! The `TimelineOutbox` contract.
//!
//! Semantics pinned here: a line is kept once per (comment, turn); a comment is due at the time its
//! latest line set, except that one already due or waiting out a failure keeps its time; `due`
//! lists lines oldest first; `written` removes only the lines it names; `failed` counts and
//! reschedules.

use super::{run_each, t};
use crate::domain::message::CrmBinding;
use crate::ports::{TimelineLine, TimelineOutbox};

fn line(comment: &str, turn: &str, text: &str, at_secs: i64) -> TimelineLine {
    TimelineLine {
        comment_key: comment.into(),
        turn_key: turn.into(),
        entity: CrmBinding { entity_type: "lead".into(), entity_id: 42 },
        text: text.into(),
        at: t(at_secs),
    }
}

/// Lines gather into their comment, once per turn, and are due when the latest line says.
pub async fn lines_gather_once_per_turn<S: TimelineOutbox + ?Sized>(s: &S) {
    s.append(&line("c", "k1", "one", 0), t(60)).await.expect("append");
    s.append(&line("c", "k1", "one again", 0), t(60)).await.expect("append");
    s.append(&line("c", "k2", "two", 10), t(70)).await.expect("append");
    assert!(s.due(t(60), 10).await.expect("due").is_empty(), "the second line moved the comment on");
    let due = s.due(t(70), 10).await.expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].entity, CrmBinding { entity_type: "lead".into(), entity_id: 42 });
    let texts: Vec<&str> = due[0].lines.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["one", "two"]);
    assert_eq!(s.pending().await.expect("pending"), 2);
}

/// A comment due now keeps its time when a later line would push it on.
pub async fn a_due_comment_is_not_pushed_back<S: TimelineOutbox + ?Sized>(s: &S) {
    s.append(&line("c", "k1", "handoff", 0), t(0)).await.expect("append");
    s.append(&line("c", "k2", "later", 5), t(600)).await.expect("append");
    assert_eq!(s.due(t(5), 10).await.expect("due").len(), 1);
}

/// `written` removes the lines it names; a line appended meanwhile stays.
pub async fn written_removes_only_what_was_written<S: TimelineOutbox + ?Sized>(s: &S) {
    s.append(&line("c", "k1", "one", 0), t(0)).await.expect("append");
    let due = s.due(t(0), 10).await.expect("due");
    s.append(&line("c", "k2", "two", 1), t(1)).await.expect("append");
    let ids: Vec<i64> = due[0].lines.iter().map(|(id, _)| *id).collect();
    s.written("c", &ids).await.expect("written");
    let left = s.due(t(1), 10).await.expect("due");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].lines.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(), ["two"]);
    s.written("c", &[left[0].lines[0].0]).await.expect("written");
    assert_eq!(s.pending().await.expect("pending"), 0);
    assert!(s.due(t(100), 10).await.expect("due").is_empty());
}

/// A failure counts and reschedules; a new line does not cut the backoff short.
pub async fn a_failure_reschedules<S: TimelineOutbox + ?Sized>(s: &S) {
    s.append(&line("c", "k1", "one", 0), t(0)).await.expect("append");
    s.failed("c", t(30), "down").await.expect("failed");
    s.append(&line("c", "k2", "two", 1), t(1)).await.expect("append");
    assert!(s.due(t(29), 10).await.expect("due").is_empty());
    let due = s.due(t(30), 10).await.expect("due");
    assert_eq!((due.len(), due[0].attempts, due[0].lines.len()), (1, 1, 2));
}

/// Runs every behaviour of this module, each on a fresh adapter from `fresh`.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: TimelineOutbox + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    run_each!(fresh: lines_gather_once_per_turn, a_due_comment_is_not_pushed_back, written_removes_only_what_was_written, a_failure_reschedules);
}
