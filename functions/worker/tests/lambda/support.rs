//! The harness: emulator, test bot, receiver front, and the worker's dependencies.
//!
//! Also compiled into the AWS path's fault harness (`benches/harness_aws.rs`), which starts it
//! with [`WorldOptions::faults`]: the worker on the real clock and SQS visibility, a bot that
//! thinks a seeded while.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use b24_emulator::{Emulator, EmulatorConfig, RateLimit};
use chrono::{DateTime, Utc};
use olbridge_aws::emf::{Captured, Emf};
use olbridge_core::b24::crm::RestCrm;
use olbridge_core::b24::imbot::{BotProperties, BotRegistration, BotType};
use olbridge_core::b24::{B24Client, BotPortal, ClientOptions, RatePlan, WebhookBase};
use olbridge_core::bot::http::HttpBot;
use olbridge_core::config::{CrmSettings, TimelineMode};
use olbridge_core::domain::event::{Job, PortalEvent};
use olbridge_core::domain::secret::Secret;
use olbridge_core::memory::MemoryStore;
use olbridge_core::ports::{Clock, JobSink, ManualClock, StoreResult, SystemClock};
use olbridge_core::retry::RetryPolicy;
use olbridge_core::usecase::crm::CrmLink;
use olbridge_core::usecase::job::JobPolicy;
use olbridge_core::usecase::process::{Deps, ProcessSettings};
use olbridge_core::usecase::receive::{MemberPin, ReceiveSettings, Receiver};
use olbridge_receiver::ReceiverDeps;
use olbridge_worker::visibility::{SqsVisibility, Visibility, VisibilityError};
use olbridge_worker::{Invocation, WorkerDeps};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The stores the handlers share (one DynamoDB table on AWS).
struct Stores {
    idempotency: Arc<dyn olbridge_core::ports::IdempotencyStore>,
    chats: Arc<dyn olbridge_core::ports::ChatStore>,
    profiles: Arc<dyn olbridge_core::ports::ProfileStore>,
    log: Arc<dyn olbridge_core::ports::TurnLog>,
    cache: Arc<dyn olbridge_core::ports::AnswerCache>,
    usage: Arc<dyn olbridge_core::ports::UsageCounters>,
    meta: Arc<dyn olbridge_core::ports::MetaStore>,
}

/// The WhatsApp line `seed_demo` creates.
pub const LINE: u64 = 3;
const CLIENT_ID: &str = "lambda-test-client-id";

/// What the receiver queued (its `JobSink`: SQS on AWS).
#[derive(Debug, Default)]
pub struct Jobs {
    jobs: Mutex<Vec<Job>>,
    arrived: Notify,
}

#[async_trait]
impl JobSink for Jobs {
    async fn send(&self, job: &Job, _now: DateTime<Utc>) -> StoreResult<()> {
        self.jobs.lock().expect("lock").push(job.clone());
        self.arrived.notify_waiters();
        Ok(())
    }
}

/// Records the visibility changes the worker asks for.
#[derive(Debug, Default)]
pub struct FakeVisibility(pub Mutex<Vec<(String, Duration)>>);

#[async_trait]
impl Visibility for FakeVisibility {
    async fn change(&self, receipt_handle: &str, after: Duration) -> Result<(), VisibilityError> {
        self.0.lock().expect("lock").push((receipt_handle.to_owned(), after));
        Ok(())
    }
}

/// The bot's state: requests counted, and a seeded think time (ms) when the world has one.
struct BotState {
    calls: Arc<AtomicU32>,
    think: Option<Mutex<(StdRng, (u64, u64))>>,
}

/// The bot: echoes; answers 204 to a text containing "silent"; takes 400 ms over one containing
/// "slow"; with a think range, takes a seeded while in it over every request.
async fn bot(State(state): State<Arc<BotState>>, body: Bytes) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let text = request["text"].as_str().unwrap_or_default().to_owned();
    if text.contains("silent") {
        return StatusCode::NO_CONTENT.into_response();
    }
    if text.contains("slow") {
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let think = state.think.as_ref().map(|t| {
        let (rng, (lo, hi)) = &mut *t.lock().expect("lock");
        Duration::from_millis(if *hi > *lo { rng.random_range(*lo..=*hi) } else { *lo })
    });
    if let Some(think) = think {
        tokio::time::sleep(think).await;
    }
    axum::Json(json!({"reply_text": format!("echo: {text}")})).into_response()
}

