//! Steps 4–6 of a turn: post what was decided, transfer when needed, record the turn.

use std::time::Instant;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::ProcessError;
use super::turn::{Turn, ignored};
use crate::domain::history::cap_history_text;
use crate::domain::ids::{DedupKey, Phone, SessionId};
use crate::domain::message::{IgnoreReason, InboundMessage};
use crate::domain::profile::Profile;
use crate::domain::turn::{HandoffReason, TurnOutcome, TurnRecord, TurnTimings, TurnTrace};
use crate::ports::{Claim, HistoryTurn, PortalErrorKind, StoreError, Transfer};

/// Steps 4 and 5: posts what was decided and transfers when needed.
pub(super) async fn deliver(turn: &mut Turn<'_>) -> Result<TurnOutcome, ProcessError> {
    let deps = turn.deps;
    let chunks = turn.progress.answer.as_ref().map(|a| a.chunks.clone()).unwrap_or_default();
    let mut texts = chunks.clone();
    texts.extend(turn.progress.notice.clone());
    while turn.progress.sent < texts.len() {
        let text = &texts[turn.progress.sent];
        if turn.is_human().await? {
            info!(dialog = %turn.dialog, "a human took the chat while the bot was working: staying silent");
            return Ok(ignored(IgnoreReason::HumanSession));
        }
        // A late answer (a long queue, a slow bot) must not land in a chat WhatsApp has closed.
        if turn.window_closed().is_some() {
            turn.close_window();
            turn.checkpoint().await?;
            break;
        }
        if turn.progress.sending && already_posted(turn, text).await? {
            continue;
        }
        turn.progress.sending = true;
        turn.checkpoint().await?;
        // The CSAT prompt (the notice after the answer) carries its keyboard where the chat shows one.
        let posted = if turn.progress.keyboard && turn.progress.sent == chunks.len() {
            deps.portal.post_with_keyboard(turn.dialog, text, &crate::usecase::csat::keyboard()).await
        } else {
            deps.portal.post_reply(turn.dialog, text).await
        };
        match posted {
            Ok(id) => {
                turn.progress.sending = false;
                turn.progress.sent += 1;
                turn.progress.posted_ids.push(id);
                turn.reply_posted_at = Some(deps.clock.now());
                turn.checkpoint().await?;
            }
            // Credentials or scopes: nothing about this turn is wrong; it fails and is retried,
            // then given up, until an admin fixes the webhook.
            Err(e) if e.is_retryable() || e.kind == PortalErrorKind::Auth => return Err(e.into()),
            Err(e) => {
                // Most often the bot is no longer in the chat (the customer typed 0, the line's
                // timer moved it to the queue). Retrying would not change that, and staying silent
                // could leave the customer with nobody: the chat goes to a human.
                warn!(dialog = %turn.dialog, code = %e.code, rule = "portal_refused", "the portal refused the reply; handing the chat to a human");
                refused(turn, &e.code);
                turn.checkpoint().await?;
                break;
            }
        }
    }
    let Some(reason) = turn.progress.handoff.clone() else {
        let p = &turn.progress;
        return Ok(if p.rate_limited {
            TurnOutcome::RateLimited { notice: !p.posted_ids.is_empty() }
        } else if p.posted_ids.is_empty() {
            TurnOutcome::Silent
        } else if p.cached {
            TurnOutcome::Cached { reply_ids: p.posted_ids.clone() }
        } else {
            TurnOutcome::Answered { reply_ids: p.posted_ids.clone() }
        });
    };
    if !turn.progress.transferred {
        match deps.portal.transfer_to_operator(turn.chat).await {
            Ok(Transfer::Done | Transfer::AlreadyHuman) => {}
            Err(e) if e.is_retryable() || e.kind == PortalErrorKind::Auth => return Err(e.into()),
            Err(e) => warn!(dialog = %turn.dialog, code = %e.code, "the portal refused the transfer; the chat stays silent for this session anyway"),
        }
        turn.progress.transferred = true;
        turn.checkpoint().await?;
    }
    deps.chats.set_human(turn.chat, turn.session, reason.rule(), deps.clock.now()).await?;
    Ok(match reason {
        HandoffReason::BotFailed { error } => TurnOutcome::Fallback { error },
        HandoffReason::GaveUp { error } => TurnOutcome::GaveUp { error },
        HandoffReason::WindowClosed { block_reason } => TurnOutcome::WindowClosed { block_reason },
        reason => TurnOutcome::HandedOff { reason },
    })
}

