use std::collections::HashSet;
use std::path::PathBuf;

use super::*;
use crate::contract::{t, t_ms};
use crate::domain::ids::{DedupKey, MessageId};
use crate::domain::turn::{HandoffReason, TurnTimings};
use crate::ports::StoreError;

fn repo_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

/// The golden file the CDK stack reads. Regenerate with
/// `OLBRIDGE_BLESS=1 cargo test -p olbridge-core --lib metrics`.
#[test]
fn infra_metrics_json_matches_the_catalogue() {
    let path = repo_file("infra/metrics.json");
    let want = catalogue_json();
    if std::env::var_os("OLBRIDGE_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&want).expect("serialisable") + "\n";
        std::fs::write(&path, text).expect("write infra/metrics.json");
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let found: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert!(
        found == want,
        "infra/metrics.json and crates/core/src/metrics.rs disagree; regenerate it with `OLBRIDGE_BLESS=1 cargo test -p olbridge-core --lib metrics` and review the diff"
    );
}

#[test]
fn docs_describe_every_metric_and_dimension_value() {
    let docs = std::fs::read_to_string(repo_file("docs/metrics.md")).expect("docs/metrics.md");
    for m in Metric::ALL {
        let d = m.def();
        assert!(docs.contains(&format!("`{}`", d.name)), "docs/metrics.md does not describe {}", d.name);
        for value in d.values.unwrap_or_default() {
            assert!(docs.contains(&format!("`{value}`")), "docs/metrics.md does not name {}'s value {value}", d.name);
        }
    }
}

#[test]
fn names_are_unique_and_never_clash_with_dimensions() {
    let names: HashSet<&str> = Metric::ALL.iter().map(|m| m.def().name).collect();
    assert_eq!(names.len(), Metric::ALL.len());
    for d in [Dimension::Outcome, Dimension::Reason, Dimension::Result, Dimension::Method] {
        assert!(!names.contains(d.name()), "{} is both a metric and a dimension: EMF keeps both as top-level fields", d.name());
    }
}

fn outcome_index(o: &TurnOutcome) -> usize {
    // No wildcard: a new outcome fails to compile here until OUTCOMES names it.
    match o {
        TurnOutcome::Answered { .. } => 0,
        TurnOutcome::Cached { .. } => 1,
        TurnOutcome::RateLimited { .. } => 2,
        TurnOutcome::Silent => 3,
        TurnOutcome::HandedOff { .. } => 4,
        TurnOutcome::Fallback { .. } => 5,
        TurnOutcome::GaveUp { .. } => 6,
        TurnOutcome::WindowClosed { .. } => 7,
        TurnOutcome::Ignored { .. } => 8,
    }
}

fn every_outcome() -> Vec<TurnOutcome> {
    vec![
        TurnOutcome::Answered { reply_ids: vec![MessageId::new(9).expect("id")] },
        TurnOutcome::Cached { reply_ids: vec![MessageId::new(9).expect("id")] },
        TurnOutcome::RateLimited { notice: true },
        TurnOutcome::Silent,
        TurnOutcome::HandedOff { reason: HandoffReason::BotRequested },
        TurnOutcome::Fallback { error: "e".into() },
        TurnOutcome::GaveUp { error: "e".into() },
        TurnOutcome::WindowClosed { block_reason: None },
        TurnOutcome::Ignored { reason: "operator_message".into() },
    ]
}

#[test]
fn outcome_values_are_the_outcome_names() {
    let all = every_outcome();
    assert_eq!(all.len(), OUTCOMES.len());
    for o in &all {
        assert_eq!(OUTCOMES[outcome_index(o)], o.name());
    }
}

fn every_handoff_reason() -> Vec<HandoffReason> {
    let reasons = vec![
        HandoffReason::Phrase { phrase: "agent".into() },
        HandoffReason::LoneWord { word: "help".into() },
        HandoffReason::BotRequested,
        HandoffReason::BotFailed { error: "e".into() },
        HandoffReason::PortalRefused { code: "X".into() },
        HandoffReason::GaveUp { error: "e".into() },
        HandoffReason::WindowClosed { block_reason: Some("WHATSAPP_24H".into()) },
        HandoffReason::DailyCap { calls: 201 },
    ];
    for r in &reasons {
        // No wildcard: a new reason fails to compile here until ESCALATION_REASONS names it.
        match r {
            HandoffReason::Phrase { .. }
            | HandoffReason::LoneWord { .. }
            | HandoffReason::BotRequested
            | HandoffReason::BotFailed { .. }
            | HandoffReason::PortalRefused { .. }
            | HandoffReason::GaveUp { .. }
            | HandoffReason::WindowClosed { .. }
            | HandoffReason::DailyCap { .. } => {}
        }
    }
    reasons
}

#[test]
fn escalation_reasons_are_the_handoff_rules() {
    let rules: Vec<&str> = every_handoff_reason().iter().map(HandoffReason::rule).collect();
    assert_eq!(rules, ESCALATION_REASONS);
    let escalated: Vec<Option<&str>> = every_outcome().iter().map(escalation_reason).collect();
    assert_eq!(escalated, [None, None, None, None, Some("bot_handoff"), Some("bot_failure"), Some("gave_up"), Some("window_closed"), None]);
    // The outcomes a fallback or a give-up produce carry the rule of the reason they came from.
    assert_eq!(HandoffReason::BotFailed { error: String::new() }.rule(), "bot_failure");
    assert_eq!(HandoffReason::GaveUp { error: String::new() }.rule(), "gave_up");
}

#[test]
fn event_results_cover_every_receive_result() {
    let key = DedupKey::from_stored("m:msg:1".into());
    let results: Vec<Result<Received, ReceiveError>> = vec![
        Ok(Received::Enqueued(key.clone())),
        Ok(Received::Duplicate(key)),
        Ok(Received::Ignored("x".into())),
        Err(ReceiveError::TooLarge(1)),
        Err(ReceiveError::Malformed("x".into())),
        Err(ReceiveError::Forged),
        Err(ReceiveError::Stale(0)),
        Err(ReceiveError::UnknownPortal),
        Err(ReceiveError::NotAllowed),
        Err(ReceiveError::Store(StoreError::Backend("x".into()))),
    ];
    let got: Vec<&str> = results.iter().map(event_result).collect();
    assert_eq!(got, EVENT_RESULTS);
    assert!(results.iter().map(event).all(|d| d.conforms()));
}

#[test]
fn record_results_are_listed_once() {
    let got: Vec<&str> = RecordResult::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(got, RECORD_RESULTS);
    let acked: Vec<&str> = RecordResult::ALL.iter().filter(|r| r.acknowledged()).map(|r| r.as_str()).collect();
    assert_eq!(acked, ["done", "given_up", "poison"]);
    assert!(RecordResult::ALL.into_iter().map(record).all(|d| d.conforms()));
}

fn record_with(outcome: TurnOutcome, bot_ms: Option<u64>, bot_attempts: u32) -> TurnRecord {
    TurnRecord {
        keys: vec![DedupKey::from_stored("m:msg:1".into())],
        dialog: "chat5".into(),
        session_id: Some(1),
        outcome,
        timings: TurnTimings { received_at: t(0), started_at: t_ms(40), bot_ms, finished_at: t_ms(2_500) },
        bot_attempts,
        trace: Default::default(),
    }
}

fn value(data: &[Datum], metric: Metric) -> Option<f64> {
    data.iter().find(|d| d.metric == metric).map(|d| d.value)
}

#[test]
fn an_answered_turn_yields_its_outcome_latencies_and_bot_figures() {
    let data = turn(&record_with(every_outcome().remove(0), Some(2_000), 2));
    assert!(data.iter().all(Datum::conforms), "{data:?}");
    assert_eq!(data[0].dimensions, [(Dimension::Outcome, "answered")]);
    assert_eq!(value(&data, Metric::EndToEndLatency), Some(2_500.0));
    assert_eq!(value(&data, Metric::BridgeOverhead), Some(500.0));
    assert_eq!(value(&data, Metric::BotLatency), Some(2_000.0));
    assert_eq!(value(&data, Metric::BotAttempts), Some(2.0));
    assert_eq!(value(&data, Metric::Escalations), None);
}

#[test]
fn a_phrase_escalation_yields_its_rule_and_no_bot_figures() {
    let data = turn(&record_with(TurnOutcome::HandedOff { reason: HandoffReason::Phrase { phrase: "agent".into() } }, None, 0));
    assert!(data.iter().all(Datum::conforms), "{data:?}");
    let escalation = data.iter().find(|d| d.metric == Metric::Escalations).expect("an escalation");
    assert_eq!(escalation.dimensions, [(Dimension::Reason, "phrase")]);
    assert_eq!(value(&data, Metric::BridgeOverhead), Some(2_500.0), "no bot time: all of it is the bridge's");
    assert_eq!((value(&data, Metric::BotLatency), value(&data, Metric::BotAttempts)), (None, None));
}

#[test]
fn a_datum_with_a_value_outside_its_closed_set_does_not_conform() {
    assert!(!Datum { metric: Metric::Turns, value: 1.0, dimensions: vec![(Dimension::Outcome, "exploded")] }.conforms());
    assert!(!Datum { metric: Metric::Turns, value: 1.0, dimensions: vec![] }.conforms());
    assert!(Datum { metric: Metric::RestCalls, value: 1.0, dimensions: vec![(Dimension::Method, "im.message.add")] }.conforms());
}
