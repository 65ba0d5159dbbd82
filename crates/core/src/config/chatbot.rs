//! Which chatbot API the bridge speaks (`OLBRIDGE_BOT_API`), and whether its events are fetched
//! rather than pushed (`OLBRIDGE_MODE=fetch`).
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
//!
//! `OLBRIDGE_MODE` belongs to the run-mode switch (push, fetch, operator); only `fetch` is read
//! here, and only `push` and `fetch` are accepted until that switch owns the variable.

use super::Reader;
use super::vars::{OLBRIDGE_BOT_API, OLBRIDGE_MODE};

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

/// `OLBRIDGE_BOT_API` and the fetch part of `OLBRIDGE_MODE`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatbotSettings {
    /// `OLBRIDGE_BOT_API` (default v1).
    pub api: BotApi,
    /// `OLBRIDGE_MODE=fetch`: pull the bot's events with `imbot.v2.Event.get` instead of receiving
    /// them (v2 only).
    pub fetch: bool,
}

pub(super) fn read(r: &mut Reader<'_>) -> ChatbotSettings {
    let api = r
        .parse(OLBRIDGE_BOT_API, "expected v1 or v2", |s| match s.to_ascii_lowercase().as_str() {
            "v1" | "1" => Ok(BotApi::V1),
            "v2" | "2" => Ok(BotApi::V2),
            _ => Err("unknown chatbot API".into()),
        })
        .unwrap_or_default();
    let fetch = r
        .parse(OLBRIDGE_MODE, "expected push or fetch", |s| match s.to_ascii_lowercase().as_str() {
            "push" => Ok(false),
            "fetch" => Ok(true),
            _ => Err("unknown mode".into()),
        })
        .unwrap_or(false);
    ChatbotSettings { api, fetch }
}
