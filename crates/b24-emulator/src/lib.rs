//! A faithful fake Bitrix24 portal for testing the olbridge Open Lines ↔ AI-bot bridge.
//!
//! Every test of the project runs against this emulator, so it follows the documented REST contract
//! (`bitrix24-rest-contract.md`, DOC/SRC/OBS) rather than convenience: the same URL shapes, envelopes, error codes
//! and HTTP statuses, value types (v1 ids as strings, `Y`/`N` flags), the per-portal leaky bucket, `batch`, the
//! Open Lines session rules, and events POSTed form-encoded with every scalar a string, never retried. Where the
//! contract is UNCONFIRMED the choice is configurable (see [`EmulatorConfig`] and the crate README).
//!
//! It deliberately does not depend on `olbridge-core`: it keeps its own wire types, so a serialisation mistake in
//! the bridge cannot be mirrored here and pass unnoticed.
//!
//! # Map
//! * [`config`] — [`EmulatorConfig`], [`RateLimit`], [`OperatingLimit`].
//! * `clock` — the portal clock (wall time plus an offset tests advance).
//! * [`emulator`] — [`Emulator`], the handle tests use (start on port 0, seed, drive customers, inspect).
//! * `api` — plain data types of the Rust and control APIs ([`NewLine`], [`ChatSnapshot`], ...).
//! * `state` — the portal model behind one `std::sync::Mutex` (never held across `.await`): users, lines, chats,
//!   sessions, messages, bots, CRM; Open Lines rules live in `state::openlines` and `state::messages`, the
//!   `im.v2.Event.*` logs in `state::user_events`.
//! * `rest` — `/rest/<user>/<code>/<method>`: PHP-array parameter parser, envelopes, errors, rate limit,
//!   per-method operating time, `batch`.
//! * `methods` — the REST methods (`im`, `imbot`, `imbot.v2`, `imopenlines`, `crm`, misc).
//! * `events` — outbound events: payloads (v1, v2), PHP `http_build_query` encoding, ordered async delivery.
//! * `control` — the JSON control API under `/_emulator/` for tests, demos and manual use (`control::limits`:
//!   faults, rate limit, operating time, clock, delivery outages).
//! * [`faults`] — injected errors, delays, dropped deliveries, handler outages. [`record`] — recordings of calls and deliveries.

#![warn(missing_docs)]

mod api;
mod clock;
pub mod config;
mod control;
pub mod emulator;
mod events;
pub mod faults;
mod methods;
pub mod record;
mod rest;
mod server;
mod shared;
mod state;

pub use api::{ChatSnapshot, CustomerMessage, DemoPortal, InboxMessage, NewLine, SnapshotMessage, WelcomeBotJoin, WelcomeBotLeft};
pub use config::{EmulatorConfig, OperatingLimit, RateLimit, WHATSAPP_BLOCK_REASON};
pub use emulator::Emulator;
pub use faults::{DeliveryOutage, Fault, FaultKind, OutageFailure};
pub use record::{EventDelivery, RecordedCall};
pub use rest::operating::OperatingUsage;

/// Decodes a PHP `http_build_query` body (an event as Bitrix24 POSTs it) into nested JSON, all leaves strings.
/// Useful in tests that receive events; malformed bodies give `None`.
pub fn decode_form(body: &str) -> Option<serde_json::Value> {
    rest::params::parse_query(body, rest::params::DEFAULT_LIMITS).ok().map(|p| p.to_json())
}
