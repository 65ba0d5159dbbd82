//! The end-to-end harness: the Bitrix24 emulator on port 0, a scriptable bot server, and the
//! bridge — in this process, or as a real `olbridge serve` child process that tests can SIGKILL.
//!
//! Tests wait on observable state (the customer's inbox, requests reaching the bot), never on fixed
//! sleeps where a probe would do.

pub mod attack;
pub mod bot;
pub mod harness;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use b24_emulator::{DemoPortal, Emulator, EmulatorConfig, InboxMessage, RateLimit};
use olbridge::runner::Bridge;
use olbridge_core::b24::imbot::V2EventMode;
use olbridge_core::b24::{B24Client, ClientOptions, WebhookBase};
use olbridge_core::config::Config;
use olbridge_core::domain::turn::TurnRecord;
use olbridge_core::ports::TurnLog;
use olbridge_sqlite::SqliteStore;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

pub use bot::{Reply, TestBot};

/// The customer phone most tests write from.
pub const PHONE: &str = "+4915112345678";

/// How the bridge learns about customer messages in a test app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Push mode: a v1 bot registered through the demo webhook is the WhatsApp line's welcome bot.
    Push,
    /// Operator mode: no bot; the service user polls with a webhook that has only the `im` and
    /// `imopenlines` scopes, and its `.env` names no bot (the old polling bridge's setup).
    /// `service_first`: a WhatsApp line whose queue puts the service user first, so it holds new
    /// sessions; otherwise the demo line, whose queue puts the human operator first.
    Operator {
        /// Whether the service user holds new sessions.
        service_first: bool,
    },
}

/// Which bot the harness registers, and how its events reach the bridge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Chatbot {
    /// A v1 bot (`imbot.register`), events POSTed to the receiver.
    #[default]
    V1,
    /// A Chatbots 2.0 bot in webhook mode (`ONIMBOTV2*` POSTed to the receiver).
    V2Webhook,
    /// A Chatbots 2.0 bot in fetch mode: no handler URL; the bridge pulls with
    /// `imbot.v2.Event.get` every 0.2 s (`B24_POLL_SEC`).
    V2Fetch,
}

/// How a test app is set up.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Push or operator mode.
    pub setup: Setup,
    /// In push mode, the bot's API and event mode.
    pub chatbot: Chatbot,
    /// `OLBRIDGE_BURST_MS` (0: off, so each message is its own turn).
    pub burst_ms: u64,
    /// The portal's leaky bucket.
    pub portal_rate: RateLimit,
    /// The bridge's own pacing (`B24_RATE_PER_SEC`, `B24_RATE_BURST`).
    pub client_rate: (f64, u32),
    /// `BOT_HTTP_TIMEOUT_SEC` (None: the default, 120).
    pub bot_timeout_sec: Option<f64>,
    /// `OLBRIDGE_BOT_MAX_ATTEMPTS`.
    pub bot_max_attempts: u32,
    /// `BOT_HMAC_SECRET`.
    pub hmac_secret: Option<String>,
    /// `OLBRIDGE_WORKERS`.
    pub workers: usize,
    /// Anything else.
    pub extra_env: Vec<(String, String)>,
    /// The child process's descriptor limit (`ulimit -n`), for [`TestApp::spawn_process`].
    pub fd_limit: Option<u64>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            setup: Setup::Push,
            chatbot: Chatbot::V1,
            burst_ms: 0,
            portal_rate: RateLimit { per_sec: 20.0, burst: 50.0 },
            client_rate: (18.0, 40),
            bot_timeout_sec: Some(10.0),
            bot_max_attempts: 3,
            hmac_secret: None,
            workers: 64,
            extra_env: Vec::new(),
            fd_limit: None,
        }
    }
}

/// A portal, a bot and a bridge.
#[derive(Debug)]
pub struct TestApp {
    /// The emulated portal.
    pub emulator: Emulator,
    /// What `seed_demo` created.
    pub portal: DemoPortal,
    /// The bot server.
    pub bot: TestBot,
    /// Who our replies are posted as: the bot, or in operator mode the service user.
    pub bot_id: u64,
    /// Our bot's `CLIENT_ID` (also the v1 events' application token), or its v2 `botToken`; empty
    /// in operator mode.
    pub client_id: String,
    /// The WhatsApp line the customers write on.
    pub line_id: u64,
    /// The bridge's environment.
    pub env: HashMap<String, String>,
    /// The receiver's URL for events.
    pub events_url: String,
    /// The receiver's address.
    pub addr: SocketAddr,
    data_dir: TempDir,
    fd_limit: Option<u64>,
    bridge: Option<Bridge>,
    // Behind a lock so a harness can SIGKILL and restart the child while other tasks use the app.
    child: std::sync::Mutex<Option<Child>>,
}

