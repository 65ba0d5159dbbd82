//! WhatsApp's 24-hour window: a business may send free text only within 24 hours of the customer's
//! last message; after that only approved templates reach them. Bitrix24 writes the moment sending
//! is blocked into the session string (`entity_data_1` fields 9–10: `BLOCK_DATE` as unix seconds,
//! `BLOCK_REASON`), refreshed by each customer message; the Edna and Twilio connectors set
//! `BLOCK_DATE` 86 400 s ahead (contract §11, pitfall 8). `0` means no block date.
//!
//! The decision here is pure: given the block date the turn's messages carry and the time, may the
//! bridge still post free text? It is asked twice: when a turn starts (a closed window means the
//! bot is not asked at all) and right before every post (a late answer after a long queue or a
//! slow bot must not be sent). A margin keeps the last seconds of the window free, since a post
//! takes time to reach the connector.
//!
//! What a portal does with free text posted into a blocked chat is UNCONFIRMED (users of other
//! platforms report messages that look sent and never arrive): the bridge does not find out, so it
//! never tries. What `BLOCK_REASON` holds is UNCONFIRMED as well: it is kept as opaque text, for
//! the log. Both checks can be turned off (`OLBRIDGE_WINDOW_CHECK=off`) for a portal whose block
//! date turns out to mean something else.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// When a chat's connector stops accepting free text, as the session string says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// `BLOCK_DATE`.
    pub at: DateTime<Utc>,
    /// `BLOCK_REASON`, when it says anything (`0` and empty are nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Block {
    /// Decodes fields 9–10 of the session string; `None` when the date is missing, `0` or not a
    /// number (no window is known: the bridge posts as before).
    pub fn parse(date: &str, reason: &str) -> Option<Self> {
        let secs = date.trim().parse::<i64>().ok().filter(|s| *s > 0)?;
        let at = DateTime::from_timestamp(secs, 0)?;
        let reason = reason.trim();
        let reason = (!reason.is_empty() && reason != "0").then(|| reason.to_owned());
        Some(Self { at, reason })
    }
}

/// How the window is enforced (`OLBRIDGE_WINDOW_CHECK`, `OLBRIDGE_WINDOW_MARGIN_SEC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPolicy {
    /// Whether the block date is checked at all.
    pub enabled: bool,
    /// Free text is not posted in the last this-long of the window.
    pub margin: Duration,
}

impl Default for WindowPolicy {
    fn default() -> Self {
        Self { enabled: true, margin: Duration::from_secs(60) }
    }
}

impl WindowPolicy {
    /// The block that stops a post at `now`, if any: the latest block date of the turn's messages
    /// (each customer message moves it later) is at or before `now + margin`.
    pub fn closed<'a>(&self, blocks: impl IntoIterator<Item = Option<&'a Block>>, now: DateTime<Utc>) -> Option<&'a Block> {
        if !self.enabled {
            return None;
        }
        let latest = latest(blocks)?;
        let margin = chrono::Duration::from_std(self.margin).unwrap_or(chrono::Duration::MAX);
        let closes_at = latest.at.checked_sub_signed(margin).unwrap_or(DateTime::<Utc>::MIN_UTC);
        (now >= closes_at).then_some(latest)
    }
}

/// The latest block among those known; `None` when no message carries one.
pub fn latest<'a>(blocks: impl IntoIterator<Item = Option<&'a Block>>) -> Option<&'a Block> {
    blocks.into_iter().flatten().max_by_key(|b| b.at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn block(secs: i64) -> Block {
        Block { at: at(secs), reason: None }
    }

    #[test]
    fn the_session_fields_are_read_tolerantly() {
        assert_eq!(Block::parse("1773769318", "WHATSAPP_24H"), Some(Block { at: at(1_773_769_318), reason: Some("WHATSAPP_24H".into()) }));
        assert_eq!(Block::parse(" 1773769318 ", "0").and_then(|b| b.reason), None);
        for none in ["0", "", "-5", "soon", "99999999999999999999"] {
            assert_eq!(Block::parse(none, "x"), None, "{none:?}");
        }
    }

    #[test]
    fn the_window_is_open_until_the_margin_before_the_block_date() {
        let p = WindowPolicy { enabled: true, margin: Duration::from_secs(60) };
        let b = block(10_000);
        assert_eq!(p.closed([Some(&b)], at(9_939)), None, "61 s left: open");
        assert_eq!(p.closed([Some(&b)], at(9_940)), Some(&b), "60 s left: inside the margin, closed");
        assert_eq!(p.closed([Some(&b)], at(10_000)), Some(&b));
        assert_eq!(p.closed([Some(&b)], at(20_000)), Some(&b), "long after: closed");
        let no_margin = WindowPolicy { margin: Duration::ZERO, ..p };
        assert_eq!(no_margin.closed([Some(&b)], at(9_999)), None);
        assert_eq!(no_margin.closed([Some(&b)], at(10_000)), Some(&b));
    }

    #[test]
    fn the_latest_message_of_the_turn_decides_and_unknown_means_open() {
        let p = WindowPolicy::default();
        let (old, new) = (block(1_000), block(90_000));
        assert_eq!(p.closed([Some(&old), None, Some(&new)], at(5_000)), None, "a newer message reopened the window");
        assert_eq!(p.closed([Some(&new), Some(&old)], at(95_000)), Some(&new));
        assert_eq!(p.closed([None, None], at(95_000)), None, "no block date known: not blocked");
        assert_eq!(p.closed(std::iter::empty(), at(95_000)), None);
        let off = WindowPolicy { enabled: false, ..p };
        assert_eq!(off.closed([Some(&old)], at(95_000)), None, "the check can be turned off");
    }
}