/// The receiver Lambda behind a plain HTTP front, as API Gateway puts it.
async fn front(State(deps): State<Arc<ReceiverDeps>>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let uri = format!("/bitrix/events{}", query.map(|q| format!("?{q}")).unwrap_or_default());
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(lambda_http::Body::Binary(body.to_vec()))
        .expect("a request");
    let response = olbridge_receiver::handle(&deps, request).await;
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, response.body().as_ref().to_vec()).into_response()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Where the handlers keep their state and queue their jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Core's memory store; jobs are handed to the worker by the test.
    Memory,
    /// The AWS adapters on moto: DynamoDB (a fresh table as the deployment defines it) and SQS FIFO
    /// (a fresh queue and dead-letter queue, with a 2 s visibility timeout so a redelivery after a
    /// crash comes quickly); the test plays Lambda's event source (receive, invoke, delete).
    Moto,
    /// `Moto`, with the CRM binding and timeline on as the worker's `main` wires them
    /// (`OLBRIDGE_CRM_TIMELINE=turn`): turns append their lines to the table's outbox.
    MotoCrm,
}

/// How a world is set up.
#[derive(Debug, Clone, Copy)]
pub struct WorldOptions {
    /// Where state and jobs live.
    pub backend: Backend,
    /// The fault harness's setup (`None`: the tests' own).
    pub faults: Option<FaultSetup>,
}

/// The AWS path's fault harness: the worker on the system clock (a killed invocation's lease ends
/// with its deadline, in real time), retry delays through SQS `ChangeMessageVisibility`, a portal
/// with room for a few chats at once, and a bot that thinks a seeded while.
#[derive(Debug, Clone, Copy)]
pub struct FaultSetup {
    /// The seed of the bot's think times.
    pub seed: u64,
    /// The bot's think time per request, uniform in this range (ms).
    pub think_ms: (u64, u64),
    /// The queue's visibility timeout, s (how soon a killed invocation's records come back).
    pub visibility_s: u32,
}

/// The receiver's sink on moto: SQS, and the list the test waits on.
struct TeeSink {
    sqs: olbridge_aws::sqs::SqsSink,
    seen: Arc<Jobs>,
}

#[async_trait]
impl JobSink for TeeSink {
    async fn send(&self, job: &Job, now: DateTime<Utc>) -> StoreResult<()> {
        self.sqs.send(job, now).await?;
        self.seen.send(job, now).await
    }
}

/// SQS as the moto backend has it.
pub struct Sqs {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
}

/// A portal, a bot, the receiver and the worker.
pub struct World {
    /// The queue, on the moto backend.
    pub sqs: Option<Sqs>,
    pub emulator: Emulator,
    pub bot_id: u64,
    pub bot_calls: Arc<AtomicU32>,
    pub jobs: Arc<Jobs>,
    /// The worker's clock (the receiver's is the system's: the portal's `ts` is real time); with
    /// [`FaultSetup`] the worker runs on the system clock and this one is left alone.
    pub clock: ManualClock,
    worker_clock: Arc<dyn Clock>,
    pub worker: Arc<WorkerDeps>,
    pub visibility: Arc<FakeVisibility>,
    pub worker_metrics: Captured,
    pub receiver_metrics: Captured,
    /// The table, on the moto backends (the poller's drain reads its outbox).
    pub table: Option<Arc<olbridge_aws::dynamo::DynamoStore>>,
    /// The portal's webhook URL.
    pub webhook: String,
    records: AtomicU32,
}

impl World {
    pub async fn start() -> Self {
        Self::start_on(Backend::Memory).await
    }

    pub async fn start_on(backend: Backend) -> Self {
        Self::start_with(WorldOptions { backend, faults: None }).await
    }

