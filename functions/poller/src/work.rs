//! What a run does, by mode — the same choice the local runner makes (`crates/olbridge/src/runner`):
//!
//! | `OLBRIDGE_MODE` | tasks |
//! |---|---|
//! | `operator`, `OLBRIDGE_POLL_SOURCE=recent` | the operator traversal (`im.recent.list`) every `B24_POLL_SEC` |
//! | `operator`, `events` | the webhook user's `im.v2.Event.get` log every `B24_POLL_SEC`, the traversal every `OLBRIDGE_SWEEP_SEC` |
//! | `push` | reconciliation every `OLBRIDGE_RECONCILE_SEC` (none when it is 0) |
//! | `fetch` | a Chatbots 2.0 fetch tick (`imbot.v2.Event.get`) every `B24_POLL_SEC`, and reconciliation |
//!
//! In every mode, unless `OLBRIDGE_CRM_TIMELINE=off`, a timeline pass every [`TIMELINE_EVERY`]
//! writes the CRM timeline comments the worker's turns left in the table's outbox
//! (`olbridge_core::usecase::crm::drain`, at background priority, failures retried with backoff).
//!
//! Built once per Lambda instance by [`work`] from the configuration, the REST client and the
//! stores; what the passes enqueue goes through the [`JobSink`] (the SQS FIFO queue the receiver
//! uses too) with the receiver's keys, so a message push and polling both saw is answered once.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use olbridge_core::b24::crm::RestCrm;
use olbridge_core::b24::{B24Client, BotV2Portal, RestFeed};
use olbridge_core::config::{Config, Mode, PollSource, TimelineMode, vars};
use olbridge_core::ports::{ChatStore, Clock, CrmPortal, IdempotencyStore, JobSink, MetaStore, TimelineOutbox};
use olbridge_core::usecase::fetch::{DEFAULT_LIMIT, FetchSettings, Fetcher};
use olbridge_core::usecase::poll::{Policy, PollDeps, PollSettings, Poller};
use olbridge_core::usecase::receive::{MemberPin, ReceiveSettings, Receiver};

/// How often a run drains the CRM timeline outbox (what is not due yet waits for a later pass).
pub const TIMELINE_EVERY: Duration = Duration::from_secs(5);

/// One kind of pass, with its schedule.
pub enum Task {
    /// A traversal of the recent chats (operator polling, its sweep, or reconciliation).
    Traverse {
        /// The poller (its policy says which).
        poller: Arc<Poller>,
        /// The interval (stretched by [`Poller::pace`]).
        every: Duration,
        /// The name in the log: `operator`, `sweep` or `reconcile`.
        name: &'static str,
    },
    /// Operator mode's event log.
    Events {
        /// The operator poller.
        poller: Arc<Poller>,
        /// The interval (stretched by [`Poller::pace`]).
        every: Duration,
        /// Whether `im.v2.Event.subscribe` succeeded in this instance.
        subscribed: AtomicBool,
    },
    /// Fetch mode: one read of the bot's queue; the next after [`Tick::wait`](olbridge_core::usecase::fetch::Tick::wait).
    Fetch {
        /// The fetcher (boxed: it is much larger than the other tasks).
        fetcher: Box<Fetcher>,
    },
    /// The CRM timeline: writes the comments due in the outbox.
    Timeline {
        /// The portal's CRM calls.
        portal: Arc<dyn CrmPortal>,
        /// The outbox the worker appends to.
        outbox: Arc<dyn TimelineOutbox>,
        /// The interval.
        every: Duration,
    },
}

impl Task {
    /// The name in the log.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Traverse { name, .. } => name,
            Self::Events { .. } => "events",
            Self::Fetch { .. } => "fetch",
            Self::Timeline { .. } => "timeline",
        }
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Traverse { every, name, .. } => f.debug_struct("Traverse").field("name", name).field("every", every).finish_non_exhaustive(),
            Self::Events { every, .. } => f.debug_struct("Events").field("every", every).finish_non_exhaustive(),
            Self::Fetch { fetcher } => f.debug_struct("Fetch").field("settings", &fetcher.settings).finish(),
            Self::Timeline { every, .. } => f.debug_struct("Timeline").field("every", every).finish_non_exhaustive(),
        }
    }
}

/// A run's tasks, in the order they run when due together.
#[derive(Debug)]
pub struct Work {
    /// The mode they came from.
    pub mode: Mode,
    /// The tasks (empty: push mode with reconciliation off and the timeline off; a run then does
    /// nothing).
    pub tasks: Vec<Task>,
}

