//! Cost controls: the FAQ answer cache (`OLBRIDGE_FAQ_CACHE_TTL_SEC`), the per-phone rate limit
//! (`OLBRIDGE_RATE_LIMIT_MESSAGES` per `OLBRIDGE_RATE_LIMIT_WINDOW_SEC`, with
//! `OLBRIDGE_RATE_LIMIT_NOTICE`) and the daily bot-call cap (`OLBRIDGE_DAILY_BOT_CALLS`). Each is
//! on by default and turned off by `0`.

use std::time::Duration;

use super::Reader;
use super::vars::{
    OLBRIDGE_DAILY_BOT_CALLS, OLBRIDGE_FAQ_CACHE_TTL_SEC, OLBRIDGE_RATE_LIMIT_MESSAGES, OLBRIDGE_RATE_LIMIT_NOTICE, OLBRIDGE_RATE_LIMIT_WINDOW_SEC,
};

/// The notice a customer gets once per window when over the rate limit.
pub const DEFAULT_RATE_LIMIT_NOTICE: &str = "You are sending messages faster than we can answer. Please wait a minute; we will reply to your next message.";

/// How the worker saves bot calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostSettings {
    /// How long a cacheable FAQ answer is served without asking the bot; `None`: no cache.
    pub faq_ttl: Option<Duration>,
    /// At most this many customer messages per window reach the bot, per phone (per chat when
    /// the phone is unknown); `None`: no limit.
    pub rate_limit: Option<RateLimit>,
    /// Told once per window to a customer over the rate limit.
    pub rate_limit_notice: String,
    /// At most this many bot calls per phone (or chat) per UTC day; past it the chat goes to a
    /// human (`daily_cap`). `None`: unlimited.
    pub daily_bot_calls: Option<u64>,
}

/// A rate limit: `messages` per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Customer messages admitted per window.
    pub messages: u64,
    /// The fixed window.
    pub window: Duration,
}

impl Default for CostSettings {
    fn default() -> Self {
        Self {
            faq_ttl: Some(Duration::from_secs(86_400)),
            rate_limit: Some(RateLimit { messages: 20, window: Duration::from_secs(60) }),
            rate_limit_notice: DEFAULT_RATE_LIMIT_NOTICE.into(),
            daily_bot_calls: Some(200),
        }
    }
}

impl CostSettings {
    /// Everything off: no cache, no limits (tests that count bot calls of their own).
    pub fn off() -> Self {
        Self { faq_ttl: None, rate_limit: None, daily_bot_calls: None, ..Self::default() }
    }
}

pub(super) fn read(r: &mut Reader<'_>) -> CostSettings {
    let d = CostSettings::default();
    let ttl = r.number(OLBRIDGE_FAQ_CACHE_TTL_SEC, 86_400, |v: &u64| *v <= 365 * 86_400, "expected seconds, 0..=31536000 (0: off)");
    let messages = r.number(OLBRIDGE_RATE_LIMIT_MESSAGES, 20, |v: &u64| *v <= 100_000, "expected 0..=100000 (0: off)");
    let window = r.number(OLBRIDGE_RATE_LIMIT_WINDOW_SEC, 60, |v: &u64| (1..=86_400).contains(v), "expected seconds, 1..=86400");
    let daily = r.number(OLBRIDGE_DAILY_BOT_CALLS, 200, |v: &u64| *v <= 1_000_000, "expected 0..=1000000 (0: unlimited)");
    CostSettings {
        faq_ttl: (ttl > 0).then(|| Duration::from_secs(ttl)),
        rate_limit: (messages > 0).then(|| RateLimit { messages, window: Duration::from_secs(window) }),
        rate_limit_notice: r.text(OLBRIDGE_RATE_LIMIT_NOTICE).unwrap_or(d.rate_limit_notice),
        daily_bot_calls: (daily > 0).then_some(daily),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::{CostSettings, RateLimit};
    use crate::config::Config;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, crate::config::ConfigError> {
        Config::from_map(&pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<HashMap<_, _>>())
    }

    #[test]
    fn on_by_default_and_off_with_zero() {
        assert_eq!(load(&[]).expect("valid").conversation.cost, CostSettings::default());
        let off = load(&[("OLBRIDGE_FAQ_CACHE_TTL_SEC", "0"), ("OLBRIDGE_RATE_LIMIT_MESSAGES", "0"), ("OLBRIDGE_DAILY_BOT_CALLS", "0")]).expect("valid");
        assert_eq!(off.conversation.cost, CostSettings::off());
        let set = load(&[("OLBRIDGE_RATE_LIMIT_MESSAGES", "5"), ("OLBRIDGE_RATE_LIMIT_WINDOW_SEC", "10"), ("OLBRIDGE_RATE_LIMIT_NOTICE", "Slow down")])
            .expect("valid")
            .conversation
            .cost;
        assert_eq!((set.rate_limit, set.rate_limit_notice.as_str()), (Some(RateLimit { messages: 5, window: Duration::from_secs(10) }), "Slow down"));
        let e =
            load(&[("OLBRIDGE_FAQ_CACHE_TTL_SEC", "-1"), ("OLBRIDGE_RATE_LIMIT_WINDOW_SEC", "0"), ("OLBRIDGE_DAILY_BOT_CALLS", "many")]).expect_err("invalid");
        assert_eq!(e.0.len(), 3, "{e}");
    }
}
