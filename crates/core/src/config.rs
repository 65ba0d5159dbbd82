//! The one typed configuration, loaded once from the environment (the local runner reads its
//! `.env` file, lays the process environment over it and calls [`Config::from_map`]; it never
//! writes the process environment, which is `unsafe` in edition 2024).
//!
//! Every problem is reported at once, so a first-time user fixes their `.env` in one go. The
//! variable names are part of the product (the client's scripts use the same ones); they are the
//! `const`s in [`vars`], which the docs and (later) the CDK stack refer to. No other module reads the
//! environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::b24::WebhookBase;
use crate::domain::escalation::{self, EscalationRules};
use crate::domain::history::DEFAULT_HISTORY_TEXT_MAX_CHARS;
use crate::domain::ids::{BotId, MemberId};
use crate::domain::profile::DEFAULT_PROFILE_MAX_BYTES;
use crate::domain::secret::Secret;

mod access;
mod chatbot;
mod cost;
mod crm;
mod health;
mod sources;
mod window;

pub use access::AccessSettings;
pub use chatbot::{BotApi, ChatbotSettings};
pub use cost::{CostSettings, DEFAULT_RATE_LIMIT_NOTICE, RateLimit};
pub use crm::{CrmSettings, CsatSettings, DEFAULT_CSAT_PROMPT, DEFAULT_KEYBOARD_CONNECTORS, KeyboardMode, TimelineMode, UnboundPolicy};
pub use health::HealthSettings;
pub use sources::{Mode, PollSource, SourceSettings, TransferTo};

