//! `olbridge register-bot`: registers our Open Lines chatbot through the incoming webhook.
//!
//! Idempotent, even when its output was never pasted into `.env`: the bot's `CLIENT_ID` is derived
//! from the webhook ([`derived_client_id`]: HMAC-SHA256 keyed by the webhook's secret code over the
//! bot's code), so a second run computes the same one, finds the bot by its code with
//! `imbot.bot.list`, checks that the `CLIENT_ID` is really that bot's, and prints the same `.env`
//! lines without creating anything. Only whoever holds the webhook code can compute it, and a new
//! webhook (a rotation) gives another one: `.env` keeps the one printed at registration.
//!
//! `--v2` registers a Chatbots 2.0 bot instead (`imbot.v2.Bot.register`, type `openline`), in
//! webhook mode with the handler URL, or with `--fetch` in fetch mode (no handler URL at all). Its
//! `botToken` is derived the same way ([`derived_bot_token`], another label, so a v1 `CLIENT_ID`
//! and a v2 `botToken` of one code differ; 32 characters, under the 40 Bitrix24 accepts), goes
//! into `B24_BOT_CLIENT_ID` (same role: it authenticates every bot call), and the registration is
//! idempotent on the portal itself: the same token and code give back the existing bot unchanged.
//! A bot already registered in the other event mode is refused rather than silently kept.
//!
//! A v1 bot also gets the hidden command the CSAT prompt's 👍/👎 keyboard buttons send
//! ([`ensure_csat_command`], `EVENT_COMMAND_ADD` = the same handler URL), once: a second run finds it.
//!
//! An explicit `B24_BOT_CLIENT_ID` is used instead of the derived one. Bots registered by older
//! olbridge versions have a random `CLIENT_ID`: re-running finds them, cannot prove the derived id,
//! and asks for the old `B24_BOT_CLIENT_ID` instead of creating a twin (every `imbot.*` call must
//! repeat the bot's `CLIENT_ID`, so a bot whose id we do not know is unusable through this webhook).

use std::process::ExitCode;

use anyhow::Context as _;
use hmac::{Hmac, Mac as _};
use olbridge_core::b24::imbot::{BotProperties, BotRegistration, BotType, CommandLang, CommandRegistration, V2BotRegistration, V2EventMode};
use olbridge_core::b24::{B24Client, ClientOptions, WebhookBase};
use olbridge_core::config::Config;
use olbridge_core::domain::ids::BotId;
use olbridge_core::domain::secret::Secret;
use serde_json::{Value, json};
use sha2::Sha256;

/// The registration code of our bot; `--code` changes it (one portal, several bridges).
pub const DEFAULT_CODE: &str = "olbridge";

/// The bot's default name as operators and customers see it; distinct from the service user the
/// webhook acts as (often "AI assistant"), so operators can tell the two apart.
pub const DEFAULT_NAME: &str = "olbridge assistant";

/// Hex characters kept of the derived `CLIENT_ID` (128 bits).
const CLIENT_ID_LEN: usize = 32;

/// `olbridge register-bot` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RegisterArgs {
    /// The bot's registration code (unique within the portal).
    #[arg(long, default_value = DEFAULT_CODE)]
    pub code: String,
    /// The bot's name as operators and customers see it.
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,
    /// The handler URL Bitrix24 POSTs events to; default `OLBRIDGE_PUBLIC_URL` + `/bitrix/events`.
    #[arg(long)]
    pub handler_url: Option<String>,
    /// Register a Chatbots 2.0 bot (`imbot.v2.Bot.register`) instead of a v1 one.
    #[arg(long)]
    pub v2: bool,
    /// With --v2: fetch mode, the bridge pulls the events (`imbot.v2.Event.get`); no handler URL.
    #[arg(long, requires = "v2")]
    pub fetch: bool,
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

/// The `CLIENT_ID` olbridge gives the bot `code` on the portal of `webhook`: hex HMAC-SHA256 keyed
/// by the webhook's secret code over `"olbridge-client-id:" + code`, first 32 characters.
pub fn derived_client_id(webhook: &WebhookBase, code: &str) -> anyhow::Result<Secret> {
    derive(webhook, "olbridge-client-id:", code)
}

/// The `botToken` olbridge gives the v2 bot `code` on the portal of `webhook`: as
/// [`derived_client_id`], over `"olbridge-bot-token:" + code`.
pub fn derived_bot_token(webhook: &WebhookBase, code: &str) -> anyhow::Result<Secret> {
    derive(webhook, "olbridge-bot-token:", code)
}

