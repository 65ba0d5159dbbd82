//! The KPIs, computed from the per-message log: one written definition (`docs/metrics.md`), used by
//! `olbridge stats` and `olbridge report` and matching the EMF metrics the worker Lambda emits
//! from the same records (`crate::metrics::turn`).
//!
//! - Every turn has exactly one outcome, so the outcome shares of the **answerable** turns
//!   (`answered`, `cached`, `silent`, `handed_off`, `fallback`, `gave_up`) partition them: they add up to
//!   exactly 100 % (shown in tenths of a percent, rounded by largest remainder so the rounding
//!   cannot push the sum past 100.0 %). A turn cannot be both "resolved" and "handed off".
//! - `ignored` turns (operators', bots', system messages; a chat a human holds; CSAT answers) and
//!   `window_closed` turns (nobody could answer them) and `rate_limited` turns (a flood over the
//!   per-phone limit, not meant to be answered) are outside the denominator.
//! - Latency percentiles are over answerable turns only: received by the bridge → reply (or
//!   handoff) confirmed by the portal, nearest rank.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::stats::{durations, nearest_rank};
use super::turn::{TurnOutcome, TurnRecord};

/// The outcome shares of the answerable turns, in tenths of a percent; they add up to 1000 when
/// there is at least one answerable turn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Shares {
    /// `answered`.
    pub answered: u32,
    /// `cached` (answered from the FAQ cache).
    pub cached: u32,
    /// `silent`.
    pub silent: u32,
    /// `handed_off`.
    pub handed_off: u32,
    /// `fallback`.
    pub fallback: u32,
    /// `gave_up`.
    pub gave_up: u32,
}

impl Shares {
    /// The sum (1000 or 0).
    pub fn total(&self) -> u32 {
        self.answered + self.cached + self.silent + self.handed_off + self.fallback + self.gave_up
    }
}

/// The KPIs of one group of turns (a line on a day, or everything).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Kpi {
    /// The day (UTC) the turns started, when grouped by day.
    pub day: Option<NaiveDate>,
    /// The line, when grouped by line (`None`: unknown or all lines).
    pub line: Option<u64>,
    /// Every recorded turn.
    pub turns: u64,
    /// Not to be answered (outside the denominator).
    pub ignored: u64,
    /// WhatsApp's window had closed (outside the denominator).
    pub window_closed: u64,
    /// Over the per-phone rate limit (outside the denominator).
    pub rate_limited: u64,
    /// The denominator: answered + cached + silent + handed_off + fallback + gave_up.
    pub answerable: u64,
    /// Counts per answerable outcome.
    pub answered: u64,
    /// Answered from the FAQ cache, without a bot call.
    pub cached: u64,
    /// The bot chose to send nothing.
    pub silent: u64,
    /// Went to a human on request (or the portal refused the reply).
    pub handed_off: u64,
    /// The bot kept failing.
    pub fallback: u64,
    /// The bridge gave up.
    pub gave_up: u64,
    /// Outcome shares in tenths of a percent.
    pub shares: Shares,
    /// (answered + cached + silent + handed_off) / answerable, in tenths of a percent.
    pub success_permille: Option<u32>,
    /// (handed_off + fallback + gave_up) / answerable, in tenths of a percent.
    pub escalation_permille: Option<u32>,
    /// Escalations of answerable turns by reason (`HandoffReason::rule`).
    pub escalations: BTreeMap<String, u64>,
    /// Received → finished, answerable turns, milliseconds.
    pub p50_ms: Option<u64>,
    /// The same, 95th percentile.
    pub p95_ms: Option<u64>,
    /// REST requests per answered turn (turns that recorded their count).
    pub rest_calls_per_answer: Option<f64>,
    /// CSAT answers "helped".
    pub csat_up: u64,
    /// CSAT answers "did not help".
    pub csat_down: u64,
}

/// How turns are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grouping {
    /// One group per UTC day.
    pub by_day: bool,
    /// One group per line.
    pub by_line: bool,
}

/// The KPIs of `records`, one row per group, ordered by day then line.
pub fn kpis(records: &[TurnRecord], grouping: Grouping) -> Vec<Kpi> {
    let mut groups: BTreeMap<(Option<NaiveDate>, Option<u64>), Vec<&TurnRecord>> = BTreeMap::new();
    for r in records {
        let day = grouping.by_day.then(|| r.timings.started_at.date_naive());
        let line = if grouping.by_line { r.trace.line_id } else { None };
        groups.entry((day, line)).or_default().push(r);
    }
    groups.into_iter().map(|((day, line), rs)| compute(day, line, &rs)).collect()
}

