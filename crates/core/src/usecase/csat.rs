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
//! Where the chat's channel shows keyboard buttons (`OLBRIDGE_CSAT_KEYBOARD`, [`Csat::keyboard_for`]),
//! the same prompt also carries a `KEYBOARD` of two buttons, 👍 and 👎, each sending the bot's
//! hidden command [`COMMAND`] (`COMMAND_PARAMS` `up` or `down`; `olbridge register-bot` registers
//! it). A press comes back as `ONIMCOMMANDADD` naming the message that carried the buttons; it
//! counts when that message is the chat's latest prompt and the prompt is not rated yet (typed or
//! pressed), even after the customer wrote something else, since the buttons stay on screen. It is
//! recorded like a typed answer (an `ignored` turn, reason `csat`, `up` or `down`), never reaches the
//! bot, and is not answered in the chat: the button greys out (`BLOCK=Y`), and a thank-you message
//! would cost a REST call and a line in the chat for nothing. A press on an older or unknown message,
//! or on a prompt already rated, is ignored with a log line. Which connectors render keyboards is
//! UNCONFIRMED (WhatsApp ones do not: the connector keeps only the text, contract §4.7).
//!
//! The per-chat state (a prompt is pending; answers since the last prompt; the latest prompt's
//! message and whether it was rated) is one small value in the [`MetaStore`] under `csat:<chat>`,
//! written with compare-and-set; a lost race or a store failure only skips a prompt, never a reply.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::config::{CsatSettings, KeyboardMode};
use crate::domain::ids::{ChatId, MessageId};
use crate::ports::{MetaPut, MetaStore};

/// The bot command the 👍/👎 buttons send (`imbot.command.register`, hidden, keyboard only).
pub const COMMAND: &str = "csat";

/// Whether a connector id is a WhatsApp one (`whatsappbyedna`, `whatsappbytwilio`,
/// `olchat_wa_connector_2`, ...): a keyboard never reaches those customers.
pub fn is_whatsapp_connector(connector: &str) -> bool {
    let c = connector.to_ascii_lowercase();
    c.contains("whatsapp") || c.starts_with("wazzup") || c.split(|ch: char| !ch.is_ascii_alphanumeric()).any(|part| part == "wa")
}

/// The 👍/👎 keyboard of the prompt (contract §4.7): two buttons on one line, each sending
/// [`COMMAND`] with `up` or `down`, disabled once pressed.
pub fn keyboard() -> Value {
    let button = |text: &str, params: &str| json!({"TEXT": text, "COMMAND": COMMAND, "COMMAND_PARAMS": params, "BLOCK": "Y", "DISPLAY": "LINE"});
    json!({"BUTTONS": [button("👍", "up"), button("👎", "down")]})
}

