//! The AWS path end to end on moto: the receiver's handler queues to SQS FIFO, the test plays
//! Lambda's event source (receive, invoke the worker's handler, delete what it did not report), and
//! every state lives in one DynamoDB table. Acceptance 1, 3 and 5 of the roadmap, on the adapters
//! the deployment runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use b24_emulator::Fault;
use olbridge_aws::emf::Emf;
use olbridge_core::b24::{B24Client, ClientOptions, WebhookBase};
use olbridge_core::config::Config;
use olbridge_core::domain::event::Job;
use olbridge_core::ports::{Clock as _, JobSink, StoreResult, SystemClock, TimelineOutbox as _};
use olbridge_poller::lease::Lease;
use olbridge_poller::work::{Stores, work};
use olbridge_poller::{Invocation, PollerDeps, RunReport, Totals, handle};

use crate::support::{Backend, World};

const ANNA: &str = "+4915133333333";
const BORIS: &str = "+4915144444444";

/// Polls the queue until `done` holds (each poll plays one Lambda invocation), at most ~20 s.
async fn drain(w: &World, done: impl Fn(&World) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while !done(w) {
        assert!(tokio::time::Instant::now() < deadline, "the queue did not get the work done");
        n += 1;
        if w.poll_sqs(&format!("req-{n}")).await.0 == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_message_goes_through_the_receiver_sqs_and_the_worker_and_is_answered_once() {
    let w = World::start_on(Backend::Moto).await;
    w.customer_writes(ANNA, "do you deliver on Sundays?").await;
    drain(&w, |w| !w.bot_messages(ANNA).is_empty()).await;
    // Whatever else was queued (the bot joining the chat) is worked off too; nothing is left.
    while w.poll_sqs("req-rest").await.0 > 0 {}
    assert_eq!(w.bot_messages(ANNA), ["echo: do you deliver on Sundays?"]);
    assert_eq!(w.worker_metric("Turns", "answered"), 1);
}

#[tokio::test]
async fn an_escalation_phrase_hands_the_chat_over_and_the_bot_stays_silent() {
    let w = World::start_on(Backend::Moto).await;
    w.customer_writes(ANNA, "I want to talk to an agent").await;
    drain(&w, |w| w.worker_metric("Turns", "handed_off") == 1).await;
    // The bot left the chat with the handoff: the customer's next message reaches the operator, not
    // the bot (no event), and the bot says nothing more.
    w.emulator.customer_writes(crate::support::LINE, ANNA, "hello?").await.expect("customer writes");
    w.emulator.wait_idle(Duration::from_secs(5)).await;
    while w.poll_sqs("req-after").await.0 > 0 {}
    let inbox = w.bot_messages(ANNA);
    assert_eq!(inbox.len(), 1, "the handoff notice only: {inbox:?}");
    assert!(w.emulator.calls().iter().any(|c| c.method == "imopenlines.bot.session.operator"));
    assert_eq!(w.bot_calls.load(std::sync::atomic::Ordering::SeqCst), 0, "the bot was never asked");
}

#[tokio::test]
async fn the_same_record_delivered_twice_at_once_is_answered_once() {
    let w = World::start_on(Backend::Moto).await;
    let job = w.customer_writes(ANNA, "what are your opening hours?").await;
    // Two invocations get the same message at once (SQS delivers at least once): the DynamoDB
    // conditional write lets one of them answer.
    let (a, b) = (w.record(&job, 1).1, w.record(&job, 1).1);
    let (w1, w2) = (w.worker.clone(), w.worker.clone());
    let (i1, i2) = (w.invocation("req-a"), w.invocation("req-b"));
    let (r1, r2) = tokio::join!(
        tokio::spawn(async move { olbridge_worker::handle(&w1, World::batch([a]), &i1).await }),
        tokio::spawn(async move { olbridge_worker::handle(&w2, World::batch([b]), &i2).await }),
    );
    let failed = r1.expect("a").batch_item_failures.len() + r2.expect("b").batch_item_failures.len();
    assert!(failed <= 1, "one answers, the other waits or finds it done");
    drain(&w, |w| !w.bot_messages(ANNA).is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.bot_messages(ANNA), ["echo: what are your opening hours?"]);
    assert_eq!(w.bot_calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_worker_killed_mid_record_is_redelivered_by_sqs_and_never_duplicates_the_reply() {
    let w = World::start_on(Backend::Moto).await;
    w.customer_writes(ANNA, "are you open today?").await;
    // Work off the bot's join first, so the next receive is the message.
    while w.bot_messages(ANNA).is_empty() && w.worker_metric("Turns", "ignored") == 0 {
        let (event, handles) = w.receive_sqs().await;
        let is_message = event.records.iter().any(|r| r.body.as_deref().is_some_and(|b| b.contains("are you open today?")));
        if is_message {
            // The portal applies the post at once but answers 5 s later: the invocation dies
            // meanwhile, after the post, before its checkpoint. SQS keeps the record.
            w.emulator.inject_fault(Fault::delay_response("imbot.message.add", 1, Duration::from_secs(5)));
            let (worker, invocation) = (w.worker.clone(), w.invocation("req-crashed"));
            let crashed = tokio::spawn(async move { olbridge_worker::handle(&worker, event, &invocation).await });
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while w.bot_messages(ANNA).is_empty() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            crashed.abort();
            assert!(crashed.await.is_err_and(|e| e.is_cancelled()), "killed mid-turn");
            break;
        }
        let failed = w.work(event, "req-join").await;
        w.delete_except(&handles, &failed).await;
    }
    assert_eq!(w.bot_messages(ANNA), ["echo: are you open today?"], "the post reached the customer");
    // The dead invocation's lease ends with its deadline; SQS redelivers after the visibility
    // timeout; the redelivery resumes the turn, finds the post on the portal and does not repeat it.
    w.clock.advance(Duration::from_secs(61));
    tokio::time::sleep(Duration::from_millis(2200)).await;
    drain(&w, |w| w.worker_metric("Turns", "answered") == 1).await;
    assert_eq!(w.bot_messages(ANNA), ["echo: are you open today?"]);
    assert_eq!(w.bot_calls.load(std::sync::atomic::Ordering::SeqCst), 1, "the bot's saved answer was reused");
    assert!(w.clock.now() > chrono::Utc::now());
}

#[tokio::test]
async fn a_failure_in_one_chat_leaves_the_other_chat_answered_and_comes_back_later() {
    let w = World::start_on(Backend::Moto).await;
    w.customer_writes(ANNA, "hello from Anna").await;
    w.customer_writes(BORIS, "hello from Boris").await;
    // Anna's reply fails once (one attempt per portal call in this harness).
    w.emulator.inject_fault(Fault::error("imbot.message.add", 1, "INTERNAL_SERVER_ERROR", "Internal server error", 500));
    drain(&w, |w| !w.bot_messages(ANNA).is_empty() && !w.bot_messages(BORIS).is_empty()).await;
    assert_eq!(w.bot_messages(ANNA), ["echo: hello from Anna"]);
    assert_eq!(w.bot_messages(BORIS), ["echo: hello from Boris"]);
    assert!(w.visibility.0.lock().expect("lock").iter().all(|(_, after)| *after <= Duration::from_secs(8)));
}

/// Acceptance 4 on the AWS path: the worker's turn leaves the lead's timeline line in the table's
/// outbox, and the poller's scheduled run (its timeline pass) writes it as a comment on the lead.
#[tokio::test]
async fn a_turn_on_a_chat_bound_to_a_lead_is_on_the_leads_timeline_after_the_pollers_drain() {
    let w = World::start_on(Backend::MotoCrm).await;
    w.customer_writes(ANNA, "hello").await;
    drain(&w, |w| !w.bot_messages(ANNA).is_empty()).await;
    while w.poll_sqs("req-rest").await.0 > 0 {}
    let chat = w.emulator.chat_of_customer(crate::support::LINE, ANNA).expect("the customer's chat");
    let links = w.emulator.chat(chat).expect("chat").entity_data_2;
    let lead: u64 = links.split('|').nth(1).and_then(|s| s.parse().ok()).filter(|id| *id > 0).unwrap_or_else(|| panic!("no lead in {links}"));
    let table = w.table.clone().expect("moto");
    assert_eq!(table.pending().await.expect("pending"), 1, "the turn's line waits in the outbox");
    assert!(w.emulator.timeline_comments("lead", lead).is_empty(), "the worker does not write the timeline itself");

    // The poller as its `main` wires it, with nothing to poll in push mode but the timeline.
    let env: HashMap<String, String> = [
        ("B24_WEBHOOK_BASE", w.webhook.clone()),
        ("OLBRIDGE_MODE", "push".to_owned()),
        ("OLBRIDGE_RECONCILE_SEC", "0".to_owned()),
        ("OLBRIDGE_CRM_TIMELINE", "turn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = Config::from_map(&env).expect("config");
    let client = B24Client::new(WebhookBase::parse(&w.webhook).expect("webhook"), ClientOptions::default()).expect("client");
    let stores = Stores { idempotency: table.clone(), chats: table.clone(), meta: table.clone(), sink: Arc::new(NoJobs), timeline: table.clone() };
    let clock: Arc<dyn olbridge_core::ports::Clock> = Arc::new(SystemClock);
    let deps =
        PollerDeps { work: work(&config, &client, &stores, Arc::clone(&clock)).expect("work"), lease: Lease::new(table.clone()), clock, emf: Emf::capture().0 };
    let event: EventBridgeEvent = serde_json::from_str(include_str!("../../../../events/poller-scheduled.json")).expect("fixture");
    let report = handle(&deps, &event, &Invocation { request_id: "poll-1".into(), deadline: None }).await.expect("run");
    let RunReport::Ran(totals) = report else { panic!("{report:?}") };
    assert_eq!((totals.comments, totals.timeline_failed), (1, 0), "{totals:?}");

    let comments = w.emulator.timeline_comments("lead", lead);
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(comments[0].contains("Customer: hello") && comments[0].contains("Bot: echo: hello"), "{}", comments[0]);
    assert_eq!(table.pending().await.expect("pending"), 0, "written lines leave the outbox");
    // A second run finds nothing to write.
    let report = handle(&deps, &event, &Invocation { request_id: "poll-2".into(), deadline: None }).await.expect("run");
    assert!(matches!(report, RunReport::Ran(Totals { comments: 0, .. })), "{report:?}");
    assert_eq!(w.emulator.timeline_comments("lead", lead).len(), 1);
}

/// The poller's sink: push mode with reconciliation off enqueues nothing.
struct NoJobs;

#[async_trait::async_trait]
impl JobSink for NoJobs {
    async fn send(&self, job: &Job, _now: chrono::DateTime<chrono::Utc>) -> StoreResult<()> {
        panic!("nothing is polled here, yet {job:?} was enqueued")
    }
}
