//! `process`: one turn of one chat — the worker's job.
//!
//! A turn is one or more consecutive customer messages of a chat (more than one when the burst
//! window merged them). The steps, each checkpointed in the turn's [`TurnProgress`] before its side
//! effect so that a crash at any moment neither loses nor repeats anything:
//!
//! 1. claim every message's de-duplication key (a key already done is skipped; a key someone else
//!    holds makes the whole turn wait);
//! 2. drop what must not be answered (operators', bots', system messages; a chat a human has for
//!    this session) — an operator message puts the chat in human mode;
//! 3. decide: an escalation phrase hands off at once; otherwise ask the bot (typing indicator while
//!    it thinks; retries with backoff within a budget); the bot may ask for a handoff, or fail for
//!    good, which hands off with the fallback message;
//! 4. post the reply chunks, re-checking right before each that no human took the chat meanwhile; a
//!    post whose confirmation was lost is looked up on the portal before being sent again;
//! 5. transfer to an operator when decided, and remember the session is human;
//! 6. record history, profile and the per-message log, and mark every key done.

mod decide;
mod deliver;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::domain::escalation::EscalationRules;
use crate::domain::event::{Job, PortalEvent};
use crate::domain::ids::{ChatId, DedupKey, DialogId, MessageId, SessionId};
use crate::domain::message::{IgnoreReason, InboundMessage};
use crate::domain::profile::Profile;
use crate::domain::turn::{TurnOutcome, TurnProgress, TurnRecord, TurnTimings};
use crate::ports::{Bot, ChatMode, ChatStore, Claim, Clock, HistoryTurn, IdempotencyStore, Portal, PortalError, ProfileStore, StoreError, TurnLog};
use crate::retry::RetryPolicy;

/// How the worker runs conversations.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    /// Escalation phrases.
    pub escalation: EscalationRules,
    /// Told to the customer when the chat goes to a human.
    pub handoff_message: String,
    /// Told to the customer when the bot keeps failing.
    pub fallback_message: String,
    /// Bot call retries: schedule and total budget.
    pub bot_retry: RetryPolicy,
    /// `B24_BUSINESS_PHONE`, passed to the bot.
    pub business_phone: Option<String>,
    /// How many past turns the bot gets.
    pub history_turns: usize,
    /// Lease on a turn's keys; must outlast the bot budget (a crashed worker's turn is resumed
    /// after it, or at once by a local runner's start-up recovery).
    pub lease: Duration,
    /// How often the typing indicator is renewed while the bot thinks.
    pub typing_every: Duration,
}

/// What the worker needs.
#[derive(Clone)]
pub struct Deps {
    /// Claims and checkpoints.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Chat modes and history.
    pub chats: Arc<dyn ChatStore>,
    /// Per-phone profiles.
    pub profiles: Arc<dyn ProfileStore>,
    /// The per-message log.
    pub log: Arc<dyn TurnLog>,
    /// The portal.
    pub portal: Arc<dyn Portal>,
    /// The bot.
    pub bot: Arc<dyn Bot>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub settings: ProcessSettings,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// What became of the jobs handed to [`process`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// The jobs are finished (answered, handed off, ignored...): ack them, except the `deferred`
    /// ones, which belong to a later turn and go back to the queue at once.
    Finished {
        /// One outcome per turn or ignored message.
        outcomes: Vec<TurnOutcome>,
        /// Keys left for a later turn (their claims released).
        deferred: Vec<DedupKey>,
    },
    /// Another worker holds one of the keys: try again after `until`.
    Busy {
        /// When that worker's lease ends.
        until: DateTime<Utc>,
    },
}

/// A failure that leaves the jobs to be retried; progress made so far is checkpointed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The portal failed in a way worth retrying.
    #[error(transparent)]
    Portal(#[from] PortalError),
}

impl ProcessError {
    /// Whether retrying may help (a corrupt record will not get better).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Portal(e) => e.is_retryable(),
        }
    }
}

