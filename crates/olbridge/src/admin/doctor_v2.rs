//! `olbridge doctor` for a Chatbots 2.0 setup (`OLBRIDGE_BOT_API=v2`): is the bot a v2 bot, does
//! the portal accept `B24_BOT_CLIENT_ID` as its `botToken`, is it in the event mode the bridge runs
//! (`OLBRIDGE_MODE=fetch` or push), and is what that mode needs configured.
//!
//! One call answers the first three without side effects: `imbot.v2.Event.get` with no `offset`
//! acknowledges nothing (contract §3.7) and checks the bot and its token before its mode, so a
//! page means "token accepted, fetch mode", `BOT_INVALID_EVENT_MODE` "token accepted, webhook
//! mode" (the emulator's answer; the docs only say the queue exists in fetch mode),
//! `BOT_OWNERSHIP_ERROR` a wrong token and `BOT_NOT_FOUND` no such v2 bot.

use olbridge_core::b24::B24Client;
use olbridge_core::config::{BotApi, Config};
use olbridge_core::domain::ids::BotId;
use olbridge_core::domain::secret::Secret;

use super::doctor::Check;

/// What the portal says about the v2 bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Fetch,
    Webhook,
}

/// The checks of a v2 setup (nothing for a v1 one, but a v1 bot cannot fetch).
pub async fn checks(client: &B24Client, config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    let fetch = config.mode() == olbridge_core::config::Mode::Fetch;
    if config.chatbot.api == BotApi::V1 {
        if fetch {
            out.push(Check::Fail(
                "OLBRIDGE_MODE=fetch needs a Chatbots 2.0 bot: register one with `olbridge register-bot --v2 --fetch` and set OLBRIDGE_BOT_API=v2".into(),
            ));
        }
        return out;
    }
    if !fetch && config.portal.application_token.is_none() {
        out.push(Check::Fail(
            "B24_APPLICATION_TOKEN is not set: Chatbots 2.0 events are verified against their top-level auth[application_token] \
             (see docs/bitrix24-setup.md, \"Chatbots 2.0\"); or run in fetch mode, which needs no public endpoint and no token"
                .into(),
        ));
    }
    let (Some(bot), Some(token)) = (config.portal.bot_id, config.portal.bot_client_id.as_ref()) else {
        return out; // the common checks already name the missing B24_BOT_ID / B24_BOT_CLIENT_ID
    };
    let want = if fetch { "fetch" } else { "webhook" };
    match probe(client, bot, token).await {
        Ok(mode) => {
            let is = if mode == Probe::Fetch { "fetch" } else { "webhook" };
            if is == want {
                out.push(Check::Ok(format!("the portal accepts B24_BOT_CLIENT_ID as bot {bot}'s botToken; the bot is in {is} mode, as the bridge runs")));
            } else if mode == Probe::Fetch {
                out.push(Check::Fail(format!(
                    "bot {bot} is in fetch mode, so Bitrix24 never pushes its events: set OLBRIDGE_MODE=fetch (no public endpoint needed)"
                )));
            } else {
                out.push(Check::Fail(format!(
                    "bot {bot} is in webhook mode, so OLBRIDGE_MODE=fetch cannot read its events: remove OLBRIDGE_MODE=fetch, \
                     or register a fetch-mode bot with `olbridge register-bot --v2 --fetch --code <another code>` and attach it to the line"
                )));
            }
        }
        Err(problem) => out.push(Check::Fail(problem)),
    }
    out
}

/// Asks `imbot.v2.Event.get` (no offset: nothing acknowledged) what mode the bot is in.
async fn probe(client: &B24Client, bot: BotId, token: &Secret) -> Result<Probe, String> {
    match client.imbot_v2_event_get(bot, token, None, Some(1)).await {
        Ok(_) => Ok(Probe::Fetch),
        Err(e) if e.code == "BOT_INVALID_EVENT_MODE" => Ok(Probe::Webhook),
        Err(e) if e.code == "BOT_OWNERSHIP_ERROR" || e.code == "BOT_TOKEN_NOT_SPECIFIED" => {
            Err(format!("the portal refused B24_BOT_CLIENT_ID as bot {bot}'s botToken ({}): use the value `olbridge register-bot --v2` printed", e.code))
        }
        Err(e) if e.code == "BOT_NOT_FOUND" => {
            Err(format!("bot {bot} is not a Chatbots 2.0 bot on this portal: run `olbridge register-bot --v2` (or set OLBRIDGE_BOT_API=v1 for a v1 bot)"))
        }
        Err(e) => Err(format!("imbot.v2.Event.get failed: {e}")),
    }
}
