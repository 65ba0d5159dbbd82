//! The CRM side of a turn (`OLBRIDGE_CRM_UNBOUND`, `OLBRIDGE_CRM_TIMELINE`,
//! `OLBRIDGE_CRM_TIMELINE_QUIET_SEC`): what to do with a chat bound to no CRM entity, and how bot
//! turns reach the bound entity's timeline. The rules are [`crate::usecase::crm`]'s. And the CSAT
//! prompt after bot answers (`OLBRIDGE_CSAT_EVERY`, `OLBRIDGE_CSAT_PROMPT`, `OLBRIDGE_CSAT_KEYBOARD`,
//! `OLBRIDGE_CSAT_KEYBOARD_CONNECTORS`), whose rules are
//! [`crate::usecase::csat`]'s.

use std::time::Duration;

use super::Reader;
use super::vars::{
    OLBRIDGE_CRM_TIMELINE, OLBRIDGE_CRM_TIMELINE_QUIET_SEC, OLBRIDGE_CRM_UNBOUND, OLBRIDGE_CSAT_EVERY, OLBRIDGE_CSAT_KEYBOARD,
    OLBRIDGE_CSAT_KEYBOARD_CONNECTORS, OLBRIDGE_CSAT_PROMPT,
};

/// The CSAT prompt's default text: a numbered reply, since WhatsApp shows no keyboard buttons.
pub const DEFAULT_CSAT_PROMPT: &str = "Did this answer help? Reply 1 if it helped, 2 if not.";

/// `OLBRIDGE_CSAT_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsatSettings {
    /// `OLBRIDGE_CSAT_EVERY`: ask after every Nth bot answer of a chat (0: never, the default).
    pub every: u32,
    /// `OLBRIDGE_CSAT_PROMPT`.
    pub prompt: String,
    /// `OLBRIDGE_CSAT_KEYBOARD`: where the prompt carries 👍/👎 buttons.
    pub keyboard: KeyboardMode,
    /// `OLBRIDGE_CSAT_KEYBOARD_CONNECTORS`: the connector ids `auto` shows the buttons on,
    /// lowercase.
    pub keyboard_connectors: Vec<String>,
}

/// The connectors taken to show keyboard buttons by default: Bitrix24's own live chat widget and
/// Telegram. UNCONFIRMED for Telegram (and for any other connector): which connectors render a
/// `KEYBOARD` is not documented, so the list is configurable.
pub const DEFAULT_KEYBOARD_CONNECTORS: &[&str] = &["livechat", "telegrambot"];

impl Default for CsatSettings {
    fn default() -> Self {
        Self {
            every: 0,
            prompt: DEFAULT_CSAT_PROMPT.to_owned(),
            keyboard: KeyboardMode::Auto,
            keyboard_connectors: DEFAULT_KEYBOARD_CONNECTORS.iter().map(|c| (*c).to_owned()).collect(),
        }
    }
}

/// Where the CSAT prompt carries 👍/👎 keyboard buttons (`OLBRIDGE_CSAT_KEYBOARD`). The prompt's
/// text is the same either way, so a typed `1`/`2` still answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyboardMode {
    /// Only in chats whose connector is in `OLBRIDGE_CSAT_KEYBOARD_CONNECTORS` and is not a
    /// WhatsApp one (default).
    #[default]
    Auto,
    /// In every chat (a WhatsApp customer still sees only the numbered text).
    Always,
    /// Nowhere: the numbered prompt only.
    Never,
}

pub(super) fn read_csat(r: &mut Reader<'_>) -> CsatSettings {
    let d = CsatSettings::default();
    let keyboard = r
        .parse(OLBRIDGE_CSAT_KEYBOARD, "expected auto, always or never", |s| match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(KeyboardMode::Auto),
            "always" => Ok(KeyboardMode::Always),
            "never" => Ok(KeyboardMode::Never),
            _ => Err("unknown value".into()),
        })
        .unwrap_or(d.keyboard);
    let keyboard_connectors = r
        .text(OLBRIDGE_CSAT_KEYBOARD_CONNECTORS)
        .map(|list| list.split(',').map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty()).collect())
        .unwrap_or(d.keyboard_connectors);
    CsatSettings {
        every: r.number(OLBRIDGE_CSAT_EVERY, 0, |v: &u32| *v <= 1000, "expected a number of answers, 0 (off)..=1000"),
        prompt: r.text(OLBRIDGE_CSAT_PROMPT).unwrap_or(d.prompt),
        keyboard,
        keyboard_connectors,
    }
}