/// Processes consecutive jobs of one FIFO group as one turn.
pub async fn process(deps: &Deps, jobs: &[Job], owner: &str) -> Result<Processed, ProcessError> {
    let now = deps.clock.now();
    let mut outcomes = Vec::new();
    let mut messages: Vec<(&InboundMessage, TurnProgress)> = Vec::new();
    let mut held: Vec<&DedupKey> = Vec::new();
    for job in jobs {
        match deps.idempotency.claim(&job.key, owner, now, deps.settings.lease).await? {
            Claim::Done(_) => continue,
            Claim::InProgress { until } => {
                for key in held {
                    deps.idempotency.release(key, owner).await?;
                }
                return Ok(Processed::Busy { until });
            }
            Claim::New => held_push(&mut held, job, &mut messages, TurnProgress::default()),
            Claim::Resumed(p) => held_push(&mut held, job, &mut messages, p),
        }
    }
    for job in jobs.iter().filter(|j| held.contains(&&j.key)) {
        if !matches!(job.event, PortalEvent::Message(_)) {
            let outcome = handle_event(&job.event);
            deps.idempotency.complete(&job.key, owner, &outcome, deps.clock.now()).await?;
            outcomes.push(outcome);
        }
    }
    let mut deferred = Vec::new();
    if !messages.is_empty() {
        let received_at = jobs.iter().map(|j| j.received_at).min().unwrap_or(now);
        let (turn_outcomes, later) = run_turn(deps, messages, owner, received_at).await?;
        outcomes.extend(turn_outcomes);
        deferred = later;
    }
    Ok(Processed::Finished { outcomes, deferred })
}

fn held_push<'a>(held: &mut Vec<&'a DedupKey>, job: &'a Job, messages: &mut Vec<(&'a InboundMessage, TurnProgress)>, progress: TurnProgress) {
    held.push(&job.key);
    if let PortalEvent::Message(m) = &job.event {
        messages.push((m, progress));
    }
}

/// Non-message events: nothing to answer, but worth a line in the log.
fn handle_event(event: &PortalEvent) -> TurnOutcome {
    match event {
        PortalEvent::BotJoined { chat_id, lines, .. } => {
            info!(chat = %chat_id, session = ?lines.session_id.map(SessionId::get), "bot joined a chat: new session");
            TurnOutcome::Ignored { reason: "bot_joined".into() }
        }
        PortalEvent::Command { chat_id, command, .. } => {
            info!(chat = %chat_id, command = %command, "bot command received");
            TurnOutcome::Ignored { reason: format!("command:{command}") }
        }
        PortalEvent::BotDeleted { bot_id, .. } => {
            warn!(bot = %bot_id, "our bot was unregistered on the portal: run `olbridge register-bot` again");
            TurnOutcome::Ignored { reason: "bot_deleted".into() }
        }
        PortalEvent::Message(_) => TurnOutcome::Ignored { reason: "unexpected".into() },
    }
}

/// The state of one turn while it runs.
pub(super) struct Turn<'a> {
    pub(super) deps: &'a Deps,
    pub(super) owner: &'a str,
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
}

impl Turn<'_> {
    pub(super) async fn checkpoint(&self) -> Result<(), StoreError> {
        let now = self.deps.clock.now();
        self.deps.idempotency.checkpoint(&self.primary, self.owner, &self.progress, now, self.deps.settings.lease).await
    }

    pub(super) async fn is_human(&self) -> Result<bool, StoreError> {
        Ok(matches!(self.deps.chats.mode(self.chat, self.session).await?, ChatMode::Human { .. }))
    }
}