impl TestApp {
    /// Everything in this process.
    pub async fn spawn(opts: AppOptions) -> anyhow::Result<Self> {
        let (mut app, listener) = Self::prepare(&opts).await?;
        let config = Config::from_map(&app.env).map_err(anyhow::Error::new)?;
        app.bridge = Some(Bridge::start_on(&config, listener).await?);
        app.wait_first_poll(Duration::from_secs(20)).await?;
        Ok(app)
    }

    /// The bridge as an `olbridge serve` child process.
    pub async fn spawn_process(opts: AppOptions) -> anyhow::Result<Self> {
        let (app, listener) = Self::prepare(&opts).await?;
        drop(listener);
        app.start_child().await?;
        Ok(app)
    }

    /// As [`TestApp::spawn_process`], but the child is not started yet: [`TestApp::restart`]
    /// starts it (a test can set the portal up first, e.g. queue events for a fetch-mode bot).
    pub async fn stopped_process(opts: AppOptions) -> anyhow::Result<Self> {
        let (app, listener) = Self::prepare(&opts).await?;
        drop(listener);
        Ok(app)
    }

    /// The bridge's data directory (its SQLite store, `serve.log`).
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    async fn prepare(opts: &AppOptions) -> anyhow::Result<(Self, TcpListener)> {
        let emulator = Emulator::start(EmulatorConfig { rate: opts.portal_rate, ..EmulatorConfig::default() }).await?;
        let portal = emulator.seed_demo();
        let bot = TestBot::start().await?;
        let listener = olbridge::runner::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let events_url = format!("http://{addr}/bitrix/events");
        let (webhook_url, bot_id, client_id, line_id, mode_env) = match opts.setup {
            Setup::Push => {
                let webhook = WebhookBase::parse(&portal.webhook_url).map_err(|e| anyhow::anyhow!("{e}"))?;
                let client = B24Client::new(webhook, ClientOptions::default())?;
                let reg = match opts.chatbot {
                    Chatbot::V1 => olbridge::admin::register::register(&client, &events_url, "olbridge_test", "Test assistant", None).await?,
                    Chatbot::V2Webhook | Chatbot::V2Fetch => {
                        let mode = if opts.chatbot == Chatbot::V2Fetch { V2EventMode::Fetch } else { V2EventMode::Webhook(events_url.clone()) };
                        olbridge::admin::register::register_v2(&client, "olbridge_test", "Test assistant", mode, None).await?
                    }
                };
                emulator.attach_welcome_bot(portal.whatsapp_line_id, reg.bot_id.get())?;
                let env = vec![("B24_BOT_ID", reg.bot_id.to_string()), ("B24_BOT_CLIENT_ID", reg.client_id.expose().to_owned())];
                (portal.webhook_url.clone(), reg.bot_id.get(), reg.client_id.expose().to_owned(), portal.whatsapp_line_id, env)
            }
            Setup::Operator { service_first } => {
                let webhook = emulator.add_webhook(portal.service_user_id, &["im", "imopenlines"]);
                let line = if service_first {
                    emulator.add_line(b24_emulator::NewLine {
                        name: "WhatsApp (service user first)".into(),
                        connector_id: Some("whatsappbyedna".into()),
                        queue: vec![portal.service_user_id, portal.operator_id],
                        ..b24_emulator::NewLine::default()
                    })
                } else {
                    portal.whatsapp_line_id
                };
                // As fast as the minimum, so tests wait on replies, not on the poll interval.
                (webhook, portal.service_user_id, String::new(), line, vec![("B24_POLL_SEC", "0.2".to_owned())])
            }
        };
        let data_dir = TempDir::new()?;
        let mut env: HashMap<String, String> = [
            ("B24_WEBHOOK_BASE", webhook_url),
            ("BOT_HTTP_URL", bot.url()),
            ("B24_BUSINESS_PHONE", "+4930123456".to_owned()),
            ("OLBRIDGE_DATA_DIR", data_dir.path().display().to_string()),
            ("OLBRIDGE_LISTEN", addr.to_string()),
            ("OLBRIDGE_BURST_MS", opts.burst_ms.to_string()),
            ("OLBRIDGE_WORKERS", opts.workers.to_string()),
            ("OLBRIDGE_BOT_MAX_ATTEMPTS", opts.bot_max_attempts.to_string()),
            ("B24_RATE_PER_SEC", opts.client_rate.0.to_string()),
            ("B24_RATE_BURST", opts.client_rate.1.to_string()),
        ]
        .into_iter()
        .chain(mode_env)
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        match opts.chatbot {
            Chatbot::V1 => {}
            Chatbot::V2Webhook => {
                env.insert("OLBRIDGE_BOT_API".into(), "v2".into());
                env.insert("B24_APPLICATION_TOKEN".into(), emulator.v2_application_token());
            }
            Chatbot::V2Fetch => {
                env.insert("OLBRIDGE_BOT_API".into(), "v2".into());
                env.insert("OLBRIDGE_MODE".into(), "fetch".into());
                env.insert("B24_MEMBER_ID".into(), emulator.member_id());
                env.insert("B24_POLL_SEC".into(), "0.2".into());
            }
        }
        if let Some(t) = opts.bot_timeout_sec {
            env.insert("BOT_HTTP_TIMEOUT_SEC".into(), t.to_string());
        }
        if let Some(s) = &opts.hmac_secret {
            env.insert("BOT_HMAC_SECRET".into(), s.clone());
        }
        for (k, v) in &opts.extra_env {
            env.insert(k.clone(), v.clone());
        }
        let app = Self {
            emulator,
            portal,
            bot,
            bot_id,
            client_id,
            line_id,
            env,
            events_url,
            addr,
            data_dir,
            fd_limit: opts.fd_limit,
            bridge: None,
            child: std::sync::Mutex::default(),
        };
        Ok((app, listener))
    }

