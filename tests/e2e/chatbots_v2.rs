//! Chatbots 2.0 end to end: a v2 bot in webhook mode (`ONIMBOTV2MESSAGEADD` POSTed to the
//! receiver, replies with `imbot.v2.Chat.Message.send`, handoff with the botToken as `CLIENT_ID`),
//! and in fetch mode (no handler URL at all: the bridge pulls with `imbot.v2.Event.get`), including
//! a real `olbridge serve` SIGKILLed on each side of the enqueue.

use std::time::Duration;

use b24_emulator::Fault;
use olbridge_core::b24::{B24Client, ClientOptions, WebhookBase};
use olbridge_core::config::DEFAULT_HANDOFF_MESSAGE;
use olbridge_core::domain::ids::BotId;
use olbridge_core::domain::secret::Secret;
use olbridge_core::ports::MetaStore as _;
use olbridge_core::usecase::fetch::Fetcher;
use olbridge_sqlite::SqliteStore;
use olbridge_tests::{AppOptions, Chatbot, PHONE, Reply, TestApp};

use crate::REPLY_TIMEOUT;

const OPERATOR: &str = "imopenlines.bot.session.operator";
const EVENT_GET: &str = "imbot.v2.Event.get";

fn opts(chatbot: Chatbot) -> AppOptions {
    AppOptions { chatbot, ..AppOptions::default() }
}

/// The events the portal still holds for our bot (read without an offset: acknowledges nothing).
async fn held_by_the_portal(app: &TestApp) -> Vec<String> {
    let client = B24Client::new(WebhookBase::parse(&app.portal.webhook_url).unwrap(), ClientOptions::default()).unwrap();
    let page = client.imbot_v2_event_get(BotId::new(app.bot_id).unwrap(), &Secret::new(app.client_id.clone()), None, Some(100)).await.unwrap();
    page.events.into_iter().map(|e| e.kind).collect()
}

fn calls(app: &TestApp, method: &str) -> Vec<b24_emulator::RecordedCall> {
    app.emulator.calls().into_iter().filter(|c| c.method == method).collect()
}

/// The `offset` an `imbot.v2.Event.get` call sent. A call sent alone has JSON numbers; one inside
/// a `batch` (the bridge coalesces calls made at once, as at start-up) arrives as a query string,
/// so its offset is a string there.
fn offset(c: &b24_emulator::RecordedCall) -> Option<u64> {
    c.params["offset"].as_u64().or_else(|| c.params["offset"].as_str()?.parse().ok())
}

/// The customer's messages are answered and the escalation hands over, whatever brings them in.
async fn answers_then_hands_over(app: &TestApp) {
    app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello"]);
    let sent = calls(app, "imbot.v2.Chat.Message.send");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].params["botToken"], app.client_id.as_str());
    assert!(calls(app, "imbot.message.add").is_empty(), "no v1 call");

    let escalated = app.customer_writes(PHONE, "I want to talk to an agent please").await.unwrap();
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    app.wait_calls(OPERATOR, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello".to_owned(), DEFAULT_HANDOFF_MESSAGE.to_owned()]);
    let handoff = calls(app, OPERATOR);
    assert_eq!((handoff.len(), handoff[0].params["CLIENT_ID"].as_str()), (1, Some(app.client_id.as_str())), "handed over with the bot token");
    let chat = app.emulator.chat(escalated.chat_id).unwrap();
    assert!(chat.operator_id.is_some_and(|o| o != app.bot_id), "a human has the chat: {chat:?}");
    assert_eq!(app.bot.received().len(), 1, "the escalation phrase never reached the bot");
}

#[tokio::test]
async fn webhook_mode_answers_through_imbot_v2_and_hands_over_with_the_bot_token() {
    let app = TestApp::spawn(opts(Chatbot::V2Webhook)).await.unwrap();
    answers_then_hands_over(&app).await;
    let pushed: Vec<_> = app.emulator.deliveries().into_iter().filter(|d| d.event == "ONIMBOTV2MESSAGEADD").collect();
    assert_eq!(pushed.len(), 2, "{pushed:?}");
    assert!(pushed.iter().all(|d| d.status == Some(200) && d.url == app.events_url), "{pushed:?}");
    assert!(calls(&app, EVENT_GET).is_empty(), "webhook mode fetches nothing");
    app.shutdown().await;
}