async fn run_turn(
    deps: &Deps,
    claimed: Vec<(&InboundMessage, TurnProgress)>,
    owner: &str,
    received_at: DateTime<Utc>,
) -> Result<(Vec<TurnOutcome>, Vec<DedupKey>), ProcessError> {
    let started_at = deps.clock.now();
    let started = Instant::now();
    let mut outcomes = Vec::new();
    let mut keys_done = Vec::new();

    // Sort out what is answerable; an operator's message means a human has the chat.
    let mut answerable = Vec::new();
    let mut operator_wrote = false;
    for (m, p) in claimed {
        match m.answerability() {
            Ok(()) if m.lines.user_code.is_none() => keys_done.push((m, ignored(IgnoreReason::NotOpenLines))),
            Ok(()) => answerable.push((m, p)),
            Err(reason) => {
                if reason == IgnoreReason::OperatorMessage {
                    operator_wrote = true;
                    deps.chats.set_human(m.chat_id, m.lines.session_id, "operator_wrote", deps.clock.now()).await?;
                    deps.chats.append_history(m.chat_id, &HistoryTurn { role: "operator".into(), text: m.text.clone(), at: m.sent_at }).await?;
                }
                keys_done.push((m, ignored(reason)));
            }
        }
    }
    if operator_wrote {
        for (m, _) in answerable.drain(..) {
            keys_done.push((m, ignored(IgnoreReason::HumanSession)));
        }
    }
    for (m, outcome) in keys_done {
        let now = deps.clock.now();
        let record = TurnRecord {
            keys: vec![m.dedup_key()],
            dialog: m.dialog_id.to_string(),
            session_id: m.lines.session_id.map(SessionId::get),
            outcome: outcome.clone(),
            timings: TurnTimings { received_at, started_at, bot_ms: None, finished_at: now },
            bot_attempts: 0,
        };
        deps.log.record(&record).await?;
        deps.idempotency.complete(&m.dedup_key(), owner, &outcome, now).await?;
        outcomes.push(outcome);
    }
    let Some((first, _)) = answerable.first() else { return Ok((outcomes, Vec::new())) };
    let first = *first;
    let mut progress = answerable.first().map(|(_, p)| p.clone()).unwrap_or_default();
    let decided = progress.answer.is_some() || progress.handoff.is_some() || !progress.merged.is_empty();
    // A resumed turn keeps the composition it was saved with; a new one saves its composition
    // before anything else happens. (A redelivered head is never given extra messages by the
    // worker, so a resumed turn has no others in its batch.)
    let mut messages: Vec<InboundMessage> = vec![first.clone()];
    let mut deferred = Vec::new();
    if decided {
        messages.extend(progress.merged.iter().cloned());
        // Should not happen (see above); if it does, those messages wait for the next turn.
        for (m, _) in answerable.iter().skip(1) {
            let key = m.dedup_key();
            if !messages.iter().any(|k| k.dedup_key() == key) {
                deps.idempotency.release(&key, owner).await?;
                deferred.push(key);
            }
        }
    } else {
        progress.merged = answerable.iter().skip(1).map(|(m, _)| (*m).clone()).collect();
        messages.extend(progress.merged.iter().cloned());
    }
    let last = messages.last().cloned().unwrap_or_else(|| first.clone());

    let mut turn = Turn {
        deps,
        owner,
        primary: first.dedup_key(),
        keys: messages.iter().map(InboundMessage::dedup_key).collect(),
        chat: first.chat_id,
        dialog: first.dialog_id,
        session: last.lines.session_id.or(first.lines.session_id),
        last_message: last.message_id,
        progress,
        bot_ms: None,
        profile: None,
    };
    if !decided && turn.keys.len() > 1 {
        turn.checkpoint().await?;
    }
    let messages: Vec<&InboundMessage> = messages.iter().collect();

    let outcome = match decide::decide(&mut turn, &messages).await? {
        Some(outcome) => outcome,
        None => deliver::deliver(&mut turn).await?,
    };
    deliver::finish(&turn, &messages, &outcome, received_at, started_at, started).await?;
    outcomes.push(outcome);
    Ok((outcomes, deferred))
}

pub(super) fn ignored(reason: IgnoreReason) -> TurnOutcome {
    TurnOutcome::Ignored { reason: reason.as_str().into() }
}
