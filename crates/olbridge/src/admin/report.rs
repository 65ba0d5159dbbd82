//! `olbridge report --html FILE`: one self-contained HTML page of the KPIs, with charts drawn here as
//! inline SVG (no script, no stylesheet or font from the network, no library): it opens in any
//! browser offline and can be mailed as one file. Numbers are the same definitions as `olbridge
//! stats` (`olbridge_core::domain::kpi`).
//!
//! Each chart is a `<figure class="chart" data-chart="<name>">` holding one `<svg>`; bars are
//! `<rect class="bar">` and lines `<polyline class="series">`, which is what the test looks for.

mod svg;

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use chrono::{Duration, Utc};
use olbridge_core::config::Config;
use olbridge_core::domain::kpi::{Grouping, Kpi, kpis, percent};
use olbridge_core::domain::stats::{durations, nearest_rank};
use olbridge_core::domain::turn::{TurnOutcome, TurnRecord};
use olbridge_sqlite::SqliteStore;

use super::kpi::{Filter, records};
use svg::{Bar, esc};

/// Latency histogram buckets: upper bounds in seconds, and their labels.
const LATENCY_BUCKETS: [(u64, &str); 7] = [(1, "<1 s"), (2, "1–2 s"), (5, "2–5 s"), (10, "5–10 s"), (20, "10–20 s"), (60, "20–60 s"), (u64::MAX, "≥60 s")];

/// `olbridge report --html FILE`.
pub async fn write(config: &Config, filter: Filter, file: &Path) -> anyhow::Result<ExitCode> {
    let store = SqliteStore::open_for_admin(&config.runner.data_dir)?;
    let rows = records(&store, filter, Duration::days(30)).await?;
    let html = render(&rows, filter);
    std::fs::write(file, html).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
    crate::outln!("wrote {} ({} turns)", file.display(), rows.len())?;
    Ok(ExitCode::SUCCESS)
}

fn answerable(r: &TurnRecord) -> bool {
    !matches!(r.outcome, TurnOutcome::Ignored { .. } | TurnOutcome::WindowClosed { .. })
}

