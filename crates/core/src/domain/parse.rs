//! Decoding Bitrix24 events into the one internal model.
//!
//! Two steps, because they fail differently. [`EventEnvelope::parse`] turns a form body into the
//! envelope every event shares (`event`, `event_handler_id`, `ts`, `auth`, `data`); the receive
//! use case verifies the envelope (application token, member id, domain, freshness) before
//! anything else is looked at. [`to_portal_event`] then decodes `data` for the events the bridge
//! handles into a [`PortalEvent`], and [`from_v2_json`] does the same for events fetched with
//! `imbot.v2.Event.get` (JSON with real types, no `auth`). Both versions of the chatbot API are
//! supported: v1 sends UPPER_CASE `data[PARAMS]`/`data[USER]`/`data[BOT][<id>]`, v2 camelCase
//! `data[message]`/`data[chat]`/`data[user]`/`data[bot]`. Field extraction is written once over
//! a private `Node` trait, so the v2 form and JSON paths share every line.
//!
//! [`poll`] does the same for what the pollers read back (`im.dialog.messages.get`,
//! `im.v2.Event.get`), through the same private `RawMessage`.
//!
//! Events the bridge does not handle decode to `Ok(None)` (the caller logs and ignores them).
//! Optional fields are tolerated when missing; the essentials (message id, chat or dialog id,
//! member id, domain, a time) give a [`ParseError`] that names the field (the receiver answers 400).
//! Parsing checks nothing about authenticity: that is the receive use case's job.
//!
//! Credentials inside `data` (the bot's OAuth tokens in `data[BOT][<id>]`, `data[bot][auth]`) are
//! dropped at the edge: webhook mode never uses them, and an envelope can then be logged safely.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::event::PortalEvent;
use super::form::{FormError, FormLimits, FormValue};
use super::ids::{BotId, ChatId, DialogId, IdError, MemberId, MessageId, PortalDomain, UserId};
use super::message::{Author, AuthorKind, InboundMessage, LinesContext, PortalRef, Source};

pub mod lines;
mod node;
pub mod poll;
mod v1;
mod v2;

/// The `auth` part of an event. Only the fields the bridge may need are kept; OAuth tokens are
/// not (webhook mode does not use them), and `Debug` hides the application token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EventAuth {
    /// The portal's host (and port), to match against `B24_WEBHOOK_BASE`.
    pub domain: Option<String>,
    /// The portal's member id.
    pub member_id: Option<String>,
    /// The token to compare (in constant time) with `B24_APPLICATION_TOKEN`.
    pub application_token: Option<String>,
    /// `https://<portal>/rest/`.
    pub client_endpoint: Option<String>,
    /// The OAuth server.
    pub server_endpoint: Option<String>,
    /// The user whose action fired the event (app events only).
    pub user_id: Option<String>,
    /// The app's status letter (app events only).
    pub status: Option<String>,
}

impl fmt::Debug for EventAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventAuth")
            .field("domain", &self.domain)
            .field("member_id", &self.member_id)
            .field("application_token", &self.application_token.as_ref().map(|_| "***"))
            .field("client_endpoint", &self.client_endpoint)
            .field("server_endpoint", &self.server_endpoint)
            .field("user_id", &self.user_id)
            .field("status", &self.status)
            .finish()
    }
}

/// What every event POSTed by Bitrix24 carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEnvelope {
    /// The event code, upper-cased (`ONIMBOTMESSAGEADD`).
    pub event: String,
    /// `event_handler_id` (or `eventId`, as some doc examples spell it).
    pub handler_id: Option<String>,
    /// `ts`: when the event left the portal's queue, in Unix seconds.
    pub ts: Option<i64>,
    /// `auth`.
    pub auth: EventAuth,
    /// `data`, without credentials (an empty map when absent).
    pub data: FormValue,
}

