//! Acceptance 4: turns are logged against the chat's CRM entity. The bot request carries `crm`,
//! the per-message records point at the entity, and its timeline holds the bot's replies and the
//! handoff reason (`crm.timeline.comment.add`, written from a durable outbox). A chat bound to a
//! deal or a contact works the same; an unbound chat follows `OLBRIDGE_CRM_UNBOUND`; CRM failures
//! never touch the reply, and a comment still waiting survives a SIGKILL.

use std::time::Duration;

use b24_emulator::Fault;
use olbridge_core::domain::message::CrmBinding;
use olbridge_tests::{AppOptions, PHONE, TestApp, poll_until};
use serde_json::json;

use crate::REPLY_TIMEOUT;

const COMMENT_ADD: &str = "crm.timeline.comment.add";
/// Long enough for a comment retried with backoff (2 s, 4 s, 8 s ...).
const COMMENT_TIMEOUT: Duration = Duration::from_secs(40);

fn options(timeline: &str) -> AppOptions {
    AppOptions { extra_env: vec![("OLBRIDGE_CRM_TIMELINE".into(), timeline.into())], ..AppOptions::default() }
}

fn binding(entity_type: &str, entity_id: u64) -> Option<CrmBinding> {
    Some(CrmBinding { entity_type: entity_type.into(), entity_id })
}

/// The lead the emulator bound the chat's session to (`entity_data_2`: `LEAD|id|...`).
fn lead_of(app: &TestApp, chat_id: u64) -> u64 {
    let links = app.emulator.chat(chat_id).expect("chat").entity_data_2;
    links.split('|').nth(1).and_then(|s| s.parse().ok()).filter(|id| *id > 0).unwrap_or_else(|| panic!("no lead in {links}"))
}

async fn wait_comments(app: &TestApp, entity_type: &str, id: u64, n: usize) -> Vec<String> {
    poll_until(COMMENT_TIMEOUT, || async { app.emulator.timeline_comments(entity_type, id) }, |c: &Vec<String>| c.len() >= n).await
}

#[tokio::test]
async fn a_chat_bound_to_a_lead_gets_every_turn_and_the_handoff_reason_on_the_leads_timeline() {
    let app = TestApp::spawn(options("turn")).await.unwrap();
    let sent = app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    let lead = lead_of(&app, sent.chat_id);
    app.customer_writes(PHONE, "I want to talk to an agent please").await.unwrap();
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;

    let comments = wait_comments(&app, "lead", lead, 2).await;
    assert_eq!(comments.len(), 2, "{comments:?}");
    assert!(comments[0].contains("Customer: hello") && comments[0].contains("Bot: echo: hello"), "{}", comments[0]);
    assert!(comments[1].contains("Handed to a human operator") && comments[1].contains("[phrase]"), "{}", comments[1]);
    let turns = app.wait_turns(2, REPLY_TIMEOUT).await;
    assert!(turns.iter().all(|t| t.trace.crm == binding("lead", lead)), "{turns:?}");
    assert!(turns.iter().all(|t| t.trace.line_id == Some(app.line_id)), "{turns:?}");
    let request = &app.bot.received()[0].body;
    assert_eq!(request["crm"], json!({"entity_type": "lead", "entity_id": lead}));
    // Nothing else of the lead's was written, and no other entity got a comment.
    assert_eq!(app.emulator.calls().iter().filter(|c| c.method == COMMENT_ADD).count(), 2);
    app.shutdown().await;
}

