//! `receive`: verify a Bitrix24 event, de-duplicate it, enqueue it, and answer at once.
//!
//! The receiver never waits on the bot: Bitrix24 does not retry a failed delivery and slows down
//! deliveries to slow handlers, so the only work done here is what decides whether the event is
//! ours and genuine. Refused events enqueue nothing, and each refusal has its own status so an
//! operator reading the access log can tell a forged event from a stale one:
//!
//! | problem | status |
//! |---|---|
//! | body over the size limit | 413 |
//! | not a form body / missing essentials | 400 |
//! | wrong `application_token` or `CLIENT_ID` | 401 |
//! | `ts` outside the freshness window | 401 |
//! | another portal (member id or domain) | 403 |
//! | the store failed | 503 (nothing was enqueued; Bitrix24 will not retry, reconciliation will) |
//!
//! One fast path: a message written by a human operator puts the chat in human mode for the
//! session right here, before it is queued, because the bot's turn that is already running for that
//! chat re-checks the mode before every send and must see it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::event::{Job, PortalEvent};
use crate::domain::form::{self, FormLimits};
use crate::domain::ids::{BotId, DedupKey, MemberId, PortalDomain};
use crate::domain::message::AuthorKind;
use crate::domain::parse::{self, EventEnvelope};
use crate::domain::secret::Secret;
use crate::ports::{ChatStore, Enqueued, JobQueue, StoreError};

/// What the receiver checks events against.
#[derive(Debug, Clone)]
pub struct ReceiveSettings {
    /// The expected `auth[application_token]`. For webhook-registered v1 bots Bitrix24 has been seen
    /// sending the bot's `CLIENT_ID` here (UNCONFIRMED), so when only `B24_BOT_CLIENT_ID` is
    /// configured, that is what is expected.
    pub application_token: Option<Secret>,
    /// `B24_BOT_CLIENT_ID`: Bitrix24 appends `CLIENT_ID=<value>` to a webhook bot's handler URLs;
    /// when the query carries one it must match.
    pub bot_client_id: Option<Secret>,
    /// `B24_MEMBER_ID`: when set, events from another portal are refused.
    pub member_id: Option<MemberId>,
    /// The `host[:port]` of `B24_WEBHOOK_BASE`: `auth[domain]` must match it.
    pub domain: Option<PortalDomain>,
    /// Our bot: messages it wrote itself are dropped here.
    pub bot_id: Option<BotId>,
    /// Accepted distance between `ts` and now, both ways (clocks drift).
    pub ts_window: Duration,
    /// Largest accepted body.
    pub max_body_bytes: usize,
}

/// An HTTP request as the receiver sees it, whatever the transport (axum, API Gateway).
#[derive(Debug, Clone, Copy)]
pub struct InboundRequest<'a> {
    /// The raw body.
    pub body: &'a [u8],
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
}

/// What happened to an accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Queued for the worker.
    Enqueued(DedupKey),
    /// Seen before (a replay, or push and poll both saw it): nothing queued.
    Duplicate(DedupKey),
    /// Genuine but not something we act on (another event type, our own message).
    Ignored(String),
}

/// Why an event was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The body is over the limit.
    #[error("event body is larger than {0} bytes")]
    TooLarge(usize),
    /// The body could not be decoded or lacks essential fields.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The token does not match.
    #[error("event authentication failed")]
    Forged,
    /// `ts` is outside the window.
    #[error("event is stale or from the future (ts {0})")]
    Stale(i64),
    /// Another portal.
    #[error("event comes from a portal this bridge does not serve")]
    UnknownPortal,
    /// The store failed; nothing was enqueued.
    #[error("could not store the event: {0}")]
    Store(#[from] StoreError),
}

impl ReceiveError {
    /// The HTTP status for this refusal (the one place it is decided).
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge(_) => 413,
            Self::Malformed(_) => 400,
            Self::Forged | Self::Stale(_) => 401,
            Self::UnknownPortal => 403,
            Self::Store(_) => 503,
        }
    }
}

/// Verifies, de-duplicates and enqueues one event.
pub async fn receive(
    settings: &ReceiveSettings,
    queue: &dyn JobQueue,
    chats: &dyn ChatStore,
    request: InboundRequest<'_>,
    now: DateTime<Utc>,
) -> Result<Received, ReceiveError> {
    let envelope = decode(settings, request.body)?;
    verify(settings, &envelope, request.query, now)?;
    let Some(event) = parse::to_portal_event(&envelope).map_err(|e| ReceiveError::Malformed(e.to_string()))? else {
        return Ok(Received::Ignored(format!("event {} is not handled", envelope.event)));
    };
    if let PortalEvent::Message(m) = &event {
        if m.author.kind == AuthorKind::Bot && m.author.id.map(|u| u.get()) == settings.bot_id.map(|b| b.get()) {
            return Ok(Received::Ignored("our own message".into()));
        }
        if m.author.kind == AuthorKind::Operator && m.lines.user_code.is_some() {
            chats.set_human(m.chat_id, m.lines.session_id, "operator_wrote", now).await?;
        }
    }
    let job = Job::new(event, now);
    match queue.enqueue(&job, now).await? {
        Enqueued::New => Ok(Received::Enqueued(job.key)),
        Enqueued::Duplicate => Ok(Received::Duplicate(job.key)),
    }
}

fn decode(settings: &ReceiveSettings, body: &[u8]) -> Result<EventEnvelope, ReceiveError> {
    if body.len() > settings.max_body_bytes {
        return Err(ReceiveError::TooLarge(settings.max_body_bytes));
    }
    let limits = FormLimits { max_bytes: settings.max_body_bytes, ..FormLimits::default() };
    let tree = form::parse(body, &limits).map_err(|e| ReceiveError::Malformed(e.to_string()))?;
    EventEnvelope::from_form(&tree).map_err(|e| ReceiveError::Malformed(e.to_string()))
}

fn verify(settings: &ReceiveSettings, env: &EventEnvelope, query: Option<&str>, now: DateTime<Utc>) -> Result<(), ReceiveError> {
    // Token first: an unauthenticated caller learns nothing about which portal we serve.
    let expected = settings.application_token.as_ref().or(settings.bot_client_id.as_ref()).ok_or(ReceiveError::Forged)?;
    let presented = env.auth.application_token.as_deref().unwrap_or("");
    if !expected.matches(presented) {
        return Err(ReceiveError::Forged);
    }
    if let (Some(client_id), Some(q)) = (&settings.bot_client_id, query) {
        let in_query = url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "CLIENT_ID").map(|(_, v)| v.into_owned());
        if in_query.is_some_and(|v| !client_id.matches(&v)) {
            return Err(ReceiveError::Forged);
        }
    }
    if let Some(member) = &settings.member_id {
        let theirs = env.auth.member_id.as_deref().and_then(|m| MemberId::parse(m).ok());
        if theirs.as_ref() != Some(member) {
            return Err(ReceiveError::UnknownPortal);
        }
    }
    if let Some(domain) = &settings.domain {
        let theirs = env.auth.domain.as_deref().and_then(|d| PortalDomain::parse(d).ok());
        if theirs.as_ref() != Some(domain) {
            return Err(ReceiveError::UnknownPortal);
        }
    }
    let ts = env.ts.ok_or_else(|| ReceiveError::Malformed("ts is missing".into()))?;
    let window = i64::try_from(settings.ts_window.as_secs()).unwrap_or(i64::MAX);
    if (now.timestamp() - ts).abs() > window {
        return Err(ReceiveError::Stale(ts));
    }
    Ok(())
}