/// What the bridge does when a chat is bound to no CRM entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnboundPolicy {
    /// Leave it: no `crm` in the bot request, no timeline comment (default).
    #[default]
    Leave,
    /// Ask the portal to create a lead for the chat (`imopenlines.crm.lead.create`). Bitrix24
    /// allows it only to the session's current operator; when it refuses, the chat stays unbound.
    CreateLead,
}

/// How bot turns are written to the bound entity's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimelineMode {
    /// Not at all.
    Off,
    /// One `crm.timeline.comment.add` per turn.
    Turn,
    /// One condensed comment per session: the turns are gathered and written after a quiet
    /// period, or at once when the chat goes to a human (default).
    #[default]
    Session,
}

/// `OLBRIDGE_CRM_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrmSettings {
    /// `OLBRIDGE_CRM_UNBOUND`: `leave` (default) or `create_lead`.
    pub unbound: UnboundPolicy,
    /// `OLBRIDGE_CRM_TIMELINE`: `off`, `turn` or `session` (default).
    pub timeline: TimelineMode,
    /// `OLBRIDGE_CRM_TIMELINE_QUIET_SEC` (default 600): in `session` mode, the comment is written
    /// once the chat has been quiet this long (a handoff writes it at once).
    pub quiet: Duration,
}

impl Default for CrmSettings {
    fn default() -> Self {
        Self { unbound: UnboundPolicy::Leave, timeline: TimelineMode::Session, quiet: Duration::from_secs(600) }
    }
}

pub(super) fn read(r: &mut Reader<'_>) -> CrmSettings {
    let d = CrmSettings::default();
    let unbound = r
        .parse(OLBRIDGE_CRM_UNBOUND, "expected leave or create_lead", |s| match s.to_ascii_lowercase().as_str() {
            "leave" => Ok(UnboundPolicy::Leave),
            "create_lead" => Ok(UnboundPolicy::CreateLead),
            _ => Err("unknown value".into()),
        })
        .unwrap_or(d.unbound);
    let timeline = r
        .parse(OLBRIDGE_CRM_TIMELINE, "expected off, turn or session", |s| match s.to_ascii_lowercase().as_str() {
            "off" => Ok(TimelineMode::Off),
            "turn" => Ok(TimelineMode::Turn),
            "session" => Ok(TimelineMode::Session),
            _ => Err("unknown value".into()),
        })
        .unwrap_or(d.timeline);
    let quiet = Duration::from_secs(r.number(OLBRIDGE_CRM_TIMELINE_QUIET_SEC, d.quiet.as_secs(), |v: &u64| *v <= 86_400, "expected seconds, 0..=86400"));
    CrmSettings { unbound, timeline, quiet }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::{CrmSettings, TimelineMode, UnboundPolicy};
    use crate::config::Config;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, crate::config::ConfigError> {
        Config::from_map(&pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<HashMap<_, _>>())
    }

    #[test]
    fn defaults_values_and_every_problem_at_once() {
        assert_eq!(load(&[]).expect("valid").crm, CrmSettings::default());
        let c =
            load(&[("OLBRIDGE_CRM_UNBOUND", "create_lead"), ("OLBRIDGE_CRM_TIMELINE", "turn"), ("OLBRIDGE_CRM_TIMELINE_QUIET_SEC", "0")]).expect("valid").crm;
        assert_eq!(c, CrmSettings { unbound: UnboundPolicy::CreateLead, timeline: TimelineMode::Turn, quiet: Duration::ZERO });
        let e = load(&[("OLBRIDGE_CRM_UNBOUND", "x"), ("OLBRIDGE_CRM_TIMELINE", "y"), ("OLBRIDGE_CRM_TIMELINE_QUIET_SEC", "-1")]).expect_err("invalid");
        assert_eq!(e.0.len(), 3, "{e}");
    }
}
