//! Step 2 and the turn's state: what of the claimed messages is answerable, and the composition
//! saved before anything else happens.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::info;

use super::{Deps, Owner, ProcessError, decide, deliver};
use crate::domain::ids::{ChatId, DedupKey, DialogId, MessageId, SessionId};
use crate::domain::message::{CrmBinding, IgnoreReason, InboundMessage};
use crate::domain::profile::Profile;
use crate::domain::turn::{HandoffReason, TurnOutcome, TurnProgress, TurnRecord, TurnTimings, TurnTrace};
use crate::domain::window::{self, Block};
use crate::ports::{ChatMode, StoreError};

/// A claimed message and the progress its claim answered with.
#[derive(Debug)]
pub(super) struct Claimed<'a> {
    pub(super) message: &'a InboundMessage,
    pub(super) progress: TurnProgress,
}

/// What a turn finished.
#[derive(Debug)]
pub(super) struct TurnDone {
    /// Every key marked done (the turn's messages, including those a resumed composition named).
    pub(super) keys: Vec<DedupKey>,
    /// One outcome per ignored message and one for the turn.
    pub(super) outcomes: Vec<TurnOutcome>,
}

/// The state of one turn while it runs.
pub(super) struct Turn<'a> {
    pub(super) deps: &'a Deps,
    pub(super) owner: &'a Owner,
    pub(super) primary: DedupKey,
    pub(super) keys: Vec<DedupKey>,
    pub(super) chat: ChatId,
    pub(super) dialog: DialogId,
    pub(super) session: Option<SessionId>,
    pub(super) last_message: MessageId,
    pub(super) progress: TurnProgress,
    pub(super) bot_ms: Option<u64>,
    /// The customer's profile as loaded for the bot request, saved once when the turn finishes.
    pub(super) profile: Option<Profile>,
    /// The latest WhatsApp block date of the turn's messages (each customer message moves it).
    pub(super) block: Option<Block>,
    /// The CRM entity the chat is bound to for this turn.
    pub(super) crm: Option<CrmBinding>,
    /// The chat's connector id (`whatsappbyedna`, `livechat`, ...), when the event said.
    pub(super) connector: Option<String>,
    /// When the bot call of this attempt started and ended, and the last post was confirmed.
    pub(super) bot_started_at: Option<DateTime<Utc>>,
    pub(super) bot_finished_at: Option<DateTime<Utc>>,
    pub(super) reply_posted_at: Option<DateTime<Utc>>,
}

impl Turn<'_> {
    /// Time kept back from a Lambda's deadline for posting the reply and checkpointing.
    pub(super) const DEADLINE_RESERVE: Duration = Duration::from_secs(10);

    /// The turn's keys in the order they are marked done: the folded messages first, the primary
    /// last. The primary's record holds the composition; while it is not done, a redelivery
    /// resumes the whole turn from it. Done first, it would leave a crash before the folded keys
    /// with those messages claimed and empty: after their lease each would be asked again alone,
    /// and answered a second time.
    pub(super) fn keys_primary_last(&self) -> impl Iterator<Item = &DedupKey> {
        self.keys.iter().filter(|k| **k != self.primary).chain(self.keys.iter().filter(|k| **k == self.primary))
    }

    pub(super) async fn checkpoint(&self) -> Result<(), StoreError> {
        let now = self.deps.clock.now();
        let lease = super::lease(self.deps, self.owner, now);
        self.deps.idempotency.checkpoint(&self.primary, &self.owner.id, &self.progress, now, lease).await
    }

    /// Marks each folded message's own record as part of this turn (after the composition is
    /// saved, before the bot is asked): if the primary's record is lost (dead-lettered after too
    /// many receives) while a folded one comes back, that one resumes this turn through the
    /// primary instead of being asked about alone and answered a second time (`plan`). One
    /// write per folded message, only for turns that fold.
    pub(super) async fn point_to_primary(&self) -> Result<(), StoreError> {
        let now = self.deps.clock.now();
        let lease = super::lease(self.deps, self.owner, now);
        let pointer = TurnProgress { part_of: Some(self.primary.clone()), ..TurnProgress::default() };
        for key in self.keys.iter().filter(|k| **k != self.primary) {
            self.deps.idempotency.checkpoint(key, &self.owner.id, &pointer, now, lease).await?;
        }
        Ok(())
    }

    pub(super) async fn is_human(&self) -> Result<bool, StoreError> {
        Ok(matches!(self.deps.chats.mode(self.chat, self.session).await?, ChatMode::Human { .. }))
    }

    /// The block that forbids free text now, if WhatsApp's window has closed (or closes within the
    /// margin).
    pub(super) fn window_closed(&self) -> Option<&Block> {
        self.deps.settings.window.closed([self.block.as_ref()], self.deps.clock.now())
    }

    /// The window closed: nothing more is posted (no notice either: it would not reach the
    /// customer), and the chat goes to a human whatever else was decided. Checkpointed by the caller.
    pub(super) fn close_window(&mut self) {
        let block_reason = self.block.as_ref().and_then(|b| b.reason.clone());
        let at = self.block.as_ref().map(|b| b.at.to_rfc3339());
        let p = &mut self.progress;
        info!(dialog = %self.dialog, block_date = ?at, posted = p.sent, "WhatsApp's 24-hour window is closed: posting nothing more, handing the chat to a human");
        p.sending = false;
        if let Some(answer) = &mut p.answer {
            answer.chunks.truncate(p.sent.min(answer.chunks.len()));
        }
        p.notice = None;
        p.handoff = Some(HandoffReason::WindowClosed { block_reason });
    }
}

