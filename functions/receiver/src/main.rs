//! `olbridge-receiver`: wires the dependencies once per Lambda instance, then serves API Gateway's
//! requests with [`olbridge_receiver::handle`]. Nothing here is tested by calling it: everything
//! worth testing is in the handler.

use std::convert::Infallible;
use std::sync::Arc;

use aws_config::SdkConfig;
use lambda_http::{Error, service_fn};
use olbridge_aws::emf::Emf;
use olbridge_core::config::Config;
use olbridge_core::ports::{ChatStore, IdempotencyStore, JobSink, MetaStore, SystemClock};
use olbridge_core::usecase::receive::{MemberPin, ReceiveSettings, Receiver};
use olbridge_receiver::{ReceiverDeps, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON lines when AWS_LAMBDA_LOG_FORMAT=JSON; level from AWS_LAMBDA_LOG_LEVEL or RUST_LOG.
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = olbridge_aws::sdk_config().await;
    let aws = adapters(&config, &sdk).await?;
    let mut settings = ReceiveSettings::from_config(&config);
    settings.previous_tokens = aws.previous_tokens;
    if settings.application_token.is_none() && settings.bot_client_id.is_none() {
        return Err("neither B24_APPLICATION_TOKEN nor B24_BOT_CLIENT_ID is configured: every event would be refused".into());
    }
    let receiver =
        Receiver { pin: MemberPin::new(config.portal.member_id.clone(), aws.meta), settings, idempotency: aws.idempotency, sink: aws.sink, chats: aws.chats };
    let deps = ReceiverDeps { receiver, clock: Arc::new(SystemClock), emf: Emf::stdout() };
    let deps = &deps;
    lambda_http::run(service_fn(move |request| async move { Ok::<_, Infallible>(handle(deps, request).await) })).await
}

/// The receiver's ports on AWS.
struct Adapters {
    idempotency: Arc<dyn IdempotencyStore>,
    sink: Arc<dyn JobSink>,
    chats: Arc<dyn ChatStore>,
    meta: Arc<dyn MetaStore>,
    /// The tokens of the secret's AWSPREVIOUS version, accepted while a rotation settles.
    previous_tokens: Vec<olbridge_core::domain::secret::Secret>,
}

// ======================= AWS ADAPTERS: WIRED AT MERGE =======================
// Being written beside this crate (do not build them here):
// - crates/aws/src/dynamo.rs: `idempotency`, `chats` and `meta` on one table (OLBRIDGE_TABLE);
// - crates/aws/src/sqs.rs: `sink`, the SQS FIFO producer (OLBRIDGE_QUEUE_URL);
// - crates/aws/src/secrets.rs: the secret (OLBRIDGE_SECRET_ID) laid over `config` before
//   `ReceiveSettings::from_config` (B24_APPLICATION_TOKEN, B24_WEBHOOK_BASE...), and its
//   AWSPREVIOUS tokens as `previous_tokens`.
// Until then the function refuses to start rather than run on memory that each instance loses.
async fn adapters(_config: &Config, _sdk: &SdkConfig) -> anyhow::Result<Adapters> {
    anyhow::bail!("olbridge-receiver: the DynamoDB, SQS and Secrets Manager adapters are not wired yet (functions/receiver/src/main.rs, `adapters`)")
}
// ============================================================================
