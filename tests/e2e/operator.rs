//! Operator mode, the client's setup today done right: no bot on the portal, the webhook's user
//! (the service user, a queue operator of the WhatsApp line) with nothing but the `im` and
//! `imopenlines` scopes polls for customer messages and answers with `im.message.add`. The `.env`
//! names no bot and no mode, as the old polling bridge's did. Acceptance 1, 2, 3 and 5 in this mode,
//! with both orders of the line's queue (the demo line puts the human first).

use std::collections::HashMap;
use std::time::Duration;

use olbridge::admin::doctor::{self, Check};
use olbridge_core::b24::OperatorPortal;
use olbridge_core::config::{Config, DEFAULT_HANDOFF_MESSAGE};
use olbridge_tests::{AppOptions, PHONE, Reply, Setup, TestApp, assert_answered_once_in_order, poll_until};

use crate::REPLY_TIMEOUT;

fn operator(service_first: bool) -> AppOptions {
    AppOptions { setup: Setup::Operator { service_first }, ..AppOptions::default() }
}

fn calls(app: &TestApp, method: &str) -> usize {
    app.emulator.calls().iter().filter(|c| c.method == method).count()
}

#[tokio::test]
async fn a_customer_is_answered_with_im_message_add_by_a_webhook_with_only_im_and_imopenlines() {
    let app = TestApp::spawn(operator(true)).await.unwrap();
    let sent = app.customer_writes(PHONE, "hello there").await.unwrap();
    let inbox = app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;

    assert_eq!(app.bot_messages(PHONE), ["echo: hello there"], "inbox: {inbox:?}");
    let body = &app.bot.received()[0].body;
    assert_eq!((body["chat_id"].as_u64(), body["message_id"].as_u64()), (Some(sent.chat_id), Some(sent.message_id)));
    assert_eq!((body["phone"].as_str(), body["author_id"].as_u64()), (Some(PHONE), Some(sent.user_id)));
    assert_eq!((body["line_id"].as_u64(), body["session_id"].as_u64()), (Some(app.line_id), Some(sent.session_id)));
    assert_eq!(body["crm"]["entity_type"], "lead", "{body}");
    assert!(body["event_id"].as_str().is_some_and(|k| k.ends_with(&format!(":msg:{}", sent.message_id))), "the push key: {body}");
    assert!(calls(&app, "im.message.add") >= 1 && calls(&app, "im.recent.list") >= 1);
    let imbot: Vec<String> = app.emulator.calls().into_iter().filter(|c| c.method.starts_with("imbot")).map(|c| c.method).collect();
    assert!(imbot.is_empty(), "no bot needed: {imbot:?}");
    let health = app.health().await.unwrap();
    assert_eq!(health["poller"]["role"], "operator", "{health}");
    assert!(health["poller"]["last_success"].is_string(), "{health}");
    app.shutdown().await;
}

#[tokio::test]
async fn quick_turns_are_all_answered_in_order_in_operator_mode() {
    let app = TestApp::spawn(operator(false)).await.unwrap();
    for i in 1..=6 {
        app.customer_writes(PHONE, &format!("turn {i}")).await.unwrap();
        app.wait_inbox(PHONE, i, REPLY_TIMEOUT).await;
    }
    let expected: Vec<String> = (1..=6).map(|i| format!("echo: turn {i}")).collect();
    assert_eq!(app.bot_messages(PHONE), expected);

    // Six at once: each answered once, in order, however the polls cut them into turns.
    let other = "+4915199999999";
    let texts: Vec<String> = (1..=6).map(|i| format!("message {i}")).collect();
    for t in &texts {
        app.emulator.customer_writes(app.line_id, other, t).await.unwrap();
    }
    let answered = poll_until(REPLY_TIMEOUT, || async { app.bot_messages(other).join("\n") }, |all| all.contains("message 6")).await;
    assert!(answered.contains("message 6"), "{answered}");
    app.emulator.wait_idle(Duration::from_secs(2)).await;
    let expected: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_answered_once_in_order(&app.bot_messages(other), &expected);
    app.shutdown().await;
}

