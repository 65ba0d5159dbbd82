//! The fault harnesses' verdict and report, shared by the local runner's harness
//! (`olbridge_tests::harness`, which SIGKILLs `olbridge serve`) and the AWS path's
//! (`functions/worker`'s `harness_aws`, which kills worker invocations against moto). Both drive
//! customers on the Bitrix24 emulator; what they wrote is judged here from the inboxes alone.
//!
//! - [`check`]: the verdict — lost, duplicated, misrouted, out of order.
//! - [`report`]: the figures, as JSON and Markdown.
//! - [`args`]: the benches' command-line options.
//!
//! A crate of its own so that a Lambda package's benches can use it without depending on the
//! end-to-end test crate (STYLE.md: nothing depends on tests).

pub mod args;
pub mod check;
pub mod report;

pub use check::{Verdict, Written};
pub use report::{Report, RunFigures};
