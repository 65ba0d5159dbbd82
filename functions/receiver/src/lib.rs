//! `olbridge-receiver`: Bitrix24's outgoing events behind API Gateway (HTTP API, payload 2.0), as a
//! Lambda function.
//!
//! # Modules
//! - [`handler`]: the routes (`POST /bitrix/events`, `GET /health`, 404 for anything else) as one
//!   plain async function over its dependencies — the tests call it with the fixtures in `events/`.
//! - `main.rs` only wires: the configuration once, the clients once, then `lambda_http::run`.
//!
//! # Why so little
//! The receiver only acknowledges: API Gateway gives an integration at most 30 s and Bitrix24 never
//! resends an event it could not deliver, so everything that can wait (the bot, the portal) is the
//! worker's. What is done here is what decides whether the event is ours and genuine, and that is
//! core's `receive` use case, the same the local runner serves: the same statuses, the same stable
//! refusal codes in the body, never internal error text.
#![warn(missing_docs)]

pub mod handler;

pub use handler::{ReceiverDeps, handle};