/// The stores a run writes, as ports (one DynamoDB table and the SQS queue on AWS).
#[derive(Clone)]
pub struct Stores {
    /// De-duplication.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Chat modes (an operator's message silences the bot).
    pub chats: Arc<dyn ChatStore>,
    /// Cursors, offsets, the member pin, the lease.
    pub meta: Arc<dyn MetaStore>,
    /// Where jobs go.
    pub sink: Arc<dyn JobSink>,
    /// The CRM timeline outbox the worker appends to.
    pub timeline: Arc<dyn TimelineOutbox>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// A setting the mode needs is missing.
#[derive(Debug, thiserror::Error)]
#[error("{0} is not set: the poller in {1} mode needs it")]
pub struct Missing(pub &'static str, pub &'static str);

/// The tasks `config`'s mode runs, over `client` (one rate budget for every pass) and `stores`.
pub fn work(config: &Config, client: &B24Client, stores: &Stores, clock: Arc<dyn Clock>) -> Result<Work, Missing> {
    let mode = config.mode();
    let need = |what: &'static str| Missing(what, mode.name());
    let pin = MemberPin::new(config.portal.member_id.clone(), Arc::clone(&stores.meta));
    let poller = |policy: Policy| -> Result<Arc<Poller>, Missing> {
        let settings = PollSettings::from_config(config, policy).ok_or_else(|| need(vars::B24_WEBHOOK_BASE))?;
        let feed = Arc::new(RestFeed::new(client.clone(), config.sources.operating_limit.as_secs_f64()));
        let deps = PollDeps {
            feed,
            idempotency: Arc::clone(&stores.idempotency),
            sink: Arc::clone(&stores.sink),
            chats: Arc::clone(&stores.chats),
            meta: Arc::clone(&stores.meta),
            pin: pin.clone(),
            clock: Arc::clone(&clock),
        };
        Ok(Arc::new(Poller::new(deps, settings)))
    };
    let reconcile = |tasks: &mut Vec<Task>| -> Result<(), Missing> {
        let Some(every) = config.sources.reconcile_every else { return Ok(()) };
        let bot = config.portal.bot_id.ok_or_else(|| need(vars::B24_BOT_ID))?;
        tasks.push(Task::Traverse { poller: poller(Policy::Reconcile { bot: bot.as_user() })?, every, name: "reconcile" });
        Ok(())
    };
    let mut tasks = Vec::new();
    match mode {
        Mode::Operator => {
            let operator = poller(Policy::Operator)?;
            let every = config.portal.poll_interval;
            match config.sources.poll_source {
                PollSource::Recent => tasks.push(Task::Traverse { poller: operator, every, name: "operator" }),
                PollSource::Events => {
                    tasks.push(Task::Events { poller: Arc::clone(&operator), every, subscribed: AtomicBool::new(false) });
                    tasks.push(Task::Traverse { poller: operator, every: config.sources.sweep_every, name: "sweep" });
                }
            }
        }
        Mode::Push => reconcile(&mut tasks)?,
        Mode::Fetch => {
            let bot_id = config.portal.bot_id.ok_or_else(|| need(vars::B24_BOT_ID))?;
            let token = config.portal.bot_client_id.clone().ok_or_else(|| need(vars::B24_BOT_CLIENT_ID))?;
            let webhook = config.portal.webhook.as_ref().ok_or_else(|| need(vars::B24_WEBHOOK_BASE))?;
            let receiver = Receiver {
                settings: ReceiveSettings::from_config(config),
                idempotency: Arc::clone(&stores.idempotency),
                sink: Arc::clone(&stores.sink),
                chats: Arc::clone(&stores.chats),
                pin: pin.clone(),
            };
            let settings = FetchSettings { bot_id, domain: webhook.domain().clone(), limit: DEFAULT_LIMIT, idle: config.portal.poll_interval };
            let feed = Arc::new(BotV2Portal::new(client.clone(), bot_id, token));
            tasks.push(Task::Fetch { fetcher: Box::new(Fetcher { feed, meta: Arc::clone(&stores.meta), receiver, settings }) });
            reconcile(&mut tasks)?;
        }
    }
    if config.crm.timeline != TimelineMode::Off {
        let portal = Arc::new(RestCrm::new(client.clone()));
        tasks.push(Task::Timeline { portal, outbox: Arc::clone(&stores.timeline), every: TIMELINE_EVERY });
    }
    Ok(Work { mode, tasks })
}