/// Why an event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not a usable form (too large, too many fields, too deep).
    #[error(transparent)]
    Form(#[from] FormError),
    /// A required field is missing.
    #[error("missing required field {0}")]
    Missing(&'static str),
    /// A field is present but not valid.
    #[error("invalid field {field}: {reason}")]
    Invalid {
        /// The field, as the wire names it.
        field: &'static str,
        /// What is wrong (never the value itself).
        reason: String,
    },
}

impl ParseError {
    /// Whether the body was refused for its size (HTTP 413 rather than 400).
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::Form(FormError::TooLarge { .. }))
    }

    fn invalid(field: &'static str, err: IdError) -> Self {
        Self::Invalid { field, reason: err.to_string() }
    }
}

impl EventEnvelope {
    /// Parses a form body within `limits`.
    pub fn parse(body: &[u8], limits: &FormLimits) -> Result<Self, ParseError> {
        Self::from_form(&FormValue::parse(body, limits)?)
    }

    /// Builds the envelope from a parsed form.
    pub fn from_form(form: &FormValue) -> Result<Self, ParseError> {
        let field = |path: &[&str]| node::text(form, path).map(Cow::into_owned);
        let event = field(&["event"]).ok_or(ParseError::Missing("event"))?.to_ascii_uppercase();
        let ts = match field(&["ts"]) {
            None => None,
            Some(t) => Some(t.parse::<i64>().map_err(|_| ParseError::Invalid { field: "ts", reason: "expected Unix seconds".into() })?),
        };
        let auth = EventAuth {
            domain: field(&["auth", "domain"]),
            member_id: field(&["auth", "member_id"]),
            application_token: field(&["auth", "application_token"]),
            client_endpoint: field(&["auth", "client_endpoint"]),
            server_endpoint: field(&["auth", "server_endpoint"]),
            user_id: field(&["auth", "user_id"]),
            status: field(&["auth", "status"]),
        };
        Ok(Self {
            event,
            handler_id: field(&["event_handler_id"]).or_else(|| field(&["eventId"])),
            ts,
            auth,
            data: form.get("data").map_or_else(FormValue::empty, FormValue::without_credentials),
        })
    }

    /// The portal the event claims to come from (`auth[member_id]`, `auth[domain]`).
    pub fn portal(&self) -> Result<PortalRef, ParseError> {
        let member = self.auth.member_id.as_deref().ok_or(ParseError::Missing("auth[member_id]"))?;
        let domain = self.auth.domain.as_deref().ok_or(ParseError::Missing("auth[domain]"))?;
        Ok(PortalRef {
            member_id: MemberId::parse(member).map_err(|e| ParseError::invalid("auth[member_id]", e))?,
            domain: PortalDomain::parse(domain).map_err(|e| ParseError::invalid("auth[domain]", e))?,
        })
    }
}

/// Which handled event an event code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Message,
    Join,
    Command,
    Delete,
}

/// Decodes the events the bridge handles; `Ok(None)` for any other event. The portal is the one the
/// event names (`auth[member_id]`, `auth[domain]`); the receiver uses [`to_portal_event_as`] with
/// the portal it verified instead.
pub fn to_portal_event(env: &EventEnvelope) -> Result<Option<PortalEvent>, ParseError> {
    if !handled(&env.event) {
        return Ok(None);
    }
    to_portal_event_as(env, env.portal()?)
}

/// Whether the bridge decodes events with this code.
fn handled(event: &str) -> bool {
    matches!(event, "ONIMBOTMESSAGEADD" | "ONIMBOTJOINCHAT" | "ONIMCOMMANDADD" | "ONIMBOTDELETE") || v2_kind(event).is_some()
}

