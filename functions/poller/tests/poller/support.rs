//! The harness: the Bitrix24 emulator on port 0, a fresh DynamoDB table and SQS FIFO queue on moto
//! (`AWS_ENDPOINT_URL`, as `./scripts/test` exports it), and the poller's dependencies built by the
//! same `work::work` the Lambda's `main` calls, from a configuration map.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use b24_emulator::{DemoPortal, Emulator, EmulatorConfig, RateLimit};
use chrono::Utc;
use olbridge_aws::dynamo::{DynamoStore, Retention};
use olbridge_aws::emf::{Captured, Emf};
use olbridge_aws::sqs::SqsSink;
use olbridge_core::b24::imbot::{BotProperties, BotRegistration, BotType};
use olbridge_core::b24::{B24Client, ClientOptions, RatePlan, WebhookBase};
use olbridge_core::config::Config;
use olbridge_core::domain::event::{Job, PortalEvent};
use olbridge_core::domain::secret::Secret;
use olbridge_core::ports::SystemClock;
use olbridge_core::retry::RetryPolicy;
use olbridge_poller::lease::Lease;
use olbridge_poller::probe::ProbeDeps;
use olbridge_poller::work::{Stores, work};
use olbridge_poller::{Invocation, PollerDeps, RunReport, Totals};

/// The demo portal's WhatsApp line.
pub const LINE: u64 = 3;
/// The test bot's `CLIENT_ID`.
pub const CLIENT_ID: &str = "poller-test-client-id";

/// The fixture event, as EventBridge sends it.
pub fn scheduled_event() -> EventBridgeEvent {
    serde_json::from_str(include_str!("../../../../events/poller-scheduled.json")).expect("events/poller-scheduled.json is an EventBridge event")
}

/// A portal and the AWS resources one deployment has.
pub struct World {
    pub emulator: Emulator,
    pub portal: DemoPortal,
    pub store: Arc<DynamoStore>,
    sink: Arc<SqsSink>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

/// One Lambda instance's dependencies and what its metrics wrote.
pub struct Instance {
    pub deps: PollerDeps,
    pub metrics: Captured,
}

impl Instance {
    /// The sum of the values of metric `name` written so far.
    pub fn metric(&self, name: &str) -> f64 {
        self.metrics.readings().iter().filter(|r| r.name == name).map(|r| r.value).sum()
    }
}

impl World {
    pub async fn start() -> Self {
        let emulator =
            Emulator::start(EmulatorConfig { rate: RateLimit { per_sec: 50.0, burst: 100.0 }, ..EmulatorConfig::default() }).await.expect("emulator");
        let portal = emulator.seed_demo();
        let sdk = olbridge_aws::testing::config().await;
        let table = olbridge_aws::testing::fresh_table(&sdk).await;
        let (queue_url, _dlq) = olbridge_aws::testing::fresh_queues(&sdk, None).await;
        let store = Arc::new(DynamoStore::from_config(&sdk, table, Retention::default()));
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let sink = Arc::new(SqsSink::new(sqs.clone(), queue_url.clone()));
        Self { emulator, portal, store, sink, sqs, queue_url }
    }

    /// The webhook's REST client, as `main` builds it but with one attempt per call (a fault fails
    /// the pass at once instead of being retried for a minute).
    fn client(&self) -> B24Client {
        let options = ClientOptions { rate: RatePlan::new(40.0, 80), retry: RetryPolicy::none(), ..ClientOptions::default() };
        B24Client::new(WebhookBase::parse(&self.portal.webhook_url).expect("webhook"), options).expect("client")
    }