/// The page for `rows` (oldest first).
pub fn render(rows: &[TurnRecord], filter: Filter) -> String {
    let total = kpis(rows, Grouping { by_day: false, by_line: false }).into_iter().next().unwrap_or_default();
    let days = kpis(rows, Grouping { by_day: true, by_line: false });
    let mut charts = String::new();
    charts.push_str(&latency_histogram(rows));
    charts.push_str(&percentiles_over_time(rows, &days));
    charts.push_str(&outcomes(&total));
    charts.push_str(&escalations(&total));
    charts.push_str(&csat(&total));
    charts.push_str(&rest_calls(rows));
    let scope = match (filter.since, filter.line) {
        (Some(s), Some(l)) => format!("line {l}, since {}", s.format("%Y-%m-%d %H:%M UTC")),
        (Some(s), None) => format!("all lines, since {}", s.format("%Y-%m-%d %H:%M UTC")),
        (None, Some(l)) => format!("line {l}, last 30 days"),
        (None, None) => "all lines, last 30 days".to_owned(),
    };
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>olbridge report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
.kpis {{ display: flex; flex-wrap: wrap; gap: 1em; }}
.kpi {{ border: 1px solid #ccc; border-radius: 6px; padding: .6em 1em; min-width: 9em; }}
.kpi b {{ display: block; font-size: 1.4em; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1.5em; }}
figure.chart {{ margin: 0; border: 1px solid #ddd; border-radius: 6px; padding: .5em; }}
figcaption {{ font-weight: 600; margin-bottom: .3em; }}
svg text {{ font-size: 11px; fill: #333; }}
.bar {{ fill: #3b7dd8; }} .bar.bad {{ fill: #d8543b; }} .bar.neutral {{ fill: #999; }}
.series.p50 {{ stroke: #3b7dd8; }} .series.p95 {{ stroke: #d8543b; }}
circle.p50 {{ fill: #3b7dd8; }} circle.p95 {{ fill: #d8543b; }}
p.note {{ color: #555; max-width: 60em; }}
</style></head><body>
<h1>olbridge report</h1>
<p>{scope}; generated {generated}. {n} turns recorded, {a} answerable.</p>
<div class="kpis">
<div class="kpi">success rate<b>{success}</b></div>
<div class="kpi">answered<b>{answered}</b></div>
<div class="kpi">escalation rate<b>{escalation}</b></div>
<div class="kpi">p50 / p95<b>{p50} / {p95}</b></div>
<div class="kpi">REST calls per answer<b>{rest}</b></div>
<div class="kpi">CSAT helped<b>{csat}</b></div>
</div>
<p class="note">Shares are of answerable turns: ignored turns (operators', bots' and system messages, chats a human holds, CSAT answers) and turns WhatsApp's window had closed on are not in the denominator, and the outcome shares add up to exactly 100 %. Latency: received by the bridge → reply (or handoff) confirmed by the portal. Definitions: docs/metrics.md.</p>
<div class="charts">
{charts}</div>
</body></html>
"#,
        scope = esc(&scope),
        generated = Utc::now().format("%Y-%m-%d %H:%M UTC"),
        n = total.turns,
        a = total.answerable,
        success = percent(total.success_permille),
        answered = percent((total.answerable > 0).then_some(total.shares.answered + total.shares.cached)),
        escalation = percent(total.escalation_permille),
        p50 = ms(total.p50_ms),
        p95 = ms(total.p95_ms),
        rest = total.rest_calls_per_answer.map_or("-".to_owned(), |v| format!("{v:.1}")),
        csat = csat_share(&total),
    );
    page
}

fn ms(v: Option<u64>) -> String {
    v.map_or("-".to_owned(), |v| if v >= 10_000 { format!("{:.1} s", v as f64 / 1000.0) } else { format!("{v} ms") })
}

fn csat_share(k: &Kpi) -> String {
    let n = k.csat_up + k.csat_down;
    (k.csat_up * 100).checked_div(n).map_or_else(|| "-".to_owned(), |p| format!("{p} % of {n}"))
}

fn latency_histogram(rows: &[TurnRecord]) -> String {
    let mut counts = [0_u64; LATENCY_BUCKETS.len()];
    for r in rows.iter().filter(|r| answerable(r)) {
        let secs = durations(r).0 / 1000;
        let i = LATENCY_BUCKETS.iter().position(|(upper, _)| secs < *upper).unwrap_or(LATENCY_BUCKETS.len() - 1);
        counts[i] += 1;
    }
    let bars: Vec<Bar> = LATENCY_BUCKETS.iter().zip(counts).map(|((_, label), n)| Bar::new(*label, n)).collect();
    svg::figure("latency", "Latency distribution (answerable turns)", &svg::columns(&bars))
}

fn percentiles_over_time(rows: &[TurnRecord], days: &[Kpi]) -> String {
    // A day per point when the report spans several days, else an hour per point.
    let multi_day = days.len() > 1;
    let mut points: Vec<(String, Vec<u64>)> = Vec::new();
    for r in rows.iter().filter(|r| answerable(r)) {
        let label = if multi_day { r.timings.started_at.format("%m-%d").to_string() } else { r.timings.started_at.format("%H:00").to_string() };
        match points.last_mut() {
            Some((l, v)) if *l == label => v.push(durations(r).0),
            _ => points.push((label, vec![durations(r).0])),
        }
    }
    let series: Vec<(String, u64, u64)> = points
        .into_iter()
        .map(|(l, mut v)| {
            v.sort_unstable();
            (l, nearest_rank(&v, 50).unwrap_or(0), nearest_rank(&v, 95).unwrap_or(0))
        })
        .collect();
    svg::figure("percentiles", "p50 and p95 latency over time (ms)", &svg::lines(&series))
}

fn outcomes(k: &Kpi) -> String {
    let bars = vec![
        Bar::new("answered", k.answered),
        Bar::new("answered from the FAQ cache", k.cached),
        Bar::new("silent", k.silent).neutral(),
        Bar::new("handed off", k.handed_off).neutral(),
        Bar::new("fallback", k.fallback).bad(),
        Bar::new("gave up", k.gave_up).bad(),
        Bar::new("window closed", k.window_closed).neutral(),
        Bar::new("over the rate limit", k.rate_limited).neutral(),
        Bar::new("ignored", k.ignored).neutral(),
    ];
    svg::figure("outcomes", "Outcomes (turns)", &svg::rows(&bars))
}

fn escalations(k: &Kpi) -> String {
    let bars: Vec<Bar> = k.escalations.iter().map(|(reason, n)| Bar::new(reason, *n)).collect();
    svg::figure("escalations", "Escalations by reason", &svg::rows(&bars))
}

fn csat(k: &Kpi) -> String {
    let bars = vec![Bar::new("helped (1)", k.csat_up), Bar::new("did not help (2)", k.csat_down).bad()];
    svg::figure("csat", "CSAT per bot answer", &svg::rows(&bars))
}

fn rest_calls(rows: &[TurnRecord]) -> String {
    let mut counts = [0_u64; 9];
    for r in rows.iter().filter(|r| matches!(r.outcome, TurnOutcome::Answered { .. })) {
        if let Some(n) = r.trace.rest_calls {
            counts[(n as usize).min(counts.len() - 1)] += 1;
        }
    }
    let bars: Vec<Bar> = counts.iter().enumerate().map(|(i, n)| Bar::new(if i == counts.len() - 1 { format!("{i}+") } else { i.to_string() }, *n)).collect();
    svg::figure("rest-calls", "REST calls per answered turn", &svg::columns(&bars))
}