/// As [`to_portal_event`], attributing the event to `portal` (whose member id the caller verified or
/// pinned), so nothing downstream, the de-duplication key least of all, rests on an unverified
/// field.
pub fn to_portal_event_as(env: &EventEnvelope, portal: PortalRef) -> Result<Option<PortalEvent>, ParseError> {
    let (kind, source) = match env.event.as_str() {
        "ONIMBOTMESSAGEADD" => (Kind::Message, Source::BotPushV1),
        "ONIMBOTJOINCHAT" => (Kind::Join, Source::BotPushV1),
        "ONIMCOMMANDADD" => (Kind::Command, Source::BotPushV1),
        "ONIMBOTDELETE" => (Kind::Delete, Source::BotPushV1),
        other => match v2_kind(other) {
            Some(kind) => (kind, Source::BotPushV2),
            None => return Ok(None),
        },
    };
    let ts = env.ts.map(|t| unix_time(t, "ts")).transpose()?;
    if source == Source::BotPushV1 {
        let sent_at = ts.ok_or(ParseError::Missing("ts"))?;
        return v1::decode(kind, &env.data, portal, sent_at);
    }
    v2::decode(kind, &env.data, Ctx { portal, source, sent_at: ts, bot_id: None })
}

/// Decodes one event of an `imbot.v2.Event.get` answer (`{eventId, type, date, data}`) for the
/// portal the bridge fetched it from; `Ok(None)` for events the bridge does not handle.
pub fn from_v2_json(event: &Value, portal: &PortalRef) -> Result<Option<PortalEvent>, ParseError> {
    let kind_name = node::text(event, &["type"]).ok_or(ParseError::Missing("type"))?.to_ascii_uppercase();
    let Some(kind) = v2_kind(&kind_name) else { return Ok(None) };
    let data = event.get("data").filter(|d| d.is_object()).ok_or(ParseError::Missing("data"))?;
    let sent_at = node::text(event, &["date"]).map(|d| rfc3339(&d, "date")).transpose()?;
    v2::decode(kind, data, Ctx { portal: portal.clone(), source: Source::BotFetch, sent_at, bot_id: None })
}

/// Whether an event code is a Chatbots 2.0 event (`ONIMBOTV2*`), whose `auth[application_token]`
/// is the portal's application token rather than a v1 bot's `CLIENT_ID`.
pub fn is_v2_event(event: &str) -> bool {
    event.to_ascii_uppercase().starts_with("ONIMBOTV2")
}

fn v2_kind(event: &str) -> Option<Kind> {
    match event {
        "ONIMBOTV2MESSAGEADD" => Some(Kind::Message),
        "ONIMBOTV2JOINCHAT" => Some(Kind::Join),
        "ONIMBOTV2COMMANDADD" => Some(Kind::Command),
        "ONIMBOTV2DELETE" => Some(Kind::Delete),
        _ => None,
    }
}

/// What decoding one event needs besides its data.
#[derive(Debug, Clone)]
struct Ctx {
    portal: PortalRef,
    source: Source,
    /// `ts` or the fetched event's `date`; v2 falls back to the message's own date.
    sent_at: Option<DateTime<Utc>>,
    /// The bot the event is addressed to, once known.
    bot_id: Option<BotId>,
}

/// The wire names of the fields a message needs, for error messages.
#[derive(Debug)]
struct Names {
    message_id: &'static str,
    chat: &'static str,
    dialog: &'static str,
    author: &'static str,
}

/// One message's fields as read from either version, before validation.
#[derive(Debug, Default)]
struct RawMessage<'a> {
    message_id: Option<Cow<'a, str>>,
    chat_id: Option<Cow<'a, str>>,
    dialog_id: Option<Cow<'a, str>>,
    author_id: Option<Cow<'a, str>>,
    author_name: String,
    /// `IS_CONNECTOR` / `connector`; `None` when the portal did not say.
    author_connector: Option<bool>,
    author_bot: bool,
    system: bool,
    text: String,
    lines: bool,
    entity_id: Option<Cow<'a, str>>,
    entity_data_1: Option<Cow<'a, str>>,
    entity_data_2: Option<Cow<'a, str>>,
    language: Option<Cow<'a, str>>,
}

