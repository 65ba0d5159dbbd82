//! The rotator's CloudWatch metrics, as Embedded Metric Format lines on stdout (Lambda ships stdout
//! to CloudWatch Logs, which extracts an EMF document into metrics; an alarm watches them).
//!
//! The names live here, in one place, so they can move to a shared metric catalogue unchanged. The
//! line is written by hand (a dozen lines of JSON) rather than through a metrics crate: it is one
//! counter, and a test can parse exactly what is printed (moto does not extract EMF).

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde_json::json;

/// The CloudWatch namespace of olbridge's own metrics.
pub const NAMESPACE: &str = "Olbridge";
/// The `Function` dimension's value for this function.
pub const FUNCTION: &str = "rotator";
/// Counted when a rotation finds no staged webhook: the quarterly webhook rotation is due.
pub const ROTATION_NOTHING_STAGED: &str = "RotationNothingStaged";

/// The EMF document counting `metric` once at `at`, as one line.
pub fn emf_count(metric: &str, at: DateTime<Utc>) -> String {
    json!({
        "_aws": {
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        },
        "Function": FUNCTION,
        metric: 1,
    })
    .to_string()
}

/// Where metric lines go: stdout in Lambda, a buffer in tests.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    captured: Option<Arc<Mutex<Vec<String>>>>,
}

impl Metrics {
    /// Lines go to stdout.
    pub fn stdout() -> Self {
        Self::default()
    }

    /// Lines are kept; read them with [`Metrics::lines`].
    pub fn capture() -> Self {
        Self { captured: Some(Arc::default()) }
    }

    /// The captured lines (empty for stdout).
    pub fn lines(&self) -> Vec<String> {
        self.captured.as_ref().map(|c| c.lock().unwrap_or_else(PoisonError::into_inner).clone()).unwrap_or_default()
    }

    /// Counts `metric` once.
    pub fn count(&self, metric: &str, at: DateTime<Utc>) {
        let line = emf_count(metric, at);
        match &self.captured {
            Some(c) => c.lock().unwrap_or_else(PoisonError::into_inner).push(line),
            // One `println!` is one locked write of a whole line, so it never interleaves with logs.
            None => println!("{line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_the_documented_emf_document() {
        let at = DateTime::from_timestamp_millis(1_764_000_000_123).unwrap_or_default();
        let line: serde_json::Value = serde_json::from_str(&emf_count(ROTATION_NOTHING_STAGED, at)).unwrap_or_default();
        let expected = json!({"_aws":{"Timestamp":1_764_000_000_123_i64,"CloudWatchMetrics":[{"Namespace":"Olbridge","Dimensions":[["Function"]],
            "Metrics":[{"Name":"RotationNothingStaged","Unit":"Count"}]}]},"Function":"rotator","RotationNothingStaged":1});
        assert_eq!(line, expected);
    }
}