/// Environment variable names.
pub mod vars {
    /// Incoming webhook base `https://<portal>/rest/<user>/<code>/`.
    pub const B24_WEBHOOK_BASE: &str = "B24_WEBHOOK_BASE";
    /// The bot endpoint.
    pub const BOT_HTTP_URL: &str = "BOT_HTTP_URL";
    /// `Authorization` header value for the bot.
    pub const BOT_HTTP_AUTH: &str = "BOT_HTTP_AUTH";
    /// Bot call timeout, seconds (default 120).
    pub const BOT_HTTP_TIMEOUT_SEC: &str = "BOT_HTTP_TIMEOUT_SEC";
    /// Poll interval, seconds (default 2).
    pub const B24_POLL_SEC: &str = "B24_POLL_SEC";
    /// The business WhatsApp number, passed to the bot.
    pub const B24_BUSINESS_PHONE: &str = "B24_BUSINESS_PHONE";
    /// Expected `auth[application_token]` of events.
    pub const B24_APPLICATION_TOKEN: &str = "B24_APPLICATION_TOKEN";
    /// Our chatbot's id.
    pub const B24_BOT_ID: &str = "B24_BOT_ID";
    /// Our chatbot's `CLIENT_ID` (v1) or `botToken` (v2).
    pub const B24_BOT_CLIENT_ID: &str = "B24_BOT_CLIENT_ID";
    /// The chatbot API: `v1` (default) or `v2` (Chatbots 2.0).
    pub const OLBRIDGE_BOT_API: &str = "OLBRIDGE_BOT_API";
    /// Signs bot requests when set.
    pub const BOT_HMAC_SECRET: &str = "BOT_HMAC_SECRET";
    /// When set, events from another portal are refused.
    pub const B24_MEMBER_ID: &str = "B24_MEMBER_ID";
    /// Local runner listen address (default `127.0.0.1:8080`).
    pub const OLBRIDGE_LISTEN: &str = "OLBRIDGE_LISTEN";
    /// Embedded store directory (default `./.olbridge`).
    pub const OLBRIDGE_DATA_DIR: &str = "OLBRIDGE_DATA_DIR";
    /// Client-side request rate towards the portal, per second (default 2).
    pub const B24_RATE_PER_SEC: &str = "B24_RATE_PER_SEC";
    /// Client-side burst towards the portal (default 40, under the portal's 50).
    pub const B24_RATE_BURST: &str = "B24_RATE_BURST";
    /// Learn a smaller budget from the portal's `QUERY_LIMIT_EXCEEDED` (default true).
    pub const B24_RATE_ADAPTIVE: &str = "B24_RATE_ADAPTIVE";
    /// Send calls that wait for the rate budget together in one `batch` (default true).
    pub const B24_BATCH_REQUESTS: &str = "B24_BATCH_REQUESTS";
    /// Accepted age of an event's `ts`, seconds (default 300).
    pub const OLBRIDGE_TS_WINDOW_SEC: &str = "OLBRIDGE_TS_WINDOW_SEC";
    /// Quiet window before a turn starts, milliseconds (default 0: answer at once; what the
    /// customer writes while the bot thinks is folded into the next turn either way).
    pub const OLBRIDGE_BURST_MS: &str = "OLBRIDGE_BURST_MS";
    /// Escalation phrases, separated by `|` (replaces the defaults).
    pub const OLBRIDGE_ESCALATION_PHRASES: &str = "OLBRIDGE_ESCALATION_PHRASES";
    /// Lone escalation words, separated by `|` (replaces the defaults): they escalate only when
    /// they are the whole message.
    pub const OLBRIDGE_ESCALATION_WORDS: &str = "OLBRIDGE_ESCALATION_WORDS";
    /// What the customer is told when the chat goes to a human.
    pub const OLBRIDGE_HANDOFF_MESSAGE: &str = "OLBRIDGE_HANDOFF_MESSAGE";
    /// What the customer is told when the bot keeps failing.
    pub const OLBRIDGE_FALLBACK_MESSAGE: &str = "OLBRIDGE_FALLBACK_MESSAGE";
    /// Bot call attempts per turn (default 3).
    pub const OLBRIDGE_BOT_MAX_ATTEMPTS: &str = "OLBRIDGE_BOT_MAX_ATTEMPTS";
    /// Total time for a turn's bot attempts, seconds (default 300).
    pub const OLBRIDGE_BOT_RETRY_BUDGET_SEC: &str = "OLBRIDGE_BOT_RETRY_BUDGET_SEC";
    /// Turns run at once (default 64; they wait on the bot, not the CPU).
    pub const OLBRIDGE_WORKERS: &str = "OLBRIDGE_WORKERS";
    /// Deliveries of a job before it is dead-lettered (default 5).
    pub const OLBRIDGE_QUEUE_MAX_ATTEMPTS: &str = "OLBRIDGE_QUEUE_MAX_ATTEMPTS";
    /// Queue lease, seconds (default 30; renewed while a turn runs).
    pub const OLBRIDGE_LEASE_SEC: &str = "OLBRIDGE_LEASE_SEC";
    /// Deliveries interrupted by the process dying before a job counts as poison (default 30).
    pub const OLBRIDGE_POISON_RESTARTS: &str = "OLBRIDGE_POISON_RESTARTS";
    /// How long transient failures (portal down, store busy) are retried, seconds (default 3600).
    pub const OLBRIDGE_TRANSIENT_PATIENCE_SEC: &str = "OLBRIDGE_TRANSIENT_PATIENCE_SEC";
    /// `json` or `pretty` (default).
    pub const OLBRIDGE_LOG_FORMAT: &str = "OLBRIDGE_LOG_FORMAT";
    /// The public URL Bitrix24 reaches the receiver at (for `register-bot`).
    pub const OLBRIDGE_PUBLIC_URL: &str = "OLBRIDGE_PUBLIC_URL";
    /// Profile retention, days (default 365).
    pub const OLBRIDGE_PROFILE_RETENTION_DAYS: &str = "OLBRIDGE_PROFILE_RETENTION_DAYS";
    /// Conversation history retention, days (default 30).
    pub const OLBRIDGE_HISTORY_RETENTION_DAYS: &str = "OLBRIDGE_HISTORY_RETENTION_DAYS";
    /// Turn log retention, days (default 90).
    pub const OLBRIDGE_TURN_LOG_RETENTION_DAYS: &str = "OLBRIDGE_TURN_LOG_RETENTION_DAYS";
    /// Largest stored profile, bytes of JSON (default 16384); bigger bot patches are dropped.
    pub const OLBRIDGE_PROFILE_MAX_BYTES: &str = "OLBRIDGE_PROFILE_MAX_BYTES";
    /// Longest text of one history turn, characters (default 2000); longer ones are cut with `…`.
    pub const OLBRIDGE_HISTORY_TEXT_MAX_CHARS: &str = "OLBRIDGE_HISTORY_TEXT_MAX_CHARS";
    /// The DynamoDB table of the AWS deployment (every record kind in one table).
    pub const OLBRIDGE_TABLE: &str = "OLBRIDGE_TABLE";
    /// The SQS FIFO queue of the AWS deployment.
    pub const OLBRIDGE_QUEUE_URL: &str = "OLBRIDGE_QUEUE_URL";
    /// Its FIFO dead-letter queue (for `olbridge-aws dead-letters`).
    pub const OLBRIDGE_DLQ_URL: &str = "OLBRIDGE_DLQ_URL";
    /// The Secrets Manager secret holding the webhook, tokens and bot credentials (JSON, keys named
    /// like these variables).
    pub const OLBRIDGE_SECRET_ID: &str = "OLBRIDGE_SECRET_ID";
    /// How long a Lambda instance keeps the secret before reading it again, seconds (default 300).
    pub const OLBRIDGE_SECRET_TTL_SEC: &str = "OLBRIDGE_SECRET_TTL_SEC";
    /// Largest accepted event body, bytes (default 262144).
    pub const OLBRIDGE_MAX_BODY_BYTES: &str = "OLBRIDGE_MAX_BODY_BYTES";
    /// Time a connection has to send a complete request head, milliseconds (default 10000).
    pub const OLBRIDGE_HTTP_HEADER_TIMEOUT_MS: &str = "OLBRIDGE_HTTP_HEADER_TIMEOUT_MS";
    /// Time a request has to send its whole body once its head is in, milliseconds (default 10000).
    pub const OLBRIDGE_HTTP_BODY_TIMEOUT_MS: &str = "OLBRIDGE_HTTP_BODY_TIMEOUT_MS";
    /// Time a connection may wait, silent, for its first or next request, milliseconds (default 5000).
    pub const OLBRIDGE_HTTP_IDLE_TIMEOUT_MS: &str = "OLBRIDGE_HTTP_IDLE_TIMEOUT_MS";
    /// Connections the receiver holds at once (default 256; at most half the descriptor limit).
    pub const OLBRIDGE_MAX_CONNECTIONS: &str = "OLBRIDGE_MAX_CONNECTIONS";
    /// How messages reach the bridge: `push`, `fetch` or `operator` (default: `push` when
    /// `B24_BOT_ID` is set, otherwise `operator`).
    pub const OLBRIDGE_MODE: &str = "OLBRIDGE_MODE";
    /// Operator mode's source: `recent` (`im.recent.list`, default) or `events` (`im.v2.Event.get`).
    pub const OLBRIDGE_POLL_SOURCE: &str = "OLBRIDGE_POLL_SOURCE";
    /// With `OLBRIDGE_POLL_SOURCE=events`: how often the `im.recent.list` safety net runs, seconds
    /// (default 60).
    pub const OLBRIDGE_SWEEP_SEC: &str = "OLBRIDGE_SWEEP_SEC";
    /// Push mode: how often reconciliation looks for lost events, seconds (default 30; 0: off).
    pub const OLBRIDGE_RECONCILE_SEC: &str = "OLBRIDGE_RECONCILE_SEC";
    /// How old an unanswered message must be before reconciliation takes it, seconds (default 20).
    pub const OLBRIDGE_RECONCILE_GRACE_SEC: &str = "OLBRIDGE_RECONCILE_GRACE_SEC";
    /// Messages this long before the bridge's first start are still answered, seconds (default 0).
    pub const OLBRIDGE_BACKFILL_SEC: &str = "OLBRIDGE_BACKFILL_SEC";
    /// Operator mode: where handed-over chats go, `<user id>` or `queue<line id>` (default: the
    /// chat's own line's queue).
    pub const B24_TRANSFER_TO: &str = "B24_TRANSFER_TO";
    /// The portal's per-method operating-time limit over ten minutes, seconds (default 480).
    pub const B24_OPERATING_LIMIT_SEC: &str = "B24_OPERATING_LIMIT_SEC";
    /// Sources allowed to POST events, comma-separated IPv4/IPv6 CIDRs (default: every source).
    pub const OLBRIDGE_ALLOWED_CIDRS: &str = "OLBRIDGE_ALLOWED_CIDRS";
    /// Local runner: reverse proxies (CIDRs) whose `X-Forwarded-For` names the client (default: none).
    pub const OLBRIDGE_TRUSTED_PROXIES: &str = "OLBRIDGE_TRUSTED_PROXIES";
    /// Set to `1` to run with a `.env` file that group or others can read (with a warning).
    pub const OLBRIDGE_ALLOW_INSECURE_ENV: &str = "OLBRIDGE_ALLOW_INSECURE_ENV";
    /// Local runner: a directory for daily-rotated log files, besides stderr (default: none).
    pub const OLBRIDGE_LOG_DIR: &str = "OLBRIDGE_LOG_DIR";
    /// How many daily log files `OLBRIDGE_LOG_DIR` keeps (default 14).
    pub const OLBRIDGE_LOG_KEEP: &str = "OLBRIDGE_LOG_KEEP";
    /// WhatsApp's 24-hour window: `on` (default) or `off`.
    pub const OLBRIDGE_WINDOW_CHECK: &str = "OLBRIDGE_WINDOW_CHECK";
    /// No free text in the last this-many seconds of the window (default 60).
    pub const OLBRIDGE_WINDOW_MARGIN_SEC: &str = "OLBRIDGE_WINDOW_MARGIN_SEC";
    /// How long a cacheable FAQ answer is served without asking the bot, seconds (default 86400; 0: no cache).
    pub const OLBRIDGE_FAQ_CACHE_TTL_SEC: &str = "OLBRIDGE_FAQ_CACHE_TTL_SEC";
    /// Customer messages per window that reach the bot, per phone (default 20; 0: no limit).
    pub const OLBRIDGE_RATE_LIMIT_MESSAGES: &str = "OLBRIDGE_RATE_LIMIT_MESSAGES";
    /// The rate limit's window, seconds (default 60).
    pub const OLBRIDGE_RATE_LIMIT_WINDOW_SEC: &str = "OLBRIDGE_RATE_LIMIT_WINDOW_SEC";
    /// Told once per window to a customer over the rate limit.
    pub const OLBRIDGE_RATE_LIMIT_NOTICE: &str = "OLBRIDGE_RATE_LIMIT_NOTICE";
    /// Bot calls per phone per UTC day; past it the chat goes to a human (default 200; 0: unlimited).
    pub const OLBRIDGE_DAILY_BOT_CALLS: &str = "OLBRIDGE_DAILY_BOT_CALLS";
    /// The health check warns when the oldest pending job is older, seconds (default 300).
    pub const OLBRIDGE_HEALTH_QUEUE_WARN_SEC: &str = "OLBRIDGE_HEALTH_QUEUE_WARN_SEC";
    /// The health check fails when the oldest pending job is older, seconds (default 900).
    pub const OLBRIDGE_HEALTH_QUEUE_FAIL_SEC: &str = "OLBRIDGE_HEALTH_QUEUE_FAIL_SEC";
    /// The canary's dialog (default: the private dialog with `B24_BOT_ID`).
    pub const OLBRIDGE_CANARY_DIALOG: &str = "OLBRIDGE_CANARY_DIALOG";
    /// How long the canary waits for the bot's reply, seconds (default 60).
    pub const OLBRIDGE_CANARY_TIMEOUT_SEC: &str = "OLBRIDGE_CANARY_TIMEOUT_SEC";
    /// `olbridge serve` runs the canary this often, seconds (default 0: never).
    pub const OLBRIDGE_CANARY_EVERY_SEC: &str = "OLBRIDGE_CANARY_EVERY_SEC";
    /// A chat bound to no CRM entity: `leave` (default) or `create_lead`.
    pub const OLBRIDGE_CRM_UNBOUND: &str = "OLBRIDGE_CRM_UNBOUND";
    /// Bot turns on the CRM timeline: `off`, `turn` or `session` (default).
    pub const OLBRIDGE_CRM_TIMELINE: &str = "OLBRIDGE_CRM_TIMELINE";
    /// `session` mode writes the condensed comment after this many quiet seconds (default 600).
    pub const OLBRIDGE_CRM_TIMELINE_QUIET_SEC: &str = "OLBRIDGE_CRM_TIMELINE_QUIET_SEC";
    /// Ask for CSAT after every Nth bot answer of a chat (0: never, the default).
    pub const OLBRIDGE_CSAT_EVERY: &str = "OLBRIDGE_CSAT_EVERY";
    /// The CSAT prompt's text.
    pub const OLBRIDGE_CSAT_PROMPT: &str = "OLBRIDGE_CSAT_PROMPT";
    /// 👍/👎 keyboard buttons on the CSAT prompt: `auto` (default), `always` or `never`.
    pub const OLBRIDGE_CSAT_KEYBOARD: &str = "OLBRIDGE_CSAT_KEYBOARD";
    /// The connectors `auto` shows the keyboard on (comma-separated; default `livechat,telegrambot`).
    pub const OLBRIDGE_CSAT_KEYBOARD_CONNECTORS: &str = "OLBRIDGE_CSAT_KEYBOARD_CONNECTORS";

