//! olbridge core: everything the local runner and the Lambda functions share.
//!
//! # Layout
//! - [`domain`]: pure types and rules — identifiers, the one message model every source produces,
//!   events, turns and their durable progress, profiles, escalation phrases, reply splitting, the
//!   FAQ cache's rules (`faq`), the PHP-bracket form parser. No I/O.
//! - [`ports`]: the capabilities use cases need, as small traits, one file each (`IdempotencyStore`,
//!   `JobSink`, `WorkQueue`, `DeadLetters`, `ChatStore`, `ProfileStore`, `TurnLog`, `MetaStore`,
//!   `AnswerCache`, `UsageCounters`, `Portal`, `CrmPortal`, `TimelineOutbox`, `Bot`, `Clock`).
//! - [`memory`]: in-memory adapters for every storage port; the reference semantics.
//! - [`b24`]: the Bitrix24 REST client (envelopes, errors, client-side rate limit, retries, batch,
//!   pagination) and the `Portal` adapters over it.
//! - [`bot`]: the bot contract on the wire and its HTTP adapter.
//! - [`usecase`]: `receive` (verify, de-duplicate, enqueue), `process` (one chat's jobs as turns),
//!   `job` (what becomes of a job after a turn), `crm` (the chat's CRM binding and the timeline
//!   outbox), `csat` (the rating prompt), `health` (the deep health check) and `canary` (the
//!   synthetic canary), shared by the local runner and the Lambdas.
//! - [`metrics`]: the metrics catalogue (names, units, dimensions) and the pure functions that
//!   turn turns and received events into metric values; `infra/metrics.json` mirrors it.
//! - [`config`]: the one typed configuration, loaded once from the environment.
//! - [`deployment`]: what each Lambda function reads (the CDK stack's source of truth).
//! - [`retry`]: the one retry helper.
//!
//! # Dependency rules
//! `domain` depends on no I/O crate. `usecase` talks to the world only through `ports`. Adapters
//! (`memory`, `b24`, `bot`, and the SQLite/AWS adapters in other crates) implement ports. Nothing
//! here depends on the emulator except tests.
#![warn(missing_docs)]

pub mod b24;
pub mod bot;
pub mod config;
pub mod deployment;
pub mod domain;
pub mod memory;
pub mod metrics;
pub mod ports;
pub mod retry;
pub mod usecase;

/// Contract test suites every adapter of a port must pass (used by the SQLite and AWS adapters'
/// tests too).
#[cfg(any(test, feature = "test-util"))]
pub mod contract;

/// Fakes of the portal and the bot for use-case unit tests.
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
