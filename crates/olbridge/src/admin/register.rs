//! `olbridge register-bot`: registers our Open Lines chatbot through the incoming webhook.
//!
//! Idempotent, even when its output was never pasted into `.env`: the bot's `CLIENT_ID` is derived
//! from the webhook ([`derived_client_id`]: HMAC-SHA256 keyed by the webhook's secret code over the
//! bot's code), so a second run computes the same one, finds the bot by its code with
//! `imbot.bot.list`, checks that the `CLIENT_ID` is really that bot's, and prints the same `.env`
//! lines without creating anything. Only whoever holds the webhook code can compute it, and a new
//! webhook (a rotation) gives another one: `.env` keeps the one printed at registration.
//!
//! An explicit `B24_BOT_CLIENT_ID` is used instead of the derived one. Bots registered by older
//! olbridge versions have a random `CLIENT_ID`: re-running finds them, cannot prove the derived id,
//! and asks for the old `B24_BOT_CLIENT_ID` instead of creating a twin (every `imbot.*` call must
//! repeat the bot's `CLIENT_ID`, so a bot whose id we do not know is unusable through this webhook).

use std::process::ExitCode;

use anyhow::Context as _;
use hmac::{Hmac, Mac as _};
use olbridge_core::b24::imbot::{BotProperties, BotRegistration, BotType};
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
    // HMAC takes keys of any length; the error cannot happen.
    let mut mac = Hmac::<Sha256>::new_from_slice(webhook.code().expose().as_bytes()).map_err(|e| anyhow::anyhow!("cannot key HMAC-SHA256: {e}"))?;
    mac.update(b"olbridge-client-id:");
    mac.update(code.as_bytes());
    let mut hex = hex::encode(mac.finalize().into_bytes());
    hex.truncate(CLIENT_ID_LEN);
    Ok(Secret::new(hex))
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
    Ok(Registration { bot_id, client_id, created: true })
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
        (None, None) => anyhow::bail!("set OLBRIDGE_PUBLIC_URL (the https:// address Bitrix24 reaches this bridge at) or pass --handler-url"),
    };
    let client = B24Client::new(webhook, ClientOptions::default())?;
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
    }
}