#[tokio::test]
async fn a_chat_bound_to_a_deal_gets_one_condensed_comment_per_session_at_the_handoff() {
    let app = TestApp::spawn(options("session")).await.unwrap();
    let sent = app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    let deal = app.emulator.add_crm_item("deal", json!({"TITLE": "Order 17"})).unwrap();
    app.emulator.bind_crm(sent.chat_id, "deal", deal).unwrap();

    app.customer_writes(PHONE, "where is my order?").await.unwrap();
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    app.customer_writes(PHONE, "and the invoice?").await.unwrap();
    app.wait_inbox(PHONE, 3, REPLY_TIMEOUT).await;
    assert!(app.emulator.timeline_comments("deal", deal).is_empty(), "session mode waits for the quiet period or a handoff");
    app.customer_writes(PHONE, "I want to talk to an agent please").await.unwrap();

    let comments = wait_comments(&app, "deal", deal, 1).await;
    assert_eq!(comments.len(), 1, "{comments:?}");
    let c = &comments[0];
    assert!(c.contains("Bot: echo: where is my order?") && c.contains("Bot: echo: and the invoice?"), "{c}");
    assert!(c.contains("Handed to a human operator"), "{c}");
    let turns = app.wait_turns(4, REPLY_TIMEOUT).await;
    assert_eq!(turns.iter().filter(|t| t.trace.crm == binding("deal", deal)).count(), 3, "{turns:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_chat_bound_to_a_contact_gets_its_turns_on_the_contacts_timeline() {
    let app = TestApp::spawn(options("turn")).await.unwrap();
    // A contact with the customer's phone: the new session binds to it instead of a new lead.
    let contact = app.emulator.add_crm_item("contact", json!({"NAME": "Anna", "PHONE": [{"VALUE": PHONE, "VALUE_TYPE": "MOBILE"}]})).unwrap();
    app.customer_writes(PHONE, "hi there").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;

    let comments = wait_comments(&app, "contact", contact, 1).await;
    assert!(comments[0].contains("Bot: echo: hi there"), "{comments:?}");
    assert_eq!(app.wait_turns(1, REPLY_TIMEOUT).await[0].trace.crm, binding("contact", contact));
    app.shutdown().await;
}

/// Line 1 of the demo portal ("Website chat") has CRM off: its chats are bound to nothing.
const UNBOUND_LINE: u64 = 1;

async fn unbound_chat(app: &TestApp) {
    app.emulator.attach_welcome_bot(UNBOUND_LINE, app.bot_id).unwrap();
    app.emulator.customer_writes(UNBOUND_LINE, PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
}

#[tokio::test]
async fn an_unbound_chat_is_left_alone_by_default() {
    let app = TestApp::spawn(options("turn")).await.unwrap();
    unbound_chat(&app).await;
    let turns = app.wait_turns(1, REPLY_TIMEOUT).await;
    assert_eq!(turns[0].outcome.name(), "answered");
    assert_eq!(turns[0].trace.crm, None);
    assert!(app.bot.received()[0].body.get("crm").is_none_or(serde_json::Value::is_null));
    let crm_calls: Vec<String> =
        app.emulator.calls().iter().map(|c| c.method.clone()).filter(|m| m.starts_with("crm.") || m == "imopenlines.crm.lead.create").collect();
    assert!(crm_calls.is_empty(), "{crm_calls:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn create_lead_asks_the_portal_and_stays_unbound_when_the_bot_is_not_allowed_to() {
    let mut opts = options("turn");
    opts.extra_env.push(("OLBRIDGE_CRM_UNBOUND".into(), "create_lead".into()));
    let app = TestApp::spawn(opts).await.unwrap();
    unbound_chat(&app).await;
    let turns = app.wait_turns(1, REPLY_TIMEOUT).await;
    // Bitrix24 lets only the session's operator create the lead; in push mode that is the bot,
    // not the webhook's user, so the portal refuses (ERROR_USER_NOT_OPERATOR) and the reply goes
    // out regardless.
    assert_eq!(app.emulator.calls().iter().filter(|c| c.method == "imopenlines.crm.lead.create").count(), 1);
    assert_eq!(turns[0].outcome.name(), "answered");
    assert_eq!(turns[0].trace.crm, None);
    app.shutdown().await;
}

#[tokio::test]
async fn a_failing_crm_never_touches_the_reply_and_the_comment_arrives_later() {
    let app = TestApp::spawn(options("turn")).await.unwrap();
    app.emulator.inject_fault(Fault::error(COMMENT_ADD, 2, "INTERNAL_SERVER_ERROR", "Internal server error", 500));
    let sent = app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    assert_eq!(app.bot_messages(PHONE), ["echo: hello"]);
    let lead = lead_of(&app, sent.chat_id);

    let comments = wait_comments(&app, "lead", lead, 1).await;
    assert_eq!(comments.len(), 1);
    let attempts = app.emulator.calls().iter().filter(|c| c.method == COMMENT_ADD).count();
    assert!(attempts >= 3, "two refused, then written: {attempts}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_comment_waiting_for_the_crm_survives_a_sigkill() {
    let mut app = TestApp::spawn_process(options("turn")).await.unwrap();
    app.emulator.inject_fault(Fault::error(COMMENT_ADD, 10_000, "INTERNAL_SERVER_ERROR", "Internal server error", 500));
    let sent = app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    let lead = lead_of(&app, sent.chat_id);
    // The comment was tried and refused: it waits in the outbox.
    app.wait_calls(COMMENT_ADD, 1, REPLY_TIMEOUT).await;
    app.kill().await.unwrap();
    app.emulator.clear_faults();
    app.restart().await.unwrap();

    let comments = wait_comments(&app, "lead", lead, 1).await;
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(comments[0].contains("Bot: echo: hello"));
    assert_eq!(app.bot_messages(PHONE), ["echo: hello"], "the reply was not repeated");
    app.shutdown().await;
}

/// REST calls per turn with the timeline off, per turn, and per session: 8 customers, each with
/// three questions and then a handoff. Counts requests the emulator saw (no timing involved), and
/// prints the figures quoted in docs/performance.md.
#[tokio::test]
async fn the_timeline_costs_at_most_one_call_per_turn_and_a_fraction_of_one_per_session() {
    const CUSTOMERS: usize = 8;
    let mut per_turn = Vec::new();
    for mode in ["off", "turn", "session"] {
        let app = TestApp::spawn(options(mode)).await.unwrap();
        // The bot's registration and the bridge's start-up are not the turns' cost.
        app.emulator.clear_recordings();
        for c in 0..CUSTOMERS {
            let phone = format!("+49152{:07}", 2_000_000 + c);
            for (i, q) in ["price?", "delivery?", "returns?"].iter().enumerate() {
                app.customer_writes(&phone, q).await.unwrap();
                app.wait_inbox(&phone, i + 1, REPLY_TIMEOUT).await;
            }
            app.customer_writes(&phone, "I want to talk to an agent please").await.unwrap();
            app.wait_inbox(&phone, 4, REPLY_TIMEOUT).await;
        }
        let turns = app.wait_turns(CUSTOMERS * 4, REPLY_TIMEOUT).await.len();
        let want_comments = match mode {
            "off" => 0,
            "turn" => CUSTOMERS * 4,
            _ => CUSTOMERS,
        };
        app.wait_calls(COMMENT_ADD, want_comments, COMMENT_TIMEOUT).await;
        let calls = app.emulator.calls();
        let comments = calls.iter().filter(|c| c.method == COMMENT_ADD).count();
        let lookups = calls.iter().filter(|c| c.method == "imopenlines.dialog.get").count();
        let rate = calls.len() as f64 / turns as f64;
        println!("timeline {mode:<7}: {turns} turns, {} REST calls ({rate:.2}/turn), {comments} timeline comments, {lookups} binding lookups", calls.len());
        assert_eq!(comments, want_comments, "{mode}");
        assert_eq!(lookups, 0, "v1 events carry the binding: no lookup");
        // What the CRM adds per turn is its own calls; the rest (typing indicators, the
        // reconciliation poller) depends on timing and is only printed.
        per_turn.push((comments + lookups) as f64 / turns as f64);
        app.shutdown().await;
    }
    println!("CRM calls per turn: turn mode {:.2}, session mode {:.2}", per_turn[1], per_turn[2]);
    assert!(per_turn[1] <= 1.0, "at most one extra call per turn: {:.2}", per_turn[1]);
    assert!(per_turn[2] <= 0.25, "one comment per session of four turns: {:.2}", per_turn[2]);
}

/// A Chatbots 2.0 bot: whether or not its events carry the chat's entity fields, the turns are
/// linked to the lead and looked up at most once per session.
#[tokio::test]
async fn a_chatbots_v2_chat_is_linked_with_at_most_one_lookup_per_session() {
    let opts = AppOptions { chatbot: olbridge_tests::Chatbot::V2Webhook, ..options("turn") };
    let app = TestApp::spawn(opts).await.unwrap();
    let sent = app.customer_writes(PHONE, "hello").await.unwrap();
    app.wait_inbox(PHONE, 1, REPLY_TIMEOUT).await;
    app.customer_writes(PHONE, "and again").await.unwrap();
    app.wait_inbox(PHONE, 2, REPLY_TIMEOUT).await;
    let lead = lead_of(&app, sent.chat_id);

    let comments = wait_comments(&app, "lead", lead, 2).await;
    assert_eq!(comments.len(), 2, "{comments:?}");
    let turns = app.wait_turns(2, REPLY_TIMEOUT).await;
    assert!(turns.iter().all(|t| t.trace.crm == binding("lead", lead)), "{turns:?}");
    let lookups = app.emulator.calls().iter().filter(|c| c.method == "imopenlines.dialog.get").count();
    assert!(lookups <= 1, "{lookups} lookups for one session");
    app.shutdown().await;
}
