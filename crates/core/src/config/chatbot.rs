//! Which chatbot API the bridge speaks (`OLBRIDGE_BOT_API`). Whether its events are pushed or
//! fetched is the mode's business (`OLBRIDGE_MODE`, [`super::Mode`]): fetch mode needs v2.
//!
//! Both APIs use the same variables for the bot: `B24_BOT_ID` is the bot's id, and
//! `B24_BOT_CLIENT_ID` the credential repeated on every bot call — the v1 `CLIENT_ID`, or the v2
//! `botToken` (same role, so one name; `olbridge register-bot --v2` prints it). What differs is
//! how events are verified: a webhook-registered v1 bot's events have been seen carrying the
//! `CLIENT_ID` as `auth[application_token]`, but a v2 bot's events carry the portal's application
//! token, never the `botToken` (contract §3.2), so v2 webhook mode needs `B24_APPLICATION_TOKEN`.
//! Fetch mode needs no verification at all (the bridge pulls the events with the bot's
//! credentials) and no public endpoint, but its events carry no `auth` block, so the portal's
//! member id must be configured (`B24_MEMBER_ID`) or already pinned; the runner checks that at
//! start.

use super::Reader;
use super::vars::OLBRIDGE_BOT_API;

/// The chatbot API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BotApi {
    /// v1 `imbot.*` (`imbot.register` with `CLIENT_ID`; `ONIMBOT*` events). Deprecated by Bitrix24,
    /// still working; the default, so existing setups keep running.
    #[default]
    V1,
    /// Chatbots 2.0 `imbot.v2.*` (`botToken`; `ONIMBOTV2*` events, pushed or fetched).
    V2,
}

impl BotApi {
    /// As `OLBRIDGE_BOT_API` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

/// `OLBRIDGE_BOT_API`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatbotSettings {
    /// `OLBRIDGE_BOT_API` (default v1).
    pub api: BotApi,
}

pub(super) fn read(r: &mut Reader<'_>) -> ChatbotSettings {
    let api = r
        .parse(OLBRIDGE_BOT_API, "expected v1 or v2", |s| match s.to_ascii_lowercase().as_str() {
            "v1" | "1" => Ok(BotApi::V1),
            "v2" | "2" => Ok(BotApi::V2),
            _ => Err("unknown chatbot API".into()),
        })
        .unwrap_or_default();
    ChatbotSettings { api }
}