    /// Every variable name above (docs and the deployment's checks read it).
    pub const ALL: &[&str] = &[
        B24_WEBHOOK_BASE,
        BOT_HTTP_URL,
        BOT_HTTP_AUTH,
        BOT_HTTP_TIMEOUT_SEC,
        B24_POLL_SEC,
        B24_BUSINESS_PHONE,
        B24_APPLICATION_TOKEN,
        B24_BOT_ID,
        B24_BOT_CLIENT_ID,
        OLBRIDGE_BOT_API,
        OLBRIDGE_MODE,
        BOT_HMAC_SECRET,
        B24_MEMBER_ID,
        OLBRIDGE_LISTEN,
        OLBRIDGE_DATA_DIR,
        B24_RATE_PER_SEC,
        B24_RATE_BURST,
        B24_RATE_ADAPTIVE,
        B24_BATCH_REQUESTS,
        OLBRIDGE_TS_WINDOW_SEC,
        OLBRIDGE_BURST_MS,
        OLBRIDGE_ESCALATION_PHRASES,
        OLBRIDGE_ESCALATION_WORDS,
        OLBRIDGE_HANDOFF_MESSAGE,
        OLBRIDGE_FALLBACK_MESSAGE,
        OLBRIDGE_BOT_MAX_ATTEMPTS,
        OLBRIDGE_BOT_RETRY_BUDGET_SEC,
        OLBRIDGE_WORKERS,
        OLBRIDGE_QUEUE_MAX_ATTEMPTS,
        OLBRIDGE_LEASE_SEC,
        OLBRIDGE_POISON_RESTARTS,
        OLBRIDGE_TRANSIENT_PATIENCE_SEC,
        OLBRIDGE_LOG_FORMAT,
        OLBRIDGE_PUBLIC_URL,
        OLBRIDGE_PROFILE_RETENTION_DAYS,
        OLBRIDGE_HISTORY_RETENTION_DAYS,
        OLBRIDGE_TURN_LOG_RETENTION_DAYS,
        OLBRIDGE_PROFILE_MAX_BYTES,
        OLBRIDGE_HISTORY_TEXT_MAX_CHARS,
        OLBRIDGE_TABLE,
        OLBRIDGE_QUEUE_URL,
        OLBRIDGE_DLQ_URL,
        OLBRIDGE_SECRET_ID,
        OLBRIDGE_SECRET_TTL_SEC,
        OLBRIDGE_MAX_BODY_BYTES,
        OLBRIDGE_HTTP_HEADER_TIMEOUT_MS,
        OLBRIDGE_HTTP_BODY_TIMEOUT_MS,
        OLBRIDGE_HTTP_IDLE_TIMEOUT_MS,
        OLBRIDGE_MAX_CONNECTIONS,
        OLBRIDGE_MODE,
        OLBRIDGE_POLL_SOURCE,
        OLBRIDGE_SWEEP_SEC,
        OLBRIDGE_RECONCILE_SEC,
        OLBRIDGE_RECONCILE_GRACE_SEC,
        OLBRIDGE_BACKFILL_SEC,
        B24_TRANSFER_TO,
        B24_OPERATING_LIMIT_SEC,
        OLBRIDGE_ALLOWED_CIDRS,
        OLBRIDGE_TRUSTED_PROXIES,
        OLBRIDGE_ALLOW_INSECURE_ENV,
        OLBRIDGE_LOG_DIR,
        OLBRIDGE_LOG_KEEP,
        OLBRIDGE_WINDOW_CHECK,
        OLBRIDGE_WINDOW_MARGIN_SEC,
        OLBRIDGE_FAQ_CACHE_TTL_SEC,
        OLBRIDGE_RATE_LIMIT_MESSAGES,
        OLBRIDGE_RATE_LIMIT_WINDOW_SEC,
        OLBRIDGE_RATE_LIMIT_NOTICE,
        OLBRIDGE_DAILY_BOT_CALLS,
        OLBRIDGE_HEALTH_QUEUE_WARN_SEC,
        OLBRIDGE_HEALTH_QUEUE_FAIL_SEC,
        OLBRIDGE_CANARY_DIALOG,
        OLBRIDGE_CANARY_TIMEOUT_SEC,
        OLBRIDGE_CANARY_EVERY_SEC,
        OLBRIDGE_CRM_UNBOUND,
        OLBRIDGE_CRM_TIMELINE,
        OLBRIDGE_CRM_TIMELINE_QUIET_SEC,
        OLBRIDGE_CSAT_EVERY,
        OLBRIDGE_CSAT_PROMPT,
        OLBRIDGE_CSAT_KEYBOARD,
        OLBRIDGE_CSAT_KEYBOARD_CONNECTORS,
    ];
}