impl RawMessage<'_> {
    fn chat_and_dialog(&self, names: &Names) -> Result<(ChatId, DialogId), ParseError> {
        let dialog = self.dialog_id.as_deref().map(DialogId::parse).transpose().map_err(|e| ParseError::invalid(names.dialog, e))?;
        let chat = self.chat_id.as_deref().map(ChatId::parse).transpose().map_err(|e| ParseError::invalid(names.chat, e))?;
        let chat = chat.or_else(|| dialog.and_then(DialogId::chat)).ok_or(ParseError::Missing(names.chat))?;
        match dialog {
            Some(DialogId::Chat(c)) if c != chat => {
                Err(ParseError::Invalid { field: names.dialog, reason: format!("dialog chat{c} does not match chat {chat}") })
            }
            Some(d) => Ok((chat, d)),
            None => Ok((chat, DialogId::Chat(chat))),
        }
    }

    /// The author: the connector user → customer; a bot or our bot → bot; author 0 or a system
    /// message → system; anyone else → operator. When the event does not say whether the author
    /// is the connector user (no `data[USER]`), an Open Lines author whose id is the user code's
    /// connector user id is the customer: calling them an operator would silence the bot.
    fn author(&self, names: &Names, bot: Option<BotId>) -> Result<Author, ParseError> {
        let id = match self.author_id.as_deref() {
            None | Some("0") => None,
            Some(raw) => Some(UserId::parse(raw).map_err(|e| ParseError::invalid(names.author, e))?),
        };
        let is_chat_customer = || {
            let code = self.entity_id.as_deref().filter(|_| self.lines).and_then(lines::UserCode::parse);
            id.is_some() && code.is_some_and(|c| UserId::parse(c.connector_user_id).ok() == id)
        };
        let connector = self.author_connector.unwrap_or_else(|| !self.author_bot && is_chat_customer());
        let kind = if connector {
            AuthorKind::Customer
        } else if self.author_bot || (id.is_some() && id == bot.map(BotId::as_user)) {
            AuthorKind::Bot
        } else if id.is_none() || self.system {
            AuthorKind::System
        } else {
            AuthorKind::Operator
        };
        Ok(Author { id, name: self.author_name.clone(), kind })
    }

    fn lines_context(&self) -> LinesContext {
        if !self.lines {
            return LinesContext::default();
        }
        lines::lines_context(self.entity_id.as_deref(), self.entity_data_1.as_deref(), self.entity_data_2.as_deref())
    }

    fn into_message(self, names: &Names, ctx: &Ctx) -> Result<InboundMessage, ParseError> {
        let message_id = self.message_id.as_deref().ok_or(ParseError::Missing(names.message_id))?;
        let message_id = MessageId::parse(message_id).map_err(|e| ParseError::invalid(names.message_id, e))?;
        let (chat_id, dialog_id) = self.chat_and_dialog(names)?;
        let author = self.author(names, ctx.bot_id)?;
        let sent_at = ctx.sent_at.ok_or(ParseError::Missing(TIME))?;
        Ok(InboundMessage {
            source: ctx.source,
            portal: ctx.portal.clone(),
            message_id,
            chat_id,
            dialog_id,
            author,
            lines: self.lines_context(),
            text: self.text,
            system: self.system,
            bot_id: ctx.bot_id,
            language: self.language.map(Cow::into_owned),
            sent_at,
        })
    }
}

/// The field named when an event carries no time at all.
const TIME: &str = "ts (or date)";

/// Unix seconds as a time.
fn unix_time(secs: i64, field: &'static str) -> Result<DateTime<Utc>, ParseError> {
    DateTime::from_timestamp(secs, 0).ok_or(ParseError::Invalid { field, reason: "time out of range".into() })
}

/// An RFC 3339 time (`2025-01-15T10:30:00+02:00`).
fn rfc3339(raw: &str, field: &'static str) -> Result<DateTime<Utc>, ParseError> {
    DateTime::parse_from_rfc3339(raw).map(|d| d.with_timezone(&Utc)).map_err(|_| ParseError::Invalid { field, reason: "expected an RFC 3339 time".into() })
}

/// A command word without its leading slash (v2 sends `/help`, v1 `help`).
fn command_word(raw: &str) -> String {
    raw.trim().trim_start_matches('/').to_owned()
}
