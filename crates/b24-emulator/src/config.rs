//! Emulator configuration: one typed struct, given once at start.
//!
//! Everything the contract marks UNCONFIRMED that changes what a client sees is a field here (or a per-bot /
//! per-line setting reachable through the Rust and control APIs), so a test can pin the assumption it relies on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The leaky-bucket parameters of the per-portal request limiter (contract §2.1).
///
/// Every request adds 1 to a counter that drains by `per_sec` per second; a request that would lift the counter
/// above `burst` is refused with HTTP 503 `QUERY_LIMIT_EXCEEDED`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Drain per second (the sustainable request rate).
    pub per_sec: f64,
    /// Bucket size before requests are refused.
    pub burst: f64,
}

impl RateLimit {
    /// Every plan except Enterprise: 2 requests/s, burst 50.
    pub const STANDARD: RateLimit = RateLimit { per_sec: 2.0, burst: 50.0 };
    /// Enterprise plan: 5 requests/s, burst 250.
    pub const ENTERPRISE: RateLimit = RateLimit { per_sec: 5.0, burst: 250.0 };
    /// No practical limit; for tests that are not about rate limiting.
    pub const UNLIMITED: RateLimit = RateLimit { per_sec: 1.0e9, burst: 1.0e12 };
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::STANDARD
    }
}

/// Per-method operating-time accounting (contract §2.2; SRC `Bitrix\Rest\Engine\Access\LoadLimiter`).
///
/// What each successful call is charged comes from [`OperatingLimit::cost_of`]: `costs` first, then the
/// built-in table ([`OperatingLimit::builtin_cost`]). See the crate README for the numbers and why.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatingLimit {
    /// Account and enforce at all (off: `time.operating` is always 0 and nothing is refused).
    pub enabled: bool,
    /// The limit per webhook and method in the window (DOC example and 2024 docs: 480 s; SRC default 420 s;
    /// the current cloud value is UNCONFIRMED, contract §10 item 11).
    pub limit: Duration,
    /// Bucket length (SRC `$bucketSize = 60`).
    pub bucket: Duration,
    /// Buckets in the window (SRC `$bucketCount = 10`).
    pub buckets: u32,
    /// A method's charges within one request are stored only when their sum exceeds this
    /// (SRC `$minimalFixTime = 0.1`). `Duration::ZERO` counts every call.
    pub min_counted: Duration,
    /// Per-method charges overriding the built-in table (method names case-insensitive).
    pub costs: BTreeMap<String, Duration>,
}

impl Default for OperatingLimit {
    fn default() -> Self {
        OperatingLimit {
            enabled: true,
            limit: Duration::from_secs(480),
            bucket: Duration::from_secs(60),
            buckets: 10,
            min_counted: Duration::from_millis(100),
            costs: BTreeMap::new(),
        }
    }
}

impl OperatingLimit {
    /// What one successful call of `method` is charged: an override from `costs`, else the built-in table.
    pub fn cost_of(&self, method: &str) -> Duration {
        self.costs.iter().find(|(m, _)| m.eq_ignore_ascii_case(method)).map_or_else(|| Self::builtin_cost(method), |(_, d)| *d)
    }

    /// The built-in table: 200 ms for CRM lists, 120 ms for message-history and recent-chat reads, 50 ms for
    /// writes (send, add, update, register, session changes), 30 ms for event polling, 10 ms for the rest.
    pub fn builtin_cost(method: &str) -> Duration {
        let m = method.to_ascii_lowercase();
        let ms = if m.starts_with("crm.") && m.ends_with(".list") {
            200
        } else if ["im.recent.list", "im.recent.get", "im.dialog.messages.get", "imopenlines.session.history.get", "imopenlines.dialog.get"]
            .contains(&m.as_str())
        {
            120
        } else if m.ends_with("event.get") {
            30
        } else if [
            ".add",
            ".update",
            ".send",
            ".register",
            ".unregister",
            ".transfer",
            ".finish",
            ".operator",
            ".answer",
            ".skip",
            ".notify",
            ".sendtyping",
            ".writing",
            ".read",
        ]
        .iter()
        .any(|suffix| m.ends_with(suffix))
        {
            50
        } else {
            10
        };
        Duration::from_millis(ms)
    }
}

