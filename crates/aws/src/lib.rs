//! olbridge-aws: the AWS adapters of olbridge-core's ports, for the Lambda functions.
//!
//! # Modules
//! - [`dynamo`]: every storage port on one DynamoDB table (`OLBRIDGE_TABLE`).
//! - [`sqs`]: the queue's producer port on SQS FIFO (`OLBRIDGE_QUEUE_URL`) and the dead-letter
//!   queue.
//! - [`emf`]: metric values from core's catalogue as CloudWatch Embedded Metric Format lines on
//!   stdout.
//! - [`setup`]: a Lambda's cold start: the configuration with the secret, and the adapters.
//! - [`secrets`]: the one JSON secret (`OLBRIDGE_SECRET_ID`), cached with a TTL, read by explicit
//!   version stage.
//!
//! # Dependency rules
//! Depends on olbridge-core and the AWS SDK only: never on SQLite or the emulator. The local runner
//! never depends on this crate.
#![warn(missing_docs)]

pub mod dynamo;
pub mod emf;
mod sdk_error;
pub mod secrets;
pub mod setup;
pub mod sqs;

/// Helpers for tests against moto.
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

/// The SDK configuration from the environment (`AWS_REGION`, credentials, and `AWS_ENDPOINT_URL`
/// when set: that is how tests and local runs reach moto). Load it once per process.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}
