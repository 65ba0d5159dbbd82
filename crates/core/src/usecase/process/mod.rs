//! `process`: the worker's job — the consecutive jobs of one chat, as turns.
//!
//! A turn is one customer message, or several consecutive ones answered together: the messages a
//! customer wrote while the bot was thinking about the previous turn are waiting in the queue
//! when it ends, and are folded into one turn (one answer for the follow-ups, not one each;
//! `plan`). Other events (an operator's message, the bot joining a chat, a command) are steps of
//! their own. The steps of a turn, each checkpointed in the turn's
//! [`TurnProgress`](crate::domain::turn::TurnProgress) before its side effect so that a crash at
//! any moment neither loses nor repeats anything:
//!
//! 1. claim every message's de-duplication key (a key already done is skipped; a key someone else
//!    holds makes the rest of the group wait);
//! 2. drop what must not be answered (operators', bots', system messages; a chat a human has for
//!    this session) — an operator message puts the chat in human mode;
//! 3. decide: (cost controls, `cost`: a customer over the rate limit gets one notice per window,
//!    then silence, and the bot is not asked; a cached FAQ answer is posted without asking the bot;
//!    past the daily bot-call cap the chat goes to a human) a closed 24-hour window (the session's `BLOCK_DATE` passed) hands the chat to a human
//!    without a word and without asking the bot ([`crate::domain::window`]); an escalation phrase
//!    hands off at once; otherwise ask the bot (typing indicator while
//!    it thinks; retries with backoff within a budget); the bot may ask for a handoff, or fail for
//!    good, which hands off with the fallback message (`decide`);
//! 4. post the reply chunks, re-checking right before each that no human took the chat meanwhile
//!    and that WhatsApp's 24-hour window is still open; a post whose confirmation was lost is looked
//!    up on the portal before being sent again; a reply the portal refuses for good hands the chat
//!    to a human (`deliver`);
//! 5. transfer to an operator when decided, and remember the session is human;
//! 6. record history, profile and the per-message log (with the turn's CRM entity, resolved before
//!    the bot is asked: `crate::usecase::crm`), leave the turn's line for the CRM timeline in its
//!    outbox, and mark every key done.
//!
//! When a step fails in a way worth retrying, the turn's keys are released (their progress kept),
//! so the retry can start as soon as its backoff ends instead of waiting for a lease; the jobs
//! before the failed turn are finished, the failed one and every later one of the group are not
//! ([`GroupResult`]), which is what SQS FIFO partial batches and the local queue both need.
//! [`give_up`] ends a turn that failed too often with the fallback message and a human, the same
//! checkpointed way.

mod canary;
mod cost;
mod decide;
mod deliver;
mod plan;
mod turn;

#[cfg(test)]
mod cost_tests;
#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod csat_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::config::Config;
use crate::config::CostSettings;
use crate::domain::escalation::EscalationRules;
use crate::domain::event::{Job, PortalEvent};
use crate::domain::ids::{DedupKey, SessionId};
use crate::domain::turn::TurnOutcome;
use crate::domain::window::WindowPolicy;
use crate::ports::{
    AnswerCache, Bot, ChatStore, Clock, IdempotencyStore, Portal, PortalError, PortalErrorKind, ProfileStore, StoreError, TurnLog, UsageCounters,
};
use crate::retry::RetryPolicy;

