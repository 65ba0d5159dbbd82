//! olbridge-rotator: the Secrets Manager rotation of olbridge's one secret, and the admin tool that
//! prepares it.
//!
//! The quarterly rotation replaces the Bitrix24 incoming webhook (which only an admin can create,
//! in the portal's UI) and the bot-signing key (which we can generate). So the admin stages the new
//! webhook first (`olbridge-aws stage-webhook`, [`stage`]), and the rotation function
//! (`olbridge-rotator`, [`rotation`]) copies it into the new version, tests it against the portal
//! and promotes it. A rotation with nothing staged fails and counts a metric an alarm watches. The
//! runbook is `docs/rotation.md`.
//!
//! # Modules
//! - [`rotation`]: the guard and the four steps; [`rotation::handle`] is the Lambda handler, a plain
//!   function of its dependencies and the event (tests call it directly against moto).
//! - [`stage`]: staging a new webhook (the admin binary `olbridge-aws`).
//! - [`check`]: testing a webhook (`profile`, `scope`) before it is staged and before promotion.
//! - [`error`]: [`RotationError`], classified once.
//!
//! # Dependency rules
//! Core + the AWS adapters. The local runner (`olbridge`) never links this crate or the AWS SDK.
#![warn(missing_docs)]

pub mod check;
pub mod error;
pub mod rotation;
pub mod stage;

pub use error::RotationError;
pub use rotation::{Outcome, Rotator, handle};
