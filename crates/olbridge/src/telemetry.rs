//! Logging: human-readable by default, JSON with `--log-json` / `OLBRIDGE_LOG_FORMAT=json`,
//! filtered with `RUST_LOG` (default `info`).
//!
//! What is logged is decided at the call sites: phone numbers only redacted, secrets never (their
//! types print `***`), message texts only at `debug`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op.
pub fn init(json: bool) {
    init_with_default(json, "info,hyper=warn,reqwest=warn");
}

/// As [`init`], with another default filter when `RUST_LOG` is not set.
pub fn init_with_default(json: bool, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.compact().try_init() };
}
