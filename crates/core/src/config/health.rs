//! The deep health check and the synthetic canary (`crate::usecase::health`,
//! `crate::usecase::canary`): the queue-age thresholds and where, how long and how often the
//! canary asks.

use std::time::Duration;

use super::Reader;
use super::vars::{
    OLBRIDGE_CANARY_DIALOG, OLBRIDGE_CANARY_EVERY_SEC, OLBRIDGE_CANARY_TIMEOUT_SEC, OLBRIDGE_HEALTH_QUEUE_FAIL_SEC, OLBRIDGE_HEALTH_QUEUE_WARN_SEC,
};
use crate::domain::ids::DialogId;

/// `OLBRIDGE_HEALTH_*` and `OLBRIDGE_CANARY_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// The queue check warns when the oldest pending job is older than this (default 300 s).
    pub queue_warn: Duration,
    /// The queue check fails when the oldest pending job is older than this (default 900 s).
    pub queue_fail: Duration,
    /// Where the canary writes; `None`: the private dialog with the bridge's bot (`B24_BOT_ID`).
    pub canary_dialog: Option<DialogId>,
    /// How long the canary waits for the bot's reply (default 60 s).
    pub canary_timeout: Duration,
    /// `olbridge serve` runs the canary this often; `None` (default, or 0): never.
    pub canary_every: Option<Duration>,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            queue_warn: Duration::from_secs(300),
            queue_fail: Duration::from_secs(900),
            canary_dialog: None,
            canary_timeout: Duration::from_secs(60),
            canary_every: None,
        }
    }
}

pub(super) fn read(r: &mut Reader<'_>) -> HealthSettings {
    let d = HealthSettings::default();
    let secs = |r: &mut Reader<'_>, name: &str, default: Duration, min: u64| {
        Duration::from_secs(r.number(name, default.as_secs(), |v: &u64| (min..=86_400).contains(v), "expected seconds, up to 86400"))
    };
    let queue_warn = secs(r, OLBRIDGE_HEALTH_QUEUE_WARN_SEC, d.queue_warn, 1);
    let queue_fail = secs(r, OLBRIDGE_HEALTH_QUEUE_FAIL_SEC, d.queue_fail, 1);
    if queue_fail < queue_warn {
        r.problems.push(format!("{OLBRIDGE_HEALTH_QUEUE_FAIL_SEC}: must not be less than {OLBRIDGE_HEALTH_QUEUE_WARN_SEC}"));
    }
    let canary_dialog = r.parse(OLBRIDGE_CANARY_DIALOG, "expected a dialog id: a user id or chat<N>", |s| DialogId::parse(s).map_err(|e| e.to_string()));
    let canary_timeout = secs(r, OLBRIDGE_CANARY_TIMEOUT_SEC, d.canary_timeout, 1);
    let every = secs(r, OLBRIDGE_CANARY_EVERY_SEC, Duration::ZERO, 0);
    HealthSettings { queue_warn, queue_fail, canary_dialog, canary_timeout, canary_every: (!every.is_zero()).then_some(every) }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use crate::config::Config;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, crate::config::ConfigError> {
        Config::from_map(&pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<HashMap<_, _>>())
    }

    #[test]
    fn defaults_values_and_problems() {
        let d = load(&[]).expect("valid").health;
        assert_eq!(
            (d.queue_warn, d.queue_fail, d.canary_timeout, d.canary_every, d.canary_dialog),
            (Duration::from_secs(300), Duration::from_secs(900), Duration::from_secs(60), None, None)
        );
        let set =
            load(&[("OLBRIDGE_CANARY_DIALOG", "chat42"), ("OLBRIDGE_CANARY_TIMEOUT_SEC", "5"), ("OLBRIDGE_CANARY_EVERY_SEC", "300")]).expect("valid").health;
        assert_eq!(
            (set.canary_dialog.map(|d| d.to_string()), set.canary_timeout, set.canary_every),
            (Some("chat42".into()), Duration::from_secs(5), Some(Duration::from_secs(300)))
        );
        let e = load(&[("OLBRIDGE_HEALTH_QUEUE_WARN_SEC", "600"), ("OLBRIDGE_HEALTH_QUEUE_FAIL_SEC", "60"), ("OLBRIDGE_CANARY_DIALOG", "nope")])
            .expect_err("invalid");
        assert_eq!(e.0.len(), 2, "{e}");
    }
}