/// Every problem found while loading, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// The portal side.
#[derive(Debug, Clone)]
pub struct PortalSettings {
    /// `B24_WEBHOOK_BASE`.
    pub webhook: Option<WebhookBase>,
    /// `B24_APPLICATION_TOKEN`.
    pub application_token: Option<Secret>,
    /// `B24_MEMBER_ID`.
    pub member_id: Option<MemberId>,
    /// `B24_BOT_ID`.
    pub bot_id: Option<BotId>,
    /// `B24_BOT_CLIENT_ID`.
    pub bot_client_id: Option<Secret>,
    /// `B24_BUSINESS_PHONE`.
    pub business_phone: Option<String>,
    /// `B24_RATE_PER_SEC`.
    pub rate_per_sec: f64,
    /// `B24_RATE_BURST`.
    pub rate_burst: u32,
    /// `B24_RATE_ADAPTIVE`.
    pub rate_adaptive: bool,
    /// `B24_BATCH_REQUESTS`.
    pub batch_requests: bool,
    /// `B24_POLL_SEC`.
    pub poll_interval: Duration,
    /// `OLBRIDGE_TS_WINDOW_SEC`.
    pub ts_window: Duration,
    /// `OLBRIDGE_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
}

/// The bot side. `Debug` shows only the bot URL's origin: its path or query may hold a token.
#[derive(Clone)]
pub struct BotSettings {
    /// `BOT_HTTP_URL`.
    pub url: Option<Url>,
    /// `BOT_HTTP_AUTH`.
    pub auth: Option<Secret>,
    /// `BOT_HTTP_TIMEOUT_SEC`.
    pub timeout: Duration,
    /// `BOT_HMAC_SECRET`.
    pub hmac_secret: Option<Secret>,
    /// `OLBRIDGE_BOT_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `OLBRIDGE_BOT_RETRY_BUDGET_SEC`.
    pub retry_budget: Duration,
}

impl std::fmt::Debug for BotSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotSettings")
            .field("url_origin", &self.url.as_ref().map(|u| u.origin().ascii_serialization()))
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .field("hmac_secret", &self.hmac_secret)
            .field("max_attempts", &self.max_attempts)
            .field("retry_budget", &self.retry_budget)
            .finish()
    }
}

/// How conversations are run.
#[derive(Debug, Clone)]
pub struct ConversationSettings {
    /// `OLBRIDGE_ESCALATION_PHRASES` and `OLBRIDGE_ESCALATION_WORDS`, or their defaults.
    pub escalation: EscalationRules,
    /// `OLBRIDGE_HANDOFF_MESSAGE`.
    pub handoff_message: String,
    /// `OLBRIDGE_FALLBACK_MESSAGE`.
    pub fallback_message: String,
    /// `OLBRIDGE_BURST_MS`.
    pub burst_window: Duration,
    /// `OLBRIDGE_PROFILE_RETENTION_DAYS`.
    pub profile_retention: Duration,
    /// `OLBRIDGE_HISTORY_RETENTION_DAYS`: how long conversation history is kept.
    pub history_retention: Duration,
    /// `OLBRIDGE_TURN_LOG_RETENTION_DAYS`: how long the turn log is kept.
    pub turn_log_retention: Duration,
    /// `OLBRIDGE_PROFILE_MAX_BYTES`: the limit for [`crate::domain::profile::Profile::merge_bounded`].
    pub profile_max_bytes: usize,
    /// `OLBRIDGE_HISTORY_TEXT_MAX_CHARS`: the cap for [`crate::domain::history::cap_history_text`].
    pub history_text_max_chars: usize,
    /// `OLBRIDGE_WINDOW_CHECK` and `OLBRIDGE_WINDOW_MARGIN_SEC`: WhatsApp's 24-hour window.
    pub window: crate::domain::window::WindowPolicy,
    /// The FAQ answer cache, the rate limit and the daily bot-call cap.
    pub cost: CostSettings,
}

