//! The command line: one binary for running the bridge and for administering it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use olbridge_core::config::Config;

use crate::runner::Bridge;

/// olbridge: answers WhatsApp customers in Bitrix24 Open Lines with your AI bot.
#[derive(Debug, Parser)]
#[command(name = "olbridge", version, about, long_about = None)]
pub struct Cli {
    /// Log as JSON lines (also `OLBRIDGE_LOG_FORMAT=json`).
    #[arg(long, global = true)]
    pub log_json: bool,
    /// Directory to read `.env` from.
    #[arg(long, global = true, default_value = ".")]
    pub env_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bridge: the receiver on OLBRIDGE_LISTEN, workers, the store in OLBRIDGE_DATA_DIR.
    Serve,
    /// Try everything with no configuration: an emulated portal, the bridge and a demo bot in this
    /// process, and a terminal chat where you are the WhatsApp customer.
    Demo(crate::demo::DemoArgs),
    /// Run the demo's FAQ bot alone on an address (a bot for trying a real portal or the Lambdas
    /// locally).
    DemoBot(crate::demo::DemoBotArgs),
    /// Register our chatbot on the portal of B24_WEBHOOK_BASE (idempotent) and print the .env lines.
    RegisterBot(crate::admin::register::RegisterArgs),
    /// Check the webhook, its scopes, the bot registration, the lines and the handler URL.
    Doctor {
        /// Print the deep health report as JSON (portal, bot, store, queue age, then the setup
        /// checks); the exit code is non-zero when a check fails.
        #[arg(long)]
        json: bool,
    },
    /// Send a test message through the canary dialog and wait for the bot's reply (exit code 0:
    /// it came; non-zero: it did not, or it was the fallback message). See docs/operations.md.
    Canary,
    /// Print new Open Lines messages as they arrive (read-only; the old b24_openlines_reader.py).
    Read(crate::admin::tty::ReadArgs),
    /// A terminal chat bound to one dialog (the old b24_chat_tty.py); writing takes the Open Lines
    /// session from the bot, as `send` does.
    Chat {
        /// The dialog, e.g. chat97669.
        dialog: String,
    },
    /// Send one message to a dialog as the webhook's user. In an Open Lines chat someone else (the
    /// bot) holds, the webhook's user first takes the session: the bot stays silent for it.
    Send {
        /// The dialog, e.g. chat97669.
        dialog: String,
        /// The text.
        text: String,
    },
    /// End the webhook's user's session in an Open Lines chat: the customer's next message starts a
    /// new session, answered by the bot again.
    Handback {
        /// The dialog, e.g. chat97669.
        dialog: String,
    },
    /// Show the KPIs per line and day (outcome shares, success and escalation rates, p50/p95,
    /// REST calls per answer, CSAT) and recent turns. Definitions: docs/metrics.md.
    Stats {
        /// How many recent turns to list.
        #[arg(long, default_value_t = 10)]
        recent: usize,
        /// From when: a duration back from now (`24h`, `7d`, `90m`) or a UTC date or time
        /// (`2026-11-01`, `2026-11-01T08:00:00Z`). Default: 7 days.
        #[arg(long, value_parser = crate::admin::kpi::parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only this line's turns.
        #[arg(long)]
        line: Option<u64>,
        /// Print JSON (one object: the groups and the total) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a self-contained HTML report of the KPIs with inline SVG charts (no network needed to
    /// view it).
    Report {
        /// The HTML file to write.
        #[arg(long, value_name = "FILE")]
        html: std::path::PathBuf,
        /// From when (as for `stats`). Default: 30 days.
        #[arg(long, value_parser = crate::admin::kpi::parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only this line's turns.
        #[arg(long)]
        line: Option<u64>,
    },
    /// List turns that were given up (the dead-letter store), or put them back with --redrive.
    DeadLetters {
        /// Put a dead letter back on the queue: `--redrive KEY` (keys are in the list), or
        /// `--redrive --all`.
        #[arg(long, value_name = "KEY", num_args = 0..=1)]
        redrive: Option<Option<String>>,
        /// With --redrive: every dead letter.
        #[arg(long, requires = "redrive")]
        all: bool,
    },
    /// Export or erase everything stored about a phone number (a customer's request); see
    /// docs/privacy.md.
    Privacy {
        /// What to do.
        #[command(subcommand)]
        action: PrivacyAction,
    },
    /// An alias of `privacy erase --phone` (kept for scripts written for earlier versions).
    Forget {
        /// The phone number.
        #[arg(required_unless_present = "phone_flag", conflicts_with = "phone_flag")]
        phone: Option<String>,
        /// The phone number (the same as the positional argument).
        #[arg(long = "phone", id = "phone_flag", value_name = "PHONE")]
        phone_flag: Option<String>,
    },
}

/// `olbridge privacy ...`.
#[derive(Debug, Subcommand)]
pub enum PrivacyAction {
    /// Print everything stored about the phone as JSON: profile, chats and their history, turn log
    /// records, queued and dead-lettered jobs, idempotency records that carry it.
    Export {
        /// The phone number (`+<digits>`; spaces and dashes are ignored).
        #[arg(long)]
        phone: String,
    },
    /// Delete all of that, then compact the database so no deleted byte stays in its files.
    Erase {
        /// The phone number.
        #[arg(long)]
        phone: String,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = match cli.command {
        Command::DemoBot(args) => {
            let env = crate::env::over_process_env(HashMap::new());
            crate::telemetry::init_with_default(cli.log_json, "warn", env.get("RUST_LOG").map(String::as_str));
            return crate::demo::run_bot(args).await;
        }
        Command::Demo(args) => {
            // The demo needs no configuration (not even a readable .env), and its terminal is the
            // show: logs only for warnings unless RUST_LOG asks for more.
            let env = crate::env::over_process_env(HashMap::new());
            crate::telemetry::init_with_default(cli.log_json, "warn", env.get("RUST_LOG").map(String::as_str));
            return crate::demo::run(args).await;
        }
        other => other,
    };
    // The one place the configuration is read: `.env` under the real environment (see `env`).
    let file = crate::env::read(&cli.env_dir, crate::env::insecure_allowed())?;
    let loaded_env = file.is_some();
    let insecure_mode = file.as_ref().and_then(|f| f.insecure_mode);
    let env = crate::env::over_process_env(file.map(|f| f.vars).unwrap_or_default());
    let config = Config::from_map(&env).map_err(anyhow::Error::new)?;
    let (json, rust_log) = (cli.log_json || config.runner.log_json, env.get("RUST_LOG").map(String::as_str));
    // Held until `run` returns: dropping it flushes and stops the log file writer.
    let mut _log_files = crate::telemetry::Guard::default();
    if matches!(command, Command::Serve) {
        match &config.runner.log_dir {
            Some(dir) => {
                let files = crate::telemetry::LogFiles { dir: dir.clone(), keep: config.runner.log_keep };
                _log_files = crate::telemetry::init_with_files(json, rust_log, &files)?;
            }
            None => crate::telemetry::init(json, rust_log),
        }
    } else {
        // The admin commands print their own results: their logs are for warnings unless RUST_LOG
        // asks for more (a failed call they report anyway would otherwise be said twice).
        crate::telemetry::init_with_default(json, "warn", rust_log);
    }
    if loaded_env {
        tracing::debug!("read .env from {}", cli.env_dir.display());
    }
    if let Some(mode) = insecure_mode {
        let path = cli.env_dir.join(crate::env::FILE_NAME);
        tracing::warn!(
            file = %path.display(),
            mode = format!("{mode:03o}"),
            "the .env file can be read by other users and OLBRIDGE_ALLOW_INSECURE_ENV=1 lets it be used: it holds the webhook code and the bot's credentials; fix with chmod 600"
        );
    }
    match command {
        Command::Serve => serve(&config).await,
        // Handled above, before any configuration is read.
        Command::Demo(_) | Command::DemoBot(_) => Ok(ExitCode::SUCCESS),
        Command::RegisterBot(args) => crate::admin::register::run(&config, args).await,
        Command::Doctor { json: false } => crate::admin::doctor::run(&config).await,
        Command::Doctor { json: true } => crate::admin::doctor::run_json(&config).await,
        Command::Canary => crate::admin::canary::run(&config).await,
        Command::Read(args) => crate::admin::tty::read(&config, args).await,
        Command::Chat { dialog } => crate::admin::tty::chat(&config, &dialog).await,
        Command::Send { dialog, text } => crate::admin::tty::send(&config, &dialog, &text).await,
        Command::Handback { dialog } => crate::admin::tty::handback(&config, &dialog).await,
        Command::Stats { recent, since, line, json } => crate::admin::kpi::stats(&config, crate::admin::kpi::Filter { since, line }, recent, json).await,
        Command::Report { html, since, line } => crate::admin::report::write(&config, crate::admin::kpi::Filter { since, line }, &html).await,
        Command::DeadLetters { redrive, all } => {
            let which = match (redrive, all) {
                (None, _) => None,
                (Some(Some(_)), true) => anyhow::bail!("--redrive takes a KEY or --all, not both"),
                (Some(Some(key)), false) => Some(crate::admin::local::Redrive::Key(key)),
                (Some(None), true) => Some(crate::admin::local::Redrive::All),
                (Some(None), false) => anyhow::bail!("--redrive needs a KEY (see `olbridge dead-letters`) or --all"),
            };
            crate::admin::local::dead_letters(&config, which).await
        }
        Command::Privacy { action: PrivacyAction::Export { phone } } => crate::admin::local::privacy_export(&config, &phone).await,
        Command::Privacy { action: PrivacyAction::Erase { phone } } => crate::admin::local::privacy_erase(&config, &phone).await,
        Command::Forget { phone, phone_flag } => {
            eprintln!("note: `olbridge forget` is an alias of `olbridge privacy erase --phone`");
            let phone = phone.or(phone_flag).unwrap_or_default();
            crate::admin::local::privacy_erase(&config, &phone).await
        }
    }
}

/// What `main` does with an error: `None` for a quiet, successful exit (the reader of our output
/// went away, as in `olbridge stats | head`), otherwise the one line to print.
pub fn error_report(e: &anyhow::Error) -> Option<String> {
    if e.chain().any(|c| matches!(c.downcast_ref::<crate::output::OutputError>(), Some(crate::output::OutputError::Closed))) {
        return None;
    }
    Some(error_line(e))
}

/// The error and its causes on one line, each said once. Some errors repeat their source in their
/// own text (a store's "cannot use data directory x: File exists (os error 17)" also has that
/// `io::Error` as its source), so anyhow's `{:#}` would say it twice; a cause whose text the line
/// already holds is left out.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

async fn serve(config: &Config) -> anyhow::Result<ExitCode> {
    if let Err(e) = config.check_serve() {
        eprintln!("olbridge serve cannot start yet.\n{e}\nSee README.md (\"Connect a real portal\") or run `olbridge demo` to try it without a portal.");
        return Ok(ExitCode::FAILURE);
    }
    print_summary(config);
    let mut bridge = Bridge::start(config).await.context("cannot start the bridge")?;
    let canary = config.health.canary_every.map(|period| {
        tracing::info!(every_sec = period.as_secs(), "the synthetic canary runs every OLBRIDGE_CANARY_EVERY_SEC");
        tokio::spawn(crate::admin::canary::every(config.clone(), period))
    });
    let _canary = AbortOnDrop(canary);
    tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutting down: finishing running turns");
            bridge.shutdown().await;
        }
        () = bridge.wait() => anyhow::bail!("a bridge task stopped unexpectedly"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Stops the canary schedule with `serve`.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

fn print_summary(config: &Config) {
    let p = &config.portal;
    let portal = p.webhook.as_ref().map(|w| w.to_string()).unwrap_or_default();
    // Scheme, host, port and path only: the query or user info may carry a token.
    let bot = config
        .bot
        .url
        .as_ref()
        .map(|u| format!("{}://{}{}{}", u.scheme(), u.host_str().unwrap_or(""), u.port().map(|p| format!(":{p}")).unwrap_or_default(), u.path()))
        .unwrap_or_default();
    let mode = config.mode();
    let how = match (mode, config.chatbot.api) {
        (olbridge_core::config::Mode::Operator, _) => "operator mode: the webhook's user polls its Open Lines chats",
        (olbridge_core::config::Mode::Fetch, _) => "fetch mode: Chatbots 2.0, imbot.v2.Event.get",
        (olbridge_core::config::Mode::Push, olbridge_core::config::BotApi::V2) => "push mode: Chatbots 2.0 events",
        (olbridge_core::config::Mode::Push, olbridge_core::config::BotApi::V1) => "push mode: chatbot events",
    };
    eprintln!("olbridge {} — {how} (OLBRIDGE_MODE={})", env!("CARGO_PKG_VERSION"), mode.name());
    eprintln!("  portal   {portal} (member id check: {})", p.member_id.as_ref().map_or("off".into(), |m| m.to_string()));
    let answers_as = match (mode, p.bot_id) {
        (olbridge_core::config::Mode::Operator, _) | (_, None) => "the webhook's user".to_owned(),
        (_, Some(b)) => format!("bot {b}"),
    };
    eprintln!(
        "  bot      {bot} (timeout {} s, {} attempts within {} s), answering as {answers_as}",
        config.bot.timeout.as_secs(),
        config.bot.max_attempts,
        config.bot.retry_budget.as_secs()
    );
    let s = &config.sources;
    match mode {
        olbridge_core::config::Mode::Operator => eprintln!(
            "  polling  every {} s ({})",
            p.poll_interval.as_secs_f64(),
            match s.poll_source {
                olbridge_core::config::PollSource::Recent => "im.recent.list".to_owned(),
                olbridge_core::config::PollSource::Events => format!("im.v2.Event.get, im.recent.list sweep every {} s", s.sweep_every.as_secs()),
            }
        ),
        _ => match s.reconcile_every {
            Some(every) => eprintln!("  recovery every {} s, after {} s of grace", every.as_secs_f64(), s.reconcile_grace.as_secs_f64()),
            None => eprintln!("  recovery off (OLBRIDGE_RECONCILE_SEC=0): a lost event stays unanswered"),
        },
    }
    eprintln!("  receiver http://{}/bitrix/events (health: /health)", config.runner.listen);
    eprintln!("  store    {}", config.runner.data_dir.display());
    eprintln!(
        "  limits   {} req/s burst {} to the portal; burst window {} ms; {} workers",
        p.rate_per_sec,
        p.rate_burst,
        config.conversation.burst_window.as_millis(),
        config.runner.workers
    );
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot use data directory /x: {source}")]
    struct Repeats {
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::from_raw_os_error(17);
        let io_text = io.to_string();
        let e = anyhow::Error::new(Repeats { source: io }).context("cannot open the store in /x").context("cannot start the bridge");
        let line = error_line(&e);
        assert_eq!(line.matches(&io_text).count(), 1, "{line}");
        assert!(line.starts_with("cannot start the bridge: cannot open the store in /x: cannot use data directory /x: "), "{line}");
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_line(&plain), "outer: inner");
    }

    #[test]
    fn a_closed_output_is_a_quiet_exit() {
        let closed = anyhow::Error::new(crate::output::OutputError::Closed).context("printing the stats");
        assert_eq!(error_report(&closed), None);
        assert!(error_report(&anyhow::anyhow!("boom")).is_some());
    }
}
