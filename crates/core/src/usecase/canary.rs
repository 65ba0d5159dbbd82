//! The synthetic canary: a test message through a test dialog, and the time until the bot's reply.
//!
//! ```text
//!   the webhook's user: im.message.add "olbridge canary <nonce>" into the canary dialog
//!     -> the portal delivers it to the bridge like any message (ONIMBOTMESSAGEADD, or the fetch
//!        queue), the bridge asks the bot and posts its reply as the bot
//!   the canary: im.dialog.messages.get FIRST_ID=<its message> until a reply by someone else
//!     -> the bot's answer: passed (latency); the fallback message: failed (the bot is down);
//!        nothing within OLBRIDGE_CANARY_TIMEOUT_SEC: failed
//! ```
//!
//! The default dialog is the webhook user's private dialog with the bridge's bot (`DIALOG_ID` =
//! `B24_BOT_ID`): Bitrix24 sends a bot every message of its private dialogs, so the whole path a
//! customer's message takes (the portal's event, the receiver or the fetch loop, the queue, the
//! worker, the bot, `imbot.message.add`) is exercised, without an Open Lines session, a WhatsApp
//! number or a customer. `OLBRIDGE_CANARY_DIALOG` names another (a group chat the bot is in).
//!
//! # Never in a real line
//! The bridge recognises a canary only outside Open Lines ([`is_canary`]): the same words from a
//! WhatsApp customer are an ordinary question. A canary turn (`crate::usecase::process`) asks the
//! bot once, posts its answer or the fallback message into the canary dialog, and never hands
//! anything to an operator, writes history or profiles, or enters the turn log (so the
//! customer-facing statistics and metrics do not count it).
//!
//! Operator mode has no bot to write to, so it has no canary dialog by default.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::b24::B24Client;
use crate::b24::im::{MessagesQuery, OutgoingMessage};
use crate::domain::ids::{DialogId, MessageId};

pub use crate::domain::message::{CANARY_PREFIX as PREFIX, is_canary_text as is_canary};

/// How a canary runs.
#[derive(Debug, Clone)]
pub struct CanarySettings {
    /// Where it writes.
    pub dialog: DialogId,
    /// How long it waits for the reply.
    pub timeout: Duration,
    /// How often it reads the dialog while waiting.
    pub poll_every: Duration,
    /// The bridge's fallback message (`OLBRIDGE_FALLBACK_MESSAGE`): a reply that is this text means
    /// the bot failed.
    pub fallback_message: String,
}

impl CanarySettings {
    /// The dialog from the configuration: `OLBRIDGE_CANARY_DIALOG`, else the private dialog with
    /// `B24_BOT_ID`; `None` when neither is set (operator mode).
    pub fn from_config(config: &crate::config::Config) -> Option<Self> {
        let dialog = config.health.canary_dialog.or_else(|| config.portal.bot_id.map(|b| DialogId::User(b.as_user())))?;
        Some(Self {
            dialog,
            timeout: config.health.canary_timeout,
            poll_every: Duration::from_secs(1),
            fallback_message: config.conversation.fallback_message.clone(),
        })
    }
}

/// What a canary found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CanaryResult {
    /// The bot replied.
    Passed {
        /// From posting the message to seeing the reply, milliseconds.
        latency_ms: u64,
    },
    /// No reply in time, the fallback message, or the canary could not write or read.
    Failed {
        /// Why, in plain words (no secret).
        reason: String,
        /// How long it ran, milliseconds.
        elapsed_ms: u64,
    },
}

impl CanaryResult {
    /// Whether it passed.
    pub fn passed(&self) -> bool {
        matches!(self, Self::Passed { .. })
    }

    /// One line for the log.
    pub fn line(&self) -> String {
        match self {
            Self::Passed { latency_ms } => format!("canary passed: the bot replied in {latency_ms} ms"),
            Self::Failed { reason, elapsed_ms } => format!("canary FAILED after {elapsed_ms} ms: {reason}"),
        }
    }
}

fn ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A fresh nonce.
pub fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Runs one canary with `nonce`: posts, then waits for the reply.
pub async fn run(client: &B24Client, settings: &CanarySettings, nonce: &str) -> CanaryResult {
    let started = Instant::now();
    let failed = |reason: String| CanaryResult::Failed { reason, elapsed_ms: ms(started) };
    let me = client.webhook().user_id().get();
    let text = format!("{PREFIX}{nonce}");
    let posted = match client.im_message_add(&OutgoingMessage::new(settings.dialog, text)).await {
        Ok(id) => id,
        Err(e) => return failed(format!("could not post the canary message into dialog {} ({} {})", settings.dialog, e.method, e.code)),
    };
    let deadline = started + settings.timeout;
    loop {
        match reply_after(client, settings.dialog, posted, me).await {
            Ok(Some(reply)) if reply.trim() == settings.fallback_message.trim() => {
                return failed("the bridge answered with the fallback message: the bot failed (see the bridge's log)".into());
            }
            Ok(Some(_)) => return CanaryResult::Passed { latency_ms: ms(started) },
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "the canary could not read its dialog; trying again"),
        }
        if Instant::now() + settings.poll_every > deadline {
            return failed(format!(
                "no reply in dialog {} within {} s: is the bridge running and the bot answering?",
                settings.dialog,
                settings.timeout.as_secs()
            ));
        }
        tokio::time::sleep(settings.poll_every).await;
    }
}

/// The text of the first message after `posted` by someone other than `me`.
async fn reply_after(client: &B24Client, dialog: DialogId, posted: MessageId, me: u64) -> Result<Option<String>, String> {
    let q = MessagesQuery { first_id: Some(posted), last_id: None, limit: Some(50) };
    let page = client.im_dialog_messages_get(dialog, q).await.map_err(|e| format!("{} {}", e.method, e.code))?;
    let mut replies: Vec<_> = page.messages.into_iter().filter(|m| m.id > posted.get() && m.author_id != me && m.author_id != 0).collect();
    replies.sort_by_key(|m| m.id);
    Ok(replies.into_iter().next().map(|m| m.text))
}
