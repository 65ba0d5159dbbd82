//! `olbridge-worker`: wires the dependencies once per Lambda instance, then handles SQS batches
//! with [`olbridge_worker::handle`]. Nothing here is tested by calling it: everything worth testing
//! is in the handler and in `olbridge_aws::setup`.

use std::convert::Infallible;
use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use olbridge_aws::emf::Emf;
use olbridge_aws::setup::Setup;
use olbridge_core::b24::crm::RestCrm;
use olbridge_core::b24::{B24Client, ClientOptions};
use olbridge_core::bot::http::HttpBot;
use olbridge_core::config::TimelineMode;
use olbridge_core::ports::SystemClock;
use olbridge_core::usecase::crm::CrmLink;
use olbridge_core::usecase::job::JobPolicy;
use olbridge_core::usecase::process::{Deps, ProcessSettings};
use olbridge_worker::visibility::SqsVisibility;
use olbridge_worker::{Invocation, WorkerDeps, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON lines when AWS_LAMBDA_LOG_FORMAT=JSON; level from AWS_LAMBDA_LOG_LEVEL or RUST_LOG.
    lambda_runtime::tracing::init_default_subscriber();
    let setup = Setup::load(Arc::new(SystemClock)).await?;
    let (config, sdk) = (&setup.config, &setup.sdk);
    let store = setup.store()?;
    let webhook = config.portal.webhook.clone().ok_or("B24_WEBHOOK_BASE is not configured")?;
    let bot_url = config.bot.url.clone().ok_or("BOT_HTTP_URL is not configured")?;
    let queue_url = config.aws.queue_url.clone().ok_or("OLBRIDGE_QUEUE_URL is not configured")?;
    // One rate budget for the portal, shared through the table by every concurrent instance of
    // every function that calls it (olbridge_aws::setup::shared_rate_limiter).
    let client = B24Client::with_limiter(webhook.clone(), ClientOptions::from_config(config), setup.shared_rate_limiter(&webhook)?)?;
    // The same choice the local runner makes: the bot (v1 or Chatbots 2.0), or in operator mode
    // the webhook's user.
    let portal = olbridge_core::b24::portal::for_mode(config, client.clone())?;
    let bot = Arc::new(HttpBot::new(bot_url, config.bot.auth.clone(), config.bot.hmac_secret.clone(), config.bot.timeout)?);
    let csat = olbridge_core::usecase::csat::Csat::new(store.clone(), config.csat.clone()).map(Arc::new);
    // The CRM binding and the timeline's outbox in the table; the poller writes the comments.
    // With OLBRIDGE_CRM_TIMELINE=off nothing is looked up or written (the bot request carries the
    // event's own binding).
    let crm = (config.crm.timeline != TimelineMode::Off).then(|| Arc::new(CrmLink::new(Arc::new(RestCrm::new(client)), store.clone(), config.crm)));
    let process = Deps {
        idempotency: store.clone(),
        chats: store.clone(),
        profiles: store.clone(),
        log: store.clone(),
        cache: store.clone(),
        usage: store,
        portal,
        bot,
        clock: Arc::new(SystemClock),
        settings: ProcessSettings::from_config(config),
        crm,
        csat,
    };
    let visibility = Arc::new(SqsVisibility::new(aws_sdk_sqs::Client::new(sdk), queue_url));
    let deps = WorkerDeps::new(process, JobPolicy::from_config(config), visibility, Emf::stdout());
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let invocation = Invocation::from_context(&event.context);
        Ok::<_, Infallible>(handle(deps, event.payload, &invocation).await)
    }))
    .await
}