    pub async fn start_with(options: WorldOptions) -> Self {
        let WorldOptions { backend, faults } = options;
        let rate = if faults.is_some() { RateLimit { per_sec: 50.0, burst: 100.0 } } else { RateLimit { per_sec: 20.0, burst: 50.0 } };
        let emulator = Emulator::start(EmulatorConfig { rate, ..EmulatorConfig::default() }).await.expect("emulator");
        let portal = emulator.seed_demo();
        let bot_calls = Arc::new(AtomicU32::new(0));
        let think = faults.map(|f| Mutex::new((StdRng::seed_from_u64(f.seed), f.think_ms)));
        let bot_state = Arc::new(BotState { calls: Arc::clone(&bot_calls), think });
        let bot_addr = serve(Router::new().route("/bot", post(bot)).with_state(bot_state)).await;

        let jobs = Arc::new(Jobs::default());
        let mut table = None;
        let (stores, sink, sqs): (Stores, Arc<dyn JobSink>, Option<Sqs>) = match backend {
            Backend::Memory => {
                let store = Arc::new(MemoryStore::new());
                (
                    Stores {
                        idempotency: store.clone(),
                        chats: store.clone(),
                        profiles: store.clone(),
                        log: store.clone(),
                        cache: store.clone(),
                        usage: store.clone(),
                        meta: store,
                    },
                    jobs.clone(),
                    None,
                )
            }
            Backend::Moto | Backend::MotoCrm => {
                // One request at a time: moto's conditional writes are not atomic under concurrency
                // (two invocations of one record could both win the claim there, never on DynamoDB).
                let sdk = olbridge_aws::testing::serialized_config().await;
                let table_name = olbridge_aws::testing::fresh_table(&sdk).await;
                let visibility_s = faults.map_or(2, |f| f.visibility_s);
                let (queue_url, dlq_url) = olbridge_aws::testing::fresh_queues(&sdk, Some(visibility_s)).await;
                let store = Arc::new(olbridge_aws::dynamo::DynamoStore::from_config(&sdk, table_name, olbridge_aws::dynamo::Retention::default()));
                table = Some(Arc::clone(&store));
                let client = aws_sdk_sqs::Client::new(&sdk);
                let sink = Arc::new(TeeSink { sqs: olbridge_aws::sqs::SqsSink::new(client.clone(), queue_url.clone()), seen: jobs.clone() });
                let stores = Stores {
                    idempotency: store.clone(),
                    chats: store.clone(),
                    profiles: store.clone(),
                    log: store.clone(),
                    cache: store.clone(),
                    usage: store.clone(),
                    meta: store,
                };
                (stores, sink, Some(Sqs { client, queue_url, dlq_url }))
            }
        };
        let webhook = WebhookBase::parse(&portal.webhook_url).expect("webhook");
        let settings = ReceiveSettings {
            application_token: None,
            previous_tokens: Vec::new(),
            bot_client_id: Some(Secret::new(CLIENT_ID)),
            member_id: None,
            domain: Some(webhook.domain().clone()),
            bot_id: None,
            ts_window: Duration::from_secs(300),
            max_body_bytes: 256 * 1024,
            sources: Default::default(),
        };
        let receiver =
            Receiver { pin: MemberPin::new(None, stores.meta.clone()), settings, idempotency: stores.idempotency.clone(), sink, chats: stores.chats.clone() };
        let (receiver_emf, receiver_metrics) = Emf::capture();
        let receiver = Arc::new(ReceiverDeps::new(receiver, Arc::new(SystemClock), receiver_emf));
        let receiver_addr = serve(Router::new().route("/bitrix/events", post(front)).with_state(receiver)).await;

        // One attempt per portal call: a fault fails the turn at once instead of being retried.
        let plan = if faults.is_some() { RatePlan::new(45.0, 90) } else { RatePlan::new(18.0, 40) };
        let options = ClientOptions { rate: plan, retry: RetryPolicy::none(), ..ClientOptions::default() };
        let client = B24Client::new(webhook.clone(), options).expect("client");
        let handler = format!("http://{receiver_addr}/bitrix/events");
        let registration = BotRegistration {
            code: "olbridge_lambda_test".into(),
            kind: BotType::OpenLine,
            openline: true,
            event_message_add: handler.clone(),
            event_welcome_message: handler.clone(),
            event_bot_delete: handler,
            properties: BotProperties { name: "Lambda test assistant".into(), ..BotProperties::default() },
            client_id: Secret::new(CLIENT_ID),
        };
        let bot_id = client.imbot_register(&registration).await.expect("imbot.register");
        emulator.attach_welcome_bot(LINE, bot_id.get()).expect("welcome bot");

        let clock = ManualClock::new(Utc::now());
        let worker_clock: Arc<dyn Clock> = if faults.is_some() { Arc::new(SystemClock) } else { Arc::new(clock.clone()) };
        let mut settings = ProcessSettings::from_config(&olbridge_core::config::Config::from_map(&Default::default()).expect("defaults"));
        settings.bot_timeout = Duration::from_secs(10);
        settings.bot_retry = RetryPolicy::none();
        if faults.is_some() {
            // Customers who write faster than the per-chat limit allows (20 a minute) would get the
            // notice and silence: the harness counts answers, not the cost controls.
            settings.cost = olbridge_core::config::CostSettings::off();
        }
        let bot = HttpBot::new(format!("http://{bot_addr}/bot").parse().expect("url"), None, None, settings.bot_timeout).expect("bot");
        let crm = match (backend, &table) {
            (Backend::MotoCrm, Some(store)) => {
                let settings = CrmSettings { timeline: TimelineMode::Turn, ..CrmSettings::default() };
                Some(Arc::new(CrmLink::new(Arc::new(RestCrm::new(client.clone())), store.clone(), settings)))
            }
            _ => None,
        };
        let process = Deps {
            idempotency: stores.idempotency,
            chats: stores.chats,
            profiles: stores.profiles,
            log: stores.log,
            cache: stores.cache,
            usage: stores.usage,
            portal: Arc::new(BotPortal::new(client, bot_id, Secret::new(CLIENT_ID))),
            bot: Arc::new(bot),
            clock: Arc::clone(&worker_clock),
            settings,
            crm: crm.clone(),
            csat: None,
        };
        let policy = JobPolicy {
            max_failures: 5,
            max_interruptions: 30,
            patience: Duration::from_secs(3600),
            backoff: RetryPolicy::exponential(6, Duration::from_millis(500), Duration::from_secs(8)).with_jitter(0.0),
        };
        let visibility = Arc::new(FakeVisibility::default());
        let (worker_emf, worker_metrics) = Emf::capture();
        let retry_delays: Arc<dyn Visibility> = match (&sqs, faults) {
            (Some(sqs), Some(_)) => Arc::new(SqsVisibility::new(sqs.client.clone(), sqs.queue_url.clone())),
            _ => visibility.clone(),
        };
        let worker = Arc::new(WorkerDeps::new(process, policy, retry_delays, worker_emf));
        Self {
            sqs,
            emulator,
            bot_id: bot_id.get(),
            bot_calls,
            jobs,
            clock,
            worker_clock,
            worker,
            visibility,
            worker_metrics,
            receiver_metrics,
            table,
            webhook: portal.webhook_url.clone(),
            records: AtomicU32::new(0),
        }
    }

