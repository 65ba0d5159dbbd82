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
//! # Which token
//! v1 events are checked against `B24_APPLICATION_TOKEN`, or, when only `B24_BOT_CLIENT_ID` is
//! set, against the bot's `CLIENT_ID` (what webhook-registered v1 bots' events were seen to carry),
//! plus the `CLIENT_ID` Bitrix24 appends to a v1 handler URL. Chatbots 2.0 (`ONIMBOTV2*`) events
//! are checked against the top-level `auth[application_token]` only, and only against
//! `B24_APPLICATION_TOKEN`: the `botToken` is our credential for calls, never in an event, and v2
//! handler URLs get no `CLIENT_ID` appended.
//!
//! # Which portal
//! The de-duplication key is `<member id>:msg:<message id>`, and the member id in it never comes
//! from an unverified field: it is `B24_MEMBER_ID` when configured, otherwise the member id of the
//! first verified event, learned once and stored ([`MemberPin`]); an event naming another member
//! id is refused (403), so one message cannot be answered once per forged member id. Domain,
//! token and freshness are checked before anything is learned.
//!
//! # De-duplication, then the queue
//! The key is admitted in the idempotency store (a conditional insert that lasts as long as the
//! retention), then the job is sent. If the send fails the admission is undone and the event
//! refused with 503. A crash between the two leaves an admitted key with no job: the reconciliation
//! poller finds such a message unanswered and sends it again.
//!
//! One fast path: a message written by a human operator puts the chat in human mode for the
//! session right here, before it is queued, because the bot's turn that is already running for that
//! chat re-checks the mode before every send and must see it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::warn;

use crate::config::Config;
use crate::domain::allowlist::SourcePolicy;
use crate::domain::event::{Job, PortalEvent};
use crate::domain::form::{self, FormLimits};
use crate::domain::ids::{BotId, DedupKey, MemberId, PortalDomain};
use crate::domain::message::{AuthorKind, PortalRef};
use crate::domain::parse::{self, EventEnvelope};
use crate::domain::secret::Secret;
use crate::ports::{Admission, ChatStore, IdempotencyStore, JobSink, MetaPut, MetaStore, StoreError};

/// What the receiver checks events against.
#[derive(Debug, Clone)]
pub struct ReceiveSettings {
    /// The expected `auth[application_token]`. For webhook-registered v1 bots Bitrix24 has been seen
    /// sending the bot's `CLIENT_ID` here (UNCONFIRMED), so when only `B24_BOT_CLIENT_ID` is
    /// configured, that is what is expected.
    pub application_token: Option<Secret>,
    /// Tokens also accepted while a rotation is under way (the previous version of the secret).
    pub previous_tokens: Vec<Secret>,
    /// `B24_BOT_CLIENT_ID`: Bitrix24 appends `CLIENT_ID=<value>` to a webhook bot's handler URLs;
    /// when the query carries one it must match.
    pub bot_client_id: Option<Secret>,
    /// `B24_MEMBER_ID`: when set, events from another portal are refused and nothing is learned.
    pub member_id: Option<MemberId>,
    /// The `host[:port]` of `B24_WEBHOOK_BASE`: `auth[domain]` must match it.
    pub domain: Option<PortalDomain>,
    /// Our bot: messages it wrote itself are dropped here.
    pub bot_id: Option<BotId>,
    /// Accepted distance between `ts` and now, both ways (clocks drift).
    pub ts_window: Duration,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Who may POST events (`OLBRIDGE_ALLOWED_CIDRS`, `OLBRIDGE_TRUSTED_PROXIES`). The transports
    /// apply it before the body is read (they know the peer); `receive` never sees a refused one.
    pub sources: SourcePolicy,
}