    /// A Lambda instance configured by `extra` over the operator-mode basics (the webhook, a short
    /// poll interval, a backfill so a message written just before the first run counts).
    pub fn instance(&self, extra: &[(&str, &str)]) -> Instance {
        let mut env: HashMap<String, String> =
            [("B24_WEBHOOK_BASE", self.portal.webhook_url.as_str()), ("B24_POLL_SEC", "0.3"), ("OLBRIDGE_BACKFILL_SEC", "300")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let config = Config::from_map(&env).expect("config");
        let stores = Stores {
            idempotency: self.store.clone(),
            chats: self.store.clone(),
            meta: self.store.clone(),
            sink: self.sink.clone(),
            timeline: self.store.clone(),
        };
        let work = work(&config, &self.client(), &stores, Arc::new(SystemClock)).expect("work");
        let (emf, metrics) = Emf::capture();
        Instance { deps: PollerDeps { work, lease: Lease::new(self.store.clone()), clock: Arc::new(SystemClock), emf }, metrics }
    }

    /// The health and canary invocations' dependencies, configured by `extra` over the webhook, and
    /// what their metrics wrote.
    pub fn probes(&self, extra: &[(&str, &str)]) -> (ProbeDeps, Captured) {
        let mut env: HashMap<String, String> = HashMap::from([("B24_WEBHOOK_BASE".to_owned(), self.portal.webhook_url.clone())]);
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let config = Config::from_map(&env).expect("config");
        let (emf, metrics) = Emf::capture();
        (ProbeDeps::new(&config, self.client(), self.store.clone(), self.sink.clone(), Arc::new(SystemClock), emf), metrics)
    }

    /// Plays the bridge for one canary: waits for the `nth` canary message in the bot's private
    /// dialog with the webhook's user, then posts `reply` there as the bot (what the worker does).
    pub async fn answer_canary_as_bot(&self, bot: u64, nth: usize, reply: &str) {
        use olbridge_core::b24::im::{MessagesQuery, OutgoingMessage};
        use olbridge_core::domain::ids::{BotId, DialogId, UserId};
        let client = self.client();
        let bot = BotId::parse(&bot.to_string()).expect("bot id");
        let me = client.webhook().user_id();
        for _ in 0..200 {
            let page = client.im_dialog_messages_get(DialogId::User(bot.as_user()), MessagesQuery::default()).await.expect("messages");
            if page.messages.iter().filter(|m| m.text.starts_with("olbridge canary ")).count() >= nth {
                let to_user = DialogId::User(UserId::parse(&me.get().to_string()).expect("user"));
                client.imbot_message_add(bot, &OutgoingMessage::new(to_user, reply), &Secret::new(CLIENT_ID)).await.expect("imbot.message.add");
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the canary's message never appeared");
    }

    /// Registers a v1 Open Lines bot (its events go nowhere: the tests drop them) and makes it the
    /// WhatsApp line's welcome bot, so new chats are the bot's. Returns its id.
    pub async fn register_bot(&self) -> u64 {
        let handler = "http://127.0.0.1:9/bitrix/events".to_owned();
        let registration = BotRegistration {
            code: "olbridge_poller_test".into(),
            kind: BotType::OpenLine,
            openline: true,
            event_message_add: handler.clone(),
            event_welcome_message: handler.clone(),
            event_bot_delete: handler,
            properties: BotProperties { name: "Poller test assistant".into(), ..BotProperties::default() },
            client_id: Secret::new(CLIENT_ID),
        };
        let bot = self.client().imbot_register(&registration).await.expect("imbot.register");
        self.emulator.attach_welcome_bot(LINE, bot.get()).expect("welcome bot");
        bot.get()
    }

    /// One invocation of the handler with the fixture event and a deadline `secs` from now.
    pub async fn invoke(instance: &Instance, request_id: &str, secs: f64) -> RunReport {
        let mut context = lambda_runtime::Context::default();
        context.request_id = request_id.to_owned();
        let deadline = Utc::now() + chrono::Duration::milliseconds((secs * 1000.0) as i64);
        context.deadline = u64::try_from(deadline.timestamp_millis()).expect("deadline");
        let invocation = Invocation::from_context(&context);
        assert_eq!(invocation.deadline.map(|d| d.timestamp_millis()), Some(deadline.timestamp_millis()));
        olbridge_poller::handle(&instance.deps, &scheduled_event(), &invocation).await.expect("the run")
    }

    /// The totals of a run that held the lease.
    pub fn ran(report: RunReport) -> Totals {
        match report {
            RunReport::Ran(totals) => totals,
            busy @ RunReport::Busy { .. } => panic!("expected a run, got {busy:?}"),
        }
    }

    /// The jobs queued since the last call: received from the FIFO queue and deleted (so later
    /// messages of the same chat become visible), oldest first.
    pub async fn take_queued(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        loop {
            let out =
                self.sqs.receive_message().queue_url(&self.queue_url).max_number_of_messages(10).wait_time_seconds(0).send().await.expect("receive from moto");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return jobs;
            }
            for m in messages {
                jobs.push(serde_json::from_str(m.body.as_deref().expect("body")).expect("a job"));
                self.sqs.delete_message().queue_url(&self.queue_url).receipt_handle(m.receipt_handle.expect("handle")).send().await.expect("delete");
            }
        }
    }

    /// The texts of the queued customer and operator messages among `jobs`.
    pub fn texts(jobs: &[Job]) -> Vec<String> {
        jobs.iter()
            .filter_map(|j| match &j.event {
                PortalEvent::Message(m) => Some(m.text.clone()),
                _ => None,
            })
            .collect()
    }

    /// A customer writes on the WhatsApp line; returns (chat id, message id).
    pub async fn customer_writes(&self, phone: &str, text: &str) -> (u64, u64) {
        let sent = self.emulator.customer_writes(LINE, phone, text).await.expect("customer writes");
        self.emulator.wait_idle(Duration::from_secs(5)).await;
        (sent.chat_id, sent.message_id)
    }
}
