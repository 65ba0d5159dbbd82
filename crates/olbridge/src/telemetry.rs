//! Logging: human-readable by default, JSON with `--log-json` / `OLBRIDGE_LOG_FORMAT=json`,
//! filtered with `RUST_LOG` (default `info`; from the environment or `.env`).
//!
//! What is logged is decided at the call sites: phone numbers only redacted, secrets never (their
//! types print `***`), message texts only at `debug`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op. `rust_log` is `RUST_LOG` from the
/// environment or `.env` (the caller reads it: nothing here reads the environment).
pub fn init(json: bool, rust_log: Option<&str>) {
    init_with_default(json, "info,hyper=warn,reqwest=warn", rust_log);
}

/// As [`init`], with another default filter when `RUST_LOG` is not set (or not a valid filter).
pub fn init_with_default(json: bool, default_filter: &str, rust_log: Option<&str>) {
    let filter = rust_log.and_then(|f| EnvFilter::try_new(f).ok()).unwrap_or_else(|| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.compact().try_init() };
}