/// How the worker runs conversations.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    /// Escalation phrases.
    pub escalation: EscalationRules,
    /// Told to the customer when the chat goes to a human.
    pub handoff_message: String,
    /// Told to the customer when the bot keeps failing or the bridge gives up.
    pub fallback_message: String,
    /// Bot call retries: schedule and total budget.
    pub bot_retry: RetryPolicy,
    /// One bot call (`BOT_HTTP_TIMEOUT_SEC`).
    pub bot_timeout: Duration,
    /// `B24_BUSINESS_PHONE`, passed to the bot.
    pub business_phone: Option<String>,
    /// How many past turns the bot gets.
    pub history_turns: usize,
    /// Lease on a turn's keys; renewed by every checkpoint. It bounds how long a dead worker's
    /// turn waits before another takes it over (a local runner's start-up recovery and released
    /// claims do not wait at all).
    pub lease: Duration,
    /// How often the typing indicator is renewed while the bot thinks.
    pub typing_every: Duration,
    /// At most this many consecutive messages are folded into one turn.
    pub max_turn_messages: usize,
    /// The stored profile's size limit (`OLBRIDGE_PROFILE_MAX_BYTES`): a bot patch that would
    /// outgrow it is dropped.
    pub profile_max_bytes: usize,
    /// A history turn's text is cut to this many characters (`OLBRIDGE_HISTORY_TEXT_MAX_CHARS`).
    pub history_text_max_chars: usize,
    /// WhatsApp's 24-hour window: checked when a turn starts and before every post.
    pub window: WindowPolicy,
    /// The FAQ answer cache, the rate limit and the daily bot-call cap.
    pub cost: CostSettings,
}

impl ProcessSettings {
    /// How many past turns the bot gets.
    pub const HISTORY_TURNS: usize = 10;
    /// Bitrix24 shows "typing…" for a while after one `sendTyping`; renewing it this often keeps it
    /// on during a long bot call.
    pub const TYPING_EVERY: Duration = Duration::from_secs(20);
    /// At most this many messages in one turn.
    pub const MAX_TURN_MESSAGES: usize = 20;

    /// The settings the configuration describes (both runtimes build them here).
    pub fn from_config(config: &Config) -> Self {
        let bot = &config.bot;
        let bot_retry =
            RetryPolicy::exponential(bot.max_attempts, Duration::from_secs(1), Duration::from_secs(30)).with_budget(bot.retry_budget).with_jitter(0.2);
        Self {
            escalation: config.conversation.escalation.clone(),
            handoff_message: config.conversation.handoff_message.clone(),
            fallback_message: config.conversation.fallback_message.clone(),
            bot_retry,
            bot_timeout: bot.timeout,
            business_phone: config.portal.business_phone.clone(),
            history_turns: Self::HISTORY_TURNS,
            lease: bot.retry_budget + bot.timeout + Duration::from_secs(60),
            typing_every: Self::TYPING_EVERY,
            max_turn_messages: Self::MAX_TURN_MESSAGES,
            profile_max_bytes: config.conversation.profile_max_bytes,
            history_text_max_chars: config.conversation.history_text_max_chars,
            window: config.conversation.window,
            cost: config.conversation.cost.clone(),
        }
    }
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
    /// The FAQ answer cache.
    pub cache: Arc<dyn AnswerCache>,
    /// The rate-limit and daily-cap counters.
    pub usage: Arc<dyn UsageCounters>,
    /// The portal.
    pub portal: Arc<dyn Portal>,
    /// The bot.
    pub bot: Arc<dyn Bot>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub settings: ProcessSettings,
    /// The CRM binding and timeline (`None`: the event's own binding is passed to the bot, and
    /// nothing is written to the CRM).
    pub crm: Option<Arc<crate::usecase::crm::CrmLink>>,
    /// The CSAT prompt (`None`: off).
    pub csat: Option<Arc<crate::usecase::csat::Csat>>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// Who runs a turn: an id naming one sequential executor (a worker task, a Lambda invocation) and,
/// for a Lambda, the invocation's deadline, which bounds the claim's lease and the bot's timeout.
#[derive(Debug, Clone)]
pub struct Owner {
    /// The claim owner id.
    pub id: String,
    /// When the executor will be stopped, if it will.
    pub deadline: Option<DateTime<Utc>>,
}

impl Owner {
    /// An owner with no deadline (the local runner's turn tasks).
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into(), deadline: None }
    }

    /// `want`, cut to what is left before the deadline minus `reserve`.
    pub(crate) fn bound(&self, want: Duration, now: DateTime<Utc>, reserve: Duration) -> Duration {
        match self.deadline {
            None => want,
            Some(d) => want.min((d - now).to_std().unwrap_or_default().saturating_sub(reserve)),
        }
    }
}

