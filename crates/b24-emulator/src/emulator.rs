//! [`Emulator`]: start a portal on a port, seed it, make customers write, inspect what happened.
//!
//! Everything here is also reachable over the JSON control API (`/_emulator/...`); the Rust API exists so tests
//! in the same process need no HTTP round trip to drive the portal.

use crate::api::{ChatSnapshot, CustomerMessage, DemoPortal, InboxMessage, NewLine};
use crate::config::{EmulatorConfig, OperatingLimit, RateLimit};
use crate::events::{self, EventSink};
use crate::faults::{DeliveryOutage, Fault};
use crate::record::{EventDelivery, RecordedCall};
use crate::rest::errors::ApiError;
use crate::rest::operating::OperatingUsage;
use crate::rest::ratelimit::Bucket;
use crate::shared::Shared;
use crate::state::messages::Post;
use crate::state::{Identity, Portal, random_hex, views};
use chrono::FixedOffset;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running emulated portal. Dropping it (or [`Emulator::shutdown`]) stops the server and event delivery.
#[derive(Debug)]
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    dispatcher: Option<JoinHandle<()>>,
}

fn api_err(e: ApiError) -> anyhow::Error {
    anyhow::anyhow!("{} {}: {}", e.status, e.code, e.description)
}

impl Emulator {
    /// Binds, starts the server and the event dispatcher. The portal starts empty (see [`Emulator::seed_demo`]).
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let bound = listener.local_addr()?;
        let addr = match bound.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound.port()),
            IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), bound.port()),
            _ => bound,
        };
        let base_url = format!("http://{addr}");
        let (sink, rx, idle): (EventSink, _, _) = events::channel();
        let tz = FixedOffset::east_opt(config.utc_offset_secs).ok_or_else(|| anyhow::anyhow!("utc_offset_secs out of range"))?;
        let ident = Identity {
            domain: addr.to_string(),
            member_id: config.member_id.clone().unwrap_or_else(|| random_hex(32)),
            client_endpoint: format!("{base_url}/rest/"),
            server_endpoint: "https://oauth.bitrix.info/rest/".to_owned(),
            language: config.language.clone(),
            tz,
            default_connector: config.connector_id.clone(),
            v2_app_token: config.v2_application_token.clone().unwrap_or_else(|| random_hex(32)),
            enforce_extranet_support: config.enforce_extranet_support,
            expose_connector_phones: config.expose_connector_phones,
            im_v2_openlines: config.im_v2_events_include_openlines,
            whatsapp_window: config.whatsapp_window,
            keyboards_reach_whatsapp: config.keyboards_reach_whatsapp,
        };
        let clock = Arc::new(crate::clock::Clock::default());
        let shared = Arc::new(Shared {
            portal: Mutex::new(Portal::new(ident, sink, clock.clone())),
            operating: Mutex::new(crate::rest::operating::Operating::new(config.operating.clone())),
            clock,
            recorder: Default::default(),
            faults: Default::default(),
            bucket: Mutex::new(Bucket::new(config.rate, Instant::now())),
            idle,
            config,
            base_url,
        });
        let dispatcher = tokio::spawn(events::run_dispatcher(shared.clone(), rx));
        let app = crate::server::router(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = served.await {
                tracing::error!(error = %e, "emulator server stopped");
            }
        });
        tracing::info!(%addr, "b24-emulator listening");
        Ok(Emulator { shared, addr, stop: Some(stop), server: Some(server), dispatcher: Some(dispatcher) })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// `127.0.0.1:PORT`, what events carry in `auth[domain]`.
    pub fn domain(&self) -> String {
        self.addr.to_string()
    }

    /// The portal's `member_id`.
    pub fn member_id(&self) -> String {
        self.shared.portal().ident.member_id.clone()
    }

    /// The `auth[application_token]` of Chatbots 2.0 events.
    pub fn v2_application_token(&self) -> String {
        self.shared.portal().ident.v2_app_token.clone()
    }

    /// Adds an employee with the next free user id.
    pub fn add_employee(&self, first_name: &str, last_name: &str) -> u64 {
        self.shared.portal().add_employee(None, first_name, last_name)
    }

    /// Adds (or renames) an employee with a fixed id.
    pub fn add_employee_with_id(&self, id: u64, first_name: &str, last_name: &str) -> u64 {
        self.shared.portal().add_employee(Some(id), first_name, last_name)
    }

    /// Adds an incoming webhook; returns its base URL `http://127.0.0.1:PORT/rest/<user>/<code>/`.
    /// An unknown user is created as an employee named `User <id>`.
    pub fn add_webhook(&self, user_id: u64, scopes: &[&str]) -> String {
        let mut portal = self.shared.portal();
        if portal.user(user_id).is_none() {
            portal.add_employee(Some(user_id), "User", &user_id.to_string());
        }
        let code = portal.add_webhook(user_id, scopes).unwrap_or_default();
        format!("{}/rest/{user_id}/{code}/", self.shared.base_url)
    }

    /// Adds a line; returns its id.
    pub fn add_line(&self, line: NewLine) -> u64 {
        self.shared.portal().add_line(line)
    }

    /// Makes a bot the line's welcome bot (what the admin clicks in the line settings).
    pub fn attach_welcome_bot(&self, line_id: u64, bot_id: u64) -> anyhow::Result<()> {
        self.shared.portal().attach_welcome_bot(line_id, bot_id).map_err(api_err)
    }

    /// Sets the `application_token` events of a v1 bot's app carry (default: its `CLIENT_ID`), or of a v2 bot.
    pub fn set_bot_application_token(&self, bot_id: u64, token: &str) -> anyhow::Result<()> {
        let mut portal = self.shared.portal();
        let bot = portal.bots.get(&bot_id).cloned().ok_or_else(|| anyhow::anyhow!("no bot {bot_id}"))?;
        if let Some(v2) = portal.bots.get_mut(&bot_id).and_then(|b| b.v2.as_mut()) {
            v2.application_token = token.to_owned();
        } else if let Some(app) = portal.apps.get_mut(&bot.app_id) {
            app.application_token = token.to_owned();
        }
        Ok(())
    }

    /// Seeds the demo portal: service user 38005 "AI assistant" with a webhook (`im`, `imopenlines`, `imbot`,
    /// `crm`), a human operator, lines 1 (livechat), 3 (WhatsApp `whatsappbyedna`, CRM on, queue = [38005,
    /// operator]) and 5 (telegrambot). Calling it again returns the same portal.
    pub fn seed_demo(&self) -> DemoPortal {
        let (code, operator_id) = self.shared.portal().seed_demo();
        let service = crate::state::seed::SERVICE_USER;
        DemoPortal {
            webhook_url: format!("{}/rest/{service}/{code}/", self.shared.base_url),
            service_user_id: service,
            operator_id,
            whatsapp_line_id: 3,
            other_line_ids: vec![1, 5],
        }
    }

    /// A WhatsApp customer writes to a line. Events are queued for asynchronous delivery
    /// (see [`Emulator::wait_idle`]).
    pub async fn customer_writes(&self, line_id: u64, phone: &str, text: &str) -> anyhow::Result<CustomerMessage> {
        let r = self.shared.portal().customer_writes(line_id, phone, text).map_err(api_err);
        tokio::task::yield_now().await;
        r
    }

    /// The customer presses the keyboard button that carries `COMMAND` and `COMMAND_PARAMS` on the
    /// bot's latest message showing one (→ `ONIMCOMMANDADD`). Refused (`KEYBOARD_NOT_SHOWN`) in a
    /// WhatsApp chat, where the customer never sees buttons (`EmulatorConfig::keyboards_reach_whatsapp`).
    pub async fn customer_presses(&self, chat_id: u64, bot_id: u64, command: &str, params: &str) -> anyhow::Result<()> {
        let r = self.shared.portal().customer_presses(chat_id, bot_id, command, params).map_err(api_err);
        tokio::task::yield_now().await;
        r
    }

    /// What that customer's messenger received, in order.
    pub fn customer_inbox(&self, phone: &str) -> Vec<InboxMessage> {
        self.shared.portal().inbox(phone)
    }

    /// An employee writes in a chat from the Bitrix24 UI (joining it first if needed); returns the message id.
    pub async fn operator_writes(&self, chat_id: u64, user_id: u64, text: &str) -> anyhow::Result<u64> {
        let r = operator_writes(&self.shared, chat_id, user_id, text).map_err(api_err);
        tokio::task::yield_now().await;
        r
    }

    /// Finishes the chat's open session (as an operator closing the dialog).
    pub async fn finish_session(&self, chat_id: u64) -> anyhow::Result<()> {
        self.shared.portal().finish_session(chat_id).map_err(api_err)
    }

    /// A chat's state.
    pub fn chat(&self, chat_id: u64) -> Option<ChatSnapshot> {
        let portal = self.shared.portal();
        portal.chats.get(&chat_id).map(|c| views::snapshot(&portal, c))
    }

    /// Sets a chat's WhatsApp `BLOCK_DATE` (e.g. to the past: the window has closed), or clears it
    /// with `None`. The next customer message sets it anew.
    pub fn set_block_date(&self, chat_id: u64, at: Option<chrono::DateTime<chrono::Utc>>) -> anyhow::Result<()> {
        self.shared.portal().set_block_date(chat_id, at.map(|t| t.timestamp())).map_err(api_err)
    }

    /// Changes WhatsApp's window length for the customer messages that follow (`None`: no block
    /// dates); see [`crate::EmulatorConfig::whatsapp_window`].
    pub fn set_whatsapp_window(&self, window: Option<Duration>) {
        self.shared.portal().ident.whatsapp_window = window;
    }

    /// Adds a CRM item (`lead`, `deal`, `contact` or `company`) from a `fields` object as
    /// `crm.<type>.add` takes it (multifields as `[{VALUE, VALUE_TYPE}]`); returns its id. A contact
    /// with the customer's phone is what a new session binds to instead of creating a lead.
    pub fn add_crm_item(&self, entity_type: &str, fields: serde_json::Value) -> anyhow::Result<u64> {
        let et = crate::state::crm::EntityType::parse(entity_type).ok_or_else(|| anyhow::anyhow!("unknown CRM entity type {entity_type}"))?;
        let mut portal = self.shared.portal();
        let now = portal.now();
        Ok(portal.crm.add(et, &fields, 1, now))
    }

    /// Binds a chat to a CRM entity, as an operator does from the chat's CRM panel (the chat's
    /// `entity_data_2` gains the link; `entity_data_1` names the session's primary entity: a deal,
    /// else a lead, else a contact, else a company). Other links are kept.
    pub fn bind_crm(&self, chat_id: u64, entity_type: &str, id: u64) -> anyhow::Result<()> {
        use crate::state::crm::EntityType;
        let et = EntityType::parse(entity_type).ok_or_else(|| anyhow::anyhow!("unknown CRM entity type {entity_type}"))?;
        let mut portal = self.shared.portal();
        let lines = portal.chats.get_mut(&chat_id).and_then(|c| c.lines.as_mut()).ok_or_else(|| anyhow::anyhow!("no Open Lines chat {chat_id}"))?;
        match et {
            EntityType::Lead => lines.crm.lead = id,
            EntityType::Deal => lines.crm.deal = id,
            EntityType::Contact => lines.crm.contact = id,
            EntityType::Company => lines.crm.company = id,
        }
        Ok(())
    }

    /// The comments on a CRM entity's timeline (`crm.timeline.comment.add`), oldest first.
    pub fn timeline_comments(&self, entity_type: &str, id: u64) -> Vec<String> {
        let Some(et) = crate::state::crm::EntityType::parse(entity_type) else { return Vec::new() };
        let portal = self.shared.portal();
        portal.crm.comments.values().filter(|c| c.entity_type == et && c.entity_id == id).map(|c| c.comment.clone()).collect()
    }

    /// The Open Lines chat of a customer on a line, if it exists.
    pub fn chat_of_customer(&self, line_id: u64, phone: &str) -> Option<u64> {
        let digits = crate::state::openlines::phone_digits(phone);
        let portal = self.shared.portal();
        portal.chats.values().find(|c| c.lines.as_ref().is_some_and(|l| l.line_id == line_id && l.phone_digits == digits)).map(|c| c.id)
    }

    /// Every REST call so far (including refused ones and commands inside batches).
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared.recorder.calls()
    }

    /// Every event delivery attempt so far.
    pub fn deliveries(&self) -> Vec<EventDelivery> {
        self.shared.recorder.deliveries()
    }

    /// Forgets recorded calls and deliveries.
    pub fn clear_recordings(&self) {
        self.shared.recorder.clear();
    }

    /// Injects a fault.
    pub fn inject_fault(&self, fault: Fault) {
        self.shared.faults.add(fault);
    }

    /// Removes all pending faults.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Takes the event handler offline: every delivery fails (connection refused, or a status such as 503)
    /// without reaching it, is recorded as failed and never retried, for the given time or until
    /// [`Emulator::bring_handler_online`].
    pub fn take_handler_offline(&self, outage: DeliveryOutage) {
        self.shared.faults.set_outage(outage, self.shared.clock.secs());
    }

    /// Ends an outage started by [`Emulator::take_handler_offline`].
    pub fn bring_handler_online(&self) {
        self.shared.faults.clear_outage();
    }

    /// Drops every `n`th delivery of `event` (`None` for all events) from now on, deterministically (the
    /// `n`th, `2n`th, ...); `n == 0` stops.
    pub fn drop_every_nth_delivery(&self, n: u32, event: Option<&str>) {
        self.shared.faults.set_drop_every(n, event.unwrap_or("*"));
    }

    /// Changes the leaky bucket at runtime.
    pub fn set_rate_limit(&self, rate: RateLimit) {
        self.shared.bucket().set_rate(rate, Instant::now());
    }

    /// Moves the portal clock forward: operating-time windows, `im.v2.Event.*` retention, timed delivery outages
    /// and the dates of what happens next all see the later time. No sleeping needed.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// The operating-time accounting in force.
    pub fn operating_limit(&self) -> OperatingLimit {
        self.shared.operating().limit().clone()
    }

    /// Replaces the operating-time accounting (usage so far is kept).
    pub fn set_operating_limit(&self, limit: OperatingLimit) {
        self.shared.operating().set_limit(limit);
    }

    /// Sets what one successful call of `method` is charged.
    pub fn set_method_cost(&self, method: &str, cost: Duration) {
        let mut op = self.shared.operating();
        let mut limit = op.limit().clone();
        limit.costs.insert(method.to_ascii_lowercase(), cost);
        op.set_limit(limit);
    }

    /// Operating time counted per webhook and method in the current window.
    pub fn operating_usage(&self) -> Vec<OperatingUsage> {
        self.shared.operating().usage(self.shared.clock.secs())
    }

    /// Forgets all counted operating time.
    pub fn reset_operating(&self) {
        self.shared.operating().clear();
    }

    /// Number of queued events not yet attempted.
    pub fn pending_deliveries(&self) -> usize {
        self.shared.idle.pending()
    }

    /// Waits until every queued event has been attempted (delivered, failed or dropped), up to `timeout`.
    /// Returns `false` on timeout.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.shared.idle.wait()).await.is_ok()
    }

    /// Waits until at least `n` deliveries matching `event` (any event when `None`) are recorded.
    pub async fn wait_for_deliveries(&self, event: Option<&str>, n: usize, timeout: Duration) -> Vec<EventDelivery> {
        let matching = |s: &Self| -> Vec<EventDelivery> { s.deliveries().into_iter().filter(|d| event.is_none_or(|e| d.event == e)).collect() };
        let deadline = Instant::now().checked_add(timeout).unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        loop {
            let got = matching(self);
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), self.shared.idle.wait()).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the server (gracefully, up to 5 s) and event delivery.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), server).await.is_err() {
                abort.abort();
            }
        }
        if let Some(d) = self.dispatcher.take() {
            d.abort();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(s) = self.server.take() {
            s.abort();
        }
        if let Some(d) = self.dispatcher.take() {
            d.abort();
        }
    }
}

/// An employee writes from the UI: joins the chat if needed (queue operators and any other employee), then posts.
pub(crate) fn operator_writes(shared: &Shared, chat_id: u64, user_id: u64, text: &str) -> Result<u64, ApiError> {
    let mut portal = shared.portal();
    if !portal.user(user_id).is_some_and(|u| u.active && !u.is_connector() && !u.is_bot()) {
        return Err(ApiError::new(404, "USER_NOT_FOUND", "No such employee"));
    }
    if text.trim().is_empty() {
        return Err(ApiError::bad("MESSAGE_EMPTY", "Message can't be empty"));
    }
    if !portal.chats.contains_key(&chat_id) {
        return Err(ApiError::new(404, "CHAT_NOT_FOUND", "Chat not found"));
    }
    portal.add_chat_member(chat_id, user_id);
    portal.employee_writes(chat_id, user_id, Post::text(chat_id, user_id, text))
}

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn the_handle_can_be_shared_across_tasks() {
        send_sync::<super::Emulator>();
    }
}
