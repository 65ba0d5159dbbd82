//! The fault harness on the AWS path: the local harness's kills (`olbridge_tests::harness`; verdict and report from `olbridge_harness`), with
//! the Lambda handlers in process against moto instead of a real `olbridge serve`.
//!
//! N customers write M messages each on the emulated portal (`c<chat>m<k>`, in sequence per chat,
//! a seeded gap between two); the emulator delivers the events to the receiver's handler, which
//! queues them to SQS FIFO on moto; a few event-source loops play Lambda's SQS poller (receive up
//! to 10 records, invoke the worker's handler, delete what it did not report). On a seeded
//! schedule, the next invocation is killed, one of three ways:
//!
//! - **mid-invocation**: the handler's future is dropped a seeded while after it started (in a
//!   DynamoDB call, the bot's think, a portal call whose effect landed but whose answer did not);
//! - **before the delete**: the handler finished, the records are not deleted;
//! - **part-deleted**: the handler finished, a seeded share of its done records is deleted.
//!
//! A killed invocation deletes nothing more: its records come back after the queue's visibility
//! timeout, and its claims' leases end with its deadline (`--lambda-timeout-ms`, shorter than the
//! visibility timeout, as AWS requires). An invocation that runs past its deadline is dropped too
//! (Lambda's timeout), and counted apart. The verdict and the report are the local harness's
//! ([`check::verdict_on`], [`Report`]), from the customers' inboxes alone.
//!
//! One seed fixes the gaps, the kill schedule (when, which kind, how far in) and the bot's think
//! times; moto, the emulator and the handlers run on the real clock, so a seed reproduces a run's
//! faults, not its exact trace.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use olbridge_core::config::DEFAULT_FALLBACK_MESSAGE;
use olbridge_harness::check::{self, Written, lock};
use olbridge_harness::{Report, RunFigures};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::support::{Backend, FaultSetup, LINE, World, WorldOptions};

/// What a run of the AWS path's harness does.
#[derive(Debug, Clone)]
pub struct AwsHarnessOptions {
    /// The seed of every random choice.
    pub seed: u64,
    /// Customers (chats).
    pub chats: usize,
    /// Messages per customer, written in sequence.
    pub messages: usize,
    /// A customer's gap between two messages: uniform in this range (ms).
    pub gap_ms: (u64, u64),
    /// Invocations to kill.
    pub kills: usize,
    /// Time from a kill to the next one's arming: uniform in this range (ms).
    pub kill_every_ms: (u64, u64),
    /// How far into an invocation a mid-invocation kill lands: uniform in this range (ms). An
    /// invocation that finishes first is not killed; the kill waits for the next one.
    pub kill_after_ms: (u64, u64),
    /// Lambda's pollers: invocations at once.
    pub pollers: usize,
    /// The queue's visibility timeout, s.
    pub visibility_s: u32,
    /// The function's timeout (the invocation's deadline).
    pub lambda_timeout: Duration,
    /// The bot's think time per request (ms).
    pub think_ms: (u64, u64),
    /// How long to wait for every message to be answered once the writing and killing is over.
    pub settle: Duration,
}

impl Default for AwsHarnessOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            chats: 10,
            messages: 10,
            gap_ms: (100, 1500),
            kills: 10,
            kill_every_ms: (100, 900),
            kill_after_ms: (0, 600),
            pollers: 3,
            visibility_s: 4,
            lambda_timeout: Duration::from_secs(3),
            think_ms: (0, 400),
            settle: Duration::from_secs(120),
        }
    }
}

/// How an invocation is killed.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// The handler's future is dropped this long after it started.
    Mid(Duration),
    /// The handler finished; nothing is deleted.
    BeforeDelete,
    /// The handler finished; this share of its done records is deleted, then nothing more.
    PartDeleted(f64),
}

impl Kill {
    fn draw(rng: &mut StdRng, opts: &AwsHarnessOptions) -> Self {
        match rng.random_range(0..10) {
            0..6 => Self::Mid(between(rng, opts.kill_after_ms)),
            6..8 => Self::BeforeDelete,
            _ => Self::PartDeleted(rng.random_range(0.0..1.0)),
        }
    }
}

/// The kill schedule: armed a seeded while after the previous kill landed; the next invocation to
/// start takes it.
struct Killer {
    plan: Vec<(Duration, Kill)>,
    next: usize,
    armed_at: Instant,
    taken: bool,
    landed: usize,
}

impl Killer {
    fn take(&mut self, now: Instant) -> Option<Kill> {
        let (_, kill) = self.plan.get(self.next)?;
        (!self.taken && now >= self.armed_at).then(|| {
            self.taken = true;
            *kill
        })
    }

