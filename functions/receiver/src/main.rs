//! `olbridge-receiver`: wires the dependencies once per Lambda instance, then serves API Gateway's
//! requests with [`olbridge_receiver::handle`]. Nothing here is tested by calling it: everything
//! worth testing is in the handler and in `olbridge_aws::setup`.

use std::convert::Infallible;
use std::sync::Arc;

use lambda_http::{Error, service_fn};
use olbridge_aws::emf::Emf;
use olbridge_aws::secrets::SecretSource;
use olbridge_aws::setup::Setup;
use olbridge_core::config::vars;
use olbridge_core::domain::secret::Secret;
use olbridge_core::ports::{Clock, SystemClock};
use olbridge_core::usecase::receive::{MemberPin, ReceiveSettings, Receiver};
use olbridge_receiver::handler::{TOKEN_REFRESH_AFTER, TokenRefresh};
use olbridge_receiver::{ReceiverDeps, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON lines when AWS_LAMBDA_LOG_FORMAT=JSON; level from AWS_LAMBDA_LOG_LEVEL or RUST_LOG.
    lambda_http::tracing::init_default_subscriber();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let setup = Setup::load(Arc::clone(&clock)).await?;
    let store = setup.store()?;
    let mut settings = ReceiveSettings::from_config(&setup.config);
    settings.previous_tokens = setup.snapshot.as_ref().map(|s| s.previous_tokens()).unwrap_or_default();
    if settings.application_token.is_none() && settings.bot_client_id.is_none() {
        return Err("neither B24_APPLICATION_TOKEN nor B24_BOT_CLIENT_ID is configured: every event would be refused".into());
    }
    let receiver = Receiver {
        pin: MemberPin::new(setup.config.portal.member_id.clone(), store.clone()),
        settings,
        idempotency: store.clone(),
        sink: setup.sink()?,
        chats: store,
    };
    let mut deps = ReceiverDeps::new(receiver, clock, Emf::stdout());
    deps.tokens = setup.secrets.map(|secrets| Arc::new(SecretTokens(secrets)) as Arc<dyn TokenRefresh>);
    let deps = &deps;
    lambda_http::run(service_fn(move |request| async move { Ok::<_, Infallible>(handle(deps, request).await) })).await
}

/// The application tokens from the secret.
struct SecretTokens(Arc<SecretSource>);

#[async_trait::async_trait]
impl TokenRefresh for SecretTokens {
    async fn tokens(&self) -> Option<(Option<Secret>, Vec<Secret>)> {
        let snapshot = self.0.fresher_than(TOKEN_REFRESH_AFTER).await.ok()?;
        Some((snapshot.current.values.get(vars::B24_APPLICATION_TOKEN).cloned(), snapshot.previous_tokens()))
    }
}
