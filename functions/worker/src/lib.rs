//! `olbridge-worker`: SQS FIFO batches (event source mapping with `ReportBatchItemFailures`) run as
//! turns by core's `process` use case.
//!
//! # Modules
//! - [`batch`]: an SQS event as the worker sees it — records parsed as jobs (or poison), grouped by
//!   `MessageGroupId` in batch order.
//! - [`handler`]: one plain async function, `handle(deps, event, invocation) -> SqsBatchResponse`:
//!   groups concurrently, each group's records in order in one `process` call, and core's
//!   `JobPolicy` deciding what becomes of a record that did not finish.
//! - [`visibility`]: the one SQS call the worker makes itself (`ChangeMessageVisibility`, for the
//!   policy's retry delay), behind a small trait so the handler is tested without AWS.
//! - [`metered`]: the turn log, decorated to write each recorded turn's metrics (EMF).
//! - `main.rs` only wires.
//!
//! # FIFO and partial batches
//! A batch may hold several chats (message groups), each in order. Groups run concurrently; a
//! group's records never do: they go to one `process` call, which claims them in order and folds
//! consecutive customer messages into one turn. When a turn fails or another invocation holds it,
//! that record and every later record of its group are reported in `batchItemFailures` (SQS FIFO
//! then redelivers them, in order, before anything newer of that chat); the records before it and
//! the other groups' records are not reported, so Lambda deletes them.
//!
//! # Failure counts come from the receive count
//! Core's `JobPolicy` wants a job's failures and interruptions. SQS counts neither, only deliveries
//! (`ApproximateReceiveCount`), so failures = receives − 1 and interruptions = 0: a delivery cut
//! short by a crash or a timeout, or spent waiting behind a failed record of its chat, counts as a
//! failure. The count can only run ahead, so a turn is given up early, never late; and the queue's
//! redrive limit (`maxReceiveCount` in `infra/resources.json`, [`handler::QUEUE_MAX_RECEIVES`],
//! checked by a test) bounds a crash loop the way `OLBRIDGE_POISON_RESTARTS` does locally. On the
//! last delivery the queue allows, a turn that would be retried is given up instead
//! (`JobPolicy::after_failure_on_delivery`): the dead-letter queue must never be the first to know.
//!
//! # Giving up, and what the dead-letter queue holds
//! A turn given up (`Next::GiveUp`) is given up in the same invocation (`process::give_up`: the
//! customer gets the fallback message, the chat goes to a human, exactly once) and its record is
//! acknowledged. On AWS the "dead letter" of a given-up turn is its ERROR log line and the
//! `WorkerRecords` metric with `Result=given_up`, not a message in a queue: the customer has been
//! told and a human has the chat, so there is nothing left to redrive. The SQS dead-letter queue
//! only receives records the worker could not even give up (the portal is down for the whole
//! receive budget) — those need an operator, and its depth is alarmed.
//!
//! # Retry delays
//! FIFO queues have no per-message delay, and Lambda leaves a reported record invisible for the
//! queue's whole visibility timeout (18 minutes here). The policy's delay is applied with
//! `ChangeMessageVisibility` on the failed record and on the records reported behind it, so the
//! whole group comes back together, in order, when the delay ends.
//!
//! # Bursts
//! FIFO event sources have no batching window and FIFO queues no per-message delay, so the local
//! runner's optional quiet window (`OLBRIDGE_BURST_MS`) has no AWS counterpart and is not applied.
//! Bursts are folded all the same: while a chat's turn runs, its records are in flight and SQS
//! delivers nothing newer of that group; what the customer writes meanwhile waits in the queue, and
//! the next receive brings it together in one batch, which `process` folds into one turn (one
//! answer to the follow-ups, not one each). A message arriving while the chat is idle is answered
//! at once, as with the local default of no window.
#![warn(missing_docs)]

pub mod batch;
pub mod handler;
pub mod metered;
pub mod visibility;

pub use handler::{Invocation, WorkerDeps, handle};
