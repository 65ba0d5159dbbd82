//! Integration tests of the emulator, run against a real server on port 0.

mod common;
mod openlines;
mod rest_basics;
mod shape;
mod conformance;
