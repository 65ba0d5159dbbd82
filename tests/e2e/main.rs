//! End-to-end tests: the bridge against the Bitrix24 emulator and a test bot server.
//! One binary; each module is one behaviour family.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test loudly

mod admin;
mod allowlist;
mod answers;
mod chatbots_v2;
mod cli;
mod cost;
mod crash;
mod crm;
mod csat;
mod demo;
mod docs;
mod escalation;
mod failures;
mod harness;
mod health;
mod lifecycle;
mod load;
mod operator;
mod privacy;
mod receiver;
mod recovery;
mod redaction;
mod reports;
mod tools;
mod turns;
mod window;

use std::time::Duration;

/// Generous upper bound for a reply to arrive; tests wait on state, this only bounds a failure.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);
