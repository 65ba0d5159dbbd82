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

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::bot::{BotAnswer, BotError, BotRequest};
use crate::domain::escalation::EscalationRules;
use crate::domain::event::{Job, PortalEvent};
use crate::domain::ids::{ChatId, DedupKey, DialogId, MessageId, SessionId};
use crate::domain::message::{IgnoreReason, InboundMessage};
use crate::domain::profile::Profile;
use crate::domain::split::{WHATSAPP_MAX_CHARS, split_reply};
use crate::domain::turn::{HandoffReason, SavedAnswer, TurnOutcome, TurnProgress, TurnRecord, TurnTimings};
use crate::ports::{Bot, ChatMode, ChatStore, Claim, Clock, HistoryTurn, IdempotencyStore, Portal, PortalError, ProfileStore, StoreError, Transfer, TurnLog};
use crate::retry::{self, RetryPolicy, Verdict};

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
    /// Every job is finished (answered, handed off, ignored...): ack them all.
    Finished(Vec<TurnOutcome>),
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
            let outcome = handle_event(&job.event).await;
            deps.idempotency.complete(&job.key, owner, &outcome, deps.clock.now()).await?;
            outcomes.push(outcome);
        }
    }
    if !messages.is_empty() {
        let received_at = jobs.iter().map(|j| j.received_at).min().unwrap_or(now);
        outcomes.extend(run_turn(deps, messages, owner, received_at).await?);
    }
    Ok(Processed::Finished(outcomes))
}

fn held_push<'a>(held: &mut Vec<&'a DedupKey>, job: &'a Job, messages: &mut Vec<(&'a InboundMessage, TurnProgress)>, progress: TurnProgress) {
    held.push(&job.key);
    if let PortalEvent::Message(m) = &job.event {
        messages.push((m, progress));
    }
}

/// Non-message events: nothing to answer, but worth a line in the log.
async fn handle_event(event: &PortalEvent) -> TurnOutcome {
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
struct Turn<'a> {
    deps: &'a Deps,
    owner: &'a str,
    primary: DedupKey,
    keys: Vec<DedupKey>,
    chat: ChatId,
    dialog: DialogId,
    session: Option<SessionId>,
    last_message: MessageId,
    progress: TurnProgress,
    bot_ms: Option<u64>,
}

impl Turn<'_> {
    async fn checkpoint(&self) -> Result<(), StoreError> {
        let now = self.deps.clock.now();
        self.deps.idempotency.checkpoint(&self.primary, self.owner, &self.progress, now, self.deps.settings.lease).await
    }

    async fn is_human(&self) -> Result<bool, StoreError> {
        Ok(matches!(self.deps.chats.mode(self.chat, self.session).await?, ChatMode::Human { .. }))
    }
}