/// The local runner.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// `OLBRIDGE_LISTEN`.
    pub listen: SocketAddr,
    /// `OLBRIDGE_DATA_DIR`.
    pub data_dir: PathBuf,
    /// `OLBRIDGE_WORKERS`.
    pub workers: usize,
    /// `OLBRIDGE_QUEUE_MAX_ATTEMPTS`.
    pub queue_max_attempts: u32,
    /// `OLBRIDGE_LEASE_SEC`.
    pub lease: Duration,
    /// `OLBRIDGE_POISON_RESTARTS`.
    pub poison_restarts: u32,
    /// `OLBRIDGE_TRANSIENT_PATIENCE_SEC`.
    pub transient_patience: Duration,
    /// `OLBRIDGE_LOG_FORMAT=json`.
    pub log_json: bool,
    /// `OLBRIDGE_LOG_DIR`: `olbridge serve` also logs to daily-rotated files there.
    pub log_dir: Option<PathBuf>,
    /// `OLBRIDGE_LOG_KEEP`: how many daily log files are kept (default 14).
    pub log_keep: usize,
    /// `OLBRIDGE_PUBLIC_URL`.
    pub public_url: Option<Url>,
    /// The receiver's connection limits.
    pub receiver: ReceiverLimits,
}

/// How long the receiver waits on a client, and how many clients it holds at once: what keeps slow
/// or silent connections from starving genuine events (see the runner's `listener` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverLimits {
    /// `OLBRIDGE_HTTP_HEADER_TIMEOUT_MS`: from the moment the receiver waits for a request (a new
    /// connection, or the end of the previous response) until its head is complete.
    pub header_timeout: Duration,
    /// `OLBRIDGE_HTTP_BODY_TIMEOUT_MS`: from the complete head until the complete body.
    pub body_timeout: Duration,
    /// `OLBRIDGE_HTTP_IDLE_TIMEOUT_MS`: until the first byte of a request on a new or kept-alive
    /// connection; the header timeout runs alongside, so the shorter of the two applies.
    pub idle_timeout: Duration,
    /// `OLBRIDGE_MAX_CONNECTIONS`.
    pub max_connections: usize,
}

impl Default for ReceiverLimits {
    fn default() -> Self {
        Self { header_timeout: Duration::from_secs(10), body_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(5), max_connections: 256 }
    }
}

/// The AWS deployment's resources (read by the Lambda functions; the local runner ignores them).
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// `OLBRIDGE_TABLE`.
    pub table: Option<String>,
    /// `OLBRIDGE_QUEUE_URL`.
    pub queue_url: Option<String>,
    /// `OLBRIDGE_DLQ_URL`.
    pub dlq_url: Option<String>,
    /// `OLBRIDGE_SECRET_ID`.
    pub secret_id: Option<String>,
    /// `OLBRIDGE_SECRET_TTL_SEC`.
    pub secret_ttl: Duration,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Portal.
    pub portal: PortalSettings,
    /// Bot.
    pub bot: BotSettings,
    /// Conversations.
    pub conversation: ConversationSettings,
    /// Local runner.
    pub runner: RunnerSettings,
    /// The AWS deployment.
    pub aws: AwsSettings,
    /// Message sources.
    pub sources: SourceSettings,
    /// The chatbot API and whether its events are fetched.
    pub chatbot: ChatbotSettings,
    /// Who may POST events.
    pub access: AccessSettings,
    /// The deep health check and the canary.
    pub health: HealthSettings,
    /// The CRM binding and timeline.
    pub crm: CrmSettings,
    /// The CSAT prompt.
    pub csat: CsatSettings,
}

/// The customer-facing text sent when the chat goes to a human.
pub const DEFAULT_HANDOFF_MESSAGE: &str = "Thank you! I'm connecting you with a member of our team. They will reply here shortly.";
/// The customer-facing text sent when the bot keeps failing.
pub const DEFAULT_FALLBACK_MESSAGE: &str = "Sorry, I can't answer right now. I've passed your message to a member of our team, who will reply here shortly.";

struct Reader<'a> {
    env: &'a HashMap<String, String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn raw(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn parse<T>(&mut self, name: &str, what: &str, f: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let raw = self.raw(name)?;
        match f(raw) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(format!("{name}: {what} ({e})"));
                None
            }
        }
    }

    fn number<T: std::str::FromStr>(&mut self, name: &str, default: T, ok: impl Fn(&T) -> bool, what: &str) -> T {
        self.parse(name, what, |s| s.parse::<T>().map_err(|_| "not a number".to_owned()).and_then(|v| if ok(&v) { Ok(v) } else { Err("out of range".into()) }))
            .unwrap_or(default)
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        self.raw(name).map(Secret::new)
    }

    fn text(&self, name: &str) -> Option<String> {
        self.raw(name).map(str::to_owned)
    }
}

fn receiver_limits(r: &mut Reader<'_>) -> ReceiverLimits {
    use vars::*;
    let defaults = ReceiverLimits::default();
    let mut millis = |name: &str, default: Duration| {
        let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(r.number(name, default, |v: &u64| (10..=600_000).contains(v), "expected milliseconds, 10..=600000"))
    };
    let header_timeout = millis(OLBRIDGE_HTTP_HEADER_TIMEOUT_MS, defaults.header_timeout);
    let body_timeout = millis(OLBRIDGE_HTTP_BODY_TIMEOUT_MS, defaults.body_timeout);
    let idle_timeout = millis(OLBRIDGE_HTTP_IDLE_TIMEOUT_MS, defaults.idle_timeout);
    let max_connections = r.number(OLBRIDGE_MAX_CONNECTIONS, defaults.max_connections, |v: &usize| (1..=65_536).contains(v), "expected 1..=65536");
    ReceiverLimits { header_timeout, body_timeout, idle_timeout, max_connections }
}

impl Config {
    /// How messages reach the bridge: `OLBRIDGE_MODE`, or when it is not set, `push` if a bot is
    /// configured (`B24_BOT_ID`) and `operator` otherwise, so the old polling bridge's `.env`
    /// (webhook, bot URL, poll interval) runs unchanged.
    pub fn mode(&self) -> Mode {
        self.sources.mode.unwrap_or(if self.portal.bot_id.is_some() { Mode::Push } else { Mode::Operator })
    }

