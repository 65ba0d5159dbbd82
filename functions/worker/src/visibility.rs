//! The retry delay on SQS: `ChangeMessageVisibility` on a reported record's receipt handle.
//!
//! FIFO queues take no per-message delay, and Lambda's event source leaves a reported record
//! invisible for the queue's whole visibility timeout; core's `JobPolicy` asks for seconds. The
//! handler talks to this small trait, not to the SDK, so it is tested with a fake; [`SqsVisibility`]
//! is the real adapter (the SQS producer adapter lives in `olbridge-aws`; this is the worker's only
//! call of its own).

use std::time::Duration;

use async_trait::async_trait;

/// A visibility change failed: the record keeps the queue's visibility timeout (a slower retry,
/// nothing lost).
#[derive(Debug, thiserror::Error)]
#[error("cannot change the visibility of an SQS message: {0}")]
pub struct VisibilityError(pub String);

/// Makes a received message visible again after a delay.
#[async_trait]
pub trait Visibility: Send + Sync {
    /// The message with `receipt_handle` becomes visible `after` from now.
    async fn change(&self, receipt_handle: &str, after: Duration) -> Result<(), VisibilityError>;
}

/// The longest visibility timeout SQS accepts (12 hours).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

/// Whole seconds for SQS, rounded up (a 0.5 s delay must not become "at once") and capped.
pub fn seconds(after: Duration) -> i32 {
    let capped = after.min(MAX_VISIBILITY);
    let secs = capped.as_secs() + u64::from(capped.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// [`Visibility`] on an SQS queue.
#[derive(Debug, Clone)]
pub struct SqsVisibility {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsVisibility {
    /// The queue at `queue_url` (`OLBRIDGE_QUEUE_URL`).
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }
}

#[async_trait]
impl Visibility for SqsVisibility {
    async fn change(&self, receipt_handle: &str, after: Duration) -> Result<(), VisibilityError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds(after))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| VisibilityError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_to_whole_seconds_within_the_sqs_limit() {
        assert_eq!(seconds(Duration::ZERO), 0);
        assert_eq!(seconds(Duration::from_millis(500)), 1);
        assert_eq!(seconds(Duration::from_secs(8)), 8);
        assert_eq!(seconds(Duration::from_millis(8_001)), 9);
        assert_eq!(seconds(Duration::from_secs(86_400)), 43_200);
    }
}
