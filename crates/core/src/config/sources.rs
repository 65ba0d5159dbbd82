//! The message sources' settings: the mode (`OLBRIDGE_MODE`), operator polling, push mode's
//! reconciliation. Kept apart from the rest of the configuration because they are read and checked
//! together; `Config::mode` and `Config::check_serve` use them.

use std::time::Duration;

use super::{Reader, vars};

/// How messages reach the bridge (`OLBRIDGE_MODE`; PRODUCT.md "How messages reach us").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A chatbot's events POSTed to the receiver (v1 or Chatbots 2.0 webhook mode), with
    /// reconciliation as the safety net.
    Push,
    /// A Chatbots 2.0 bot in fetch mode, pulled with `imbot.v2.Event.get`.
    Fetch,
    /// The webhook's own user polls the Open Lines chats it serves and replies as an operator.
    Operator,
}

impl Mode {
    /// The name `OLBRIDGE_MODE` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Fetch => "fetch",
            Self::Operator => "operator",
        }
    }
}

/// Operator mode's source of new messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollSource {
    /// `im.recent.list` + `im.dialog.messages.get` (the default).
    Recent,
    /// The webhook user's `im.v2.Event.get` log, with an `im.recent.list` sweep as the safety net.
    Events,
}

/// Where an operator-mode handoff sends the chat (`B24_TRANSFER_TO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferTo {
    /// An operator.
    User(crate::domain::ids::UserId),
    /// A line's queue.
    Queue(crate::domain::ids::LineId),
}

/// The message sources: the mode, operator polling and push mode's reconciliation.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// `OLBRIDGE_MODE`, when set.
    pub mode: Option<Mode>,
    /// `OLBRIDGE_POLL_SOURCE`.
    pub poll_source: PollSource,
    /// `OLBRIDGE_SWEEP_SEC`.
    pub sweep_every: Duration,
    /// `OLBRIDGE_RECONCILE_SEC` (`None`: off).
    pub reconcile_every: Option<Duration>,
    /// `OLBRIDGE_RECONCILE_GRACE_SEC`.
    pub reconcile_grace: Duration,
    /// `OLBRIDGE_BACKFILL_SEC`.
    pub backfill: Duration,
    /// `B24_TRANSFER_TO`.
    pub transfer_to: Option<TransferTo>,
    /// `B24_OPERATING_LIMIT_SEC`.
    pub operating_limit: Duration,
}

pub(super) fn read(r: &mut Reader<'_>) -> SourceSettings {
    use vars::*;
    let mode = r.parse(OLBRIDGE_MODE, "expected push, fetch or operator", |s| match s.to_ascii_lowercase().as_str() {
        "push" => Ok(Mode::Push),
        "fetch" => Ok(Mode::Fetch),
        "operator" => Ok(Mode::Operator),
        _ => Err("unknown mode".into()),
    });
    let poll_source = r.parse(OLBRIDGE_POLL_SOURCE, "expected recent or events", |s| match s.to_ascii_lowercase().as_str() {
        "recent" => Ok(PollSource::Recent),
        "events" => Ok(PollSource::Events),
        _ => Err("unknown source".into()),
    });
    let transfer_to = r.parse(B24_TRANSFER_TO, "expected an operator's user id or queue<line id>", |s| {
        let err = |e: crate::domain::ids::IdError| e.to_string();
        match s.strip_prefix("queue") {
            Some(line) => crate::domain::ids::LineId::parse(line).map(TransferTo::Queue).map_err(err),
            None => crate::domain::ids::UserId::parse(s).map(TransferTo::User).map_err(err),
        }
    });
    let secs = |r: &mut Reader<'_>, name: &str, default: f64, min: f64| {
        Duration::from_secs_f64(r.number(name, default, |v: &f64| *v >= min && *v <= 86_400.0, &format!("expected seconds, {min}..=86400")))
    };
    let reconcile_every = secs(r, OLBRIDGE_RECONCILE_SEC, 30.0, 0.0);
    SourceSettings {
        mode,
        poll_source: poll_source.unwrap_or(PollSource::Recent),
        sweep_every: secs(r, OLBRIDGE_SWEEP_SEC, 60.0, 0.1),
        reconcile_every: (!reconcile_every.is_zero()).then_some(reconcile_every),
        reconcile_grace: secs(r, OLBRIDGE_RECONCILE_GRACE_SEC, 20.0, 0.0),
        backfill: secs(r, OLBRIDGE_BACKFILL_SEC, 0.0, 0.0),
        transfer_to,
        operating_limit: secs(r, B24_OPERATING_LIMIT_SEC, 480.0, 1.0),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Config;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_old_polling_bridges_env_serves_in_operator_mode_unchanged() {
        let old = env(&[
            ("B24_WEBHOOK_BASE", "https://example.bitrix24.com/rest/38005/code/"),
            ("BOT_HTTP_URL", "https://bot.example/webhook/whatsapp"),
            ("BOT_HTTP_AUTH", "Bearer t"),
            ("BOT_HTTP_TIMEOUT_SEC", "120"),
            ("B24_POLL_SEC", "2"),
            ("B24_BUSINESS_PHONE", "+971501754133"),
        ]);
        let c = Config::from_map(&old).expect("loads");
        assert_eq!(c.mode(), Mode::Operator);
        assert_eq!(c.check_serve(), Ok(()));
        assert_eq!((c.sources.poll_source, c.sources.reconcile_every), (PollSource::Recent, Some(Duration::from_secs(30))));
        let mut with_bot = old.clone();
        with_bot.insert("B24_BOT_ID".into(), "38007".into());
        let c = Config::from_map(&with_bot).expect("loads");
        assert_eq!(c.mode(), Mode::Push, "a configured bot means push");
        assert!(c.check_serve().is_err(), "push needs the bot's CLIENT_ID");
        with_bot.insert("OLBRIDGE_MODE".into(), "operator".into());
        assert_eq!(Config::from_map(&with_bot).expect("loads").mode(), Mode::Operator, "the variable wins");
    }

    #[test]
    fn source_settings_are_read_and_checked() {
        let c = Config::from_map(&env(&[
            ("OLBRIDGE_MODE", "Fetch"),
            ("OLBRIDGE_POLL_SOURCE", "events"),
            ("OLBRIDGE_RECONCILE_SEC", "0"),
            ("B24_TRANSFER_TO", "queue3"),
            ("OLBRIDGE_BACKFILL_SEC", "3600"),
        ]))
        .expect("valid");
        assert_eq!((c.mode(), c.sources.poll_source, c.sources.reconcile_every), (Mode::Fetch, PollSource::Events, None));
        assert_eq!(c.sources.transfer_to, crate::domain::ids::LineId::new(3).ok().map(TransferTo::Queue));
        assert_eq!(c.sources.backfill, Duration::from_secs(3600));
        let e = Config::from_map(&env(&[("OLBRIDGE_MODE", "pull"), ("OLBRIDGE_POLL_SOURCE", "x"), ("B24_TRANSFER_TO", "queue"), ("OLBRIDGE_SWEEP_SEC", "0")]))
            .expect_err("invalid");
        assert_eq!(e.0.len(), 4, "{e}");
        let me = Config::from_map(&env(&[
            ("B24_WEBHOOK_BASE", "https://example.bitrix24.com/rest/38005/code/"),
            ("BOT_HTTP_URL", "https://bot.example/"),
            ("B24_TRANSFER_TO", "38005"),
        ]))
        .expect("loads");
        assert!(me.check_serve().is_err_and(|e| e.to_string().contains("B24_TRANSFER_TO")));
    }
}
