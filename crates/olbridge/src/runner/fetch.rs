//! The fetch loop (`OLBRIDGE_MODE=fetch`, a Chatbots 2.0 bot registered in fetch mode): core's
//! `fetch` use case in a loop, in place of events POSTed to the receiver.
//!
//! Each tick reads the bot's queue with `imbot.v2.Event.get`, queues the events through the
//! receiver's path and only then stores the offset that acknowledges them; the workers are woken
//! as the receiver would wake them. The next read comes after `B24_POLL_SEC` when the queue is
//! drained, after 2 s when the portal says more are waiting (contract §3.7), and after a growing
//! pause (up to [`MAX_BACKOFF`]) when a read fails. A killed process loses nothing and queues
//! nothing twice: see `olbridge_core::usecase::fetch`.
//!
//! The receiver stays up in fetch mode (for `GET /health`); Bitrix24 has no handler URL to call.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use olbridge_core::b24::BotV2Portal;
use olbridge_core::config::Config;
use olbridge_core::usecase::fetch::{DEFAULT_LIMIT, FetchError, FetchSettings, Fetcher};
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::Shared;

/// The longest pause after failed reads.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Builds the fetcher over the bridge's client and store, and refuses to start without a member
/// id (fetched events carry none: `B24_MEMBER_ID`, or one pinned from earlier pushed events).
pub(crate) async fn fetcher(config: &Config, shared: &Shared) -> anyhow::Result<Fetcher> {
    let bot_id = config.portal.bot_id.context("B24_BOT_ID is not set")?;
    let token = config.portal.bot_client_id.clone().context("B24_BOT_CLIENT_ID is not set")?;
    let webhook = config.portal.webhook.as_ref().context("B24_WEBHOOK_BASE is not set")?;
    let feed = Arc::new(BotV2Portal::new(shared.client.clone(), bot_id, token));
    let settings = FetchSettings { bot_id, domain: webhook.domain().clone(), limit: DEFAULT_LIMIT, idle: config.portal.poll_interval };
    let fetcher = Fetcher { feed, meta: shared.meta.clone(), receiver: shared.receiver.clone(), settings };
    fetcher.portal().await.map_err(anyhow::Error::new)?;
    Ok(fetcher)
}

/// Runs ticks until `stop`.
pub(crate) async fn run(fetcher: Fetcher, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let idle = fetcher.settings.idle;
    info!(bot = %fetcher.settings.bot_id, every = ?idle, "fetching the bot's events with imbot.v2.Event.get");
    let mut failures: u32 = 0;
    loop {
        let wait = match fetcher.tick(shared.deps.clock.now()).await {
            Ok(tick) => {
                failures = 0;
                if tick.enqueued > 0 {
                    shared.wake.notify_one();
                }
                tick.wait(idle)
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                report(&e, failures);
                idle.saturating_mul(2u32.saturating_pow(failures.min(6))).min(MAX_BACKOFF)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

fn report(e: &FetchError, failures: u32) {
    match e {
        FetchError::Portal(p) if !p.is_retryable() => error!(
            code = %p.code, error = %e, failures,
            "the portal refused to hand over the bot's events: check B24_BOT_ID, B24_BOT_CLIENT_ID and that the bot is in fetch mode (`olbridge doctor`)"
        ),
        _ => warn!(error = %e, failures, "cannot fetch the bot's events; nothing is acknowledged, trying again"),
    }
}
