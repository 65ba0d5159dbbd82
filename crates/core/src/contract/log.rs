//! The `TurnLog` contract.
//!
//! Semantics pinned here:
//! - `recent(limit)` is ordered by `finished_at`, newest first; records finished at the same time
//!   come later-recorded first.
//! - A turn is recorded once: a second record with the same first key is not appended (the first
//!   stands), whatever else differs.
//! - `stats(since)` covers records with `started_at >= since`. `by_outcome` is sorted by outcome
//!   name. A turn's duration is `finished_at - received_at` in whole milliseconds (negative: 0); its
//!   overhead is the duration minus `bot_ms` (missing `bot_ms`: 0; saturating at 0). Percentiles are
//!   nearest-rank: the value at rank `ceil(p/100 * n)` of the ascending list; `None` with no turns.

use super::{key, run_each, t, t_ms};
use crate::domain::ids::MessageId;
use crate::domain::turn::{HandoffReason, TurnOutcome, TurnRecord, TurnTimings};
use crate::ports::{LogStats, TurnLog};

/// A record received at `received_ms`, started 50 ms later, finished `total_ms` after receipt.
fn record(name: &str, received_ms: i64, total_ms: i64, bot_ms: Option<u64>, outcome: TurnOutcome) -> TurnRecord {
    TurnRecord {
        keys: vec![key(&format!("log:{name}")), key(&format!("log:{name}:burst"))],
        dialog: "chat1763".into(),
        session_id: Some(77),
        outcome,
        timings: TurnTimings { received_at: t_ms(received_ms), started_at: t_ms(received_ms + 50), bot_ms, finished_at: t_ms(received_ms + total_ms) },
        bot_attempts: 2,
        trace: Default::default(),
    }
}

fn answered() -> TurnOutcome {
    TurnOutcome::Answered { reply_ids: MessageId::new(9).into_iter().collect() }
}

/// `recent` returns the newest records by finish time, newest first, equal to what was recorded.
pub async fn recent_is_newest_first<S: TurnLog + ?Sized>(s: &S) {
    assert_eq!(s.recent(10).await.expect("recent"), vec![]);
    let a = record("a", 0, 30_000, Some(100), answered());
    let b = record("b", 0, 10_000, None, TurnOutcome::HandedOff { reason: HandoffReason::Phrase { phrase: "humano".into() } });
    let c = record("c", 0, 20_000, Some(5), TurnOutcome::Ignored { reason: "operator_message".into() });
    let d = record("d", 0, 30_000, Some(7), TurnOutcome::Fallback { error: "bot timed out".into() });
    for r in [&a, &b, &c, &d] {
        s.record(r).await.expect("record");
    }
    assert_eq!(s.recent(10).await.expect("recent"), vec![d.clone(), a.clone(), c, b]);
    assert_eq!(s.recent(2).await.expect("recent"), vec![d, a]);
    assert_eq!(s.recent(0).await.expect("recent"), vec![]);
}

/// A turn resumed after a crash records itself again, with other timings: it stays one record.
pub async fn a_turn_is_recorded_once<S: TurnLog + ?Sized>(s: &S) {
    let first = record("once", 0, 1_000, Some(100), answered());
    let again = record("once", 0, 4_000, Some(300), answered());
    let other = record("other", 0, 2_000, None, TurnOutcome::Silent);
    for r in [&first, &again, &other, &again] {
        s.record(r).await.expect("record");
    }
    assert_eq!(s.recent(10).await.expect("recent"), vec![other, first]);
    let stats = s.stats(t(0)).await.expect("stats");
    assert_eq!(stats.turns, 2, "{stats:?}");
}

/// An empty window has no turns and no percentiles.
pub async fn stats_of_nothing_are_empty<S: TurnLog + ?Sized>(s: &S) {
    assert_eq!(s.stats(t(0)).await.expect("stats"), LogStats::default());
    s.record(&record("old", 0, 1000, None, TurnOutcome::Silent)).await.expect("record");
    assert_eq!(s.stats(t(1)).await.expect("stats"), LogStats::default());
}

/// Counts per outcome and nearest-rank percentiles of duration and overhead, over the window.
pub async fn stats_count_and_rank<S: TurnLog + ?Sized>(s: &S) {
    // Recorded out of order (7 is coprime with 20), so nothing relies on insertion order.
    for i in (1..=20_i64).map(|j| (j * 7) % 20 + 1) {
        let total = 100 * i;
        let bot_ms = match i {
            1 => None,                         // overhead = the whole 100 ms
            2 => Some(10_000),                 // the bot's clock ran ahead: overhead 0
            _ => Some((total - 7 * i) as u64), // overhead 7·i: 21, 28, ... 140
        };
        let outcome = match i {
            ..=12 => answered(),
            13..=16 => TurnOutcome::HandedOff { reason: HandoffReason::BotRequested },
            17..=18 => TurnOutcome::Fallback { error: "503".into() },
            19 => TurnOutcome::Silent,
            _ => TurnOutcome::Ignored { reason: "empty_text".into() },
        };
        s.record(&record(&i.to_string(), 100_000 * i, total, bot_ms, outcome)).await.expect("record");
    }
    // Before the window (started 1 ms too early): long turns that would move every percentile.
    for n in 0..3 {
        s.record(&record(&format!("before{n}"), 100_000 - 51, 999_999, None, TurnOutcome::Silent)).await.expect("record");
    }
    let stats = s.stats(t_ms(100_050)).await.expect("stats");
    let expected = LogStats {
        turns: 20,
        by_outcome: [("answered", 12), ("fallback", 2), ("handed_off", 4), ("ignored", 1), ("silent", 1)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        p50_ms: Some(1000),
        p95_ms: Some(1900),
        overhead_p50_ms: Some(77),
        overhead_p95_ms: Some(133),
    };
    assert_eq!(stats, expected);
}

/// Runs every behaviour of this module, each on a fresh adapter from `fresh`.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: TurnLog + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    run_each!(fresh: recent_is_newest_first, a_turn_is_recorded_once, stats_of_nothing_are_empty, stats_count_and_rank);
}