fn derive(webhook: &WebhookBase, label: &str, code: &str) -> anyhow::Result<Secret> {
    // HMAC takes keys of any length; the error cannot happen.
    let mut mac = Hmac::<Sha256>::new_from_slice(webhook.code().expose().as_bytes()).map_err(|e| anyhow::anyhow!("cannot key HMAC-SHA256: {e}"))?;
    mac.update(label.as_bytes());
    mac.update(code.as_bytes());
    let mut hex = hex::encode(mac.finalize().into_bytes());
    hex.truncate(CLIENT_ID_LEN);
    Ok(Secret::new(hex))
}

/// Registers the Chatbots 2.0 bot `code` in `mode`, or finds it when this token registered it
/// before. `bot_token` is `B24_BOT_CLIENT_ID` when configured; otherwise the derived one.
pub async fn register_v2(client: &B24Client, code: &str, name: &str, mode: V2EventMode, bot_token: Option<Secret>) -> anyhow::Result<Registration> {
    let explicit = bot_token.is_some();
    let bot_token = match bot_token {
        Some(t) => t,
        None => derived_bot_token(client.webhook(), code)?,
    };
    let before = client.imbot_bot_list().await.context("imbot.bot.list failed")?;
    let want = match &mode {
        V2EventMode::Webhook(_) => "webhook",
        V2EventMode::Fetch => "fetch",
    };
    let registration = V2BotRegistration {
        code: code.to_owned(),
        properties: BotProperties {
            name: name.to_owned(),
            work_position: Some("WhatsApp assistant".into()),
            color: Some("AQUA".into()),
            ..BotProperties::default()
        },
        mode,
        bot_token: bot_token.clone(),
    };
    let bot = match client.imbot_v2_bot_register(&registration).await {
        Ok(bot) => bot,
        Err(e) if e.code == "BOT_CODE_ALREADY_TAKEN" => {
            let which = if explicit { "B24_BOT_CLIENT_ID in the configuration is not its botToken" } else { "it was registered with another botToken" };
            anyhow::bail!(
                "a Chatbots 2.0 bot with code {code:?} is already registered, but {which}. \
                 Set B24_BOT_CLIENT_ID to the botToken printed when it was registered (see the old .env), or register a new bot with --code <another code>."
            );
        }
        Err(e) => return Err(anyhow::Error::new(e).context("imbot.v2.Bot.register failed")),
    };
    let bot_id = BotId::new(bot.id).map_err(|e| anyhow::anyhow!("imbot.v2.Bot.register returned bot id {}: {e}", bot.id))?;
    if !bot.event_mode.eq_ignore_ascii_case(want) {
        anyhow::bail!(
            "the bot {code:?} (id {bot_id}) is registered in {} mode, not {want} mode; Bitrix24 keeps an existing bot unchanged. \
             Run `olbridge register-bot --v2{}` to keep its mode, or register a new bot with --code <another code>.",
            bot.event_mode,
            if bot.event_mode == "fetch" { " --fetch" } else { "" },
        );
    }
    let created = !before.iter().any(|b| b.id == bot.id);
    Ok(Registration { bot_id, client_id: bot_token, created })
}

/// Registers the bot `code`, or finds it when it exists. `client_id` is `B24_BOT_CLIENT_ID` when
/// configured; otherwise the one derived from the client's webhook.
pub async fn register(client: &B24Client, handler_url: &str, code: &str, name: &str, client_id: Option<Secret>) -> anyhow::Result<Registration> {
    let explicit = client_id.is_some();
    let client_id = match client_id {
        Some(c) => c,
        None => derived_client_id(client.webhook(), code)?,
    };
    let existing = client.imbot_bot_list().await.context("imbot.bot.list failed")?.into_iter().find(|b| b.code == code);
    if let Some(bot) = existing {
        let bot_id = BotId::new(bot.id).map_err(|e| anyhow::anyhow!("imbot.bot.list returned bot id {}: {e}", bot.id))?;
        if owns(client, bot_id, &client_id).await? {
            ensure_csat_command(client, bot_id, &client_id, handler_url).await?;
            return Ok(Registration { bot_id, client_id, created: false });
        }
        let which = if explicit {
            "B24_BOT_CLIENT_ID in the configuration is not its CLIENT_ID"
        } else {
            "it was not registered with the CLIENT_ID this olbridge derives from the webhook (older olbridge versions chose a random one)"
        };
        anyhow::bail!(
            "a bot with code {code:?} (id {id}) is already registered, but {which}. \
             Set B24_BOT_ID={id} and B24_BOT_CLIENT_ID to the values printed when it was registered (see the old .env), \
             or register a new bot with --code <another code>.",
            id = bot.id,
        );
    }
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
    ensure_csat_command(client, bot_id, &client_id, handler_url).await?;
    Ok(Registration { bot_id, client_id, created: true })
}