async fn run_turn(
    deps: &Deps,
    claimed: Vec<(&InboundMessage, TurnProgress)>,
    owner: &str,
    received_at: DateTime<Utc>,
) -> Result<Vec<TurnOutcome>, ProcessError> {
    let started_at = deps.clock.now();
    let started = Instant::now();
    let mut outcomes = Vec::new();
    let mut keys_done = Vec::new();

    // Messages merged into a turn that already finished were answered with it.
    let batch_keys: Vec<DedupKey> = claimed.iter().map(|(m, _)| m.dedup_key()).collect();
    let mut live = Vec::new();
    for (m, p) in claimed {
        match &p.merged_into {
            Some(primary) if !batch_keys.contains(primary) => {
                let outcome = TurnOutcome::Ignored { reason: "merged".into() };
                deps.idempotency.complete(&m.dedup_key(), owner, &outcome, deps.clock.now()).await?;
                outcomes.push(outcome);
            }
            _ => live.push((m, p)),
        }
    }

    // Sort out what is answerable; an operator's message means a human has the chat.
    let mut answerable = Vec::new();
    let mut operator_wrote = false;
    for (m, p) in live {
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
    let Some((first, _)) = answerable.first() else { return Ok(outcomes) };
    let first = *first;
    let last = answerable.last().map(|(m, _)| *m).unwrap_or(first);
    let messages: Vec<&InboundMessage> = answerable.iter().map(|(m, _)| *m).collect();
    let progress = answerable.iter().find(|(m, _)| m.dedup_key() == first.dedup_key()).map(|(_, p)| p.clone()).unwrap_or_default();

    let mut turn = Turn {
        deps,
        owner,
        primary: first.dedup_key(),
        keys: messages.iter().map(|m| m.dedup_key()).collect(),
        chat: first.chat_id,
        dialog: first.dialog_id,
        session: last.lines.session_id.or(first.lines.session_id),
        last_message: last.message_id,
        progress,
        bot_ms: None,
    };

    let outcome = match decide(&mut turn, &messages).await? {
        Some(outcome) => outcome,
        None => deliver(&mut turn).await?,
    };
    finish(&turn, &messages, &outcome, received_at, started_at, started).await?;
    outcomes.push(outcome);
    Ok(outcomes)
}

fn ignored(reason: IgnoreReason) -> TurnOutcome {
    TurnOutcome::Ignored { reason: reason.as_str().into() }
}

/// Step 3: decides what to say (unless a resumed turn already did). Returns an outcome when the
/// turn ends without delivering anything.
async fn decide(turn: &mut Turn<'_>, messages: &[&InboundMessage]) -> Result<Option<TurnOutcome>, ProcessError> {
    if turn.progress.answer.is_some() || turn.progress.handoff.is_some() {
        return Ok(None);
    }
    if turn.is_human().await? {
        return Ok(Some(ignored(IgnoreReason::HumanSession)));
    }
    let deps = turn.deps;
    if let Some(phrase) = messages.iter().find_map(|m| deps.settings.escalation.matches(&m.text)) {
        info!(dialog = %turn.dialog, rule = "phrase", phrase = %phrase, "escalation phrase: handing the chat to a human");
        turn.progress.handoff = Some(HandoffReason::Phrase { phrase: phrase.to_owned() });
        turn.progress.notice = Some(deps.settings.handoff_message.clone());
        turn.checkpoint().await?;
        return Ok(None);
    }

    let phone = messages.iter().find_map(|m| m.lines.phone.clone());
    let mut profile = match &phone {
        Some(p) => deps.profiles.get(p).await?,
        None => None,
    };
    let history = deps.chats.history(turn.chat, deps.settings.history_turns).await?;
    let profile_json = profile.as_ref().map(Profile::to_bot_json).unwrap_or_else(|| serde_json::json!({}));
    let owned: Vec<InboundMessage> = messages.iter().map(|m| (*m).clone()).collect();
    let Some(request) = BotRequest::for_turn(&owned, profile_json, history, deps.settings.business_phone.as_deref()) else {
        return Ok(Some(ignored(IgnoreReason::EmptyText)));
    };

    let typing = spawn_typing(deps, turn.dialog);
    let started = Instant::now();
    let result = ask_bot(deps, &request, &turn.primary, &mut turn.progress.bot_attempts).await;
    typing.abort();
    turn.bot_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));

    // Mark merged messages before the answer is saved (see `TurnProgress::merged_into`).
    let merged = TurnProgress { merged_into: Some(turn.primary.clone()), ..TurnProgress::default() };
    for key in turn.keys.iter().filter(|k| **k != turn.primary) {
        deps.idempotency.checkpoint(key, turn.owner, &merged, deps.clock.now(), deps.settings.lease).await?;
    }
    match result {
        Ok(answer) => {
            if let (Some(patch), Some(p)) = (&answer.profile, &phone) {
                let now = deps.clock.now();
                let mut current = profile.take().unwrap_or_else(|| Profile::new(p.clone(), now));
                current.merge(patch, now);
                deps.profiles.put(&current).await?;
            }
            let chunks: Vec<String> = answer.replies.iter().flat_map(|r| split_reply(r, WHATSAPP_MAX_CHARS)).collect();
            if answer.handoff {
                info!(dialog = %turn.dialog, rule = "bot_handoff", "the bot asked for a human");
                turn.progress.handoff = Some(HandoffReason::BotRequested);
                turn.progress.notice = Some(deps.settings.handoff_message.clone());
            }
            turn.progress.answer = Some(SavedAnswer { chunks, handoff: answer.handoff });
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
/// budget; 4xx and invalid answers are final at once.
async fn ask_bot(deps: &Deps, request: &BotRequest, key: &DedupKey, attempts: &mut u32) -> Result<BotAnswer, BotError> {
    let counter = std::sync::atomic::AtomicU32::new(0);
    let result = retry::retry(
        &deps.settings.bot_retry,
        |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            deps.bot.ask(request, key)
        },
        |e: &BotError| if e.is_retryable() { Verdict::Retry } else { Verdict::Stop },
    )
    .await;
    *attempts += counter.load(std::sync::atomic::Ordering::Relaxed);
    result.map_err(|e| e.last)
}

/// Shows "typing…" while the bot thinks, renewing it; optional work the portal adapter may skip.
fn spawn_typing(deps: &Deps, dialog: DialogId) -> tokio::task::JoinHandle<()> {
    let portal = Arc::clone(&deps.portal);
    let every = deps.settings.typing_every;
    tokio::spawn(async move {
        loop {
            if let Err(e) = portal.typing(dialog).await {
                tracing::debug!(error = %e, "typing indicator failed (ignored)");
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// Steps 4 and 5: posts what was decided and transfers when needed.
async fn deliver(turn: &mut Turn<'_>) -> Result<TurnOutcome, ProcessError> {
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
        if turn.progress.sending && already_posted(turn, text).await? {
            continue;
        }
        turn.progress.sending = true;
        turn.checkpoint().await?;
        match deps.portal.post_reply(turn.dialog, text).await {
            Ok(id) => {
                turn.progress.sending = false;
                turn.progress.sent += 1;
                turn.progress.posted_ids.push(id);
                turn.checkpoint().await?;
            }
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                // Most often the bot is no longer in the chat (the customer typed 0, the line's
                // timer moved it to the queue): retrying would not change that.
                warn!(dialog = %turn.dialog, code = %e.code, "the portal refused the reply; giving up on this turn");
                turn.progress.sending = false;
                turn.checkpoint().await?;
                return Ok(TurnOutcome::Ignored { reason: format!("portal_refused:{}", e.code) });
            }
        }
    }
    let Some(reason) = turn.progress.handoff.clone() else {
        return Ok(if turn.progress.posted_ids.is_empty() {
            TurnOutcome::Silent
        } else {
            TurnOutcome::Answered { reply_ids: turn.progress.posted_ids.clone() }
        });
    };
    if !turn.progress.transferred {
        match deps.portal.transfer_to_operator(turn.chat).await {
            Ok(Transfer::Done | Transfer::AlreadyHuman) => {}
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => warn!(dialog = %turn.dialog, code = %e.code, "the portal refused the transfer; the chat stays silent for this session anyway"),
        }
        turn.progress.transferred = true;
        turn.checkpoint().await?;
    }
    deps.chats.set_human(turn.chat, turn.session, reason.rule(), deps.clock.now()).await?;
    Ok(match reason {
        HandoffReason::BotFailed { error } => TurnOutcome::Fallback { error },
        reason => TurnOutcome::HandedOff { reason },
    })
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
async fn finish(
    turn: &Turn<'_>,
    messages: &[&InboundMessage],
    outcome: &TurnOutcome,
    received_at: DateTime<Utc>,
    started_at: DateTime<Utc>,
    started: Instant,
) -> Result<(), ProcessError> {
    let deps = turn.deps;
    let now = deps.clock.now();
    for m in messages {
        deps.chats.append_history(turn.chat, &HistoryTurn { role: "customer".into(), text: m.text.clone(), at: m.sent_at }).await?;
    }
    if let Some(answer) = &turn.progress.answer {
        let sent: Vec<&str> = answer.chunks.iter().take(turn.progress.sent).map(String::as_str).collect();
        if !sent.is_empty() {
            deps.chats.append_history(turn.chat, &HistoryTurn { role: "bot".into(), text: sent.join("\n"), at: now }).await?;
        }
    }
    if let Some(phone) = messages.iter().find_map(|m| m.lines.phone.clone()) {
        let mut profile = deps.profiles.get(&phone).await?.unwrap_or_else(|| Profile::new(phone, now));
        if profile.name.is_none() {
            profile.name = messages.iter().map(|m| m.author.name.trim()).find(|n| !n.is_empty()).map(str::to_owned);
        }
        profile.updated_at = now;
        deps.profiles.put(&profile).await?;
    }
    let record = TurnRecord {
        keys: turn.keys.clone(),
        dialog: turn.dialog.to_string(),
        session_id: turn.session.map(SessionId::get),
        outcome: outcome.clone(),
        timings: TurnTimings { received_at, started_at, bot_ms: turn.bot_ms, finished_at: now },
        bot_attempts: turn.progress.bot_attempts,
    };
    deps.log.record(&record).await?;
    for key in &turn.keys {
        deps.idempotency.complete(key, turn.owner, outcome, now).await?;
    }
    let total_ms = started.elapsed().as_millis();
    info!(dialog = %turn.dialog, outcome = outcome.name(), messages = turn.keys.len(), bot_attempts = turn.progress.bot_attempts, turn_ms = total_ms as u64, "turn finished");
    Ok(())
}