#[tokio::test]
async fn escalation_hands_the_service_users_chat_to_a_human_of_the_queue_and_the_bot_stays_silent() {
    let app = TestApp::spawn(operator(true)).await.unwrap();
    let sent = app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.emulator.chat(sent.chat_id).and_then(|c| c.operator_id), Some(app.bot_id), "the service user holds it");

    app.customer_writes(PHONE, "I want to talk to an agent please").await.unwrap();
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    assert_eq!(app.wait_calls("imopenlines.operator.transfer", 1, REPLY_TIMEOUT).await, 1);
    assert_eq!(app.bot_messages(PHONE), ["echo: hello".to_owned(), DEFAULT_HANDOFF_MESSAGE.to_owned()]);
    assert_eq!(app.emulator.chat(sent.chat_id).and_then(|c| c.operator_id), Some(app.portal.operator_id), "a human of the queue, never itself");

    // The rest of the session: polled, logged, never answered.
    app.customer_writes(PHONE, "hello? anyone?").await.unwrap();
    app.customer_writes(PHONE, "my order is late").await.unwrap();
    let keys = |turns: &[olbridge_core::domain::turn::TurnRecord]| turns.iter().map(|t| t.keys.len()).sum::<usize>();
    poll_until(REPLY_TIMEOUT, || app.turns(), |t| keys(t) >= 4).await;
    assert_eq!(app.bot_messages(PHONE).len(), 2);
    assert_eq!(app.bot.received().len(), 1, "the escalation and what follows never reach the bot");
    assert_eq!(calls(&app, "imopenlines.operator.transfer"), 1);

    // A new session is the service user's again, and the bot's.
    app.emulator.finish_session(sent.chat_id).await.unwrap();
    app.customer_writes(PHONE, "new question").await.unwrap();
    let answered = poll_until(REPLY_TIMEOUT, || async { app.bot_messages(PHONE) }, |m| m.len() >= 3).await;
    assert_eq!(answered.last().map(String::as_str), Some("echo: new question"));
    app.shutdown().await;
}

#[tokio::test]
async fn when_a_human_holds_the_session_escalation_tells_her_in_a_system_message_and_the_bot_goes_silent() {
    // The demo line: the human operator is first in the queue and holds every new session.
    let app = TestApp::spawn(operator(false)).await.unwrap();
    let sent = app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello"], "the service user answers in her session until someone writes");

    app.customer_writes(PHONE, "operator please").await.unwrap();
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    let chat = poll_until(
        REPLY_TIMEOUT,
        || async { app.emulator.chat(sent.chat_id).unwrap() },
        |c| c.messages.iter().any(|m| m.text == OperatorPortal::HOLDER_NOTICE),
    )
    .await;
    let note = chat.messages.iter().find(|m| m.text == OperatorPortal::HOLDER_NOTICE).expect("the holder was told");
    assert!(note.system && !note.to_customer && note.author_id == app.bot_id, "{note:?}");
    assert_eq!(chat.operator_id, Some(app.portal.operator_id), "she keeps the chat");
    assert_eq!(calls(&app, "imopenlines.operator.transfer"), 0, "nothing to transfer");
    assert_eq!(app.bot_messages(PHONE), ["echo: hello".to_owned(), DEFAULT_HANDOFF_MESSAGE.to_owned()]);
    assert!(app.emulator.customer_inbox(PHONE).iter().all(|m| m.text != OperatorPortal::HOLDER_NOTICE), "never on WhatsApp");

    app.customer_writes(PHONE, "still there?").await.unwrap();
    let keys = |turns: &[olbridge_core::domain::turn::TurnRecord]| turns.iter().map(|t| t.keys.len()).sum::<usize>();
    poll_until(REPLY_TIMEOUT, || app.turns(), |t| keys(t) >= 3).await;
    assert_eq!(app.bot_messages(PHONE).len(), 2, "silent for the rest of the session");
    app.shutdown().await;
}

#[tokio::test]
async fn an_operator_writing_silences_the_bot_for_the_session_in_operator_mode() {
    let app = TestApp::spawn(operator(true)).await.unwrap();
    let sent = app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    app.emulator.operator_writes(sent.chat_id, app.portal.operator_id, "Olga here, I'll take it from here.").await.unwrap();
    app.customer_writes(PHONE, "great, thanks Olga").await.unwrap();
    app.customer_writes(PHONE, "my order number is EX-1234").await.unwrap();
    let keys = |turns: &[olbridge_core::domain::turn::TurnRecord]| turns.iter().map(|t| t.keys.len()).sum::<usize>();
    let turns = poll_until(REPLY_TIMEOUT, || app.turns(), |t| keys(t) >= 4).await;
    assert_eq!(keys(&turns), 4, "hello, Olga's message and the two after it: {turns:?}");
    assert_eq!(app.bot_messages(PHONE), ["echo: hello"]);
    assert_eq!(app.bot.received().len(), 1);
    app.shutdown().await;
}