/// The portal refused a post for good: nothing more is posted in this turn, and unless a handoff
/// was already decided, the chat goes to a human for this reason.
fn refused(turn: &mut Turn<'_>, code: &str) {
    let p = &mut turn.progress;
    p.sending = false;
    if let Some(answer) = &mut p.answer {
        answer.chunks.truncate(p.sent.min(answer.chunks.len()));
    }
    p.notice = None;
    p.keyboard = false;
    if p.handoff.is_none() {
        p.handoff = Some(HandoffReason::PortalRefused { code: code.to_owned() });
    }
}

/// After a crash between "about to post" and "posted", checks whether the post reached the portal:
/// a message by us, after the customer's message, with that text, not one we already counted.
async fn already_posted(turn: &mut Turn<'_>, text: &str) -> Result<bool, ProcessError> {
    let deps = turn.deps;
    let after = turn.progress.posted_ids.last().copied().unwrap_or(turn.last_message).max(turn.last_message);
    let found = deps
        .portal
        .messages_after(turn.dialog, after)
        .await?
        .into_iter()
        .find(|m| m.author_id == deps.portal.author_id() && m.text.trim() == text.trim() && !turn.progress.posted_ids.contains(&m.id));
    let Some(found) = found else { return Ok(false) };
    info!(dialog = %turn.dialog, message = %found.id, "an interrupted post had reached the portal; not posting it again");
    turn.progress.sending = false;
    turn.progress.sent += 1;
    turn.progress.posted_ids.push(found.id);
    turn.checkpoint().await?;
    Ok(true)
}

/// Step 6.
pub(super) async fn finish(
    turn: &Turn<'_>,
    messages: &[&InboundMessage],
    outcome: &TurnOutcome,
    received_at: DateTime<Utc>,
    started_at: DateTime<Utc>,
    started: Instant,
) -> Result<(), ProcessError> {
    let deps = turn.deps;
    let now = deps.clock.now();
    let phone = messages.iter().find_map(|m| m.lines.phone.clone());
    if let Some(phone) = &phone {
        // Before the history, so whatever this turn stores is reachable from the phone (privacy).
        deps.chats.link_phone(turn.chat, phone, now).await?;
    }
    // A flood over the rate limit is drained cheaply: its messages are in the turn log, not in
    // the history the bot gets, and the profile is not touched.
    let limited = matches!(outcome, TurnOutcome::RateLimited { .. });
    for m in messages.iter().filter(|_| !limited) {
        deps.chats.append_history(turn.chat, &history_turn(deps, "customer", &m.text, m.sent_at)).await?;
    }
    if let Some(answer) = &turn.progress.answer {
        let sent: Vec<&str> = answer.chunks.iter().take(turn.progress.sent).map(String::as_str).collect();
        if !sent.is_empty() {
            deps.chats.append_history(turn.chat, &history_turn(deps, "bot", &sent.join("\n"), now)).await?;
        }
    }
    if let Some(phone) = phone.filter(|_| !limited) {
        save_profile(turn, messages, phone, now).await?;
    }
    let record = TurnRecord {
        keys: turn.keys.clone(),
        dialog: turn.dialog.to_string(),
        session_id: turn.session.map(SessionId::get),
        outcome: outcome.clone(),
        timings: TurnTimings { received_at, started_at, bot_ms: turn.bot_ms, finished_at: now },
        bot_attempts: turn.progress.bot_attempts,
        trace: TurnTrace {
            line_id: messages.iter().find_map(|m| m.lines.line_id).map(|l| l.get()),
            crm: turn.crm.clone(),
            event_at: messages.first().map(|m| m.sent_at),
            bot_started_at: turn.bot_started_at,
            bot_finished_at: turn.bot_finished_at,
            reply_posted_at: turn.reply_posted_at,
            rest_calls: crate::b24::usage::current(),
            csat: None,
        },
    };
    deps.log.record(&record).await?;
    note_timeline(turn, messages, outcome, now).await;
    for key in turn.keys_primary_last() {
        complete(turn, key, outcome).await?;
    }
    let total_ms = started.elapsed().as_millis();
    info!(dialog = %turn.dialog, outcome = outcome.name(), messages = turn.keys.len(), bot_attempts = turn.progress.bot_attempts, turn_ms = total_ms as u64, "turn finished");
    Ok(())
}