    /// A customer writes on the WhatsApp line; returns the job the receiver queued for the message
    /// (the bot joining a new chat is queued too, as its own job: the tests leave it out).
    pub async fn customer_writes(&self, phone: &str, text: &str) -> Job {
        self.emulator.customer_writes(LINE, phone, text).await.expect("customer writes");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let is_it = |j: &Job| matches!(&j.event, PortalEvent::Message(m) if m.text == text);
        loop {
            let arrived = self.jobs.arrived.notified();
            if let Some(job) = self.jobs.jobs.lock().expect("lock").iter().find(|j| is_it(j)) {
                return job.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "the receiver queued nothing for {text:?}");
            let _ = tokio::time::timeout(Duration::from_millis(200), arrived).await;
        }
    }

    /// An SQS FIFO record of `job`, delivered for the `receives`-th time: (message id, record).
    pub fn record(&self, job: &Job, receives: u32) -> (String, SqsMessage) {
        let n = self.records.fetch_add(1, Ordering::SeqCst);
        let mut m = SqsMessage::default();
        m.message_id = Some(format!("msg-{n}"));
        m.receipt_handle = Some(format!("receipt-{n}"));
        m.body = Some(serde_json::to_string(job).expect("json"));
        m.attributes.insert("MessageGroupId".into(), job.group.as_str().to_owned());
        m.attributes.insert("MessageDeduplicationId".into(), job.key.as_str().to_owned());
        m.attributes.insert("ApproximateReceiveCount".into(), receives.to_string());
        (format!("msg-{n}"), m)
    }