/// A failure that leaves the jobs to be retried; progress made so far is checkpointed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The portal failed.
    #[error(transparent)]
    Portal(#[from] PortalError),
    /// The turn panicked (a bug); caught so it cannot take the process down.
    #[error("the turn panicked: {0}")]
    Panicked(String),
}

impl ProcessError {
    /// Whether retrying may help (a corrupt record will not get better).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Portal(_) | Self::Panicked(_) => true,
        }
    }

    /// Whether the failure is the world's, not ours: the portal down or rate-limited, the store
    /// busy. Those are retried quickly for as long as the job policy's patience allows.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store(e) => matches!(e, StoreError::Backend(_) | StoreError::LeaseLost),
            Self::Portal(e) => matches!(e.kind, PortalErrorKind::RateLimited | PortalErrorKind::Retryable),
            Self::Panicked(_) => false,
        }
    }
}

/// What became of the jobs handed to [`process`], in their order.
#[derive(Debug)]
pub struct GroupResult {
    /// One flag per job: finished (ack it) or not (retry it).
    pub finished: Vec<bool>,
    /// One outcome per finished turn or event.
    pub outcomes: Vec<TurnOutcome>,
    /// Why the group stopped early, if it did: the first unfinished job and every later one stay.
    pub stopped: Option<Stopped>,
}

/// Why a group stopped before its last job.
#[derive(Debug)]
pub enum Stopped {
    /// Another worker holds a key until `until`.
    Busy {
        /// When its lease ends.
        until: DateTime<Utc>,
    },
    /// A turn failed; its keys were released with their progress.
    Failed(ProcessError),
}

/// Processes consecutive jobs of one FIFO group (one chat), in order, as turns.
pub async fn process(deps: &Deps, jobs: &[Job], owner: &Owner) -> GroupResult {
    plan::run(deps, jobs, owner, None).await
}

/// Gives up the turn of `jobs` (one chat's consecutive jobs, the first being the one given up):
/// the customer gets the fallback message and the chat goes to a human, exactly once; the turn is
/// recorded as [`TurnOutcome::GaveUp`]. Messages of the group after the given-up turn are processed
/// normally.
pub async fn give_up(deps: &Deps, jobs: &[Job], owner: &Owner, reason: &str) -> GroupResult {
    warn!(key = %jobs.first().map(|j| j.key.to_string()).unwrap_or_default(), reason, "giving up on a turn: the customer is told and the chat goes to a human");
    plan::run(deps, jobs, owner, Some(reason)).await
}

/// Non-message events: nothing to answer, but worth a line in the log; a 👍/👎 press on the CSAT
/// prompt is recorded (`crate::usecase::csat`).
async fn handle_event(deps: &Deps, job: &Job) -> Result<TurnOutcome, StoreError> {
    Ok(match &job.event {
        PortalEvent::BotJoined { chat_id, lines, .. } => {
            info!(chat = %chat_id, session = ?lines.session_id.map(SessionId::get), "bot joined a chat: new session");
            TurnOutcome::Ignored { reason: "bot_joined".into() }
        }
        PortalEvent::Command { command, .. } if command.eq_ignore_ascii_case(crate::usecase::csat::COMMAND) => csat_press(deps, job).await?,
        PortalEvent::Command { chat_id, command, .. } => {
            info!(chat = %chat_id, command = %command, "bot command received");
            TurnOutcome::Ignored { reason: format!("command:{command}") }
        }
        PortalEvent::BotDeleted { bot_id, .. } => {
            warn!(bot = %bot_id, "our bot was unregistered on the portal: run `olbridge register-bot` again");
            TurnOutcome::Ignored { reason: "bot_deleted".into() }
        }
        PortalEvent::Message(_) => TurnOutcome::Ignored { reason: "unexpected".into() },
    })
}

