//! `crm`: the CRM side of a turn — which entity the chat is bound to, and the turn's line on that
//! entity's timeline — kept apart from the reply so a CRM failure never delays or blocks it.
//!
//! - **Binding** ([`CrmLink::resolve`]): an event that carries the chat's entity fields
//!   (`CHAT_ENTITY_DATA_1/2`, a v1 bot push) is trusted as it is; otherwise the chat is looked up
//!   once per session with `imopenlines.dialog.get` (`entity_data_1` fields 2–3, else the links of
//!   `entity_data_2`) and the answer cached until the session changes. An unbound chat follows
//!   `OLBRIDGE_CRM_UNBOUND`: left alone, or `imopenlines.crm.lead.create`, which Bitrix24 allows
//!   only to the session's current operator (a refusal is logged and the chat stays unbound). A
//!   lookup that fails leaves the turn unbound and is tried again on the next turn.
//! - **Timeline** ([`CrmLink::note_turn`], [`drain`]): a finished turn appends a line (the
//!   customer's words, the bot's reply, or the handoff or fallback with its reason) to a durable
//!   [`TimelineOutbox`]. In `turn` mode each turn is its own comment; in `session` mode the lines
//!   of one chat, session and entity are gathered into one comment, written after
//!   `OLBRIDGE_CRM_TIMELINE_QUIET_SEC` of quiet or at once when the chat goes to a human. A
//!   separate loop ([`drain`]) writes what is due with `crm.timeline.comment.add` at background
//!   priority and retries failures with backoff; the outbox survives a restart. Delivery is at
//!   least once: a crash between the portal's answer and the outbox's update writes the comment
//!   again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::config::{CrmSettings, TimelineMode, UnboundPolicy};
use crate::domain::ids::{ChatId, SessionId};
use crate::domain::message::CrmBinding;
use crate::domain::turn::{HandoffReason, TurnOutcome};
use crate::ports::{CrmPortal, DialogCrm, PendingComment, StoreResult, TimelineLine, TimelineOutbox};

/// A customer message longer than this is cut on the timeline (the chat itself keeps it whole).
const CUSTOMER_TEXT_MAX_CHARS: usize = 500;

/// A chat's binding as last read: the session it was read for, and the binding.
type Cached = (Option<SessionId>, Option<CrmBinding>);

/// The CRM binding cache and the timeline's producer side, shared by every turn of a process.
pub struct CrmLink {
    portal: Arc<dyn CrmPortal>,
    outbox: Arc<dyn TimelineOutbox>,
    settings: CrmSettings,
    /// Per chat: the session the binding was read for, and the binding.
    cache: Mutex<HashMap<ChatId, Cached>>,
}

impl std::fmt::Debug for CrmLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmLink").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// What a finished turn tells the timeline.
#[derive(Debug)]
pub struct TurnNote<'a> {
    /// The turn's own de-duplication key.
    pub turn_key: String,
    /// The chat.
    pub chat: ChatId,
    /// The session, when known.
    pub session: Option<SessionId>,
    /// The bound entity.
    pub entity: &'a CrmBinding,
    /// What the customer wrote.
    pub customer: Vec<&'a str>,
    /// What the bot posted.
    pub bot: Vec<&'a str>,
    /// How the turn ended.
    pub outcome: &'a TurnOutcome,
    /// When it finished.
    pub at: DateTime<Utc>,
}

impl CrmLink {
    /// A link over the portal's CRM calls and the outbox.
    pub fn new(portal: Arc<dyn CrmPortal>, outbox: Arc<dyn TimelineOutbox>, settings: CrmSettings) -> Self {
        Self { portal, outbox, settings, cache: Mutex::default() }
    }

    /// The settings.
    pub fn settings(&self) -> &CrmSettings {
        &self.settings
    }

    /// The entity the chat is bound to for this turn. `from_event` is the binding the event's own
    /// entity fields gave, and `event_has_fields` says whether it carried them at all.
    pub async fn resolve(&self, chat: ChatId, session: Option<SessionId>, from_event: Option<&CrmBinding>, event_has_fields: bool) -> Option<CrmBinding> {
        if let Some(b) = from_event {
            self.remember(chat, session, Some(b.clone()));
            return Some(b.clone());
        }
        if let Some((s, b)) = self.cached(chat)
            && s.is_some()
            && (s == session || session.is_none())
        {
            return b;
        }
        // An event that carried the entity fields and named no entity is believed: no lookup.
        let found = if event_has_fields {
            DialogCrm { session_id: session, binding: None }
        } else {
            match self.portal.binding(chat).await {
                Ok(d) => d,
                Err(e) => {
                    warn!(chat = %chat, code = %e.code, error = %e, "cannot read the chat's CRM binding (imopenlines.dialog.get); this turn is not linked to the CRM");
                    return None;
                }
            }
        };
        let session = session.or(found.session_id);
        let mut binding = found.binding;
        if binding.is_none() && self.settings.unbound == UnboundPolicy::CreateLead {
            binding = self.create_lead(chat).await;
        }
        self.remember(chat, session, binding.clone());
        binding
    }