impl ReceiveSettings {
    /// The settings the configuration describes (both runtimes build them here).
    pub fn from_config(config: &Config) -> Self {
        Self {
            application_token: config.portal.application_token.clone(),
            previous_tokens: Vec::new(),
            bot_client_id: config.portal.bot_client_id.clone(),
            member_id: config.portal.member_id.clone(),
            domain: config.portal.webhook.as_ref().map(|w| w.domain().clone()),
            bot_id: config.portal.bot_id,
            ts_window: config.portal.ts_window,
            max_body_bytes: config.portal.max_body_bytes,
            sources: config.access.sources.clone(),
        }
    }
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
    /// The request's source address is outside `OLBRIDGE_ALLOWED_CIDRS` (decided by the receivers
    /// with [`crate::domain::allowlist::SourcePolicy`] before the body is read).
    #[error("request comes from an address outside the allow-list")]
    NotAllowed,
    /// The store or the queue failed; nothing was enqueued.
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
            Self::UnknownPortal | Self::NotAllowed => 403,
            Self::Store(_) => 503,
        }
    }

    /// A stable code for the response body, logs and metrics (never internal error text).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::Malformed(_) => "malformed",
            Self::Forged => "unauthorized",
            Self::Stale(_) => "stale",
            Self::UnknownPortal => "unknown_portal",
            Self::NotAllowed => "not_allowed",
            Self::Store(_) => "unavailable",
        }
    }
}

/// The portal's member id: configured, or learned from the first verified event and stored, so
/// every process and every Lambda instance agrees on it.
#[derive(Clone)]
pub struct MemberPin {
    configured: Option<MemberId>,
    meta: Arc<dyn MetaStore>,
    learned: Arc<OnceLock<MemberId>>,
}

impl std::fmt::Debug for MemberPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberPin").field("configured", &self.configured).field("learned", &self.learned.get()).finish_non_exhaustive()
    }
}

impl MemberPin {
    /// The name under which the learned member id is stored.
    pub const META_NAME: &'static str = "portal.member_id";

    /// A pin: `configured` is `B24_MEMBER_ID`.
    pub fn new(configured: Option<MemberId>, meta: Arc<dyn MetaStore>) -> Self {
        Self { configured, meta, learned: Arc::new(OnceLock::new()) }
    }

    /// The member id this bridge serves, if known yet (configured or learned).
    pub async fn current(&self) -> Result<Option<MemberId>, StoreError> {
        if let Some(m) = self.configured.as_ref().or(self.learned.get()) {
            return Ok(Some(m.clone()));
        }
        let stored = self.meta.get_value(Self::META_NAME).await?;
        Ok(stored.and_then(|v| MemberId::parse(&v.value).ok()).map(|m| self.learned.get_or_init(|| m).clone()))
    }

    /// The member id to trust for an event that passed every other check and presents `presented`:
    /// the pinned one when known (the event must match it), otherwise `presented`, pinned now.
    async fn trust(&self, presented: Option<&str>) -> Result<MemberId, ReceiveError> {
        let presented = presented.map(MemberId::parse).transpose().map_err(|e| ReceiveError::Malformed(e.to_string()))?;
        if let Some(pinned) = self.current().await? {
            return match presented {
                Some(p) if p != pinned => Err(ReceiveError::UnknownPortal),
                _ => Ok(pinned),
            };
        }
        let presented =
            presented.ok_or_else(|| ReceiveError::Malformed("auth[member_id] is missing and no member id is pinned yet (set B24_MEMBER_ID)".into()))?;
        let pinned = match self.meta.put_value(Self::META_NAME, presented.as_str(), None).await? {
            MetaPut::Written(_) => {
                warn!(member_id = %presented, "learned the portal's member id from the first verified event; events naming another portal are refused from now on (pin it explicitly with B24_MEMBER_ID={presented})");
                presented.clone()
            }
            // Someone else learned it first.
            MetaPut::Conflict(Some(v)) => MemberId::parse(&v.value).map_err(|e| StoreError::Corrupt(format!("{}: {e}", Self::META_NAME)))?,
            MetaPut::Conflict(None) => return Err(StoreError::Backend(format!("{} could not be written", Self::META_NAME)).into()),
        };
        let pinned = self.learned.get_or_init(|| pinned).clone();
        if pinned != presented { Err(ReceiveError::UnknownPortal) } else { Ok(pinned) }
    }
}

/// The receive use case with its dependencies, built once per process (or Lambda instance).
#[derive(Clone)]
pub struct Receiver {
    /// What events are checked against.
    pub settings: ReceiveSettings,
    /// The receiver's de-duplication.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Where verified jobs go.
    pub sink: Arc<dyn JobSink>,
    /// Chat modes (an operator's message silences the bot at once).
    pub chats: Arc<dyn ChatStore>,
    /// The portal's member id.
    pub pin: MemberPin,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("settings", &self.settings).field("pin", &self.pin).finish_non_exhaustive()
    }
}