    /// A batch of records.
    pub fn batch(records: impl IntoIterator<Item = SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = records.into_iter().collect();
        event
    }

    /// An invocation that Lambda stops 60 s (of the worker's clock) from now.
    pub fn invocation(&self, request_id: &str) -> Invocation {
        self.invocation_for(request_id, Duration::from_secs(60))
    }

    /// An invocation that Lambda stops `timeout` (of the worker's clock) from now.
    pub fn invocation_for(&self, request_id: &str, timeout: Duration) -> Invocation {
        let timeout = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        Invocation { request_id: request_id.into(), deadline: Some(self.worker_clock.now() + timeout) }
    }

    /// Runs the worker's handler; returns the reported message ids.
    pub async fn work(&self, event: SqsEvent, request_id: &str) -> Vec<String> {
        let response = olbridge_worker::handle(&self.worker, event, &self.invocation(request_id)).await;
        response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
    }

    /// What the customer's WhatsApp shows from our bot.
    pub fn bot_messages(&self, phone: &str) -> Vec<String> {
        self.emulator.customer_inbox(phone).into_iter().filter(|m| m.author_id == self.bot_id).map(|m| m.text).collect()
    }

    /// How many values of `name` with dimension value `value` the worker wrote.
    pub fn worker_metric(&self, name: &str, value: &str) -> usize {
        self.worker_metrics.readings().iter().filter(|r| r.name == name && r.dimensions.iter().any(|(_, v)| v == value)).count()
    }
}

impl World {
    /// Plays Lambda's SQS event source once on the moto backend: receives what is visible (up to
    /// 10 records, FIFO groups as SQS hands them out), invokes the worker with them, and deletes
    /// the records the handler did not report. Returns (records received, records reported).
    pub async fn poll_sqs(&self, request_id: &str) -> (usize, usize) {
        let (event, handles) = self.receive_sqs().await;
        let received = event.records.len();
        if received == 0 {
            return (0, 0);
        }
        let failed = self.work(event, request_id).await;
        self.delete_except(&handles, &failed).await;
        (received, failed.len())
    }

    /// The visible records of the moto queue as an SQS event, and each record's (message id,
    /// receipt handle).
    pub async fn receive_sqs(&self) -> (SqsEvent, Vec<(String, String)>) {
        let sqs = self.sqs.as_ref().expect("the moto backend");
        let out = sqs
            .client
            .receive_message()
            .queue_url(&sqs.queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive from moto");
        let mut records = Vec::new();
        let mut handles = Vec::new();
        for m in out.messages.unwrap_or_default() {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id.clone();
            r.receipt_handle = m.receipt_handle.clone();
            r.body = m.body.clone();
            for (k, v) in m.attributes.unwrap_or_default() {
                r.attributes.insert(k.as_str().to_owned(), v);
            }
            handles.push((m.message_id.unwrap_or_default(), m.receipt_handle.unwrap_or_default()));
            records.push(r);
        }
        (Self::batch(records), handles)
    }

    /// Deletes the received records whose message id is not in `failed` (what Lambda does after a
    /// partial batch response), in one `DeleteMessageBatch`.
    pub async fn delete_except(&self, handles: &[(String, String)], failed: &[String]) {
        let sqs = self.sqs.as_ref().expect("the moto backend");
        let entries: Vec<_> = handles
            .iter()
            .filter(|(id, _)| !failed.contains(id))
            .enumerate()
            .map(|(i, (_, handle))| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(handle).build().expect("entry")
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        let out = sqs.client.delete_message_batch().queue_url(&sqs.queue_url).set_entries(Some(entries)).send().await.expect("delete from moto");
        assert!(out.failed.is_empty(), "deletes failed: {:?}", out.failed);
    }
}
