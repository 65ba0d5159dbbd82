//! `csat`: customer satisfaction per bot answer, apart from Bitrix24's own operator rating.
//!
//! WhatsApp shows no keyboard buttons, so the prompt is a short numbered question posted after a
//! bot answer ("Reply 1 if it helped, 2 if not", `OLBRIDGE_CSAT_PROMPT`). The rules:
//! - asked after every Nth bot answer of a chat (`OLBRIDGE_CSAT_EVERY`; 0, the default, never);
//! - never twice in a row: at least one answer without a prompt lies between two prompts, whatever
//!   N is;
//! - never inside an escalation: only a turn that ends `answered` (no handoff decided, the chat not
//!   held by a human) carries the prompt, posted after the reply as the turn's last message and
//!   checkpointed with it, so a crash neither loses nor repeats it;
//! - the customer's next message, when it is exactly `1` or `2`, is the answer: it is consumed
//!   (recorded as an `ignored` turn with reason `csat` carrying `up` or `down`), never sent to the
//!   bot, and not added to the bot's history. Anything else is an ordinary message and the prompt
//!   lapses.
//!
//! The per-chat state (a prompt is pending; answers since the last prompt) is one small value in
//! the [`MetaStore`] under `csat:<chat>`, written with compare-and-set; a lost race or a store
//! failure only skips a prompt, never a reply.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::config::CsatSettings;
use crate::domain::ids::ChatId;
use crate::ports::{MetaPut, MetaStore};

/// The CSAT prompt and its per-chat state.
pub struct Csat {
    meta: Arc<dyn MetaStore>,
    settings: CsatSettings,
}

impl std::fmt::Debug for Csat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Csat").field("settings", &self.settings).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// A prompt was posted and not answered yet.
    pending: bool,
    /// Bot answers since the last prompt (or since the chat began).
    since: u32,
    /// A prompt was ever posted in the chat.
    #[serde(default)]
    prompted: bool,
}

/// A customer's CSAT answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `1`: it helped.
    Up,
    /// `2`: it did not.
    Down,
}

impl Answer {
    /// `up` or `down`, as the record and the reports name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.trim().trim_end_matches('.') {
            "1" => Some(Self::Up),
            "2" => Some(Self::Down),
            _ => None,
        }
    }
}

impl Csat {
    /// CSAT over `meta`, or `None` when `OLBRIDGE_CSAT_EVERY` is 0.
    pub fn new(meta: Arc<dyn MetaStore>, settings: CsatSettings) -> Option<Self> {
        (settings.every > 0).then_some(Self { meta, settings })
    }

    /// The prompt's text.
    pub fn prompt(&self) -> &str {
        &self.settings.prompt
    }

    fn key(chat: ChatId) -> String {
        format!("csat:{chat}")
    }

    async fn load(&self, chat: ChatId) -> Option<(State, Option<u64>)> {
        match self.meta.get_value(&Self::key(chat)).await {
            Ok(None) => Some((State::default(), None)),
            Ok(Some(v)) => Some((serde_json::from_str(&v.value).unwrap_or_default(), Some(v.version))),
            Err(e) => {
                warn!(chat = %chat, error = %e, "cannot read the CSAT state; no prompt this time");
                None
            }
        }
    }

    async fn save(&self, chat: ChatId, state: &State, version: Option<u64>) -> bool {
        let Ok(value) = serde_json::to_string(state) else { return false };
        match self.meta.put_value(&Self::key(chat), &value, version).await {
            Ok(MetaPut::Written(_)) => true,
            Ok(MetaPut::Conflict(_)) => false,
            Err(e) => {
                warn!(chat = %chat, error = %e, "cannot save the CSAT state");
                false
            }
        }
    }

    /// Whether the turn's only message answers a pending prompt; a message that does not lets the
    /// prompt lapse. The answer, when there is one, is consumed.
    pub async fn consume(&self, chat: ChatId, texts: &[&str]) -> Option<Answer> {
        let (mut state, version) = self.load(chat).await?;
        if !state.pending {
            return None;
        }
        let answer = match texts {
            [one] => Answer::parse(one),
            _ => None,
        };
        state.pending = false;
        // Lost a race: another turn changed the state; treat the message as an ordinary one.
        if !self.save(chat, &state, version).await {
            return None;
        }
        answer
    }

    /// Whether this bot answer should carry the prompt: it is the Nth since the last prompt, and
    /// (after a first prompt) at least one answer went without one.
    pub async fn due(&self, chat: ChatId) -> bool {
        let Some((s, _)) = self.load(chat).await else { return false };
        !s.pending && s.since + 1 >= self.settings.every && (!s.prompted || s.since >= 1)
    }

    /// A bot answer was posted, with or without the prompt.
    pub async fn answered(&self, chat: ChatId, prompted: bool) {
        for _ in 0..3 {
            let Some((mut state, version)) = self.load(chat).await else { return };
            if prompted {
                state = State { pending: true, since: 0, prompted: true };
            } else {
                state.since = state.since.saturating_add(1);
            }
            if self.save(chat, &state, version).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    fn csat(every: u32) -> Csat {
        Csat::new(Arc::new(MemoryStore::new()), CsatSettings { every, prompt: "rate".into() }).expect("on")
    }

    fn chat() -> ChatId {
        ChatId::new(9).expect("id")
    }

    /// Simulates `n` answers; which of them carried the prompt.
    async fn prompts(c: &Csat, n: usize) -> Vec<bool> {
        let mut out = Vec::new();
        for _ in 0..n {
            let due = c.due(chat()).await;
            c.answered(chat(), due).await;
            // The customer ignores the prompt: it lapses with their next message.
            let _ = c.consume(chat(), &["more questions"]).await;
            out.push(due);
        }
        out
    }

    #[tokio::test]
    async fn never_twice_in_a_row_whatever_the_frequency() {
        assert_eq!(prompts(&csat(1), 5).await, [true, false, true, false, true]);
        assert_eq!(prompts(&csat(3), 7).await, [false, false, true, false, false, true, false]);
        assert!(Csat::new(Arc::new(MemoryStore::new()), CsatSettings { every: 0, prompt: String::new() }).is_none());
    }

    #[tokio::test]
    async fn the_answer_to_a_pending_prompt_is_consumed_once() {
        let c = csat(1);
        assert_eq!(c.consume(chat(), &["1"]).await, None, "no prompt pending: an ordinary message");
        c.answered(chat(), true).await;
        assert_eq!(c.consume(chat(), &[" 2 "]).await, Some(Answer::Down));
        assert_eq!(c.consume(chat(), &["2"]).await, None, "answered already");
        c.answered(chat(), true).await;
        assert_eq!(c.consume(chat(), &["1", "and another thing"]).await, None, "not a lone 1 or 2");
    }
}