#[tokio::test]
async fn fetch_mode_answers_and_hands_over_with_no_handler_url_at_all() {
    let app = TestApp::spawn(opts(Chatbot::V2Fetch)).await.unwrap();
    let registered = calls(&app, "imbot.v2.Bot.register");
    assert_eq!(registered[0].params["fields"]["eventMode"], "fetch");
    assert!(registered[0].params["fields"].get("webhookUrl").is_none(), "{:?}", registered[0].params);
    answers_then_hands_over(&app).await;
    assert!(app.emulator.deliveries().is_empty(), "the portal pushed nothing: {:?}", app.emulator.deliveries());
    // Offsets only move forward, and every event read was acknowledged by a later read.
    let offsets: Vec<u64> = calls(&app, EVENT_GET).iter().filter_map(offset).collect();
    assert!(!offsets.is_empty() && offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    app.shutdown().await;
}

/// Waits until the portal has run (not necessarily answered) `n` `imbot.v2.Event.get` calls: each
/// is charged `cost` of operating time when it runs, before any delayed answer goes out.
async fn wait_event_gets_run(app: &TestApp, n: u32, cost: Duration) {
    let run = || async { app.emulator.operating_usage().iter().filter(|u| u.method == EVENT_GET.to_ascii_lowercase()).map(|u| u.operating).sum::<f64>() };
    let want = f64::from(n) * cost.as_secs_f64() - 1e-6;
    let seconds = olbridge_tests::poll_until(REPLY_TIMEOUT, run, |s| *s >= want).await;
    assert!(seconds >= want, "the portal ran {seconds} s of Event.get, wanted {want}");
}

#[tokio::test]
async fn fetch_mode_sigkill_after_event_get_before_the_enqueue_loses_nothing() {
    let mut app = TestApp::stopped_process(opts(Chatbot::V2Fetch)).await.unwrap();
    app.customer_writes(PHONE, "hello").await.unwrap();
    // The bridge's first read runs on the portal at once (it hands over the message), but its
    // answer is held back: the bridge dies with the events read and nothing queued.
    let cost = Duration::from_millis(500);
    app.emulator.set_method_cost(EVENT_GET, cost);
    app.emulator.inject_fault(Fault::delay_response(EVENT_GET, 1, Duration::from_secs(60)));
    app.restart().await.unwrap();
    wait_event_gets_run(&app, 1, cost).await;
    app.kill().await.unwrap();
    assert!(app.bot.received().is_empty(), "nothing was queued before the kill");
    assert_eq!(held_by_the_portal(&app).await, ["ONIMBOTV2JOINCHAT", "ONIMBOTV2MESSAGEADD"], "and nothing was acknowledged");

    app.emulator.set_method_cost(EVENT_GET, Duration::from_millis(30));
    app.restart().await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    let turns = app.wait_turns(1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello"], "read again after the restart and answered");
    assert_eq!((turns.len(), app.bot.received().len()), (1, 1));
    app.shutdown().await;
}

#[tokio::test]
async fn fetch_mode_sigkill_after_the_enqueue_before_the_acknowledgement_duplicates_nothing() {
    // A long poll interval: the read that would acknowledge the page comes 5 s after it.
    let options = AppOptions { extra_env: vec![("B24_POLL_SEC".into(), "5".into())], ..opts(Chatbot::V2Fetch) };
    let mut app = TestApp::stopped_process(options).await.unwrap();
    app.bot.script([Reply::After(Duration::from_secs(30), Box::new(Reply::Echo))]);
    app.customer_writes(PHONE, "hello").await.unwrap();
    app.restart().await.unwrap();
    // Queued (the worker is asking the bot); the acknowledging read never reaches the portal.
    assert_eq!(app.bot.wait_requests(1, REPLY_TIMEOUT).await, 1);
    app.emulator.inject_fault(Fault::delay(EVENT_GET, 100, Duration::from_secs(30)));
    app.kill().await.unwrap();
    // The bridge stored the page's offset right after queueing it; put it back to where it was
    // before the page (nothing read yet: 0 acknowledges nothing), as if it had died in between.
    let name = Fetcher::cursor_name(BotId::new(app.bot_id).unwrap());
    let store = SqliteStore::open_for_admin(app.data_dir()).unwrap();
    let stored = store.get_value(&name).await.unwrap().expect("the page's offset was stored");
    assert!(stored.value.parse::<u64>().unwrap() > 0);
    store.put_value(&name, "0", Some(stored.version)).await.unwrap();
    drop(store);

    app.emulator.clear_faults();
    assert_eq!(held_by_the_portal(&app).await, ["ONIMBOTV2JOINCHAT", "ONIMBOTV2MESSAGEADD"], "the page was never acknowledged");
    app.restart().await.unwrap();
    // The restarted bridge reads the page again (the portal still holds it)...
    let reread = || async { calls(&app, EVENT_GET).iter().filter(|c| c.status == 200 && offset(c) == Some(0)).count() };
    assert!(
        olbridge_tests::poll_until(REPLY_TIMEOUT, reread, |n| *n >= 1).await >= 1,
        "the page was read again: {:#?}\nserve: {}",
        calls(&app, EVENT_GET).iter().map(|c| (c.status, c.params.to_string(), c.at, c.latency)).collect::<Vec<_>>(),
        app.serve_log()
    );
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    let turns = app.wait_turns(1, REPLY_TIMEOUT).await;
    // ...and its keys say the message is queued already: one turn, one reply.
    assert_eq!(app.bot_messages(PHONE), ["echo: hello"]);
    assert_eq!(turns.len(), 1);
    let keys: Vec<String> =
        app.bot.received().iter().filter_map(|r| r.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned)).collect();
    assert_eq!(keys.len(), 2, "asked before the kill, and again when the turn resumed");
    assert_eq!(keys[0], keys[1], "the same message, not a second copy");
    app.shutdown().await;
}