/// Leaves the turn's line for the bound entity's timeline in the durable outbox; the comment is
/// written later by the timeline loop. A store failure here is logged, not returned: the reply is
/// out, and retrying the turn for a timeline line would risk more than it saves.
async fn note_timeline(turn: &Turn<'_>, messages: &[&InboundMessage], outcome: &TurnOutcome, now: DateTime<Utc>) {
    let (Some(link), Some(entity)) = (&turn.deps.crm, &turn.crm) else { return };
    let bot = match &turn.progress.answer {
        Some(a) => a.chunks.iter().take(turn.progress.sent).map(String::as_str).collect(),
        None => Vec::new(),
    };
    let note = crate::usecase::crm::TurnNote {
        turn_key: turn.primary.to_string(),
        chat: turn.chat,
        session: turn.session,
        entity,
        customer: messages.iter().map(|m| m.text.as_str()).collect(),
        bot,
        outcome,
        at: now,
    };
    if let Err(e) = link.note_turn(&note).await {
        warn!(dialog = %turn.dialog, error = %e, "cannot queue the turn's CRM timeline line; it is not written");
    }
}

/// How often a profile write is retried when another turn wrote the profile meanwhile.
const PROFILE_WRITE_ATTEMPTS: usize = 5;

/// Applies the bot's profile patch (and the name the connector gave) to the stored profile, with
/// optimistic concurrency: a write that lost a race is redone over the newer profile.
async fn save_profile(turn: &Turn<'_>, messages: &[&InboundMessage], phone: Phone, now: DateTime<Utc>) -> Result<(), ProcessError> {
    let deps = turn.deps;
    // Loaded when the bot was asked; a resumed turn that skipped that step loads it here.
    let mut loaded = turn.profile.clone();
    for _ in 0..PROFILE_WRITE_ATTEMPTS {
        let mut profile = match loaded.take() {
            Some(p) => p,
            None => deps.profiles.get(&phone).await?.unwrap_or_else(|| Profile::new(phone.clone(), now)),
        };
        if let Some(patch) = turn.progress.answer.as_ref().and_then(|a| a.profile.as_ref())
            && let Err(refused) = profile.merge_bounded(patch, now, deps.settings.profile_max_bytes)
        {
            warn!(dialog = %turn.dialog, error = %refused, "the bot's profile patch was not stored");
        }
        if profile.name.is_none() {
            profile.name = messages.iter().map(|m| m.author.name.trim()).find(|n| !n.is_empty()).map(str::to_owned);
        }
        profile.updated_at = now;
        if deps.profiles.put(&profile).await? {
            return Ok(());
        }
    }
    Err(StoreError::Backend(format!("the profile kept changing under {PROFILE_WRITE_ATTEMPTS} attempts to save it")).into())
}

/// A turn of the history as stored: its text cut to the configured length, so one long message
/// cannot make every later bot request huge.
pub(super) fn history_turn(deps: &super::Deps, role: &str, text: &str, at: DateTime<Utc>) -> HistoryTurn {
    HistoryTurn { role: role.into(), text: cap_history_text(text, deps.settings.history_text_max_chars).into_owned(), at }
}

/// Marks a key of the turn done. A message of a resumed burst may still be claimed by the attempt
/// that died: its lease has run out, so it is claimed again first — with a lease bounded by this
/// attempt's deadline, like every claim: should this attempt die between the claim and the
/// complete, the next one must not find the message held for the whole `lease` (minutes on a
/// Lambda, every redelivery meanwhile failing with `LeaseLost` until the receive limit).
async fn complete(turn: &Turn<'_>, key: &DedupKey, outcome: &TurnOutcome) -> Result<(), ProcessError> {
    let deps = turn.deps;
    let now = deps.clock.now();
    let owner = &turn.owner.id;
    match deps.idempotency.complete(key, owner, outcome, now).await {
        Err(StoreError::LeaseLost) => match deps.idempotency.claim(key, owner, now, super::lease(deps, turn.owner, now)).await? {
            Claim::Done(_) => Ok(()),
            Claim::New | Claim::Resumed(_) => Ok(deps.idempotency.complete(key, owner, outcome, now).await?),
            Claim::InProgress { .. } => Err(StoreError::LeaseLost.into()),
        },
        other => Ok(other?),
    }
}