/// A 👍/👎 press: recorded as the CSAT answer of the chat's latest prompt, once, as an `ignored`
/// turn with reason `csat` (as a typed `1`/`2` is); anything else is ignored with a log line. Never
/// sent to the bot, never answered in the chat.
async fn csat_press(deps: &Deps, job: &Job) -> Result<TurnOutcome, StoreError> {
    use crate::domain::message::AuthorKind;
    use crate::domain::turn::{TurnRecord, TurnTimings, TurnTrace};
    use crate::usecase::csat::Press;
    let PortalEvent::Command { chat_id, dialog_id, params, message_id, author, lines, sent_at, .. } = &job.event else {
        return Ok(TurnOutcome::Ignored { reason: "unexpected".into() });
    };
    let ignored = |why: &str| TurnOutcome::Ignored { reason: format!("csat_press:{why}") };
    let Some(csat) = &deps.csat else {
        info!(chat = %chat_id, message = %message_id, "a CSAT button press, but CSAT is off (OLBRIDGE_CSAT_EVERY=0); ignored");
        return Ok(ignored("off"));
    };
    if author.kind != AuthorKind::Customer {
        info!(chat = %chat_id, message = %message_id, author = ?author.kind, "a CSAT button pressed by someone other than the customer (an operator in Bitrix24?); ignored");
        return Ok(ignored("not_customer"));
    }
    let answer = match csat.press(*chat_id, *message_id, params).await {
        Press::Recorded(answer) => answer,
        Press::AlreadyRated => return Ok(ignored("already_rated")),
        Press::Unknown => return Ok(ignored("unknown_message")),
        Press::Failed => return Ok(ignored("state_unavailable")),
    };
    info!(dialog = %dialog_id, csat = answer.as_str(), via = "keyboard", "the customer rated the bot's answer");
    let now = deps.clock.now();
    let outcome = TurnOutcome::Ignored { reason: "csat".into() };
    let record = TurnRecord {
        keys: vec![job.key.clone()],
        dialog: dialog_id.to_string(),
        session_id: lines.session_id.map(SessionId::get),
        outcome: outcome.clone(),
        timings: TurnTimings { received_at: job.received_at, started_at: now, bot_ms: None, finished_at: now },
        bot_attempts: 0,
        trace: TurnTrace {
            line_id: lines.line_id.map(|l| l.get()),
            crm: lines.crm.clone(),
            event_at: Some(*sent_at),
            rest_calls: crate::b24::usage::current(),
            csat: Some(answer.as_str().to_owned()),
            ..TurnTrace::default()
        },
    };
    deps.log.record(&record).await?;
    Ok(outcome)
}

/// The shortest lease a claim is taken with, even when a deadline is closer: a turn that cannot
/// finish in time checkpoints and is resumed.
const MIN_LEASE: Duration = Duration::from_secs(1);

/// The lease every claim and checkpoint of `owner` takes: the configured one, cut to the owner's
/// deadline, never under [`MIN_LEASE`].
fn lease(deps: &Deps, owner: &Owner, now: DateTime<Utc>) -> Duration {
    owner.bound(deps.settings.lease, now, Duration::ZERO).max(MIN_LEASE)
}

/// Releases keys after a failure, keeping their progress; a key that cannot be released keeps its
/// lease, which only delays the retry.
async fn release_all(deps: &Deps, keys: &[DedupKey], owner: &Owner) {
    for key in keys {
        if let Err(e) = deps.idempotency.release(key, &owner.id).await {
            warn!(key = %key, error = %e, "cannot release a claim after a failure; the retry waits for its lease");
        }
    }
}
