//! Step 3 of a turn: what to say — the rate-limit notice or silence, an escalation phrase, a
//! cached FAQ answer, a handoff past the daily cap, or the bot's answer (or its failure).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::cost::{self, Limit, Question};
use super::turn::{Turn, ignored};
use super::{Deps, ProcessError};
use crate::domain::ids::DialogId;
use crate::domain::message::{IgnoreReason, InboundMessage};
use crate::domain::profile::Profile;
use crate::domain::split::{WHATSAPP_MAX_CHARS, split_reply};
use crate::domain::turn::{HandoffReason, SavedAnswer, TurnOutcome};
use crate::ports::{BotAnswer, BotError, BotRequest};
use crate::retry::{self, Verdict};

/// Step 3: decides what to say (unless a resumed turn already did). Returns an outcome when the
/// turn ends without delivering anything.
pub(super) async fn decide(turn: &mut Turn<'_>, messages: &[&InboundMessage]) -> Result<Option<TurnOutcome>, ProcessError> {
    if turn.progress.answer.is_some() || turn.progress.handoff.is_some() || turn.progress.rate_limited {
        return Ok(None);
    }
    if turn.is_human().await? {
        return Ok(Some(ignored(IgnoreReason::HumanSession)));
    }
    // Nothing the bot says could be posted: do not ask it. The chat goes to a human, silently.
    if turn.window_closed().is_some() {
        turn.close_window();
        turn.checkpoint().await?;
        return Ok(None);
    }
    let deps = turn.deps;
    match cost::rate_limit(turn, messages).await? {
        Limit::Allowed => {}
        Limit::Notice => {
            info!(dialog = %turn.dialog, rule = "rate_limit", "over the rate limit: one notice, then silence for this window");
            turn.progress.rate_limited = true;
            turn.progress.notice = Some(deps.settings.cost.rate_limit_notice.clone());
            turn.checkpoint().await?;
            return Ok(None);
        }
        Limit::Silent => return Ok(Some(TurnOutcome::RateLimited { notice: false })),
    }
    if let Some(found) = messages.iter().find_map(|m| deps.settings.escalation.find(&m.text)) {
        info!(dialog = %turn.dialog, rule = found.rule.as_str(), text = %found.text, "escalation: handing the chat to a human");
        turn.progress.handoff = Some(HandoffReason::from(found));
        turn.progress.notice = Some(deps.settings.handoff_message.clone());
        turn.checkpoint().await?;
        return Ok(None);
    }
    let question = cost::question(deps, messages);
    let mut kb_version = None;
    if let Some(q) = &question {
        let (hit, version) = cost::lookup(deps, q).await;
        kb_version = version;
        if let Some(hit) = hit {
            info!(dialog = %turn.dialog, "answered from the FAQ cache, without asking the bot");
            turn.progress.answer = Some(SavedAnswer { chunks: hit.chunks, handoff: false, profile: None });
            turn.progress.cached = true;
            turn.checkpoint().await?;
            return Ok(None);
        }
    }
    if let Some(calls) = cost::over_daily_cap(turn, messages).await? {
        warn!(dialog = %turn.dialog, rule = "daily_cap", calls, "the daily bot-call cap is reached: handing the chat to a human");
        turn.progress.handoff = Some(HandoffReason::DailyCap { calls });
        turn.progress.notice = Some(deps.settings.handoff_message.clone());
        turn.checkpoint().await?;
        return Ok(None);
    }
    ask(turn, messages, question.as_ref(), kb_version).await
}

