//! `olbridge-rotator`: the Lambda function Secrets Manager calls for each rotation step. Only wiring:
//! the SDK client, the portal client options and the metric output are built once; the handler is
//! [`olbridge_rotator::handle`]. A failed step becomes Lambda's error with the error's code as
//! `errorType` (see `RotationError`).

use std::sync::Arc;

use aws_lambda_events::event::secretsmanager::SecretsManagerSecretRotationEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use olbridge_core::ports::SystemClock;
use olbridge_rotator::check::check_options;
use olbridge_rotator::{Rotator, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = olbridge_aws::sdk_config().await;
    let rotator = Rotator {
        secrets: aws_sdk_secretsmanager::Client::new(&sdk),
        portal: check_options(),
        metrics: olbridge_aws::emf::Emf::stdout(),
        clock: Arc::new(SystemClock),
    };
    let rotator = &rotator;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<SecretsManagerSecretRotationEvent>| async move { handle(rotator, event.payload).await.map(|_| ()) },
    ))
    .await
}