    /// The invocation finished before the kill: the next one takes it.
    fn missed(&mut self) {
        self.taken = false;
    }

    fn landed(&mut self, now: Instant) {
        self.landed += 1;
        self.next += 1;
        self.taken = false;
        self.armed_at = now + self.plan.get(self.next).map_or(Duration::ZERO, |(gap, _)| *gap);
    }

    /// No more kills.
    fn stop(&mut self) {
        self.next = self.plan.len();
    }
}

/// The run's own figures, by name (the report's `counters`).
#[derive(Default)]
struct Counters(Mutex<BTreeMap<String, usize>>);

impl Counters {
    fn add(&self, name: &str, n: usize) {
        *lock(&self.0).entry(name.to_owned()).or_default() += n;
    }
}

fn between(rng: &mut StdRng, (lo, hi): (u64, u64)) -> Duration {
    Duration::from_millis(if hi > lo { rng.random_range(lo..=hi) } else { lo })
}

fn phone(chat: usize) -> String {
    format!("+49157{:07}", 1_000_000 + chat)
}

/// Lambda's SQS event source, one poller: receive, invoke, delete what was not reported; or die
/// where the schedule says.
async fn event_source(w: &World, opts: &AwsHarnessOptions, poller: usize, killer: &Mutex<Killer>, counters: &Counters, stop: &AtomicBool) {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let (event, handles) = w.receive_sqs().await;
        if event.records.is_empty() {
            // Lambda long-polls; moto walks its whole queue on every receive, so idle pollers
            // would be its main load with a backlog of blocked groups.
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        n += 1;
        counters.add("invocations", 1);
        counters.add("records received", event.records.len());
        let receives = event.records.iter().filter_map(|r| r.attributes.get("ApproximateReceiveCount")?.parse::<usize>().ok());
        counters.add("records received again (redeliveries)", receives.map(|c| c.saturating_sub(1)).sum());
        let kill = lock(killer).take(Instant::now());
        let invocation = w.invocation_for(&format!("poller{poller}-{n}"), opts.lambda_timeout);
        let limit = match kill {
            Some(Kill::Mid(after)) => after.min(opts.lambda_timeout),
            _ => opts.lambda_timeout,
        };
        let failed: Vec<String> = match tokio::time::timeout(limit, olbridge_worker::handle(&w.worker, event, &invocation)).await {
            Ok(response) => response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect(),
            Err(_) if matches!(kill, Some(Kill::Mid(_))) => {
                lock(killer).landed(Instant::now());
                counters.add("kills: mid-invocation (handler dropped)", 1);
                continue;
            }
            Err(_) => {
                counters.add("Lambda timeouts (handler dropped at its deadline)", 1);
                if kill.is_some() {
                    lock(killer).missed();
                }
                continue;
            }
        };
        counters.add("records reported (batchItemFailures)", failed.len());
        match kill {
            None => w.delete_except(&handles, &failed).await,
            Some(Kill::Mid(_)) => {
                lock(killer).missed();
                counters.add("kills armed but the invocation finished first (taken by a later one)", 1);
                w.delete_except(&handles, &failed).await;
            }
            Some(Kill::BeforeDelete) => {
                lock(killer).landed(Instant::now());
                counters.add("kills: after the handler, before the delete", 1);
            }
            Some(Kill::PartDeleted(share)) => {
                let done: Vec<(String, String)> = handles.iter().filter(|(id, _)| !failed.contains(id)).cloned().collect();
                let keep = (done.len() as f64 * share).floor() as usize;
                w.delete_except(&done[..keep], &[]).await;
                lock(killer).landed(Instant::now());
                counters.add("kills: part of the batch deleted", 1);
            }
        }
    }
}

/// First sight of each bot message in each inbox (for latency), polled every
/// [`WATCH_EVERY`].
type Seen = Arc<Mutex<HashMap<u64, Instant>>>;

/// How often the inboxes are read, for latency. Coarser than the local harness's 25 ms: every
/// read copies a whole inbox, and with the handlers in this process a finer one starves them of
/// CPU; the AWS path's latencies are seconds (a killed invocation's records come back after the
/// visibility timeout).
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// How often the run checks whether it is over.
const JUDGE_EVERY: Duration = Duration::from_millis(500);

/// What the inboxes show so far, cheaply: the message texts the bot's answers name, and the chats
/// that got the fallback message. Enough to tell when the run is over; the verdict is
/// [`check::verdict_on`]'s, once, at the end (it copies every delivery, under the emulator's lock
/// the handlers' portal calls wait on).
#[derive(Default)]
struct Answered {
    texts: HashSet<String>,
    handed_off: HashSet<usize>,
}