pub(super) fn ignored(reason: IgnoreReason) -> TurnOutcome {
    TurnOutcome::Ignored { reason: reason.as_str().into() }
}

/// Runs one turn over the claimed messages (the first is the turn's own), or gives it up.
pub(super) async fn run_turn(
    deps: &Deps,
    owner: &Owner,
    claimed: Vec<Claimed<'_>>,
    received_at: DateTime<Utc>,
    give_up: Option<&str>,
) -> Result<TurnDone, ProcessError> {
    if let [only] = claimed.as_slice()
        && only.message.is_canary()
        && give_up.is_none()
    {
        return super::canary::canary_turn(deps, owner, only.message).await;
    }
    let started_at = deps.clock.now();
    let started = Instant::now();
    let mut done = TurnDone { keys: Vec::new(), outcomes: Vec::new() };

    // Sort out what is answerable; an operator's message means a human has the chat.
    let mut answerable = Vec::new();
    let mut not_answered = Vec::new();
    let mut operator_wrote = false;
    for c in claimed {
        let m = c.message;
        match m.answerability() {
            Ok(()) if m.lines.user_code.is_none() => not_answered.push((m, ignored(IgnoreReason::NotOpenLines))),
            Ok(()) => answerable.push(c),
            Err(reason) => {
                if reason == IgnoreReason::OperatorMessage {
                    operator_wrote = true;
                    deps.chats.set_human(m.chat_id, m.lines.session_id, "operator_wrote", deps.clock.now()).await?;
                    deps.chats.append_history(m.chat_id, &deliver::history_turn(deps, "operator", &m.text, m.sent_at)).await?;
                }
                not_answered.push((m, ignored(reason)));
            }
        }
    }
    if operator_wrote {
        for c in answerable.drain(..) {
            not_answered.push((c.message, ignored(IgnoreReason::HumanSession)));
        }
    }
    for (m, outcome) in not_answered {
        let now = deps.clock.now();
        let record = TurnRecord {
            keys: vec![m.dedup_key()],
            dialog: m.dialog_id.to_string(),
            session_id: m.lines.session_id.map(SessionId::get),
            outcome: outcome.clone(),
            timings: TurnTimings { received_at, started_at, bot_ms: None, finished_at: now },
            bot_attempts: 0,
            trace: TurnTrace {
                line_id: m.lines.line_id.map(|l| l.get()),
                crm: m.lines.crm.clone(),
                event_at: Some(m.sent_at),
                rest_calls: crate::b24::usage::current(),
                ..TurnTrace::default()
            },
        };
        deps.log.record(&record).await?;
        deps.idempotency.complete(&m.dedup_key(), &owner.id, &outcome, now).await?;
        done.keys.push(m.dedup_key());
        done.outcomes.push(outcome);
    }
    let mut answerable = answerable.into_iter();
    let Some(head) = answerable.next() else { return Ok(done) };
    let first = head.message;
    let mut progress = head.progress;
    // A turn an earlier attempt composed keeps its composition; a new one with folded messages
    // saves its composition before anything else happens (the planner folds only into a head no
    // attempt claimed before), so a resumed turn never asks the bot a bigger question under the
    // same Idempotency-Key. A one-message turn has nothing to save: resumed, it is asked alone.
    let composed = progress.answer.is_some() || progress.handoff.is_some() || !progress.merged.is_empty();
    if !composed {
        progress.merged = answerable.map(|c| c.message.clone()).collect();
        if !progress.merged.is_empty() {
            progress.head = Some(Box::new(first.clone()));
        }
    }
    let mut messages: Vec<InboundMessage> = vec![first.clone()];
    messages.extend(progress.merged.iter().cloned());
    let session = messages.last().and_then(|m| m.lines.session_id).or(first.lines.session_id);
    // The bot request carries the binding; a lookup's failure leaves the turn unbound, not stuck.
    let crm = binding(deps, &messages, session).await;
    for m in &mut messages {
        m.lines.crm.clone_from(&crm);
    }
    let last = messages.last().cloned().unwrap_or_else(|| first.clone());

    let mut turn = Turn {
        deps,
        owner,
        primary: first.dedup_key(),
        keys: messages.iter().map(InboundMessage::dedup_key).collect(),
        chat: first.chat_id,
        dialog: first.dialog_id,
        session,
        last_message: last.message_id,
        progress,
        bot_ms: None,
        profile: None,
        block: window::latest(messages.iter().map(|m| m.lines.window.as_ref())).cloned(),
        crm,
        connector: messages.iter().rev().find_map(|m| m.lines.connector.clone()),
        bot_started_at: None,
        bot_finished_at: None,
        reply_posted_at: None,
    };
    if !composed && turn.keys.len() > 1 {
        turn.checkpoint().await?;
        turn.point_to_primary().await?;
    }
    let messages: Vec<&InboundMessage> = messages.iter().collect();
    if !composed
        && give_up.is_none()
        && let Some(outcome) = csat_answer(&turn, &messages, received_at, started_at).await?
    {
        done.keys.extend(turn.keys.iter().cloned());
        done.outcomes.push(outcome);
        return Ok(done);
    }

    if let Some(reason) = give_up {
        abandon(&mut turn, reason).await?;
    }
    let outcome = match decide::decide(&mut turn, &messages).await? {
        Some(outcome) => outcome,
        None => {
            csat_prompt(&mut turn).await?;
            deliver::deliver(&mut turn).await?
        }
    };
    csat_answered(&turn, &outcome).await;
    deliver::finish(&turn, &messages, &outcome, received_at, started_at, started).await?;
    done.keys.extend(turn.keys.iter().cloned());
    done.outcomes.push(outcome);
    Ok(done)
}

