//! The bridge as one process: the receiver (HTTP), a pool of workers, a poller, and the embedded
//! store.
//!
//! [`Bridge::start`] wires the same use cases the Lambda functions run — `receive` behind
//! `POST /bitrix/events`, `process` in each worker, `poll` in the poller task — over the SQLite
//! store, the REST client and the bot's HTTP endpoint, and returns a handle the CLI, the demo and
//! the tests all use. The mode (`OLBRIDGE_MODE`) decides who the worker posts as (the bot, or in
//! operator mode the webhook's user), what the poller does (operator polling, or reconciliation
//! beside push and fetch mode), and whether the `fetch` loop pulls a Chatbots 2.0 bot's events
//! instead of the receiver getting them pushed. A timeline task writes the CRM timeline comments
//! the turns leave in the store's outbox (`timeline`).

mod fetch;
mod http;
mod listener;
mod poller;
mod refusals;
mod timeline;

pub use listener::{LISTEN_BACKLOG, bind};
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use olbridge_core::b24::crm::RestCrm;
use olbridge_core::b24::{B24Client, ClientOptions, RestFeed};
use olbridge_core::bot::http::HttpBot;
use olbridge_core::config::{Config, Mode, PollSource};
use olbridge_core::ports::{Clock, MetaStore, SystemClock, WorkQueue};
use olbridge_core::usecase::crm::CrmLink;
use olbridge_core::usecase::job::JobPolicy;
use olbridge_core::usecase::poll::{Policy, PollDeps, PollSettings, Poller};
use olbridge_core::usecase::process::{Deps, ProcessSettings};
use olbridge_core::usecase::receive::{MemberPin, ReceiveSettings, Receiver};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::info;

use olbridge_sqlite::{Retention, SqliteStore};

/// How long a stopping bridge lets running turns finish before it exits anyway (they resume from
/// their checkpoints at the next start).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Everything the HTTP handlers and the workers share.
pub(crate) struct Shared {
    /// The receive use case.
    pub(crate) receiver: Receiver,
    /// The consumer side of the queue.
    pub(crate) queue: Arc<dyn WorkQueue>,
    /// What the turns need.
    pub(crate) deps: Deps,
    /// What becomes of a job after a turn.
    pub(crate) policy: JobPolicy,
    /// Wakes the dispatcher: the receiver enqueued something, or a turn ended (its chat's next
    /// message may go).
    pub(crate) wake: Notify,
    /// `OLBRIDGE_BURST_MS`: an optional quiet window before a turn starts.
    pub(crate) burst_window: Duration,
    /// The queue lease (renewed while a turn runs).
    pub(crate) lease: Duration,
    pub(crate) instance: String,
    /// What the receiver turned away, for the periodic summary.
    pub(crate) refusals: Arc<refusals::Refusals>,
    /// The poller's state for `/health`, when one runs.
    pub(crate) poll_status: Option<Arc<poller::PollStatus>>,
    /// The REST client (one rate budget for the worker and the fetch loop).
    pub(crate) client: B24Client,
    /// Small named values (the fetch offset).
    pub(crate) meta: Arc<dyn MetaStore>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("instance", &self.instance).field("receiver", &self.receiver).finish_non_exhaustive()
    }
}

/// A running bridge.
#[derive(Debug)]
pub struct Bridge {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    store: Arc<SqliteStore>,
}