impl Receiver {
    /// Verifies, de-duplicates and enqueues one event.
    pub async fn receive(&self, request: InboundRequest<'_>, now: DateTime<Utc>) -> Result<Received, ReceiveError> {
        let settings = &self.settings;
        let envelope = decode(settings, request.body)?;
        verify(settings, &envelope, request.query, now)?;
        let domain = envelope.auth.domain.as_deref().map(PortalDomain::parse).transpose().map_err(|e| ReceiveError::Malformed(e.to_string()))?;
        let domain = domain.ok_or_else(|| ReceiveError::Malformed("auth[domain] is missing".into()))?;
        let member_id = self.pin.trust(envelope.auth.member_id.as_deref()).await?;
        let portal = PortalRef { member_id, domain };
        let Some(event) = parse::to_portal_event_as(&envelope, portal).map_err(|e| ReceiveError::Malformed(e.to_string()))? else {
            return Ok(Received::Ignored(format!("event {} is not handled", envelope.event)));
        };
        self.accept(event, now).await
    }

    /// Queues a verified, parsed event, whatever brought it in (the receiver, the fetch loop): our
    /// own messages are dropped, an operator's message silences the bot at once, and the rest goes
    /// through [`enqueue`].
    pub async fn accept(&self, event: PortalEvent, now: DateTime<Utc>) -> Result<Received, ReceiveError> {
        if let PortalEvent::Message(m) = &event {
            if m.author.kind == AuthorKind::Bot && m.author.id.map(|u| u.get()) == self.settings.bot_id.map(|b| b.get()) {
                return Ok(Received::Ignored("our own message".into()));
            }
            if m.author.kind == AuthorKind::Operator && m.lines.user_code.is_some() {
                self.chats.set_human(m.chat_id, m.lines.session_id, "operator_wrote", now).await?;
            }
        }
        let job = Job::new(event, now);
        enqueue(self.idempotency.as_ref(), self.sink.as_ref(), &job, now).await
    }
}

/// Admits a job's key and sends it; the admission is undone when the send fails. Shared by the
/// receiver and the pollers, so every source de-duplicates the same way.
pub async fn enqueue(idempotency: &dyn IdempotencyStore, sink: &dyn JobSink, job: &Job, now: DateTime<Utc>) -> Result<Received, ReceiveError> {
    if idempotency.admit(&job.key, now).await? == Admission::Duplicate {
        return Ok(Received::Duplicate(job.key.clone()));
    }
    if let Err(e) = sink.send(job, now).await {
        if let Err(undo) = idempotency.unadmit(&job.key).await {
            warn!(key = %job.key, error = %undo, "could not undo the admission of an event that was not queued; reconciliation will find it");
        }
        return Err(e.into());
    }
    Ok(Received::Enqueued(job.key.clone()))
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
    // Token first: an unauthenticated caller learns nothing about which portal we serve. A v1
    // webhook bot's events have been seen carrying its CLIENT_ID as the token; a Chatbots 2.0
    // event carries the portal's application token at the top level (not the one inside
    // `data[bot][auth]`, contract §3.2), never the botToken, so v2 events need the configured token.
    let expected = if parse::is_v2_event(&env.event) {
        settings.application_token.as_ref()
    } else {
        settings.application_token.as_ref().or(settings.bot_client_id.as_ref())
    };
    let expected = expected.ok_or(ReceiveError::Forged)?;
    let presented = env.auth.application_token.as_deref().unwrap_or("");
    // Every candidate is compared (in constant time each), so timing does not tell which matched.
    let matched = std::iter::once(expected).chain(&settings.previous_tokens).fold(false, |any, t| t.matches(presented) | any);
    if !matched {
        return Err(ReceiveError::Forged);
    }
    if let (Some(client_id), Some(q)) = (&settings.bot_client_id, query) {
        let in_query = url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "CLIENT_ID").map(|(_, v)| v.into_owned());
        if in_query.is_some_and(|v| !client_id.matches(&v)) {
            return Err(ReceiveError::Forged);
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