/// What became of a button press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    /// Recorded: the first rating of the chat's latest prompt.
    Recorded(Answer),
    /// The prompt was rated already (typed or pressed before).
    AlreadyRated,
    /// Not the chat's latest prompt (an older one, a forged or unknown message id), or not `up`/`down`.
    Unknown,
    /// The state could not be read or written; nothing recorded.
    Failed,
}

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
    /// The message of the latest prompt, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompt_message: Option<u64>,
    /// The latest prompt was rated (typed or pressed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    rated: bool,
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

    fn from_params(params: &str) -> Option<Self> {
        match params.split_whitespace().next()?.to_ascii_lowercase().as_str() {
            "up" => Some(Self::Up),
            "down" => Some(Self::Down),
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

    /// Whether the prompt carries the 👍/👎 keyboard in a chat of `connector` (its id, from the
    /// chat's user code): `OLBRIDGE_CSAT_KEYBOARD`; `auto` shows it on the listed connectors that
    /// are not WhatsApp ones, and nowhere when the connector is unknown.
    pub fn keyboard_for(&self, connector: Option<&str>) -> bool {
        match self.settings.keyboard {
            KeyboardMode::Never => false,
            KeyboardMode::Always => true,
            KeyboardMode::Auto => {
                connector.is_some_and(|c| !is_whatsapp_connector(c) && self.settings.keyboard_connectors.iter().any(|k| k.eq_ignore_ascii_case(c.trim())))
            }
        }
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
        state.rated |= answer.is_some();
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

    /// A customer pressed 👍 or 👎 (`params`) on `message` in `chat`: recorded when `message` is the
    /// chat's latest prompt and that prompt is not rated yet, at most once (compare-and-set).
    pub async fn press(&self, chat: ChatId, message: MessageId, params: &str) -> Press {
        let Some(answer) = Answer::from_params(params) else {
            info!(chat = %chat, message = %message, params, "a CSAT button press with unknown parameters; ignored");
            return Press::Unknown;
        };
        for _ in 0..3 {
            let Some((mut state, version)) = self.load(chat).await else { return Press::Failed };
            if state.prompt_message != Some(message.get()) {
                info!(chat = %chat, message = %message, latest = ?state.prompt_message, "a CSAT button press on a message that is not the chat's latest prompt (older, unknown or forged); ignored");
                return Press::Unknown;
            }
            if state.rated {
                info!(chat = %chat, message = %message, "a CSAT button press on a prompt already rated; ignored");
                return Press::AlreadyRated;
            }
            state.rated = true;
            state.pending = false;
            if self.save(chat, &state, version).await {
                return Press::Recorded(answer);
            }
        }
        Press::Failed
    }

    /// A bot answer was posted, without the prompt (`None`) or with it (`Some`, and the prompt's
    /// message id when known).
    pub async fn answered(&self, chat: ChatId, prompted: Option<Option<MessageId>>) {
        for _ in 0..3 {
            let Some((mut state, version)) = self.load(chat).await else { return };
            if let Some(message) = prompted {
                state = State { pending: true, since: 0, prompted: true, prompt_message: message.map(MessageId::get), rated: false };
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
        Csat::new(Arc::new(MemoryStore::new()), CsatSettings { every, prompt: "rate".into(), ..CsatSettings::default() }).expect("on")
    }

    fn chat() -> ChatId {
        ChatId::new(9).expect("id")
    }

    /// Simulates `n` answers; which of them carried the prompt.
    async fn prompts(c: &Csat, n: usize) -> Vec<bool> {
        let mut out = Vec::new();
        for _ in 0..n {
            let due = c.due(chat()).await;
            c.answered(chat(), due.then_some(None)).await;
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
        assert!(Csat::new(Arc::new(MemoryStore::new()), CsatSettings { every: 0, ..CsatSettings::default() }).is_none());
    }

    #[tokio::test]
    async fn the_answer_to_a_pending_prompt_is_consumed_once() {
        let c = csat(1);
        assert_eq!(c.consume(chat(), &["1"]).await, None, "no prompt pending: an ordinary message");
        c.answered(chat(), Some(None)).await;
        assert_eq!(c.consume(chat(), &[" 2 "]).await, Some(Answer::Down));
        assert_eq!(c.consume(chat(), &["2"]).await, None, "answered already");
        c.answered(chat(), Some(None)).await;
        assert_eq!(c.consume(chat(), &["1", "and another thing"]).await, None, "not a lone 1 or 2");
    }

    fn msg(id: u64) -> MessageId {
        MessageId::new(id).expect("id")
    }

    #[tokio::test]
    async fn a_press_counts_once_and_only_on_the_latest_prompt() {
        let c = csat(1);
        assert_eq!(c.press(chat(), msg(5), "up").await, Press::Unknown, "no prompt yet");
        c.answered(chat(), Some(Some(msg(5)))).await;
        assert_eq!(c.press(chat(), msg(4), "up").await, Press::Unknown, "not the prompt's message");
        assert_eq!(c.press(chat(), msg(5), "sideways").await, Press::Unknown);
        // The customer wrote something else first: the prompt lapsed, the buttons still count.
        assert_eq!(c.consume(chat(), &["more questions"]).await, None);
        assert_eq!(c.press(chat(), msg(5), "up").await, Press::Recorded(Answer::Up));
        assert_eq!(c.press(chat(), msg(5), "down").await, Press::AlreadyRated);
        c.answered(chat(), None).await;
        c.answered(chat(), Some(Some(msg(9)))).await;
        assert_eq!(c.press(chat(), msg(5), "down").await, Press::Unknown, "an older prompt");
        assert_eq!(c.consume(chat(), &["2"]).await, Some(Answer::Down), "typed");
        assert_eq!(c.press(chat(), msg(9), "up").await, Press::AlreadyRated, "typed, then pressed: once");
    }

    #[test]
    fn the_keyboard_shows_where_the_connector_is_known_to_render_it() {
        let with = |keyboard| Csat::new(Arc::new(MemoryStore::new()), CsatSettings { every: 1, keyboard, ..CsatSettings::default() }).expect("on");
        let auto = with(KeyboardMode::Auto);
        assert!(auto.keyboard_for(Some("livechat")) && auto.keyboard_for(Some("telegrambot")));
        for c in [Some("whatsappbyedna"), Some("olchat_wa_connector_2"), Some("whatsappbytwilio"), Some("viber"), None] {
            assert!(!auto.keyboard_for(c), "{c:?}");
        }
        assert!(with(KeyboardMode::Always).keyboard_for(Some("whatsappbyedna")));
        assert!(!with(KeyboardMode::Never).keyboard_for(Some("livechat")));
        assert!(is_whatsapp_connector("olchat_wa_connector_2") && !is_whatsapp_connector("livechat") && !is_whatsapp_connector("wazzapp"));
        let k = keyboard();
        assert_eq!(k["BUTTONS"][0]["COMMAND"], COMMAND);
        assert_eq!(k["BUTTONS"][1]["COMMAND_PARAMS"], "down");
    }
}
