//! `olbridge demo`: the whole product on a fresh machine with no configuration.
//!
//! One process runs the Bitrix24 portal emulator (seeded with a WhatsApp line), the demo bot (a
//! FAQ answerer), and the bridge itself on a temporary embedded store. The bot is registered
//! through the same `imbot.register` call `olbridge register-bot` makes against a real portal; the
//! emulator then attaches it to the WhatsApp line, which is what the Bitrix24 admin clicks in the
//! line's settings. You type as the WhatsApp customer and see what their phone shows.

pub mod bot;
mod terminal;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use b24_emulator::{Emulator, EmulatorConfig};
use olbridge_core::b24::{B24Client, ClientOptions, WebhookBase};
use olbridge_core::config::Config;
use tokio::net::TcpListener;

use crate::runner::Bridge;
use bot::{DEFAULT_FAQ, DemoBot, Faq};

/// `olbridge demo` options.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// A FAQ file for the demo bot (format: see demo/faq.txt); the built-in one otherwise.
    #[arg(long)]
    pub faq: Option<PathBuf>,
    /// The customer's WhatsApp number.
    #[arg(long, default_value = "+4915112345678")]
    pub phone: String,
    /// Send these messages one by one, print the replies and exit (no interactive prompt).
    #[arg(long = "say", value_name = "TEXT")]
    pub say: Vec<String>,
    /// How long the demo bot "thinks" before answering, in milliseconds.
    #[arg(long, default_value_t = 700)]
    pub think_ms: u64,
}

/// Everything the demo runs, for the terminal to drive.
#[derive(Debug)]
pub(crate) struct DemoWorld {
    pub(crate) emulator: Emulator,
    pub(crate) bridge: Bridge,
    pub(crate) line_id: u64,
    pub(crate) operator_id: u64,
    pub(crate) bot_id: u64,
    pub(crate) phone: String,
    _bot: DemoBot,
    data_dir: PathBuf,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let world = start(&args).await?;
    let result = if args.say.is_empty() { terminal::interactive(&world).await } else { terminal::scripted(&world, &args.say).await };
    let data_dir = world.data_dir.clone();
    world.bridge.shutdown().await;
    world.emulator.shutdown().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

/// The demo bot's knowledge: `path`, or the built-in FAQ.
fn load_faq(path: Option<&std::path::Path>) -> anyhow::Result<Faq> {
    Ok(match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Faq::parse(&text).map_err(|e| anyhow::anyhow!("{}, {e}", path.display()))?
        }
        None => Faq::parse(DEFAULT_FAQ).map_err(|e| anyhow::anyhow!("the built-in FAQ, {e}"))?,
    })
}

/// `olbridge demo-bot`: the demo's FAQ bot alone, speaking the bot contract on `listen`, until
/// Ctrl-C — a bot to point `BOT_HTTP_URL` at when trying a real portal or the Lambdas locally.
pub async fn run_bot(args: DemoBotArgs) -> anyhow::Result<std::process::ExitCode> {
    let faq = load_faq(args.faq.as_deref())?;
    let bot =
        DemoBot::start_on(args.listen, faq, None, Duration::from_millis(args.think_ms)).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    crate::outln!("demo bot answering on {}  (BOT_HTTP_URL={}); Ctrl-C stops it", bot.url(), bot.url())?;
    crate::cli::shutdown_signal().await;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Arguments of `olbridge demo-bot`.
#[derive(Debug, clap::Args)]
pub struct DemoBotArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub listen: std::net::SocketAddr,
    /// A FAQ file (format: see demo/faq.txt); the built-in one otherwise.
    #[arg(long)]
    pub faq: Option<PathBuf>,
    /// How long it "thinks" before answering, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub think_ms: u64,
}

async fn start(args: &DemoArgs) -> anyhow::Result<DemoWorld> {
    let faq = load_faq(args.faq.as_deref())?;
    let emulator = Emulator::start(EmulatorConfig::default()).await.context("cannot start the portal emulator")?;
    let portal = emulator.seed_demo();
    let demo_bot = DemoBot::start(faq, None, Duration::from_millis(args.think_ms)).await?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let handler = format!("http://{}/bitrix/events", listener.local_addr()?);
    let webhook = WebhookBase::parse(&portal.webhook_url).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = B24Client::new(webhook, ClientOptions::default())?;
    let registration =
        crate::admin::register::register(&client, &handler, "olbridge_demo", "Demo assistant", None).await.context("cannot register the demo bot")?;
    emulator.attach_welcome_bot(portal.whatsapp_line_id, registration.bot_id.get())?;

    let data_dir = std::env::temp_dir().join(format!("olbridge-demo-{}", uuid::Uuid::new_v4().simple()));
    let env: HashMap<String, String> = [
        ("B24_WEBHOOK_BASE", portal.webhook_url.clone()),
        ("BOT_HTTP_URL", demo_bot.url()),
        ("B24_BOT_ID", registration.bot_id.to_string()),
        ("B24_BOT_CLIENT_ID", registration.client_id.expose().to_owned()),
        ("B24_BUSINESS_PHONE", "+4930123456".to_owned()),
        ("OLBRIDGE_DATA_DIR", data_dir.display().to_string()),
        ("OLBRIDGE_WORKERS", "16".to_owned()),
        ("OLBRIDGE_BURST_MS", "400".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = Config::from_map(&env).map_err(anyhow::Error::new)?;
    let bridge = Bridge::start_on(&config, listener).await?;
    Ok(DemoWorld {
        emulator,
        bridge,
        line_id: portal.whatsapp_line_id,
        operator_id: portal.operator_id,
        bot_id: registration.bot_id.get(),
        phone: args.phone.clone(),
        _bot: demo_bot,
        data_dir,
    })
}
