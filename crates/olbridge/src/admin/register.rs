//! `olbridge register-bot`: registers our Open Lines chatbot through the incoming webhook.
//!
//! Idempotent: when a bot with our code exists and `.env` already carries its id and `CLIENT_ID`,
//! nothing is created and the same lines are printed again. A bot with our code whose `CLIENT_ID`
//! we do not know cannot be used through this webhook (every `imbot.*` call must repeat it), so that
//! case is explained instead of creating a twin.

use std::process::ExitCode;

use anyhow::Context as _;
use olbridge_core::b24::imbot::{BotProperties, BotRegistration, BotType};
use olbridge_core::b24::{B24Client, ClientOptions};
use olbridge_core::config::Config;
use olbridge_core::domain::ids::BotId;
use olbridge_core::domain::secret::Secret;
use rand::Rng as _;

/// The registration code of our bot; `--code` changes it (one portal, several bridges).
pub const DEFAULT_CODE: &str = "olbridge";

/// `olbridge register-bot` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RegisterArgs {
    /// The bot's registration code (unique within the portal).
    #[arg(long, default_value = DEFAULT_CODE)]
    pub code: String,
    /// The bot's name as operators and customers see it.
    #[arg(long, default_value = "AI assistant")]
    pub name: String,
    /// The handler URL Bitrix24 POSTs events to; default `OLBRIDGE_PUBLIC_URL` + `/bitrix/events`.
    #[arg(long)]
    pub handler_url: Option<String>,
}

/// A registered bot.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Its id.
    pub bot_id: BotId,
    /// Its `CLIENT_ID` (also what webhook-bot events carry as `application_token`, as observed).
    pub client_id: Secret,
    /// Whether this call created it.
    pub created: bool,
}

/// Registers (or finds) the bot. `known` is the `(B24_BOT_ID, B24_BOT_CLIENT_ID)` pair from the
/// configuration, if any.
pub async fn register(client: &B24Client, handler_url: &str, code: &str, name: &str, known: Option<(BotId, Secret)>) -> anyhow::Result<Registration> {
    let existing = client.imbot_bot_list().await.context("imbot.bot.list failed")?.into_iter().find(|b| b.code == code);
    if let Some(bot) = existing {
        return match known {
            Some((id, client_id)) if id.get() == bot.id => Ok(Registration { bot_id: id, client_id, created: false }),
            _ => anyhow::bail!(
                "a bot with code {code:?} (id {}) is already registered, but its CLIENT_ID is not in the configuration. \
                 Set B24_BOT_ID={} and B24_BOT_CLIENT_ID to the values printed when it was registered, \
                 or register a new one with --code <another code>.",
                bot.id,
                bot.id
            ),
        };
    }
    let client_id = Secret::new(new_client_id());
    let registration = BotRegistration {
        code: code.to_owned(),
        kind: BotType::OpenLine,
        openline: true,
        event_message_add: handler_url.to_owned(),
        event_welcome_message: handler_url.to_owned(),
        event_bot_delete: handler_url.to_owned(),
        properties: BotProperties {
            name: name.to_owned(),
            work_position: Some("WhatsApp assistant".into()),
            color: Some("AQUA".into()),
            ..BotProperties::default()
        },
        client_id: client_id.clone(),
    };
    let bot_id = client.imbot_register(&registration).await.context("imbot.register failed")?;
    Ok(Registration { bot_id, client_id, created: true })
}

/// A random `CLIENT_ID`: 32 hex characters.
fn new_client_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex_encode(&bytes)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `olbridge register-bot`.
pub async fn run(config: &Config, args: RegisterArgs) -> anyhow::Result<ExitCode> {
    let webhook = config.portal.webhook.clone().context("B24_WEBHOOK_BASE is not set: create an incoming webhook (scopes im, imopenlines, imbot) first")?;
    let handler = match (&args.handler_url, &config.runner.public_url) {
        (Some(h), _) => h.clone(),
        (None, Some(base)) => format!("{}/bitrix/events", base.as_str().trim_end_matches('/')),
        (None, None) => anyhow::bail!("set OLBRIDGE_PUBLIC_URL (the https:// address Bitrix24 reaches this bridge at) or pass --handler-url"),
    };
    let client = B24Client::new(webhook, ClientOptions::default())?;
    let known = config.portal.bot_id.zip(config.portal.bot_client_id.clone());
    let reg = register(&client, &handler, &args.code, &args.name, known).await?;
    if reg.created {
        println!("Registered the Open Lines bot {:?} (id {}) with handler {handler}.", args.name, reg.bot_id);
    } else {
        println!("The bot {:?} (id {}) is already registered; nothing changed.", args.code, reg.bot_id);
    }
    println!("\nAdd these lines to .env (keep B24_BOT_CLIENT_ID secret):\n");
    println!("B24_BOT_ID={}", reg.bot_id);
    println!("B24_BOT_CLIENT_ID={}", reg.client_id.expose());
    println!("\nNext, in Bitrix24 (see docs/bitrix24-setup.md):");
    println!("  1. Contact Center -> your WhatsApp line -> Settings -> Chatbot: assign {:?}, join: always,", args.name);
    println!("     leaves: when transferred to an operator; set the time before transfer well above your bot's slowest answer.");
    println!("  2. Start the bridge (`olbridge serve`) where {handler} reaches it, then run `olbridge doctor`.");
    Ok(ExitCode::SUCCESS)
}
