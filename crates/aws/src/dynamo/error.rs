//! SDK errors to [`StoreError`], in one place.
//!
//! - A failed `ConditionExpression` is not an error here: [`conditional`] hands back the item the
//!   condition was evaluated against (we always ask for `ReturnValuesOnConditionCheckFailure =
//!   ALL_OLD`), and each port decides what it means (`LeaseLost`, `Duplicate`, `Done`, ...).
//! - Everything else the SDK reports is [`StoreError::Backend`]: throttling, 5xx, timeouts and
//!   network failures are worth retrying, and the SDK has already retried them with backoff (its
//!   standard retry policy) before we see them. Permanent mistakes (a missing table, a malformed
//!   expression, an item over 400 KB) land there too: they are configuration or code errors that a
//!   retry will not fix, but they do not mean stored data is wrong, which is all `Corrupt` says.
//! - Decoding failures are [`StoreError::Corrupt`] (see `codec`).

use std::error::Error;
use std::fmt::Debug;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use olbridge_core::ports::{StoreError, StoreResult};

use super::codec::Item;

/// A backend failure of the operation `op`, with the SDK's whole error chain.
pub(crate) fn backend<E: Error + 'static, R: Debug>(op: &str, e: SdkError<E, R>) -> StoreError {
    StoreError::Backend(format!("DynamoDB {op}: {}", DisplayErrorContext(&e)))
}

/// The errors of operations that take a condition.
pub(crate) trait ConditionFailure {
    /// `Some(old item)` when this is a failed condition (`Some(None)`: there was no item).
    fn condition_failed(&self) -> Option<Option<&Item>>;
}

macro_rules! condition_failure {
    ($($err:ty),+) => {$(
        impl ConditionFailure for $err {
            fn condition_failed(&self) -> Option<Option<&Item>> {
                match self {
                    Self::ConditionalCheckFailedException(e) => Some(e.item()),
                    _ => None,
                }
            }
        }
    )+};
}
condition_failure!(PutItemError, UpdateItemError, DeleteItemError);

/// The result of a conditional write.
#[derive(Debug)]
pub(crate) enum Cond<T> {
    /// The condition held; the operation's output.
    Written(T),
    /// The condition failed; the item it was evaluated against (`None`: no item).
    Failed(Option<Item>),
}

/// Sorts a conditional write's result into written / condition failed / backend error.
pub(crate) fn conditional<T, E, R>(op: &str, sent: Result<T, SdkError<E, R>>) -> StoreResult<Cond<T>>
where
    E: ConditionFailure + Error + 'static,
    R: Debug,
{
    match sent {
        Ok(out) => Ok(Cond::Written(out)),
        Err(e) => match e.as_service_error().and_then(ConditionFailure::condition_failed) {
            Some(old) => Ok(Cond::Failed(old.cloned())),
            None => Err(backend(op, e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::error::{ConditionalCheckFailedException, ProvisionedThroughputExceededException, ThrottlingException};

    use super::*;
    use crate::dynamo::codec::s;

    type Sent = Result<(), SdkError<UpdateItemError, ()>>;

    #[test]
    fn a_failed_condition_carries_the_old_item() {
        let failed = ConditionalCheckFailedException::builder().item("phase", s("done")).build();
        let sent: Sent = Err(SdkError::service_error(UpdateItemError::ConditionalCheckFailedException(failed), ()));
        match conditional("UpdateItem", sent).expect("not an error") {
            Cond::Failed(Some(old)) => assert_eq!(old["phase"], s("done")),
            other => panic!("{other:?}"),
        }
        let no_item: Sent =
            Err(SdkError::service_error(UpdateItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build()), ()));
        assert!(matches!(conditional("UpdateItem", no_item), Ok(Cond::Failed(None))));
    }

    #[test]
    fn throttling_timeouts_and_the_rest_are_retryable_backend_errors() {
        let throttled: Sent =
            Err(SdkError::service_error(UpdateItemError::ThrottlingException(ThrottlingException::builder().message("slow down").build()), ()));
        let exceeded: Sent = Err(SdkError::service_error(
            UpdateItemError::ProvisionedThroughputExceededException(ProvisionedThroughputExceededException::builder().message("too much").build()),
            (),
        ));
        let timeout: Sent = Err(SdkError::timeout_error("no answer"));
        for sent in [throttled, exceeded, timeout] {
            match conditional("UpdateItem (claim)", sent) {
                Err(e @ StoreError::Backend(_)) => {
                    assert!(e.is_retryable());
                    assert!(e.to_string().contains("UpdateItem (claim)"), "{e}");
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