    async fn start_child(&self) -> anyhow::Result<()> {
        let bin = olbridge_binary()?;
        let mut cmd = match self.fd_limit {
            // The shell lowers its own limit and execs the bridge, which inherits it: no unsafe
            // pre-exec hook in this process.
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\"")).arg(&bin);
                sh
            }
            None => Command::new(&bin),
        };
        cmd.arg("--env-dir").arg(self.data_dir.path()).arg("serve").env_clear().env("RUST_LOG", "warn").envs(&self.env);
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        // The child's log goes next to its store, for a look when a test fails.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.data_dir.path().join("serve.log"))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).kill_on_drop(true);
        *self.child_slot() = Some(cmd.spawn().with_context(|| format!("cannot start {}", bin.display()))?);
        self.wait_healthy(Duration::from_secs(20)).await?;
        self.wait_first_poll(Duration::from_secs(20)).await
    }

    /// Waits until the bridge's poller (when its mode runs one) finished its first pass: what a
    /// customer wrote before that is, for the bridge, from before its first start.
    pub async fn wait_first_poll(&self, timeout: Duration) -> anyhow::Result<()> {
        let passes = |h: &serde_json::Value| h["poller"].is_null() || h["poller"]["passes"].as_u64().unwrap_or(0) >= 1;
        let health = poll_until(timeout, || async { self.health().await.unwrap_or_default() }, passes).await;
        anyhow::ensure!(passes(&health), "the poller did not finish a pass: {health}");
        Ok(())
    }

    /// The receiver's `GET /health` URL.
    pub fn health_url(&self) -> String {
        format!("http://{}/health", self.addr)
    }

    /// What the child process has logged so far (at `RUST_LOG`, WARN unless the env says otherwise).
    pub fn serve_log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Waits until `GET /health` answers.
    pub async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<()> {
        let url = self.health_url();
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if client.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "the bridge did not become healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn child_slot(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// SIGKILLs the child process.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.sigkill().await
    }

    /// Starts the child process again on the same store and port.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.start_child().await
    }

    /// As [`TestApp::kill`], for a harness whose other tasks share the app meanwhile.
    pub async fn sigkill(&self) -> anyhow::Result<()> {
        let mut child = self.child_slot().take().context("no child process")?;
        child.start_kill()?;
        child.wait().await?;
        Ok(())
    }

    /// As [`TestApp::restart`], for a harness whose other tasks share the app meanwhile.
    pub async fn start_again(&self) -> anyhow::Result<()> {
        self.start_child().await
    }

    /// The customer writes on the WhatsApp line.
    pub async fn customer_writes(&self, phone: &str, text: &str) -> anyhow::Result<b24_emulator::CustomerMessage> {
        self.emulator.customer_writes(self.line_id, phone, text).await
    }

    /// Stops the child process gracefully (SIGTERM: the bridge finishes what it can and exits).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let mut child = self.child_slot().take().context("no child process")?;
        let pid = child.id().context("the child has exited")?;
        let status = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await?;
        anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
        child.wait().await?;
        Ok(())
    }

    /// The `/health` body.
    pub async fn health(&self) -> anyhow::Result<serde_json::Value> {
        Ok(reqwest::Client::new().get(self.health_url()).send().await?.json().await?)
    }

    /// What the customer's WhatsApp shows from our bot.
    pub fn bot_messages(&self, phone: &str) -> Vec<String> {
        self.emulator.customer_inbox(phone).into_iter().filter(|m| m.author_id == self.bot_id).map(|m| m.text).collect()
    }

    /// Waits until the customer's inbox has at least `n` messages; returns the inbox.
    pub async fn wait_inbox(&self, phone: &str, n: usize, timeout: Duration) -> Vec<InboxMessage> {
        poll_until(timeout, || async { self.emulator.customer_inbox(phone) }, |inbox| inbox.len() >= n).await
    }

    /// Waits until the portal has recorded at least `n` calls of `method`; returns how many it has.
    pub async fn wait_calls(&self, method: &str, n: usize, timeout: Duration) -> usize {
        let count = || async { self.emulator.calls().iter().filter(|c| c.method == method).count() };
        poll_until(timeout, count, |c| *c >= n).await
    }

    /// POSTs a raw form body to the receiver; returns the status and body.
    pub async fn post_event(&self, body: String) -> anyhow::Result<(u16, String)> {
        let r = reqwest::Client::new().post(&self.events_url).header("content-type", "application/x-www-form-urlencoded").body(body).send().await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    /// The bridge's per-message log, newest first (read next to a running bridge).
    pub async fn turns(&self) -> Vec<TurnRecord> {
        let records = match &self.bridge {
            Some(b) => b.store().recent(100_000).await,
            None => match SqliteStore::open_for_admin(self.data_dir.path()) {
                Ok(s) => s.recent(100_000).await,
                Err(_) => return Vec::new(),
            },
        };
        records.unwrap_or_default()
    }

    /// Waits until the bridge has logged at least `n` turns (answered or not); returns the log.
    pub async fn wait_turns(&self, n: usize, timeout: Duration) -> Vec<TurnRecord> {
        poll_until(timeout, || self.turns(), |turns| turns.len() >= n).await
    }

    /// The in-process bridge.
    pub fn bridge(&self) -> Option<&Bridge> {
        self.bridge.as_ref()
    }

    /// Stops everything.
    pub async fn shutdown(mut self) {
        if let Some(b) = self.bridge.take() {
            b.shutdown().await;
        }
        let child = self.child_slot().take();
        if let Some(mut c) = child {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
        self.emulator.shutdown().await;
    }
}

/// Checks that the echo bot's replies answered each of `texts` exactly once, in order, however
/// the bridge folded them into turns (`echo: a\nb` answers `a` and `b`).
pub fn assert_answered_once_in_order(replies: &[String], texts: &[&str]) {
    let answered: Vec<&str> = replies.iter().flat_map(|r| r.strip_prefix("echo: ").unwrap_or(r).split('\n')).collect();
    assert_eq!(answered, texts, "replies: {replies:?}");
}

/// Reads `probe` until `done` holds or `timeout` passes; returns the last reading (tests assert on
/// it, so a timeout shows what was there instead).
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut probe: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let value = probe().await;
        if done(&value) || tokio::time::Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the `olbridge` binary to completion with `--env-dir env_dir`, stdin closed, and nothing
/// in its environment but `env` (and `PATH`): a `.env` or variable of the machine cannot leak in.
/// Awaited, not waited for: the emulator may run on the calling test's runtime.
pub async fn run_olbridge(env_dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> anyhow::Result<std::process::Output> {
    let mut cmd = olbridge_command(env_dir, env)?;
    cmd.args(args).stdin(Stdio::null());
    Ok(cmd.output().await?)
}

/// The `olbridge` command [`run_olbridge`] runs, for tests that wire its stdio themselves.
pub fn olbridge_command(env_dir: &std::path::Path, env: &[(&str, &str)]) -> anyhow::Result<Command> {
    let mut cmd = Command::new(olbridge_binary()?);
    cmd.arg("--env-dir").arg(env_dir).env_clear().envs(env.iter().copied()).kill_on_drop(true);
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    Ok(cmd)
}

/// The `olbridge` binary next to this test binary (`target/<profile>/olbridge`). The README's test
/// command builds it (`cargo test --workspace` builds the binaries of packages with integration
/// tests); running this crate's tests alone needs `cargo build -p olbridge` first.
pub fn olbridge_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(|d| if d.ends_with("deps") { d.parent() } else { Some(d) }).context("no target dir")?;
    let bin = dir.join(format!("olbridge{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(bin.exists(), "{} is missing: run `cargo build -p olbridge --bin olbridge` first", bin.display());
    Ok(bin)
}
