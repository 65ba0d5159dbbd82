//! Embedded storage for the local runner.
//!
//! The storage ports live in `olbridge_core::ports`; this module holds their embedded adapters,
//! one file (or directory) per technology, beside the memory adapter in core and the AWS adapters
//! of the Lambda functions. Today that is [`sqlite`]: every port in one SQLite database in the
//! data directory, owned by one process at a time.

pub mod sqlite;

pub use sqlite::{DeadLetter, OpenError, Purged, Recovered, Retention, SqliteStore};
