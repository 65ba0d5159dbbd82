//! `olbridge-poller`: wires the dependencies once per Lambda instance, then handles each scheduled
//! event (and each direct health or canary invocation) with [`olbridge_poller::dispatch`]. Nothing here is tested by calling it: everything worth
//! testing is in the library (`work::work` builds the same tasks from the same configuration).

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use olbridge_aws::emf::Emf;
use olbridge_aws::setup::Setup;
use olbridge_core::b24::{B24Client, ClientOptions};
use olbridge_core::ports::{Clock, SystemClock};
use olbridge_poller::lease::Lease;
use olbridge_poller::probe::ProbeDeps;
use olbridge_poller::work::{Stores, work};
use olbridge_poller::{Invocation, PollerDeps, dispatch};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON lines when AWS_LAMBDA_LOG_FORMAT=JSON; level from AWS_LAMBDA_LOG_LEVEL or RUST_LOG.
    lambda_runtime::tracing::init_default_subscriber();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let setup = Setup::load(Arc::clone(&clock)).await?;
    let config = &setup.config;
    let store = setup.store()?;
    let sink = setup.sink()?;
    let stores = Stores { idempotency: store.clone(), chats: store.clone(), meta: store.clone(), sink: sink.clone(), timeline: store.clone() };
    let webhook = config.portal.webhook.clone().ok_or("B24_WEBHOOK_BASE is not configured")?;
    // One rate budget for the portal, shared through the table by every concurrent instance of
    // every function that calls it (olbridge_aws::setup::shared_rate_limiter).
    let client = B24Client::with_limiter(webhook.clone(), ClientOptions::from_config(config), setup.shared_rate_limiter(&webhook)?)?;
    let probes = ProbeDeps::new(config, client.clone(), store.clone(), sink, Arc::clone(&clock), Emf::stdout());
    let deps = PollerDeps { work: work(config, &client, &stores, Arc::clone(&clock))?, lease: Lease::new(store), clock, emf: Emf::stdout() };
    let (deps, probes) = (&deps, &probes);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let invocation = Invocation::from_context(&event.context);
        dispatch(deps, probes, event.payload, &invocation).await
    }))
    .await
}