/// Registers the hidden command the CSAT prompt's 👍/👎 buttons send (`olbridge_core::usecase::csat::COMMAND`,
/// `EVENT_COMMAND_ADD` = the bot's handler URL), unless the bot has it already. Whether Bitrix24
/// itself refuses or merges a second registration of one command is not documented, so the
/// command is looked up first, without side effects: `imbot.command.answer` naming the command and
/// no message fails with `MESSAGE_ID_EMPTY` when the command exists for this `CLIENT_ID`, and with
/// `COMMAND_ID_ERROR` when it does not (SRC `im_rest.php`, the checks' order). Returns whether it
/// registered it.
pub async fn ensure_csat_command(client: &B24Client, bot: BotId, client_id: &Secret, handler_url: &str) -> anyhow::Result<bool> {
    let command = olbridge_core::usecase::csat::COMMAND;
    let probe = json!({"COMMAND": command, "CLIENT_ID": client_id.expose()});
    match client.call::<Value>("imbot.command.answer", &probe).await {
        Err(e) if e.code == "MESSAGE_ID_EMPTY" => return Ok(false),
        Err(e) if e.code == "COMMAND_ID_ERROR" => {}
        Ok(_) => return Ok(false),
        Err(e) => return Err(anyhow::Error::new(e).context("cannot check the bot's CSAT command (imbot.command.answer)")),
    }
    let registration = CommandRegistration {
        bot_id: bot,
        command: command.to_owned(),
        event_command_add: handler_url.to_owned(),
        common: false,
        hidden: true,
        // Open Lines customers are extranet users (contract §4.7).
        extranet_support: true,
        lang: vec![CommandLang { language_id: "en".into(), title: "Rate the answer".into(), params: Some("up|down".into()) }],
    };
    client.imbot_command_register(&registration, client_id).await.context("imbot.command.register failed")?;
    Ok(true)
}

/// Whether `client_id` is the `CLIENT_ID` of `bot`, without side effects: `imbot.chat.sendTyping`
/// with no dialog checks the bot's app before the dialog (SRC `im_rest.php`), so
/// `DIALOG_ID_EMPTY` means the app matched and `APP_ID_ERROR` that it did not. Nothing is sent.
async fn owns(client: &B24Client, bot: BotId, client_id: &Secret) -> anyhow::Result<bool> {
    let probe = json!({"BOT_ID": bot.get(), "CLIENT_ID": client_id.expose()});
    match client.call::<Value>("imbot.chat.sendTyping", &probe).await {
        Ok(_) => Ok(true),
        Err(e) if e.code == "DIALOG_ID_EMPTY" => Ok(true),
        Err(e) if e.code == "APP_ID_ERROR" || e.code == "ACCESS_DENIED" => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("cannot check the bot's CLIENT_ID (imbot.chat.sendTyping)")),
    }
}

/// Runs `olbridge register-bot`.
pub async fn run(config: &Config, args: RegisterArgs) -> anyhow::Result<ExitCode> {
    let webhook = config.portal.webhook.clone().context("B24_WEBHOOK_BASE is not set: create an incoming webhook (scopes im, imopenlines, imbot) first")?;
    let handler = match (&args.handler_url, &config.runner.public_url) {
        (Some(h), _) => h.clone(),
        (None, Some(base)) => format!("{}/bitrix/events", base.as_str().trim_end_matches('/')),
        // Fetch mode has no handler URL at all.
        (None, None) if args.fetch => String::new(),
        (None, None) => anyhow::bail!(
            "set OLBRIDGE_PUBLIC_URL (the https:// address Bitrix24 reaches this bridge at) or pass --handler-url \
             (or, with no public endpoint, use a Chatbots 2.0 bot in fetch mode: --v2 --fetch)"
        ),
    };
    let client = B24Client::new(webhook, ClientOptions::default())?;
    if args.v2 {
        return run_v2(config, &client, &args, &handler).await;
    }
    let reg = register(&client, &handler, &args.code, &args.name, config.portal.bot_client_id.clone()).await?;
    if reg.created {
        crate::outln!("Registered the Open Lines bot {:?} (id {}) with handler {handler}.", args.name, reg.bot_id)?;
    } else {
        crate::outln!("The bot {:?} (id {}) is already registered; nothing changed.", args.code, reg.bot_id)?;
    }
    crate::outln!("\nAdd these lines to .env (keep B24_BOT_CLIENT_ID secret):\n")?;
    crate::outln!("B24_BOT_ID={}", reg.bot_id)?;
    crate::outln!("B24_BOT_CLIENT_ID={}", reg.client_id.expose())?;
    crate::outln!("\nNext, in Bitrix24 (see docs/bitrix24-setup.md):")?;
    crate::outln!("  1. Contact Center -> your WhatsApp line -> Settings -> Chatbot: assign {:?}, join: always,", args.name)?;
    crate::outln!("     leaves: when transferred to an operator; set the time before transfer well above your bot's slowest answer.")?;
    crate::outln!("  2. Start the bridge (`olbridge serve`) where {handler} reaches it, then run `olbridge doctor`.")?;
    Ok(ExitCode::SUCCESS)
}

