//! Step 3's cost controls, in the order `decide` applies them: the rate limit (before anything
//! else: a flood never reaches the bot, nor the escalation rules), the FAQ answer cache (after the
//! escalation phrases: a turn that escalates is never answered from the cache), and the daily
//! bot-call cap (right before the bot is asked: a cache hit costs nothing and is not counted).
//!
//! Counters are per phone when the turn's messages carry one, else per chat, and are keyed by
//! period (`win#<window seconds>#<window index>`, `day#<yyyy-mm-dd>` in UTC), so each is one
//! atomic addition per turn, with the turn's key as the token that makes a retried turn count
//! once ([`UsageCounters`](crate::ports::UsageCounters)).

use chrono::{DateTime, Days, Utc};
use tracing::{info, warn};

use super::turn::Turn;
use super::{Deps, ProcessError};
use crate::domain::faq;
use crate::domain::message::InboundMessage;
use crate::domain::profile::Profile;
use crate::ports::{BotAnswer, CachedAnswer, Subject};

/// What the rate limit says about a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    /// Within the limit (or no limit).
    Allowed,
    /// This turn took the window's count over the limit: it posts the notice.
    Notice,
    /// Already over the limit in this window: silence.
    Silent,
}

fn subject(turn: &Turn<'_>, messages: &[&InboundMessage]) -> Subject {
    messages.iter().find_map(|m| m.lines.phone.clone()).map_or(Subject::Chat(turn.chat), Subject::Phone)
}

/// Counts the turn's messages in the current window.
pub(super) async fn rate_limit(turn: &Turn<'_>, messages: &[&InboundMessage]) -> Result<Limit, ProcessError> {
    let deps = turn.deps;
    let Some(limit) = deps.settings.cost.rate_limit else { return Ok(Limit::Allowed) };
    let now = deps.clock.now();
    let secs = i64::try_from(limit.window.as_secs().max(1)).unwrap_or(i64::MAX);
    let index = now.timestamp().div_euclid(secs);
    let ends = DateTime::from_timestamp(index.saturating_add(1).saturating_mul(secs), 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
    let amount = messages.len() as u64;
    let name = format!("win#{secs}#{index}");
    let after = deps.usage.add(&subject(turn, messages), &name, turn.primary.as_str(), amount, now, ends).await?;
    let before = after.saturating_sub(amount);
    Ok(if after <= limit.messages {
        Limit::Allowed
    } else if before <= limit.messages {
        Limit::Notice
    } else {
        Limit::Silent
    })
}

/// Counts one bot call for today; `Some(count)` when it is past the daily cap.
pub(super) async fn over_daily_cap(turn: &Turn<'_>, messages: &[&InboundMessage]) -> Result<Option<u64>, ProcessError> {
    let deps = turn.deps;
    let Some(cap) = deps.settings.cost.daily_bot_calls else { return Ok(None) };
    let now = deps.clock.now();
    let day = now.date_naive();
    let ends = day.checked_add_days(Days::new(1)).and_then(|d| d.and_hms_opt(0, 0, 0)).map_or(DateTime::<Utc>::MAX_UTC, |d| d.and_utc());
    let name = format!("day#{day}");
    let calls = deps.usage.add(&subject(turn, messages), &name, turn.primary.as_str(), 1, now, ends).await?;
    Ok((calls > cap).then_some(calls))
}

/// A question the cache may answer: its line and key.
#[derive(Debug, Clone)]
pub(super) struct Question {
    line: String,
    key: String,
}

/// The turn's question as the cache sees it (the folded messages' texts joined, as the bot gets
/// them), or `None` when the cache is off or the question is personal.
pub(super) fn question(deps: &Deps, messages: &[&InboundMessage]) -> Option<Question> {
    deps.settings.cost.faq_ttl?;
    let text = messages.iter().map(|m| m.text.as_str()).filter(|t| !t.trim().is_empty()).collect::<Vec<_>>().join("\n");
    if faq::is_personal(&text) {
        return None;
    }
    let normalised = faq::normalise(&text);
    if normalised.is_empty() {
        return None;
    }
    let line = messages.iter().rev().find_map(|m| m.lines.line_id).map_or_else(|| "-".to_owned(), |l| l.to_string());
    let key = faq::key(&line, &normalised);
    Some(Question { line, key })
}

/// The cached answer for `q` and the line's knowledge-base version. A failing cache is a miss:
/// it costs a bot call, never the turn.
pub(super) async fn lookup(deps: &Deps, q: &Question) -> (Option<CachedAnswer>, Option<String>) {
    match deps.cache.lookup(&q.line, &q.key, deps.clock.now()).await {
        Ok(found) => (found.answer, found.kb_version),
        Err(e) => {
            warn!(error = %e, "the FAQ cache could not be read; asking the bot");
            (None, None)
        }
    }
}

/// After the bot answered: records a new knowledge-base version, and stores the answer when it
/// may be cached (the bot said `cacheable`, no handoff, no profile patch, nothing of the customer
/// in it; see [`crate::domain::faq`]). Failures are logged, not fatal.
pub(super) async fn remember(
    turn: &Turn<'_>,
    q: Option<&Question>,
    current: Option<String>,
    answer: &BotAnswer,
    messages: &[&InboundMessage],
    chunks: &[String],
) {
    let deps = turn.deps;
    let Some(ttl) = deps.settings.cost.faq_ttl else { return };
    let line = q.map_or_else(|| messages.iter().rev().find_map(|m| m.lines.line_id).map_or_else(|| "-".to_owned(), |l| l.to_string()), |q| q.line.clone());
    if let Some(version) = answer.kb_version.as_deref().filter(|v| current.as_deref() != Some(*v)) {
        info!(dialog = %turn.dialog, kb_version = version, "the bot reports a new knowledge-base version: older cached answers are no longer served");
        if let Err(e) = deps.cache.set_version(&line, version).await {
            warn!(error = %e, "the knowledge-base version could not be stored");
        }
    }
    let Some(q) = q else { return };
    if !answer.cacheable || answer.handoff || answer.profile.is_some() || chunks.is_empty() {
        return;
    }
    let name = messages.iter().map(|m| m.author.name.trim()).find(|n| !n.is_empty());
    let phone = messages.iter().find_map(|m| m.lines.phone.as_ref()).map(|p| p.as_str().to_owned());
    let profile = turn.profile.as_ref().map(Profile::to_bot_json);
    if faq::echoes_customer(&chunks.join("\n"), name, phone.as_deref(), profile.as_ref()) {
        info!(dialog = %turn.dialog, "a cacheable answer mentions the customer: not cached");
        return;
    }
    let now = deps.clock.now();
    let expires = crate::memory::after(now, ttl);
    let entry = CachedAnswer { chunks: chunks.to_vec(), kb_version: answer.kb_version.clone().or(current) };
    if let Err(e) = deps.cache.store(&q.line, &q.key, &entry, now, expires).await {
        warn!(error = %e, "the answer could not be cached");
    }
}