impl Bridge {
    /// Opens the store, recovers work a previous run left in flight, binds the receiver and starts
    /// the workers. `config.check_serve()` must pass.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        config.check_serve().map_err(anyhow::Error::new)?;
        let listener = bind(config.runner.listen).await.with_context(|| format!("cannot listen on {}", config.runner.listen))?;
        Self::start_on(config, listener).await
    }

    /// As [`Bridge::start`], on an already bound listener (tests bind port 0).
    pub async fn start_on(config: &Config, listener: TcpListener) -> anyhow::Result<Self> {
        config.check_serve().map_err(anyhow::Error::new)?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store =
            Arc::new(SqliteStore::open(&config.runner.data_dir).with_context(|| format!("cannot open the store in {}", config.runner.data_dir.display()))?);
        // The listener is bound: from here on no event is lost, so whatever was written before now
        // and not received is push mode's catch-up's to find (`poller::CatchUp`).
        let down_until = clock.now();
        let recovered = store.recover(clock.now()).await.context("cannot recover in-flight work")?;
        let (shared, poll) = build_shared(config, &store, clock)?;
        let shared = Arc::new(shared);
        // Checked before anything runs: fetch mode cannot start without a member id.
        let fetcher = if config.mode() == Mode::Fetch { Some(fetch::fetcher(config, &shared).await?) } else { None };
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(http::serve(listener, Arc::clone(&shared), config.runner.receiver, stopped.clone()));
        // Push mode's events sent while the bridge was down are gone for good: its workers wait for
        // the reconciliation's catch-up pass to queue them first.
        let (catch_up, gate) = match &poll {
            Some((reconciler, poller::Plan::Traverse { .. })) if config.mode() == Mode::Push && reconciler.settings().policy != Policy::Operator => {
                let (ready, gate) = tokio::sync::oneshot::channel();
                (Some(poller::CatchUp { down_until, ready }), Some(gate))
            }
            _ => (None, None),
        };
        tasks.spawn(worker::run(Arc::clone(&shared), config.runner.workers, gate, stopped.clone()));
        if let Some(fetcher) = fetcher {
            tasks.spawn(fetch::run(fetcher, Arc::clone(&shared), stopped.clone()));
        }
        let retention = Retention {
            profiles: config.conversation.profile_retention,
            history: config.conversation.history_retention,
            turns: config.conversation.turn_log_retention,
            ..Retention::default()
        };
        tasks.spawn(maintenance(Arc::clone(&store), retention, Arc::clone(&shared.deps.clock), stopped.clone()));
        if let Some(link) = shared.deps.crm.clone().filter(|l| l.settings().timeline != olbridge_core::config::TimelineMode::Off) {
            tasks.spawn(timeline::run(link, Arc::clone(&shared.deps.clock), stopped.clone()));
        }
        if let (Some((poller, plan)), Some(status)) = (poll, shared.poll_status.clone()) {
            tasks.spawn(poller::run(Arc::clone(&shared), poller, plan, status, catch_up, stopped.clone()));
        }
        info!(listen = %addr, workers = config.runner.workers, mode = config.mode().name(), recovered = ?recovered, "bridge started");
        Ok(Self { addr, stop, tasks, store })
    }

    /// The receiver's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store (for the admin commands and tests).
    pub fn store(&self) -> &Arc<SqliteStore> {
        &self.store
    }

    /// Stops accepting events, lets running turns finish for up to [`SHUTDOWN_GRACE`], then exits.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while self.tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("turns still running after the grace period were stopped; they resume from their checkpoints at the next start");
            self.tasks.abort_all();
        }
    }

    /// Runs until one of the bridge's tasks ends (it should not) — for `serve`, raced against a
    /// shutdown signal.
    pub async fn wait(&mut self) {
        let _ = self.tasks.join_next().await;
    }
}

/// How often retention limits are applied.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);

