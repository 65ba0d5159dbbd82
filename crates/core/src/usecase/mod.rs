//! Use cases: the entry points shared by the local runner and the Lambda functions. Each takes its
//! dependencies as ports and an input; none reads the environment, and time comes from a `Clock`
//! port or a `now` argument.
//!
//! - [`receive`]: verify a Bitrix24 event, de-duplicate it, enqueue it (the receiver).
//! - [`fetch`]: pull a Chatbots 2.0 bot's events (`imbot.v2.Event.get`) and enqueue them the same
//!   way, acknowledging them only once they are queued (the fetch loop, a poller Lambda).
//! - [`process`]: one chat's consecutive jobs as turns (the worker), and giving a turn up.
//! - [`job`]: what becomes of a job after a turn (ack, retry after a delay, give up, dead-letter),
//!   and putting dead letters back.
//! - [`health`]: the deep health check (portal and scopes, bot, store, queue age) that `olbridge
//!   doctor --json` and the poller's health invocation report.
//! - [`canary`]: the synthetic canary: a test message through a test dialog, timed until the bot's
//!   reply.
//! - [`crm`]: the chat's CRM binding and the turn's line on its timeline, written later from a
//!   durable outbox so a CRM failure never holds up a reply.
//! - [`poll`]: finding messages by reading the portal (operator mode, and push mode's
//!   reconciliation), enqueued through `receive::enqueue` with the push path's key.

pub mod canary;
pub mod crm;
pub mod csat;
pub mod fetch;
pub mod health;
pub mod job;
pub mod poll;
pub mod process;
pub mod receive;