    /// Loads from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&std::env::vars().collect())
    }

    /// Loads from a map of variables (tests, and the demo, which builds its own).
    pub fn from_map(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        use vars::*;
        let mut r = Reader { env, problems: Vec::new() };

        let webhook = r.parse(B24_WEBHOOK_BASE, "expected https://<portal>/rest/<user id>/<code>/", |s| WebhookBase::parse(s).map_err(|e| e.to_string()));
        let member_id = r.parse(B24_MEMBER_ID, "expected the portal's member id", |s| MemberId::parse(s).map_err(|e| e.to_string()));
        let bot_id = r.parse(B24_BOT_ID, "expected the numeric bot id", |s| BotId::parse(s).map_err(|e| e.to_string()));
        let bot_url = r.parse(BOT_HTTP_URL, "expected an http(s) URL", |s| {
            Url::parse(s)
                .map_err(|e| e.to_string())
                .and_then(|u| if matches!(u.scheme(), "http" | "https") { Ok(u) } else { Err("scheme must be http or https".into()) })
        });
        let public_url = r.parse(OLBRIDGE_PUBLIC_URL, "expected an http(s) URL", |s| Url::parse(s).map_err(|e| e.to_string()));
        let listen = r.parse(OLBRIDGE_LISTEN, "expected host:port", |s| s.parse::<SocketAddr>().map_err(|e| e.to_string()));
        let log_json = r.parse(OLBRIDGE_LOG_FORMAT, "expected json or pretty", |s| match s {
            "json" => Ok(true),
            "pretty" | "text" => Ok(false),
            _ => Err("unknown format".into()),
        });

        let portal = PortalSettings {
            application_token: r.secret(B24_APPLICATION_TOKEN),
            bot_client_id: r.secret(B24_BOT_CLIENT_ID),
            business_phone: r.text(B24_BUSINESS_PHONE),
            rate_per_sec: r.number(
                B24_RATE_PER_SEC,
                2.0,
                |v: &f64| *v > 0.0 && *v <= 1000.0,
                "expected requests per second, 0 < n <= 1000 (self-hosted portals may allow more than the cloud)",
            ),
            rate_burst: r.number(B24_RATE_BURST, 40, |v: &u32| (1..=1000).contains(v), "expected 1..=1000"),
            rate_adaptive: r.number(B24_RATE_ADAPTIVE, true, |_| true, "expected true or false"),
            batch_requests: r.number(B24_BATCH_REQUESTS, true, |_| true, "expected true or false"),
            poll_interval: Duration::from_secs_f64(r.number(B24_POLL_SEC, 2.0, |v: &f64| *v >= 0.1 && *v <= 3600.0, "expected seconds, 0.1..=3600")),
            ts_window: Duration::from_secs(r.number(OLBRIDGE_TS_WINDOW_SEC, 300, |v: &u64| (1..=86_400).contains(v), "expected seconds, 1..=86400")),
            max_body_bytes: r.number(OLBRIDGE_MAX_BODY_BYTES, 256 * 1024, |v: &usize| (1024..=16 * 1024 * 1024).contains(v), "expected bytes, 1024..=16777216"),
            webhook,
            member_id,
            bot_id,
        };
        let bot = BotSettings {
            url: bot_url,
            auth: r.secret(BOT_HTTP_AUTH),
            timeout: Duration::from_secs_f64(r.number(BOT_HTTP_TIMEOUT_SEC, 120.0, |v: &f64| *v > 0.0 && *v <= 900.0, "expected seconds, 0 < n <= 900")),
            hmac_secret: r.secret(BOT_HMAC_SECRET),
            max_attempts: r.number(OLBRIDGE_BOT_MAX_ATTEMPTS, 3, |v: &u32| (1..=10).contains(v), "expected 1..=10"),
            retry_budget: Duration::from_secs_f64(r.number(
                OLBRIDGE_BOT_RETRY_BUDGET_SEC,
                300.0,
                |v: &f64| *v > 0.0 && *v <= 3600.0,
                "expected seconds, 0 < n <= 3600",
            )),
        };
        // Each list replaces its own defaults; `|` alone (an empty list) turns that rule off.
        let phrases = r.raw(OLBRIDGE_ESCALATION_PHRASES).map_or_else(|| escalation::owned(escalation::DEFAULT_PHRASES), EscalationRules::parse_list);
        let words = r.raw(OLBRIDGE_ESCALATION_WORDS).map_or_else(|| escalation::owned(escalation::DEFAULT_WORDS), EscalationRules::parse_list);
        let escalation = EscalationRules::new(phrases).with_words(words);
        let conversation = ConversationSettings {
            escalation,
            handoff_message: r.text(OLBRIDGE_HANDOFF_MESSAGE).unwrap_or_else(|| DEFAULT_HANDOFF_MESSAGE.into()),
            fallback_message: r.text(OLBRIDGE_FALLBACK_MESSAGE).unwrap_or_else(|| DEFAULT_FALLBACK_MESSAGE.into()),
            burst_window: Duration::from_millis(r.number(OLBRIDGE_BURST_MS, 0, |v: &u64| *v <= 60_000, "expected milliseconds, 0..=60000")),
            profile_retention: Duration::from_secs(
                86_400 * r.number(OLBRIDGE_PROFILE_RETENTION_DAYS, 365, |v: &u64| (1..=3650).contains(v), "expected days, 1..=3650"),
            ),
            history_retention: Duration::from_secs(
                86_400 * r.number(OLBRIDGE_HISTORY_RETENTION_DAYS, 30, |v: &u64| (1..=3650).contains(v), "expected days, 1..=3650"),
            ),
            turn_log_retention: Duration::from_secs(
                86_400 * r.number(OLBRIDGE_TURN_LOG_RETENTION_DAYS, 90, |v: &u64| (1..=3650).contains(v), "expected days, 1..=3650"),
            ),
            profile_max_bytes: r.number(
                OLBRIDGE_PROFILE_MAX_BYTES,
                DEFAULT_PROFILE_MAX_BYTES,
                |v: &usize| (1024..=1024 * 1024).contains(v),
                "expected bytes, 1024..=1048576",
            ),
            history_text_max_chars: r.number(
                OLBRIDGE_HISTORY_TEXT_MAX_CHARS,
                DEFAULT_HISTORY_TEXT_MAX_CHARS,
                |v: &usize| (100..=100_000).contains(v),
                "expected characters, 100..=100000",
            ),
            window: window::read(&mut r),
            cost: cost::read(&mut r),
        };
        let runner = RunnerSettings {
            listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: r.text(OLBRIDGE_DATA_DIR).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".olbridge")),
            workers: r.number(OLBRIDGE_WORKERS, 64, |v: &usize| (1..=4096).contains(v), "expected 1..=4096"),
            queue_max_attempts: r.number(OLBRIDGE_QUEUE_MAX_ATTEMPTS, 5, |v: &u32| (1..=100).contains(v), "expected 1..=100"),
            lease: Duration::from_secs(r.number(OLBRIDGE_LEASE_SEC, 30, |v: &u64| (3..=3600).contains(v), "expected seconds, 3..=3600")),
            poison_restarts: r.number(OLBRIDGE_POISON_RESTARTS, 30, |v: &u32| (1..=10_000).contains(v), "expected 1..=10000"),
            transient_patience: Duration::from_secs(r.number(
                OLBRIDGE_TRANSIENT_PATIENCE_SEC,
                3600,
                |v: &u64| (1..=7 * 86_400).contains(v),
                "expected seconds, 1..=604800",
            )),
            log_json: log_json.unwrap_or(false),
            log_dir: r.text(OLBRIDGE_LOG_DIR).map(PathBuf::from),
            log_keep: r.number(OLBRIDGE_LOG_KEEP, 14, |v: &usize| (1..=3650).contains(v), "expected a number of files, 1..=3650"),
            public_url,
            receiver: receiver_limits(&mut r),
        };
        let aws = AwsSettings {
            table: r.text(OLBRIDGE_TABLE),
            queue_url: r.text(OLBRIDGE_QUEUE_URL),
            dlq_url: r.text(OLBRIDGE_DLQ_URL),
            secret_id: r.text(OLBRIDGE_SECRET_ID),
            secret_ttl: Duration::from_secs(r.number(OLBRIDGE_SECRET_TTL_SEC, 300, |v: &u64| (1..=86_400).contains(v), "expected seconds, 1..=86400")),
        };
        let sources = sources::read(&mut r);
        let chatbot = chatbot::read(&mut r);
        let access = access::read(&mut r);
        let health = health::read(&mut r);
        let crm = crm::read(&mut r);
        let csat = crm::read_csat(&mut r);
        if r.problems.is_empty() {
            Ok(Self { portal, bot, conversation, runner, aws, sources, chatbot, access, health, crm, csat })
        } else {
            Err(ConfigError(r.problems))
        }
    }

    /// Checks what `olbridge serve` needs beyond what parses: a portal, a bot to call, a way to
    /// verify events and a bot to answer as. Every missing piece is listed, with the fix.
    pub fn check_serve(&self) -> Result<(), ConfigError> {
        use vars::*;
        let mut p = Vec::new();
        let mode = self.mode();
        if self.portal.webhook.is_none() {
            let scopes = if mode == Mode::Operator { "im, imopenlines" } else { "im, imopenlines, imbot" };
            p.push(format!("{B24_WEBHOOK_BASE} is not set: create an incoming webhook in Bitrix24 (scopes {scopes}) and paste its URL"));
        }
        if self.bot.url.is_none() {
            p.push(format!("{BOT_HTTP_URL} is not set: the URL of your bot's HTTP endpoint"));
        }
        if let (Some(TransferTo::User(u)), Some(w)) = (self.sources.transfer_to, &self.portal.webhook)
            && u == w.user_id()
        {
            p.push(format!("{B24_TRANSFER_TO} is the webhook's own user ({u}): a chat cannot be handed over to the user handing it over; name a human operator or queue<line id>"));
        }
        if mode == Mode::Operator {
            return if p.is_empty() { Ok(()) } else { Err(ConfigError(p)) };
        }
        let register = if self.chatbot.api == BotApi::V2 { "olbridge register-bot --v2" } else { "olbridge register-bot" };
        match (self.chatbot.api, mode == Mode::Fetch) {
            (BotApi::V1, true) => p.push(format!(
                "{OLBRIDGE_MODE}=fetch needs a Chatbots 2.0 bot: set {OLBRIDGE_BOT_API}=v2 and register one with `olbridge register-bot --v2 --fetch`"
            )),
            (BotApi::V1, false) if self.portal.application_token.is_none() && self.portal.bot_client_id.is_none() => {
                p.push(format!("neither {B24_APPLICATION_TOKEN} nor {B24_BOT_CLIENT_ID} is set: events could not be verified (run `olbridge register-bot`)"))
            }
            // A v2 bot's events carry the portal's application token, never the botToken.
            (BotApi::V2, false) if self.portal.application_token.is_none() => p.push(format!(
                "{B24_APPLICATION_TOKEN} is not set: Chatbots 2.0 events are verified against their auth[application_token] (see docs/bitrix24-setup.md), \
                 or run without a public endpoint in fetch mode ({OLBRIDGE_MODE}=fetch, `olbridge register-bot --v2 --fetch`)"
            )),
            _ => {}
        }
        if self.portal.bot_id.is_none() || self.portal.bot_client_id.is_none() {
            p.push(format!("{B24_BOT_ID} and {B24_BOT_CLIENT_ID} must be set: run `{register}` and copy the lines it prints"));
        }
        if p.is_empty() { Ok(()) } else { Err(ConfigError(p)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = Config::from_map(&HashMap::new()).expect("empty config loads");
        assert_eq!(c.bot.timeout, Duration::from_secs(120));
        assert_eq!(c.portal.poll_interval, Duration::from_secs(2));
        assert_eq!(c.runner.listen.to_string(), "127.0.0.1:8080");
        assert_eq!((c.conversation.profile_max_bytes, c.conversation.history_text_max_chars), (16 * 1024, 2000));
        assert!(c.check_serve().is_err());
    }

    #[test]
    fn receiver_limits_have_defaults_and_are_range_checked() {
        let c = Config::from_map(&HashMap::new()).expect("empty config loads");
        assert_eq!(c.runner.receiver, ReceiverLimits::default());
        let c = Config::from_map(&env(&[("OLBRIDGE_HTTP_HEADER_TIMEOUT_MS", "250"), ("OLBRIDGE_MAX_CONNECTIONS", "8")])).expect("valid");
        assert_eq!(c.runner.receiver.header_timeout, Duration::from_millis(250));
        assert_eq!(c.runner.receiver.max_connections, 8);
        let e = Config::from_map(&env(&[
            ("OLBRIDGE_HTTP_HEADER_TIMEOUT_MS", "0"),
            ("OLBRIDGE_HTTP_BODY_TIMEOUT_MS", "soon"),
            ("OLBRIDGE_HTTP_IDLE_TIMEOUT_MS", "9999999"),
            ("OLBRIDGE_MAX_CONNECTIONS", "0"),
        ]))
        .expect_err("invalid");
        assert_eq!(e.0.len(), 4, "{e}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = Config::from_map(&env(&[("BOT_HTTP_TIMEOUT_SEC", "soon"), ("B24_BOT_ID", "abc"), ("OLBRIDGE_LISTEN", "nowhere"), ("BOT_HTTP_URL", "ftp://x")]))
            .expect_err("invalid");
        assert_eq!(e.0.len(), 4, "{e}");
        assert!(e.to_string().contains("BOT_HTTP_TIMEOUT_SEC"));
    }

    #[test]
    fn memory_limits_are_read_and_checked() {
        let c = Config::from_map(&env(&[("OLBRIDGE_PROFILE_MAX_BYTES", "65536"), ("OLBRIDGE_HISTORY_TEXT_MAX_CHARS", "500")])).expect("valid");
        assert_eq!((c.conversation.profile_max_bytes, c.conversation.history_text_max_chars), (65_536, 500));
        let e = Config::from_map(&env(&[("OLBRIDGE_PROFILE_MAX_BYTES", "10"), ("OLBRIDGE_HISTORY_TEXT_MAX_CHARS", "lots")])).expect_err("invalid");
        assert_eq!(e.0.len(), 2, "{e}");
    }

    #[test]
    fn retention_periods_default_and_are_read_in_days() {
        const DAY: u64 = 86_400;
        let c = Config::from_map(&HashMap::new()).expect("defaults");
        let periods = |c: &Config| (c.conversation.profile_retention, c.conversation.history_retention, c.conversation.turn_log_retention);
        assert_eq!(periods(&c), (Duration::from_secs(365 * DAY), Duration::from_secs(30 * DAY), Duration::from_secs(90 * DAY)));
        let c = Config::from_map(&env(&[("OLBRIDGE_HISTORY_RETENTION_DAYS", "7"), ("OLBRIDGE_TURN_LOG_RETENTION_DAYS", "14")])).expect("valid");
        assert_eq!(periods(&c).1, Duration::from_secs(7 * DAY));
        assert_eq!(periods(&c).2, Duration::from_secs(14 * DAY));
        let e = Config::from_map(&env(&[("OLBRIDGE_HISTORY_RETENTION_DAYS", "0"), ("OLBRIDGE_TURN_LOG_RETENTION_DAYS", "forever")])).expect_err("invalid");
        assert_eq!(e.0.len(), 2, "{e}");
    }

    #[test]
    fn escalation_phrases_and_words_are_configured_separately() {
        let defaults = Config::from_map(&HashMap::new()).expect("defaults");
        assert_eq!(defaults.conversation.escalation, EscalationRules::default());
        let words_only = Config::from_map(&env(&[("OLBRIDGE_ESCALATION_WORDS", "socorro | aide")])).expect("valid").conversation.escalation;
        assert_eq!(words_only.lone_words().collect::<Vec<_>>(), vec!["socorro", "aide"]);
        assert_eq!(words_only.matches("help"), None, "the configured words replace the default ones");
        assert_eq!(words_only.matches("an agent please"), Some("agent"), "the default phrases stay");
        let phrases_only = Config::from_map(&env(&[("OLBRIDGE_ESCALATION_PHRASES", "refund")])).expect("valid").conversation.escalation;
        assert_eq!(phrases_only.matches("HELP!"), Some("help"), "the default words stay");
        assert_eq!(phrases_only.matches("agent"), None);
        let off = Config::from_map(&env(&[("OLBRIDGE_ESCALATION_WORDS", "|")])).expect("valid").conversation.escalation;
        assert_eq!(off.lone_words().count(), 0);
    }

    #[test]
    fn the_chatbot_api_and_fetch_mode_are_read_and_checked_for_serve() {
        let base = [
            ("B24_WEBHOOK_BASE", "https://example.bitrix24.com/rest/38005/code123456/"),
            ("BOT_HTTP_URL", "http://bot"),
            ("B24_BOT_ID", "7"),
            ("B24_BOT_CLIENT_ID", "tok"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| Config::from_map(&env(&[&base[..], extra].concat()));
        let v1 = with(&[]).expect("valid");
        assert_eq!((v1.chatbot, v1.mode()), (ChatbotSettings { api: BotApi::V1 }, Mode::Push));
        assert!(v1.check_serve().is_ok(), "v1 verifies with the CLIENT_ID");
        let v2 = with(&[("OLBRIDGE_BOT_API", "v2")]).expect("valid");
        let e = v2.check_serve().expect_err("v2 webhook mode needs the application token");
        assert!(e.0.len() == 1 && e.0[0].contains("B24_APPLICATION_TOKEN"), "{e}");
        assert!(with(&[("OLBRIDGE_BOT_API", "v2"), ("B24_APPLICATION_TOKEN", "app")]).expect("valid").check_serve().is_ok());
        let fetch = with(&[("OLBRIDGE_BOT_API", "V2"), ("OLBRIDGE_MODE", "fetch")]).expect("valid");
        assert_eq!((fetch.chatbot, fetch.mode()), (ChatbotSettings { api: BotApi::V2 }, Mode::Fetch));
        assert!(fetch.check_serve().is_ok(), "fetch mode verifies nothing: it pulls");
        let e = with(&[("OLBRIDGE_MODE", "fetch")]).expect("valid").check_serve().expect_err("v1 cannot fetch");
        assert!(e.0[0].contains("OLBRIDGE_BOT_API=v2"), "{e}");
        let e = with(&[("OLBRIDGE_BOT_API", "v3"), ("OLBRIDGE_MODE", "pull")]).expect_err("invalid");
        assert_eq!(e.0.len(), 2, "{e}");
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let c = Config::from_map(&env(&[
            ("B24_WEBHOOK_BASE", "https://example.bitrix24.com/rest/38005/supersecretcode/"),
            ("BOT_HTTP_AUTH", "Bearer topsecret"),
            ("B24_APPLICATION_TOKEN", "apptoken123"),
            ("BOT_HTTP_URL", "https://bot.example/hook/pathtoken?key=querytoken"),
        ]))
        .expect("valid");
        let dbg = format!("{c:?}");
        assert!(dbg.contains("https://bot.example"), "{dbg}");
        for s in ["supersecretcode", "topsecret", "apptoken123", "pathtoken", "querytoken"] {
            assert!(!dbg.contains(s), "{s} leaked: {dbg}");
        }
    }
}