    async fn create_lead(&self, chat: ChatId) -> Option<CrmBinding> {
        if let Err(e) = self.portal.create_lead(chat).await {
            warn!(chat = %chat, code = %e.code, error = %e,
                "the portal refused to create a lead for the chat (imopenlines.crm.lead.create is allowed only to the session's operator, with CRM rights); it stays unbound");
            return None;
        }
        match self.portal.binding(chat).await {
            Ok(d) => {
                info!(chat = %chat, entity = ?d.binding, "created a lead for an unbound chat");
                d.binding
            }
            Err(e) => {
                warn!(chat = %chat, error = %e, "created a lead but cannot read the binding back");
                None
            }
        }
    }

    fn cached(&self, chat: ChatId) -> Option<Cached> {
        self.cache.lock().ok().and_then(|c| c.get(&chat).cloned())
    }

    fn remember(&self, chat: ChatId, session: Option<SessionId>, binding: Option<CrmBinding>) {
        if let Ok(mut c) = self.cache.lock() {
            c.insert(chat, (session, binding));
        }
    }

    /// Appends the turn's line to the outbox (nothing when the timeline is off or the turn has
    /// nothing to say). Durable once this returns.
    pub async fn note_turn(&self, note: &TurnNote<'_>) -> StoreResult<()> {
        let Some(text) = line_text(note) else { return Ok(()) };
        let (comment_key, due_at) = match self.settings.timeline {
            TimelineMode::Off => return Ok(()),
            TimelineMode::Turn => (note.turn_key.clone(), note.at),
            TimelineMode::Session => {
                let key = format!("{}|{}|{}|{}", note.chat, note.session.map_or(0, SessionId::get), note.entity.entity_type, note.entity.entity_id);
                let quiet = chrono::Duration::from_std(self.settings.quiet).unwrap_or_default();
                // A human takes over now: the operator should see what the bot did at once.
                let due = if ends_with_human(note.outcome) { note.at } else { note.at + quiet };
                (key, due)
            }
        };
        let line = TimelineLine { comment_key, turn_key: note.turn_key.clone(), entity: note.entity.clone(), text, at: note.at };
        self.outbox.append(&line, due_at).await
    }

    /// The outbox.
    pub fn outbox(&self) -> &Arc<dyn TimelineOutbox> {
        &self.outbox
    }

    /// The portal's CRM calls.
    pub fn portal(&self) -> &Arc<dyn CrmPortal> {
        &self.portal
    }
}

fn ends_with_human(outcome: &TurnOutcome) -> bool {
    matches!(outcome, TurnOutcome::HandedOff { .. } | TurnOutcome::Fallback { .. } | TurnOutcome::GaveUp { .. } | TurnOutcome::WindowClosed { .. })
}

/// A handoff reason as an operator reads it on the timeline.
pub fn describe_reason(reason: &HandoffReason) -> String {
    match reason {
        HandoffReason::Phrase { phrase } => format!("the customer asked for a human (phrase \"{phrase}\")"),
        HandoffReason::LoneWord { word } => format!("the customer asked for a human (\"{word}\")"),
        HandoffReason::BotRequested => "the bot asked for a human".to_owned(),
        HandoffReason::BotFailed { error } => format!("the bot kept failing ({error})"),
        HandoffReason::PortalRefused { code } => format!("the portal refused the reply ({code})"),
        HandoffReason::GaveUp { error } => format!("the bridge gave up on the turn ({error})"),
        HandoffReason::WindowClosed { .. } => "WhatsApp's 24-hour window closed".to_owned(),
        HandoffReason::DailyCap { calls } => format!("the customer reached the daily limit of bot answers ({calls})"),
    }
}