/// The CSAT answer a record holds, if it is one.
fn csat(r: &TurnRecord) -> Option<&str> {
    r.trace.csat.as_deref()
}

fn compute(day: Option<NaiveDate>, line: Option<u64>, rs: &[&TurnRecord]) -> Kpi {
    let mut k = Kpi { day, line, turns: rs.len() as u64, ..Kpi::default() };
    let mut latencies = Vec::new();
    let (mut calls, mut counted) = (0_u64, 0_u64);
    for r in rs {
        match csat(r) {
            Some("up") => k.csat_up += 1,
            Some("down") => k.csat_down += 1,
            _ => {}
        }
        match &r.outcome {
            TurnOutcome::Ignored { .. } => {
                k.ignored += 1;
                continue;
            }
            TurnOutcome::WindowClosed { .. } => {
                k.window_closed += 1;
                continue;
            }
            TurnOutcome::RateLimited { .. } => {
                k.rate_limited += 1;
                continue;
            }
            TurnOutcome::Answered { .. } | TurnOutcome::Cached { .. } => {
                if matches!(r.outcome, TurnOutcome::Cached { .. }) {
                    k.cached += 1;
                } else {
                    k.answered += 1;
                }
                if let Some(n) = r.trace.rest_calls {
                    calls += u64::from(n);
                    counted += 1;
                }
            }
            TurnOutcome::Silent => k.silent += 1,
            TurnOutcome::HandedOff { .. } => k.handed_off += 1,
            TurnOutcome::Fallback { .. } => k.fallback += 1,
            TurnOutcome::GaveUp { .. } => k.gave_up += 1,
        }
        if let Some(reason) = crate::metrics::escalation_reason(&r.outcome) {
            *k.escalations.entry(reason.to_owned()).or_default() += 1;
        }
        latencies.push(durations(r).0);
    }
    k.answerable = k.answered + k.cached + k.silent + k.handed_off + k.fallback + k.gave_up;
    let parts = largest_remainder(&[k.answered, k.cached, k.silent, k.handed_off, k.fallback, k.gave_up], k.answerable);
    k.shares = Shares { answered: parts[0], cached: parts[1], silent: parts[2], handed_off: parts[3], fallback: parts[4], gave_up: parts[5] };
    if k.answerable > 0 {
        k.success_permille = Some(k.shares.answered + k.shares.cached + k.shares.silent + k.shares.handed_off);
        k.escalation_permille = Some(k.shares.handed_off + k.shares.fallback + k.shares.gave_up);
    }
    latencies.sort_unstable();
    k.p50_ms = nearest_rank(&latencies, 50);
    k.p95_ms = nearest_rank(&latencies, 95);
    k.rest_calls_per_answer = (counted > 0).then(|| calls as f64 / counted as f64);
    k
}

/// `counts` as tenths of a percent of `total`, rounded so they add up to exactly 1000 (all zero
/// when `total` is 0): each gets its floor, and the tenths left over go to the largest remainders.
pub fn largest_remainder(counts: &[u64], total: u64) -> Vec<u32> {
    if total == 0 {
        return vec![0; counts.len()];
    }
    let mut parts: Vec<(u32, u64, usize)> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let scaled = c * 1000;
            (u32::try_from(scaled / total).unwrap_or(u32::MAX), scaled % total, i)
        })
        .collect();
    let given: u32 = parts.iter().map(|p| p.0).sum();
    let mut left = 1000_u32.saturating_sub(given);
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|a, b| parts[*b].1.cmp(&parts[*a].1).then(a.cmp(b)));
    for i in order {
        if left == 0 {
            break;
        }
        if parts[i].1 > 0 {
            parts[i].0 += 1;
            left -= 1;
        }
    }
    parts.into_iter().map(|p| p.0).collect()
}

/// Tenths of a percent as text (`"33.3 %"`).
pub fn percent(permille: Option<u32>) -> String {
    permille.map_or_else(|| "-".to_owned(), |p| format!("{}.{} %", p / 10, p % 10))
}

#[cfg(test)]
mod tests;
