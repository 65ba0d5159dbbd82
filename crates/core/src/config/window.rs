//! WhatsApp's 24-hour window (`OLBRIDGE_WINDOW_CHECK`, `OLBRIDGE_WINDOW_MARGIN_SEC`); the rules are
//! [`WindowPolicy`]'s. The check is on by default; `off` is for a portal whose `BLOCK_DATE` turns
//! out to mean something else than the contract says (its meaning is read from Bitrix24's source,
//! not documented).

use std::time::Duration;

use super::Reader;
use super::vars::{OLBRIDGE_WINDOW_CHECK, OLBRIDGE_WINDOW_MARGIN_SEC};
use crate::domain::window::WindowPolicy;

pub(super) fn read(r: &mut Reader<'_>) -> WindowPolicy {
    let defaults = WindowPolicy::default();
    let enabled = r
        .parse(OLBRIDGE_WINDOW_CHECK, "expected on or off", |s| match s.to_ascii_lowercase().as_str() {
            "on" | "1" | "true" | "yes" => Ok(true),
            "off" | "0" | "false" | "no" => Ok(false),
            _ => Err("unknown value".into()),
        })
        .unwrap_or(defaults.enabled);
    let default_margin = defaults.margin.as_secs();
    let margin = Duration::from_secs(r.number(OLBRIDGE_WINDOW_MARGIN_SEC, default_margin, |v: &u64| *v <= 3600, "expected seconds, 0..=3600"));
    WindowPolicy { enabled, margin }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use crate::config::Config;
    use crate::domain::window::WindowPolicy;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, crate::config::ConfigError> {
        Config::from_map(&pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<HashMap<_, _>>())
    }

    #[test]
    fn on_by_default_with_a_minute_of_margin_and_checked() {
        assert_eq!(load(&[]).expect("valid").conversation.window, WindowPolicy { enabled: true, margin: Duration::from_secs(60) });
        let off = load(&[("OLBRIDGE_WINDOW_CHECK", "off"), ("OLBRIDGE_WINDOW_MARGIN_SEC", "0")]).expect("valid").conversation.window;
        assert_eq!(off, WindowPolicy { enabled: false, margin: Duration::ZERO });
        let e = load(&[("OLBRIDGE_WINDOW_CHECK", "maybe"), ("OLBRIDGE_WINDOW_MARGIN_SEC", "7200")]).expect_err("invalid");
        assert_eq!(e.0.len(), 2, "{e}");
    }
}