/// The turn's line, or `None` when it has nothing for the timeline (ignored, silent).
fn line_text(note: &TurnNote<'_>) -> Option<String> {
    let time = note.at.format("%Y-%m-%d %H:%M UTC");
    let mut out = format!("[{time}]");
    for c in &note.customer {
        let cut: String = c.chars().take(CUSTOMER_TEXT_MAX_CHARS).collect();
        let ellipsis = if c.chars().count() > CUSTOMER_TEXT_MAX_CHARS { "…" } else { "" };
        out.push_str(&format!("\nCustomer: {cut}{ellipsis}"));
    }
    for b in &note.bot {
        out.push_str(&format!("\nBot: {b}"));
    }
    let tail = match note.outcome {
        TurnOutcome::Answered { .. } | TurnOutcome::Cached { .. } => None,
        TurnOutcome::HandedOff { reason } => Some(format!("Handed to a human operator: {} [{}]", describe_reason(reason), reason.rule())),
        TurnOutcome::Fallback { error } => {
            Some(format!("Fallback: the bot kept failing ({error}); the customer got the fallback message and the chat went to an operator [bot_failure]"))
        }
        TurnOutcome::GaveUp { error } => Some(format!("Fallback: the bridge gave up on the turn ({error}); the chat went to an operator [gave_up]")),
        TurnOutcome::WindowClosed { .. } => Some("Handed to a human operator: WhatsApp's 24-hour window closed [window_closed]".to_owned()),
        TurnOutcome::Silent | TurnOutcome::Ignored { .. } | TurnOutcome::RateLimited { .. } => return None,
    };
    if let Some(t) = tail {
        out.push_str(&format!("\n{t}"));
    }
    Some(out)
}

/// How [`drain`] retries a failed comment.
#[derive(Debug, Clone, Copy)]
pub struct DrainPolicy {
    /// The first retry's delay; doubled each time.
    pub first_retry: Duration,
    /// The longest delay.
    pub max_retry: Duration,
    /// After this many failures the comment is dropped (logged as an error).
    pub max_attempts: u32,
    /// Comments per pass, all written at once: 50 fit one `batch` of the client's coalescing.
    pub batch: usize,
}

impl Default for DrainPolicy {
    fn default() -> Self {
        Self { first_retry: Duration::from_secs(2), max_retry: Duration::from_secs(900), max_attempts: 40, batch: 50 }
    }
}

/// What one [`drain`] pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Comments written.
    pub written: usize,
    /// Comments that failed and wait for a retry.
    pub failed: usize,
}

/// How one comment of a pass ended.
enum Wrote {
    Written,
    Failed,
}

/// Writes the comments due at `now`; each failure is rescheduled with backoff. The header names
/// the bridge so an operator knows where the comment came from.
///
/// The pass's comments (at most `policy.batch`) are written concurrently, so the client can send
/// them together in one `batch` request instead of one request each. Each comment is settled in the
/// outbox on its own, as soon as the portal answered it: removed once written, rescheduled when it
/// failed. An outbox error does not cut the other writes short (a comment the portal took but the
/// outbox still holds would be written twice); the first one is returned once all have settled.
pub async fn drain(portal: &dyn CrmPortal, outbox: &dyn TimelineOutbox, now: DateTime<Utc>, policy: DrainPolicy) -> StoreResult<Drained> {
    let due = outbox.due(now, policy.batch).await?;
    let settled = futures::future::join_all(due.iter().map(|c| write_one(portal, outbox, c, now, policy))).await;
    let mut done = Drained::default();
    let mut first_error = None;
    for outcome in settled {
        match outcome {
            Ok(Wrote::Written) => done.written += 1,
            Ok(Wrote::Failed) => done.failed += 1,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(done), Err)
}

/// Writes one due comment and settles it in the outbox.
async fn write_one(portal: &dyn CrmPortal, outbox: &dyn TimelineOutbox, c: &PendingComment, now: DateTime<Utc>, policy: DrainPolicy) -> StoreResult<Wrote> {
    let body: Vec<&str> = c.lines.iter().map(|(_, t)| t.as_str()).collect();
    let text = format!("olbridge: AI assistant conversation\n{}", body.join("\n\n"));
    let ids: Vec<i64> = c.lines.iter().map(|(id, _)| *id).collect();
    match portal.timeline_comment(&c.entity, &text).await {
        Ok(id) => {
            info!(entity = %c.entity.entity_type, entity_id = c.entity.entity_id, comment = id, lines = ids.len(), "timeline comment written");
            outbox.written(&c.comment_key, &ids).await?;
            Ok(Wrote::Written)
        }
        Err(e) if c.attempts + 1 >= policy.max_attempts => {
            tracing::error!(entity = %c.entity.entity_type, entity_id = c.entity.entity_id, error = %e, attempts = c.attempts + 1, "giving up on a timeline comment");
            outbox.written(&c.comment_key, &ids).await?;
            Ok(Wrote::Failed)
        }
        Err(e) => {
            let factor = 2_u32.saturating_pow(c.attempts.min(16));
            let delay = policy.first_retry.saturating_mul(factor).min(policy.max_retry);
            warn!(entity = %c.entity.entity_type, entity_id = c.entity.entity_id, code = %e.code, error = %e, retry_in_ms = delay.as_millis() as u64, "timeline comment failed; retrying later");
            let retry_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
            outbox.failed(&c.comment_key, retry_at, &e.to_string()).await?;
            Ok(Wrote::Failed)
        }
    }
}

#[cfg(test)]
mod tests;
