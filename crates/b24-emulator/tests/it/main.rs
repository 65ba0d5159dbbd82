//! Integration tests of the emulator, run against a real server on port 0.
//!
//! Helpers outside `#[test]` functions panic on setup failures on purpose (a broken harness must fail the test),
//! which the workspace's unwrap/expect lints would otherwise flag.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod batch;
mod bots;
mod clients;
mod common;
mod conformance;
mod control_api;
mod crm;
mod faults;
mod im_v2;
mod malformed;
mod openlines;
mod operating;
mod rest_basics;
mod shape;
mod v2;
