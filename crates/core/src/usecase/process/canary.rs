//! A canary turn (`crate::usecase::canary`): a test message outside Open Lines, answered by the
//! bot or with the fallback message, and nothing else — no operator, no history, no profile, no
//! turn log entry (the customer statistics and metrics stay the customers').
//!
//! The bot is asked once, without the retry schedule: the canary measures what the bot does now,
//! and a bot that needs retries to answer is worth a failed canary. A crash between the answer
//! and the post asks again on the retry (no checkpoint: a second canary reply is harmless).

use std::time::Duration;

use tracing::{info, warn};

use super::turn::TurnDone;
use super::{Deps, Owner, ProcessError};
use crate::domain::message::InboundMessage;
use crate::domain::split::{WHATSAPP_MAX_CHARS, split_reply};
use crate::domain::turn::TurnOutcome;
use crate::ports::BotRequest;

/// Answers one canary message.
pub(super) async fn canary_turn(deps: &Deps, owner: &Owner, m: &InboundMessage) -> Result<TurnDone, ProcessError> {
    let key = m.dedup_key();
    let texts_and_error = match BotRequest::for_turn(std::slice::from_ref(m), serde_json::json!({}), Vec::new(), None) {
        Some(request) => match deps.bot.ask(&request, &key, deps.settings.bot_timeout.max(Duration::from_secs(1))).await {
            Ok(answer) => (answer.replies.iter().flat_map(|r| split_reply(r, WHATSAPP_MAX_CHARS)).collect::<Vec<_>>(), None),
            Err(e) => (vec![deps.settings.fallback_message.clone()], Some(e.to_string())),
        },
        None => (vec![deps.settings.fallback_message.clone()], Some("empty canary message".to_owned())),
    };
    let (texts, error) = texts_and_error;
    let mut reply_ids = Vec::new();
    for text in &texts {
        match deps.portal.post_reply(m.dialog_id, text).await {
            Ok(id) => reply_ids.push(id),
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                warn!(dialog = %m.dialog_id, code = %e.code, "the portal refused the canary's reply");
                break;
            }
        }
    }
    let outcome = match error {
        None => {
            info!(dialog = %m.dialog_id, replies = reply_ids.len(), "canary answered");
            TurnOutcome::Answered { reply_ids }
        }
        Some(error) => {
            warn!(dialog = %m.dialog_id, error = %error, "canary: the bot failed; the fallback message was posted in the canary dialog (no handoff)");
            TurnOutcome::Fallback { error }
        }
    };
    deps.idempotency.complete(&key, &owner.id, &outcome, deps.clock.now()).await?;
    Ok(TurnDone { keys: vec![key], outcomes: vec![outcome] })
}
