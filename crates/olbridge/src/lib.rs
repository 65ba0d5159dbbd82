//! olbridge: the bridge as one process on embedded storage — the local runner and the admin CLI.
//!
//! # Layout
//! - [`runner`]: the bridge as one process — the receiver (`POST /bitrix/events`, `GET /health`),
//!   the worker pool and the store — running core's `receive` and `process` use cases.
//! - [`cli`]: the `olbridge` command line; [`admin`]: its commands besides `serve` (register-bot,
//!   doctor and doctor --json, the canary, read/chat/send, stats, privacy export/erase and its alias
//!   forget); [`demo`]: `olbridge demo`.
//! - [`env`](mod@env), [`telemetry`], [`output`]: `.env` parsing, logging, and standard output
//!   that survives `| head`.
//!
//! # Dependency rules
//! This crate depends on `olbridge-core` (use cases, ports, the REST and bot clients), on
//! `olbridge-sqlite` (the embedded store) and on the emulator only for `olbridge demo`. It never
//! links the AWS SDK. Nothing here is used by the Lambda functions.
#![warn(missing_docs)]

pub mod admin;
pub mod cli;
pub mod demo;
pub mod env;
pub mod output;
pub mod runner;
pub mod telemetry;