/// A turn that is only the customer's answer to a pending CSAT prompt is consumed: recorded as
/// `ignored` (reason `csat`, with the answer), never sent to the bot (`crate::usecase::csat`).
async fn csat_answer(
    turn: &Turn<'_>,
    messages: &[&InboundMessage],
    received_at: DateTime<Utc>,
    started_at: DateTime<Utc>,
) -> Result<Option<TurnOutcome>, ProcessError> {
    let deps = turn.deps;
    let Some(csat) = &deps.csat else { return Ok(None) };
    let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
    let Some(answer) = csat.consume(turn.chat, &texts).await else { return Ok(None) };
    info!(dialog = %turn.dialog, csat = answer.as_str(), "the customer rated the bot's answer");
    let now = deps.clock.now();
    let outcome = TurnOutcome::Ignored { reason: "csat".into() };
    let first = messages.first().copied();
    let record = TurnRecord {
        keys: turn.keys.clone(),
        dialog: turn.dialog.to_string(),
        session_id: turn.session.map(SessionId::get),
        outcome: outcome.clone(),
        timings: TurnTimings { received_at, started_at, bot_ms: None, finished_at: now },
        bot_attempts: 0,
        trace: TurnTrace {
            line_id: first.and_then(|m| m.lines.line_id).map(|l| l.get()),
            crm: turn.crm.clone(),
            event_at: first.map(|m| m.sent_at),
            rest_calls: crate::b24::usage::current(),
            csat: Some(answer.as_str().to_owned()),
            ..TurnTrace::default()
        },
    };
    deps.log.record(&record).await?;
    for key in turn.keys_primary_last() {
        deps.idempotency.complete(key, &turn.owner.id, &outcome, now).await?;
    }
    Ok(Some(outcome))
}

