//! The Lambda functions' handlers end to end, in process: the Bitrix24 emulator delivers events to
//! the receiver's handler (behind a small HTTP front), the jobs it queues are handed to the
//! worker's handler as SQS FIFO batches, and the worker answers through the emulator's REST API
//! with a real HTTP bot. Storage is core's memory store, shared by both handlers as they share one
//! DynamoDB table on AWS — and, in `aws`, the same on the AWS adapters against moto (DynamoDB and
//! SQS FIFO), the test playing Lambda's event source. Plus the dependency rules of the Lambda
//! packages (`deps`), and a small seeded run of the AWS path's fault harness (`harness`: worker
//! invocations killed; the full run is `benches/harness_aws.rs`).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod aws;
mod deps;
mod harness;
mod support;
mod worker;