/// How the emulator is started.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub bind: SocketAddr,
    /// The portal's `member_id` as events carry it; random 32 hex digits when `None`.
    pub member_id: Option<String>,
    /// The per-portal leaky bucket.
    pub rate: RateLimit,
    /// Connector id of lines created without one (contract §5.2: a configurable string).
    pub connector_id: String,
    /// How long one event POST may take before it is recorded as failed (UNCONFIRMED in the contract, §3.3).
    pub delivery_timeout: Duration,
    /// Portal language, sent as `LANGUAGE` in events.
    pub language: String,
    /// The portal's UTC offset in seconds, used in every ISO-8601 date (a non-zero default catches naive parsing).
    pub utc_offset_secs: i32,
    /// `auth[application_token]` of Chatbots 2.0 events; random when `None` (UNCONFIRMED for webhook-registered bots).
    pub v2_application_token: Option<String>,
    /// Refuse keyboard commands from extranet (Open Lines) users when the command was registered without
    /// `EXTRANET_SUPPORT=Y` (UNCONFIRMED, contract §4.7). Off by default.
    pub enforce_extranet_support: bool,
    /// Expose a connector user's phone in `im.user.get` `phones` (UNCONFIRMED, contract §5.2). Off by default.
    pub expose_connector_phones: bool,
    /// Largest accepted request body; bigger bodies get HTTP 413.
    pub max_body_bytes: usize,
    /// Per-method operating-time accounting (`time.operating`, 429 `OPERATION_TIME_LIMIT`).
    pub operating: OperatingLimit,
    /// Whether `im.v2.Event.*` user logs include Open Lines chats the user belongs to (UNCONFIRMED, contract
    /// §3.4 and §10 item 5). On by default.
    pub im_v2_events_include_openlines: bool,
    /// WhatsApp's 24-hour window: on lines whose connector id starts with `whatsapp`, each customer
    /// message sets the session's `BLOCK_DATE` (`entity_data_1` field 9) this long ahead, and free
    /// text posted after it is recorded as not delivered (contract §11: the Edna and Twilio
    /// connectors use 86 400 s). `None`: no block date (`0`), as on other connectors.
    pub whatsapp_window: Option<Duration>,
    /// Whether a message's `KEYBOARD` reaches the customer on WhatsApp connectors (ids containing
    /// `whatsapp`, or a `wa` part such as `olchat_wa_connector_2`). Off by default: the evidence says
    /// a keyboard is Bitrix24 UI that the WhatsApp connectors drop (contract §4.7 and open question 6,
    /// UNCONFIRMED), so a WhatsApp customer's inbox shows no buttons and
    /// [`crate::Emulator::customer_presses`] refuses there. Other connectors (`livechat`,
    /// `telegrambot`, ...) show the buttons.
    pub keyboards_reach_whatsapp: bool,
}

/// `BLOCK_REASON` the emulator writes beside a WhatsApp block date. The real value is UNCONFIRMED
/// (Bitrix24's source names the restriction per connector); clients should treat it as opaque.
pub const WHATSAPP_BLOCK_REASON: &str = "WHATSAPP_24H";

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            member_id: None,
            rate: RateLimit::STANDARD,
            connector_id: "whatsappbyedna".to_owned(),
            delivery_timeout: Duration::from_secs(10),
            language: "en".to_owned(),
            utc_offset_secs: 3 * 3600,
            v2_application_token: None,
            enforce_extranet_support: false,
            expose_connector_phones: false,
            max_body_bytes: 2 * 1024 * 1024,
            operating: OperatingLimit::default(),
            im_v2_events_include_openlines: true,
            whatsapp_window: Some(Duration::from_secs(86_400)),
            keyboards_reach_whatsapp: false,
        }
    }
}