/// `olbridge register-bot --v2 [--fetch]`.
async fn run_v2(config: &Config, client: &B24Client, args: &RegisterArgs, handler: &str) -> anyhow::Result<ExitCode> {
    let mode = if args.fetch { V2EventMode::Fetch } else { V2EventMode::Webhook(handler.to_owned()) };
    let reg = register_v2(client, &args.code, &args.name, mode, config.portal.bot_client_id.clone()).await?;
    let how = if args.fetch { "in fetch mode (no handler URL)".to_owned() } else { format!("in webhook mode with handler {handler}") };
    if reg.created {
        crate::outln!("Registered the Chatbots 2.0 Open Lines bot {:?} (id {}) {how}.", args.name, reg.bot_id)?;
    } else {
        crate::outln!("The Chatbots 2.0 bot {:?} (id {}) is already registered {how}; nothing changed.", args.code, reg.bot_id)?;
    }
    crate::outln!("\nAdd these lines to .env (keep B24_BOT_CLIENT_ID secret: it is the bot's botToken):\n")?;
    crate::outln!("B24_BOT_ID={}", reg.bot_id)?;
    crate::outln!("B24_BOT_CLIENT_ID={}", reg.client_id.expose())?;
    crate::outln!("OLBRIDGE_BOT_API=v2")?;
    if args.fetch {
        crate::outln!("OLBRIDGE_MODE=fetch")?;
        if config.portal.member_id.is_none() {
            crate::outln!("B24_MEMBER_ID=<the portal's member id: fetched events carry none, see docs/bitrix24-setup.md>")?;
        }
    } else if config.portal.application_token.is_none() {
        crate::outln!("B24_APPLICATION_TOKEN=<the auth[application_token] of the bot's events, see docs/bitrix24-setup.md>")?;
    }
    crate::outln!("\nNext, in Bitrix24 (see docs/bitrix24-setup.md):")?;
    crate::outln!("  1. Contact Center -> your WhatsApp line -> Settings -> Chatbot: assign {:?}, join: always,", args.name)?;
    crate::outln!("     leaves: when transferred to an operator; set the time before transfer well above your bot's slowest answer.")?;
    if args.fetch {
        crate::outln!("  2. Start the bridge (`olbridge serve`) anywhere it can reach the portal, then run `olbridge doctor`.")?;
    } else {
        crate::outln!("  2. Start the bridge (`olbridge serve`) where {handler} reaches it, then run `olbridge doctor`.")?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_id_depends_on_the_webhook_code_and_the_bot_code_only() {
        let a = WebhookBase::parse("https://a.bitrix24.com/rest/38005/abcdef123456/").unwrap();
        let a_again = WebhookBase::parse("https://a.bitrix24.com/rest/38005/abcdef123456").unwrap();
        let other_code = WebhookBase::parse("https://a.bitrix24.com/rest/38005/zzzzzz999999/").unwrap();
        let derive = |w: &WebhookBase, code: &str| derived_client_id(w, code).unwrap().expose().to_owned();
        let id = derive(&a, "olbridge");
        assert_eq!(id.len(), CLIENT_ID_LEN);
        assert_eq!(id, derive(&a_again, "olbridge"));
        assert_ne!(id, derive(&a, "olbridge2"));
        assert_ne!(id, derive(&other_code, "olbridge"));
        // python3 -c "import hmac,hashlib;print(hmac.new(b'abcdef123456',b'olbridge-client-id:olbridge',hashlib.sha256).hexdigest()[:32])"
        assert_eq!(id, "38b1a7166d7ae263dad9821e4737666f");
        let token = derived_bot_token(&a, "olbridge").unwrap();
        assert_eq!(token.expose().len(), CLIENT_ID_LEN, "within the 40 characters a botToken may have");
        assert_ne!(token.expose(), id, "a v1 CLIENT_ID and a v2 botToken of one code differ");
        assert_eq!(token.expose(), derived_bot_token(&a_again, "olbridge").unwrap().expose());
    }
}