/// Puts the CSAT prompt after a bot answer that is due one (never with a handoff), checkpointed
/// with the answer so it is posted exactly once.
async fn csat_prompt(turn: &mut Turn<'_>) -> Result<(), StoreError> {
    let Some(csat) = turn.deps.csat.clone() else { return Ok(()) };
    let p = &turn.progress;
    let answer = p.answer.as_ref().is_some_and(|a| !a.chunks.is_empty() && !a.handoff);
    if !answer || p.handoff.is_some() || p.notice.is_some() || p.sent > 0 || !csat.due(turn.chat).await {
        return Ok(());
    }
    turn.progress.notice = Some(csat.prompt().to_owned());
    turn.progress.keyboard = csat.keyboard_for(turn.connector.as_deref());
    turn.checkpoint().await
}

/// Counts a posted bot answer for the CSAT frequency, and remembers a posted prompt.
async fn csat_answered(turn: &Turn<'_>, outcome: &TurnOutcome) {
    let Some(csat) = &turn.deps.csat else { return };
    if !matches!(outcome, TurnOutcome::Answered { .. }) {
        return;
    }
    let chunks = turn.progress.answer.as_ref().map_or(0, |a| a.chunks.len());
    let prompted = turn.progress.handoff.is_none() && turn.progress.notice.as_deref() == Some(csat.prompt()) && turn.progress.sent > chunks;
    // The prompt is the turn's last post: its id is what a 👍/👎 press names.
    let prompt = prompted.then(|| turn.progress.posted_ids.last().copied());
    csat.answered(turn.chat, prompt).await;
}

/// The CRM entity of the turn's chat: the event's own entity fields when they name one, else the
/// CRM link's per-session lookup (`crate::usecase::crm`).
async fn binding(deps: &Deps, messages: &[InboundMessage], session: Option<SessionId>) -> Option<CrmBinding> {
    let from_event = messages.iter().rev().find_map(|m| m.lines.crm.clone());
    let Some(link) = &deps.crm else { return from_event };
    let chat = messages.first()?.chat_id;
    let has_fields = messages.iter().any(|m| m.lines.session_id.is_some());
    link.resolve(chat, session, from_event.as_ref(), has_fields).await
}

/// Turns the turn into a give-up: nothing more of the bot's answer is posted, the customer gets the
/// fallback message and the chat goes to a human. A turn that already decided on a handoff keeps
/// it (its notice may be out already; the transfer is what is left), and one whose answer was
/// posted in full has nothing to tell: it just finishes. Checkpointed first, so a retried give-up
/// resumes instead of starting over.
async fn abandon(turn: &mut Turn<'_>, reason: &str) -> Result<(), ProcessError> {
    let p = &mut turn.progress;
    let answered = p.answer.as_ref().is_some_and(|a| !a.chunks.is_empty() && p.sent >= a.chunks.len());
    if p.handoff.is_some() || answered {
        return Ok(());
    }
    match &mut p.answer {
        Some(answer) => answer.chunks.truncate(p.sent),
        None => p.sent = 0,
    }
    p.sending = false;
    p.transferred = false;
    p.handoff = Some(HandoffReason::GaveUp { error: reason.to_owned() });
    p.notice = Some(turn.deps.settings.fallback_message.clone());
    turn.checkpoint().await?;
    Ok(())
}
