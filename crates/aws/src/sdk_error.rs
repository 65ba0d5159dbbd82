//! The text of an AWS SDK error for our error types and logs, written once for every adapter.
//!
//! Not `DisplayErrorContext`: it prints the raw HTTP response, and the response of a call that
//! failed while being *read* may hold what we must never log (a secret's value, a customer's
//! message in an SQS body). So: the service's error code and message for service errors, the
//! connector's error for network failures, and only the kind for the rest.

// The smithy types every SDK crate re-exports (the same types for SQS, DynamoDB, Secrets Manager).
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// A safe, one-line description of `e`.
pub(crate) fn describe<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> String {
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            format!("{}: {}", err.code().unwrap_or("unknown service error"), err.message().unwrap_or("(no message)"))
        }
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::DispatchFailure(d) => match d.as_connector_error() {
            Some(c) => format!("request not delivered: {}", DisplayErrorContext(c)),
            None => "request not delivered".into(),
        },
        SdkError::ResponseError(_) => "the response could not be read (not shown: it may hold data that must not be logged)".into(),
        SdkError::ConstructionFailure(_) => "the request could not be built".into(),
        _ => "unknown SDK error".into(),
    }
}
