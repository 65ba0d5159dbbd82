//! `olbridge stats`: the KPIs of the local message log per line and day, as text or JSON. The
//! definitions are `olbridge_core::domain::kpi`'s (written out in `docs/metrics.md`).

use std::process::ExitCode;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use olbridge_core::config::Config;
use olbridge_core::domain::kpi::{Grouping, Kpi, kpis, percent};
use olbridge_core::domain::turn::TurnRecord;
use olbridge_core::ports::TurnLog;
use olbridge_sqlite::SqliteStore;

/// Which turns a report covers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    /// Turns started at or after this (default: the command's own).
    pub since: Option<DateTime<Utc>>,
    /// Only this line.
    pub line: Option<u64>,
}

/// `--since`: `24h`, `7d`, `90m`, `2026-11-01` or an RFC 3339 time.
pub fn parse_since(raw: &str) -> Result<DateTime<Utc>, String> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or_else(|| "invalid date".to_owned());
    }
    let (n, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: i64 = n.parse().map_err(|_| format!("expected 24h, 7d, 90m, a date (2026-11-01) or an RFC 3339 time, not {raw:?}"))?;
    let back = match unit {
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => return Err(format!("unknown unit {unit:?}: use m, h or d")),
    };
    Ok(Utc::now() - back)
}

/// The log's records the filter selects, oldest first.
pub async fn records(store: &SqliteStore, filter: Filter, default_since: Duration) -> anyhow::Result<Vec<TurnRecord>> {
    let since = filter.since.unwrap_or_else(|| Utc::now() - default_since);
    let mut rows: Vec<TurnRecord> = store
        .recent(usize::MAX)
        .await?
        .into_iter()
        .filter(|r| r.timings.started_at >= since && filter.line.is_none_or(|l| r.trace.line_id == Some(l)))
        .collect();
    rows.reverse();
    Ok(rows)
}

/// `olbridge stats`.
pub async fn stats(config: &Config, filter: Filter, recent: usize, json: bool) -> anyhow::Result<ExitCode> {
    let store = SqliteStore::open_for_admin(&config.runner.data_dir)?;
    let rows = records(&store, filter, Duration::days(7)).await?;
    let groups = kpis(&rows, Grouping { by_day: true, by_line: true });
    let total = kpis(&rows, Grouping { by_day: false, by_line: false }).into_iter().next().unwrap_or_default();
    if json {
        let out = serde_json::json!({"groups": groups, "total": total});
        crate::outln!("{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::outln!(
        "{:<10} {:>5} {:>6} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6} {:>5}",
        "day",
        "line",
        "turns",
        "ignored",
        "answered",
        "handoff",
        "fallback",
        "success",
        "escalat.",
        "p50",
        "p95",
        "rest/a",
        "csat"
    )?;
    for k in groups.iter().chain(std::iter::once(&total)) {
        row(k)?;
    }
    crate::outln!("shares are of answerable turns (ignored and window-closed turns excluded) and add up to 100 %; see docs/metrics.md")?;
    if !total.escalations.is_empty() {
        let reasons: Vec<String> = total.escalations.iter().map(|(r, n)| format!("{r} {n}")).collect();
        crate::outln!("escalations by reason: {}", reasons.join(", "))?;
    }
    let latest: Vec<&TurnRecord> = rows.iter().rev().take(recent).collect();
    if !latest.is_empty() {
        crate::outln!("\nrecent turns (newest first):")?;
    }
    for r in latest {
        let total = (r.timings.finished_at - r.timings.received_at).num_milliseconds();
        let crm = r.trace.crm.as_ref().map(|c| format!(" {} {}", c.entity_type, c.entity_id)).unwrap_or_default();
        crate::outln!(
            "  {}  {:<10} {:<12} {:>6} ms (bot {} ms, {} call(s), {} REST){crm}",
            r.timings.received_at.format("%Y-%m-%d %H:%M:%S"),
            r.dialog,
            r.outcome.name(),
            total,
            r.timings.bot_ms.unwrap_or(0),
            r.bot_attempts,
            r.trace.rest_calls.map_or("-".to_owned(), |n| n.to_string()),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn row(k: &Kpi) -> Result<(), crate::output::OutputError> {
    let day = k.day.map_or_else(|| "total".to_owned(), |d| d.to_string());
    let line = k.line.map_or_else(|| "-".to_owned(), |l| l.to_string());
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v}ms"));
    let csat = if k.csat_up + k.csat_down == 0 { "-".to_owned() } else { format!("{}/{}", k.csat_up, k.csat_up + k.csat_down) };
    crate::outln!(
        "{:<10} {:>5} {:>6} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6} {:>5}",
        day,
        line,
        k.turns,
        k.ignored,
        // Answered by the bot or by its cached FAQ answer.
        percent(k.answerable.gt(&0).then_some(k.shares.answered + k.shares.cached)),
        percent(k.answerable.gt(&0).then_some(k.shares.handed_off)),
        percent(k.answerable.gt(&0).then_some(k.shares.fallback + k.shares.gave_up)),
        percent(k.success_permille),
        percent(k.escalation_permille),
        ms(k.p50_ms),
        ms(k.p95_ms),
        k.rest_calls_per_answer.map_or("-".to_owned(), |v| format!("{v:.1}")),
        csat,
    )
}
