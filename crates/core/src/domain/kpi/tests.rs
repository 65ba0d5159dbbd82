use chrono::{TimeZone, Utc};

use super::*;
use crate::domain::turn::{HandoffReason, TurnRecord, TurnTimings, TurnTrace};

fn rec(day: u32, line: u64, outcome: TurnOutcome, total_ms: i64, rest_calls: u32) -> TurnRecord {
    let received = Utc.with_ymd_and_hms(2026, 11, day, 10, 0, 0).unwrap();
    TurnRecord {
        keys: vec![],
        dialog: "chat1".into(),
        session_id: None,
        outcome,
        timings: TurnTimings { received_at: received, started_at: received, bot_ms: Some(0), finished_at: received + chrono::Duration::milliseconds(total_ms) },
        bot_attempts: 1,
        trace: TurnTrace { line_id: Some(line), rest_calls: Some(rest_calls), ..TurnTrace::default() },
    }
}

fn answered() -> TurnOutcome {
    TurnOutcome::Answered { reply_ids: vec![] }
}

#[test]
fn a_scripted_day_has_the_known_answers_and_shares_add_up_to_100_percent() {
    let handed = TurnOutcome::HandedOff { reason: HandoffReason::Phrase { phrase: "agent".into() } };
    let ignored = TurnOutcome::Ignored { reason: "operator_message".into() };
    let records = vec![
        rec(1, 3, answered(), 1000, 2),
        rec(1, 3, answered(), 3000, 4),
        rec(1, 3, handed.clone(), 2000, 3),
        rec(1, 3, TurnOutcome::Fallback { error: "timeout".into() }, 9000, 3),
        rec(1, 3, ignored.clone(), 5, 0),
        rec(1, 3, TurnOutcome::WindowClosed { block_reason: None }, 10, 1),
        rec(2, 3, answered(), 500, 2),
        rec(2, 5, handed, 700, 3),
    ];
    let rows = kpis(&records, Grouping { by_day: true, by_line: true });
    assert_eq!(rows.len(), 3);
    let d1 = &rows[0];
    assert_eq!((d1.turns, d1.ignored, d1.window_closed, d1.answerable), (6, 1, 1, 4));
    assert_eq!((d1.answered, d1.handed_off, d1.fallback), (2, 1, 1));
    assert_eq!(d1.shares, Shares { answered: 500, cached: 0, silent: 0, handed_off: 250, fallback: 250, gave_up: 0 });
    assert_eq!((d1.success_permille, d1.escalation_permille), (Some(750), Some(500)));
    assert_eq!(d1.escalations.get("phrase"), Some(&1));
    assert_eq!(d1.escalations.get("bot_failure"), Some(&1));
    assert_eq!((d1.p50_ms, d1.p95_ms), (Some(2000), Some(9000)), "ignored and window-closed turns are not in the latency");
    assert_eq!(d1.rest_calls_per_answer, Some(3.0));
    assert_eq!((rows[1].line, rows[1].answered), (Some(3), 1));
    assert_eq!((rows[2].line, rows[2].handed_off, rows[2].shares.handed_off), (Some(5), 1, 1000));

    let all = kpis(&records, Grouping { by_day: false, by_line: false });
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].answerable, 6);
    assert_eq!(all[0].shares.total(), 1000);
}

#[test]
fn thirds_round_to_exactly_100_percent() {
    assert_eq!(largest_remainder(&[1, 1, 1], 3), [334, 333, 333]);
    assert_eq!(largest_remainder(&[2, 1, 1, 1, 1, 1], 7).iter().sum::<u32>(), 1000);
    assert_eq!(largest_remainder(&[0, 0], 0), [0, 0]);
    for total in 1..60_u64 {
        let counts = [total / 3, total / 5, total - total / 3 - total / 5];
        assert_eq!(largest_remainder(&counts, total).iter().sum::<u32>(), 1000, "{counts:?}");
    }
    assert_eq!(percent(Some(334)), "33.4 %");
}