/// Acceptance 5 in operator mode: the `olbridge serve` process is SIGKILLed while turns are in
/// flight and polls run, customers write while it is down, and it is started again, three times.
/// Every message is answered exactly once, in order: nothing repeated, nothing skipped.
#[tokio::test]
async fn sigkill_mid_poll_then_restart_repeats_nothing_and_skips_nothing() {
    let mut app = TestApp::spawn_process(operator(true)).await.unwrap();
    app.bot.set_default(Reply::After(Duration::from_millis(800), Box::new(Reply::Echo)));
    let phones: Vec<String> = (0..4).map(|i| format!("+4915200000{i:03}")).collect();
    let mut written: HashMap<String, Vec<String>> = HashMap::new();
    for round in 0..3 {
        for p in &phones {
            let text = format!("round {round} from {p}");
            app.emulator.customer_writes(app.line_id, p, &text).await.unwrap();
            written.entry(p.clone()).or_default().push(text);
        }
        // Some turns are in flight (the bot takes 0.8 s), polls keep running.
        app.bot.wait_requests(round + 1, REPLY_TIMEOUT).await;
        app.kill().await.unwrap();
        // Written while the bridge is down.
        for p in &phones {
            let text = format!("while down {round} from {p}");
            app.emulator.customer_writes(app.line_id, p, &text).await.unwrap();
            written.entry(p.clone()).or_default().push(text);
        }
        app.restart().await.unwrap();
    }
    let all_answered = || async { phones.iter().all(|p| app.bot_messages(p).join("\n").contains(&format!("while down 2 from {p}"))) };
    assert!(poll_until(Duration::from_secs(60), all_answered, |done| *done).await, "{}", app.serve_log());
    app.emulator.wait_idle(Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    for p in &phones {
        let texts: Vec<&str> = written[p].iter().map(String::as_str).collect();
        assert_answered_once_in_order(&app.bot_messages(p), &texts);
    }
    app.shutdown().await;
}

#[tokio::test]
async fn the_im_v2_event_log_can_be_the_source_with_the_recent_list_as_the_safety_net() {
    let opts = AppOptions { extra_env: vec![("OLBRIDGE_POLL_SOURCE".into(), "events".into())], ..operator(true) };
    let app = TestApp::spawn(opts).await.unwrap();
    app.customer_writes(PHONE, "hello via the event log").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    app.customer_writes(PHONE, "and again").await.unwrap();
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello via the event log", "echo: and again"]);
    assert!(calls(&app, "im.v2.Event.subscribe") >= 1 && calls(&app, "im.v2.Event.get") >= 1);
    let health = app.health().await.unwrap();
    assert!(health["poller"]["source"].as_str().is_some_and(|s| s.contains("im.v2.Event.get")), "{health}");
    app.shutdown().await;
}

#[tokio::test]
async fn doctor_says_which_modes_the_webhooks_scopes_allow() {
    let app = TestApp::spawn(operator(false)).await.unwrap();
    let checks = doctor::checks(&Config::from_map(&app.env).unwrap()).await;
    let fails: Vec<&String> = checks.iter().filter_map(|c| if let Check::Fail(t) = c { Some(t) } else { None }).collect();
    assert!(fails.is_empty(), "{checks:#?}");
    let ok = |needle: &str| checks.iter().any(|c| matches!(c, Check::Ok(t) if t.contains(needle)));
    assert!(ok("mode: operator") && ok("they allow the modes: operator") && ok("is a queue operator of"), "{checks:#?}");
    assert!(checks.iter().any(|c| matches!(c, Check::Warn(t) if t.contains("stand-in"))), "{checks:#?}");

    let mut push = app.env.clone();
    push.insert("OLBRIDGE_MODE".into(), "push".into());
    let checks = doctor::checks(&Config::from_map(&push).unwrap()).await;
    assert!(checks.iter().any(|c| matches!(c, Check::Fail(t) if t.contains("push mode needs the scope(s) imbot"))), "{checks:#?}");
    app.shutdown().await;
}

/// The portal's operating-time model (contract §2.2): once a method's execution time in the last
/// ten minutes passes the limit, the next call of it is refused for minutes. Here each
/// `im.recent.list` costs 2 s of a 40 s limit and the poller runs every 0.2 s: unchecked, it would
/// be blocked within five seconds. It slows down from half the limit and stops polling before the
/// block, until the portal's count eases; the portal never refuses it.
#[tokio::test]
async fn polling_backs_off_before_the_portals_operating_time_limit_blocks_it() {
    let opts = AppOptions { extra_env: vec![("B24_OPERATING_LIMIT_SEC".into(), "40".into())], ..operator(true) };
    let app = TestApp::spawn(opts).await.unwrap();
    let mut limit = app.emulator.operating_limit();
    limit.limit = Duration::from_secs(40);
    app.emulator.set_operating_limit(limit);
    app.emulator.set_method_cost("im.recent.list", Duration::from_secs(2));
    let before = calls(&app, "im.recent.list");

    // Polls at the configured pace until half the limit (10 calls), then further and further apart.
    assert!(app.wait_calls("im.recent.list", before + 15, Duration::from_secs(20)).await >= before + 15);
    let slowed = poll_until(Duration::from_secs(20), || async { calls(&app, "im.recent.list") }, |n| *n >= before + 18).await;
    // At 90 % of the limit (18 calls, 36 s) it waits for the count to ease (minutes away): no more
    // polls in the next seconds, and none was ever refused.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = calls(&app, "im.recent.list");
    assert!(after <= slowed + 1, "polling stopped before the limit: {slowed} then {after}");
    let refused: Vec<_> = app.emulator.calls().into_iter().filter(|c| c.error.as_deref() == Some("OPERATION_TIME_LIMIT")).collect();
    assert!(refused.is_empty(), "{refused:?}");
    let used = app.emulator.operating_usage();
    let recent = used.iter().find(|u| u.method == "im.recent.list").map_or(0.0, |u| u.operating);
    assert!((30.0..40.0).contains(&recent), "stopped near, and under, the limit: {used:?}");
    app.shutdown().await;
}