impl Answered {
    fn settled(&self, written: &[Written]) -> bool {
        written.iter().all(|w| self.texts.contains(&w.text) || self.handed_off.contains(&w.chat))
    }
}

async fn watch_inboxes(w: &World, phones: &[String], seen: &Seen, answered: &Mutex<Answered>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        for (chat, p) in phones.iter().enumerate() {
            for m in w.emulator.customer_inbox(p).into_iter().filter(|m| m.author_id == w.bot_id) {
                if lock(seen).contains_key(&m.message_id) {
                    continue;
                }
                lock(seen).insert(m.message_id, now);
                let mut a = lock(answered);
                match m.text.strip_prefix("echo: ") {
                    Some(body) => a.texts.extend(body.split('\n').map(str::to_owned)),
                    None if m.text == DEFAULT_FALLBACK_MESSAGE => _ = a.handed_off.insert(chat),
                    None => {}
                }
            }
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// Messages left in the queue (visible or in flight), and in the dead-letter queue.
async fn queue_depths(w: &World) -> (usize, usize) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let sqs = w.sqs.as_ref().expect("the moto backend");
    let mut depths = [0usize; 2];
    for (depth, url) in depths.iter_mut().zip([&sqs.queue_url, &sqs.dlq_url]) {
        let out = sqs
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes from moto");
        let attrs = out.attributes.unwrap_or_default();
        let n = |a: A| attrs.get(&a).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        *depth = n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible);
    }
    (depths[0], depths[1])
}

/// Whether the moto in use delivers a FIFO group's messages in order after their visibility
/// timeout, as SQS does: moto 5.2.5 delivers only the group's last one (`scripts/moto-server` has
/// the fix). A queue of its own with a 1 s visibility timeout: two messages of one group are
/// received and not deleted, then received again.
async fn fifo_order_kept() -> anyhow::Result<bool> {
    let sdk = olbridge_aws::testing::serialized_config().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let (queue, _) = olbridge_aws::testing::fresh_queues(&sdk, Some(1)).await;
    for body in ["first", "second"] {
        client.send_message().queue_url(&queue).message_body(body).message_group_id("g").message_deduplication_id(body).send().await?;
    }
    let bodies = |out: aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput| -> Vec<String> {
        out.messages.unwrap_or_default().into_iter().filter_map(|m| m.body).collect()
    };
    let first = bodies(client.receive_message().queue_url(&queue).max_number_of_messages(10).send().await?);
    anyhow::ensure!(first.len() == 2, "moto's FIFO probe: received {first:?}");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let again = bodies(client.receive_message().queue_url(&queue).max_number_of_messages(10).send().await?);
    client.delete_queue().queue_url(&queue).send().await?;
    Ok(again.first().map(String::as_str) == Some("first"))
}