/// Applies the retention limits (profiles per `OLBRIDGE_PROFILE_RETENTION_DAYS`, history, the turn
/// log, old de-duplication keys) at start-up and then hourly.
async fn maintenance(store: Arc<SqliteStore>, retention: Retention, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    loop {
        match store.purge(&retention, clock.now()).await {
            Ok(purged) => tracing::debug!(?purged, "retention applied"),
            Err(e) => tracing::warn!(error = %e, "cannot apply retention limits"),
        }
        tokio::select! {
            () = tokio::time::sleep(MAINTENANCE_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The poller a mode runs, if any, and its schedule.
type PollTask = Option<(Arc<Poller>, poller::Plan)>;

fn build_shared(config: &Config, store: &Arc<SqliteStore>, clock: Arc<dyn Clock>) -> anyhow::Result<(Shared, PollTask)> {
    let webhook = config.portal.webhook.clone().context("B24_WEBHOOK_BASE is not set")?;
    let bot_url = config.bot.url.clone().context("BOT_HTTP_URL is not set")?;
    let options = ClientOptions::from_config(config);
    // One client, one rate budget: the worker's replies and the poller's reads share it, and the
    // reads go at background priority.
    let client = B24Client::new(webhook, options)?;
    let portal = olbridge_core::b24::portal::for_mode(config, client.clone()).map_err(anyhow::Error::msg)?;
    // Reconciliation finds what neither a push nor the bot's queue delivered; operator mode polls.
    let policy = match config.mode() {
        Mode::Push | Mode::Fetch => {
            let bot_id = config.portal.bot_id.context("B24_BOT_ID is not set")?;
            config.sources.reconcile_every.map(|_| Policy::Reconcile { bot: bot_id.as_user() })
        }
        Mode::Operator => Some(Policy::Operator),
    };
    let bot = Arc::new(
        HttpBot::new(bot_url, config.bot.auth.clone(), config.bot.hmac_secret.clone(), config.bot.timeout)
            .map_err(|e| anyhow::anyhow!("BOT_HTTP_URL/BOT_HTTP_AUTH: {e}"))?,
    );
    let crm = Arc::new(CrmLink::new(Arc::new(RestCrm::new(client.clone())), store.clone(), config.crm));
    let deps = Deps {
        idempotency: store.clone(),
        chats: store.clone(),
        profiles: store.clone(),
        log: store.clone(),
        cache: store.clone(),
        usage: store.clone(),
        portal,
        bot,
        clock: Arc::clone(&clock),
        settings: ProcessSettings::from_config(config),
        crm: Some(crm),
        csat: olbridge_core::usecase::csat::Csat::new(store.clone(), config.csat.clone()).map(Arc::new),
    };
    let pin = MemberPin::new(config.portal.member_id.clone(), store.clone());
    let receiver =
        Receiver { settings: ReceiveSettings::from_config(config), idempotency: store.clone(), sink: store.clone(), chats: store.clone(), pin: pin.clone() };
    let poll = match policy {
        None => None,
        Some(policy) => {
            let settings = PollSettings::from_config(config, policy).context("B24_WEBHOOK_BASE is not set")?;
            let feed = Arc::new(RestFeed::new(client.clone(), config.sources.operating_limit.as_secs_f64()));
            let poll_deps = PollDeps { feed, idempotency: store.clone(), sink: store.clone(), chats: store.clone(), meta: store.clone(), pin, clock };
            let plan = match (policy, config.sources.poll_source) {
                (Policy::Operator, PollSource::Events) => poller::Plan::Events { every: config.portal.poll_interval, sweep_every: config.sources.sweep_every },
                (Policy::Operator, PollSource::Recent) => poller::Plan::Traverse { every: config.portal.poll_interval },
                (Policy::Reconcile { .. }, _) => poller::Plan::Traverse { every: config.sources.reconcile_every.unwrap_or(config.portal.poll_interval) },
            };
            let (role, source) = match plan {
                poller::Plan::Events { .. } => ("operator", "im.v2.Event.get + im.recent.list sweep"),
                poller::Plan::Traverse { .. } if policy == Policy::Operator => ("operator", "im.recent.list"),
                poller::Plan::Traverse { .. } => ("reconcile", "im.recent.list"),
            };
            Some((Arc::new(Poller::new(poll_deps, settings)), plan, Arc::new(poller::PollStatus::new(role, source))))
        }
    };
    let shared = Shared {
        receiver,
        queue: store.clone(),
        deps,
        policy: JobPolicy::from_config(config),
        wake: Notify::new(),
        burst_window: config.conversation.burst_window,
        lease: config.runner.lease,
        instance: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        refusals: Arc::default(),
        poll_status: poll.as_ref().map(|(_, _, status)| Arc::clone(status)),
        client,
        meta: store.clone(),
    };
    Ok((shared, poll.map(|(poller, plan, _)| (poller, plan))))
}