/// Asks the bot (typing indicator while it thinks) and saves what it said, or its failure.
async fn ask(
    turn: &mut Turn<'_>,
    messages: &[&InboundMessage],
    question: Option<&Question>,
    kb_version: Option<String>,
) -> Result<Option<TurnOutcome>, ProcessError> {
    let deps = turn.deps;
    let phone = messages.iter().find_map(|m| m.lines.phone.clone());
    turn.profile = match &phone {
        Some(p) => deps.profiles.get(p).await?,
        None => None,
    };
    let history = deps.chats.history(turn.chat, deps.settings.history_turns).await?;
    let profile_json = turn.profile.as_ref().map(Profile::to_bot_json).unwrap_or_else(|| serde_json::json!({}));
    let owned: Vec<InboundMessage> = messages.iter().map(|m| (*m).clone()).collect();
    let Some(request) = BotRequest::for_turn(&owned, profile_json, history, deps.settings.business_phone.as_deref()) else {
        return Ok(Some(ignored(IgnoreReason::EmptyText)));
    };

    let typing = spawn_typing(deps, turn.dialog);
    let started = Instant::now();
    turn.bot_started_at = Some(deps.clock.now());
    let result = ask_bot(turn, &request).await;
    drop(typing);
    turn.bot_finished_at = Some(deps.clock.now());
    turn.bot_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));

    match result {
        Ok(answer) => {
            let chunks: Vec<String> = answer.replies.iter().flat_map(|r| split_reply(r, WHATSAPP_MAX_CHARS)).collect();
            cost::remember(turn, question, kb_version, &answer, messages, &chunks).await;
            if answer.handoff {
                info!(dialog = %turn.dialog, rule = "bot_handoff", "the bot asked for a human");
                turn.progress.handoff = Some(HandoffReason::BotRequested);
                turn.progress.notice = Some(deps.settings.handoff_message.clone());
            }
            turn.progress.answer = Some(SavedAnswer { chunks, handoff: answer.handoff, profile: answer.profile });
        }
        Err(error) => {
            warn!(dialog = %turn.dialog, rule = "bot_failure", attempts = turn.progress.bot_attempts, error = %error, "the bot failed: fallback message and handoff");
            turn.progress.handoff = Some(HandoffReason::BotFailed { error: error.to_string() });
            turn.progress.notice = Some(deps.settings.fallback_message.clone());
        }
    }
    turn.checkpoint().await?;
    Ok(None)
}

/// Calls the bot through the one retry helper: 5xx, 429 and timeouts are retried within the
/// budget; 4xx and invalid answers are final at once. Each call's timeout and the whole budget are
/// cut to what is left of a Lambda invocation (keeping time to post the reply).
async fn ask_bot(turn: &mut Turn<'_>, request: &BotRequest) -> Result<BotAnswer, BotError> {
    let deps = turn.deps;
    let now = deps.clock.now();
    let reserve = Turn::DEADLINE_RESERVE;
    let mut policy = deps.settings.bot_retry.clone();
    policy.budget = Some(turn.owner.bound(policy.budget.unwrap_or(Duration::MAX), now, reserve));
    let counter = AtomicU32::new(0);
    let key = &turn.primary;
    let owner = turn.owner;
    let clock = &deps.clock;
    let result = retry::retry(
        &policy,
        |_| {
            counter.fetch_add(1, Ordering::Relaxed);
            let timeout = owner.bound(deps.settings.bot_timeout, clock.now(), reserve).max(Duration::from_secs(1));
            deps.bot.ask(request, key, timeout)
        },
        |e: &BotError| if e.is_retryable() { Verdict::Retry } else { Verdict::Stop },
    )
    .await;
    turn.progress.bot_attempts += counter.load(Ordering::Relaxed);
    result.map_err(|e| e.last)
}

/// Shows "typing…" while the bot thinks, renewing it; optional work the portal adapter may skip.
/// The renewal stops when the guard is dropped, also when the turn's future is dropped mid-call
/// (a cancelled invocation, a timeout around the turn): a bare `JoinHandle` would leave the task
/// sending "typing…" for ever.
fn spawn_typing(deps: &Deps, dialog: DialogId) -> AbortOnDrop {
    let portal = Arc::clone(&deps.portal);
    let every = deps.settings.typing_every;
    AbortOnDrop(tokio::spawn(async move {
        loop {
            if let Err(e) = portal.typing(dialog).await {
                tracing::debug!(error = %e, "typing indicator failed (ignored)");
            }
            tokio::time::sleep(every).await;
        }
    }))
}

/// A task aborted when this is dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