/// Runs the harness once against the moto of `AWS_ENDPOINT_URL`; the report says what happened,
/// [`Report::ok`] whether it held.
pub async fn run(opts: &AwsHarnessOptions) -> anyhow::Result<Report> {
    anyhow::ensure!(
        fifo_order_kept().await?,
        "this moto delivers a FIFO group's messages out of order after a visibility timeout (moto 5.2.5's SQS): \
         run it as `.venv/bin/python scripts/moto-server -H 127.0.0.1 -p PORT`, which fixes that"
    );
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let faults = FaultSetup { seed: rng.random(), think_ms: opts.think_ms, visibility_s: opts.visibility_s };
    let w = World::start_with(WorldOptions { backend: Backend::Moto, faults: Some(faults) }).await;
    let phones: Vec<String> = (0..opts.chats).map(phone).collect();
    let plans: Vec<Vec<Duration>> = phones.iter().map(|_| (0..opts.messages).map(|_| between(&mut rng, opts.gap_ms)).collect()).collect();
    let plan: Vec<(Duration, Kill)> = (0..opts.kills).map(|_| (between(&mut rng, opts.kill_every_ms), Kill::draw(&mut rng, opts))).collect();
    let started = Instant::now();
    let first = plan.first().map_or(Duration::ZERO, |(gap, _)| *gap);
    let killer = Mutex::new(Killer { plan, next: 0, armed_at: started + first, taken: false, landed: 0 });
    let counters = Counters::default();
    let written: Mutex<Vec<Written>> = Mutex::default();
    let seen: Seen = Arc::default();
    let answered = Mutex::new(Answered::default());
    let (stop_sources, stop_watch) = (AtomicBool::new(false), AtomicBool::new(false));

    let writers = futures::future::join_all(plans.iter().enumerate().map(|(chat, gaps)| {
        let (w, written, phone) = (&w, &written, &phones[chat]);
        async move {
            for (k, gap) in gaps.iter().enumerate() {
                tokio::time::sleep(*gap).await;
                let text = format!("c{chat}m{k}");
                let at = Instant::now();
                let m = w.emulator.customer_writes(LINE, phone, &text).await?;
                lock(written).push(Written { chat, seq: k, text, message_id: m.message_id, at });
            }
            Ok::<_, anyhow::Error>(())
        }
    }));
    let sources = futures::future::join_all((0..opts.pollers.max(1)).map(|p| event_source(&w, opts, p, &killer, &counters, &stop_sources)));
    let judge = async {
        let writes = writers.await.into_iter().collect::<anyhow::Result<Vec<()>>>();
        // Kills land while the customers write. Not after: the schedule would then fall on the
        // few invocations left, every one of them killed, each record received again until the
        // queue's redrive limit moves it to the dead-letter queue: a test of the kill rate, not of
        // the worker.
        lock(&killer).stop();
        writes?;
        let load_s = started.elapsed().as_secs_f64();
        // Quiescence: every message answered (or its chat handed off) and the queue empty; then
        // one more visibility timeout with the pollers on, so a late duplicate has the chance to
        // show.
        let deadline = Instant::now() + opts.settle;
        let written = lock(&written).clone();
        while Instant::now() < deadline {
            if lock(&answered).settled(&written) && queue_depths(&w).await.0 == 0 {
                break;
            }
            tokio::time::sleep(JUDGE_EVERY).await;
        }
        tokio::time::sleep(Duration::from_secs(u64::from(opts.visibility_s) + 1)).await;
        stop_sources.store(true, Ordering::SeqCst);
        stop_watch.store(true, Ordering::SeqCst);
        Ok::<_, anyhow::Error>((written, load_s))
    };
    let (judged, _, ()) = tokio::join!(judge, sources, watch_inboxes(&w, &phones, &seen, &answered, &stop_watch));
    let (written, load_s) = judged?;
    let verdict = check::verdict_on(&w.emulator, w.bot_id, &phones, &written, &lock(&seen));
    if !verdict.ok(false) {
        // What the inboxes of the chats that went wrong show, for the log.
        for (chat, p) in phones.iter().enumerate().filter(|(c, _)| verdict.examples.iter().any(|e| e.starts_with(&format!("chat {c}:")))) {
            tracing::error!(chat, inbox = ?w.bot_messages(p), "the bot's messages in a chat that went wrong");
        }
    }
    let (left, dead_lettered) = queue_depths(&w).await;
    counters.add("records left in the queue", left);
    counters.add("records in the dead-letter queue", dead_lettered);
    let counters = lock(&counters.0).clone();
    let run = RunFigures {
        runtime: "aws",
        seed: opts.seed,
        chats: opts.chats,
        messages: opts.messages,
        late_order_ok: false,
        kills: lock(&killer).landed,
        counters,
        bot_requests: w.bot_calls.load(Ordering::SeqCst) as usize,
        bot_faults: 0,
        portal_faults: BTreeMap::new(),
        load_s,
        total_s: started.elapsed().as_secs_f64(),
    };
    Ok(Report::from_run(run, &w.emulator, verdict))
}

/// A small seeded run, so the harness cannot rot: 3 customers × 6 messages, up to 10 invocations
/// killed while they write. Asserts correctness only (nothing timed).
#[cfg(test)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_invocations_lose_duplicate_and_reorder_nothing() {
    let opts = AwsHarnessOptions {
        seed: 7,
        chats: 3,
        messages: 6,
        gap_ms: (150, 400),
        kills: 10,
        kill_every_ms: (50, 150),
        kill_after_ms: (0, 300),
        pollers: 2,
        visibility_s: 2,
        lambda_timeout: Duration::from_millis(1500),
        think_ms: (0, 200),
        settle: Duration::from_secs(60),
    };
    let report = run(&opts).await.expect("the harness runs");
    let v = &report.verdict;
    let summary = report.markdown("harness::killed_worker_invocations_lose_duplicate_and_reorder_nothing");
    assert_eq!((v.written, v.lost, v.duplicated, v.out_of_order, v.misrouted), (18, 0, 0, 0, 0), "{summary}");
    assert_eq!(v.answered + v.handed_off, 18, "{summary}");
    assert!(report.kills > 0, "no invocation was killed: {summary}");
    assert!(report.ok(), "{summary}");
}
