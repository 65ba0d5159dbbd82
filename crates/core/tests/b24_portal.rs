//! The `Portal` adapters against the emulator: a v1 Open Lines bot (`BotPortal`) and the service user
//! in operator mode (`OperatorPortal`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod b24_support;

use b24_emulator::{Emulator, Fault, RateLimit};
use b24_support::{calls_of, client, emulator, fast_client};
use olbridge_core::b24::imbot::{BotProperties, BotRegistration, BotType};
use olbridge_core::b24::{B24Client, BotPortal, OperatorPortal, Priority, RatePlan};
use olbridge_core::domain::ids::{BotId, ChatId, DialogId, MessageId};
use olbridge_core::domain::secret::Secret;
use olbridge_core::ports::{Portal, PortalErrorKind, Transfer};
use olbridge_core::retry::RetryPolicy;

const PHONE: &str = "+49 151 2345678";

fn client_id() -> Secret {
    Secret::new("olbridge-test-client")
}

/// Registers an Open Lines bot through the webhook and makes it the WhatsApp line's welcome bot.
async fn register_bot(emu: &Emulator, c: &B24Client, line: u64) -> BotId {
    let handler = "http://127.0.0.1:9/b24/events".to_owned();
    let bot = c
        .imbot_register(&BotRegistration {
            code: "olbridge".into(),
            kind: BotType::OpenLine,
            openline: true,
            event_message_add: handler.clone(),
            event_welcome_message: handler.clone(),
            event_bot_delete: handler,
            properties: BotProperties { name: "Assistant".into(), ..Default::default() },
            client_id: client_id(),
        })
        .await
        .expect("imbot.register");
    emu.attach_welcome_bot(line, bot.get()).expect("welcome bot");
    bot
}

/// A customer writes; returns the chat and the customer's message.
async fn customer_chat(emu: &Emulator, line: u64) -> (ChatId, MessageId) {
    let m = emu.customer_writes(line, PHONE, "Hello, do you ship to Austria?").await.expect("customer writes");
    (ChatId::new(m.chat_id).expect("chat"), MessageId::new(m.message_id).expect("message"))
}

#[tokio::test]
async fn replies_reach_the_customer_and_can_be_read_back() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let c = fast_client(&demo.webhook_url);
    let bot = register_bot(&emu, &c, demo.whatsapp_line_id).await;
    let (chat, first) = customer_chat(&emu, demo.whatsapp_line_id).await;
    let portal = BotPortal::new(c, bot, client_id());
    assert_eq!(portal.author_id(), bot.get());

    let dialog = DialogId::Chat(chat);
    let id = portal.post_reply(dialog, "Yes, we [b]do[/b].").await.expect("reply");

    let inbox = emu.customer_inbox(PHONE);
    assert!(inbox.iter().any(|m| m.message_id == id.get() && m.author_id == bot.get() && m.text == "Yes, we do."), "{inbox:?}");
    let post = calls_of(&emu, "imbot.message.add");
    assert_eq!(post[0].params["CLIENT_ID"], "olbridge-test-client");
    assert_eq!(post[0].params["BOT_ID"].to_string().trim_matches('"'), bot.to_string());

    let after = portal.messages_after(dialog, first).await.expect("messages");
    assert!(after.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    assert!(after.iter().all(|m| m.id > first));
    assert!(after.iter().any(|m| m.id == id && m.author_id == bot.get() && m.text == "Yes, we [b]do[/b]."), "{after:?}");
    assert!(portal.messages_after(dialog, id).await.expect("none newer").is_empty());
}

#[tokio::test]
async fn messages_after_follows_pages() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let c = fast_client(&demo.webhook_url);
    let bot = register_bot(&emu, &c, demo.whatsapp_line_id).await;
    let (chat, first) = customer_chat(&emu, demo.whatsapp_line_id).await;
    let portal = BotPortal::new(c, bot, client_id());
    for i in 0..120 {
        portal.post_reply(DialogId::Chat(chat), &format!("part {i}")).await.expect("reply");
    }
    let after = portal.messages_after(DialogId::Chat(chat), first).await.expect("messages");
    let ours: Vec<&str> = after.iter().filter(|m| m.author_id == bot.get()).map(|m| m.text.as_str()).collect();
    assert_eq!(ours.len(), 120);
    assert_eq!((ours[0], ours[119]), ("part 0", "part 119"));
    assert!(calls_of(&emu, "im.dialog.messages.get").len() >= 3, "120 messages take several pages of 50");
}

#[tokio::test]
async fn a_second_transfer_finds_a_human_already() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let c = fast_client(&demo.webhook_url);
    let bot = register_bot(&emu, &c, demo.whatsapp_line_id).await;
    let (chat, _) = customer_chat(&emu, demo.whatsapp_line_id).await;
    assert_eq!(emu.chat(chat.get()).and_then(|s| s.operator_id), Some(bot.get()), "the welcome bot serves first");
    let portal = BotPortal::new(c, bot, client_id());

    assert_eq!(portal.transfer_to_operator(chat).await, Ok(Transfer::Done));
    let operator = emu.chat(chat.get()).and_then(|s| s.operator_id);
    assert!(operator.is_some_and(|o| o != bot.get()), "a human serves now: {operator:?}");
    assert_eq!(portal.transfer_to_operator(chat).await, Ok(Transfer::AlreadyHuman));
    let calls = calls_of(&emu, "imopenlines.bot.session.operator");
    assert_eq!(calls.iter().map(|c| c.error.clone()).collect::<Vec<_>>(), vec![None, Some("WRONG_CHAT".to_owned())]);
}

#[tokio::test]
async fn typing_gives_way_when_the_bucket_is_near_full() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let setup = fast_client(&demo.webhook_url);
    let bot = register_bot(&emu, &setup, demo.whatsapp_line_id).await;
    let (chat, _) = customer_chat(&emu, demo.whatsapp_line_id).await;
    // A bucket that barely drains: burst 6, optional calls only while counter + 1 <= 3.
    let c = client(&demo.webhook_url, RatePlan { per_sec: 0.01, burst: 6, optional_reserve: 3, adaptive: true }, RetryPolicy::none());
    let portal = BotPortal::new(c.clone(), bot, client_id());

    assert_eq!(portal.typing(DialogId::Chat(chat)).await, Ok(true));
    for _ in 0..3 {
        c.limiter().acquire(Priority::Essential).await;
    }
    assert_eq!(portal.typing(DialogId::Chat(chat)).await, Ok(false), "skipped: replies need the budget");
    assert_eq!(calls_of(&emu, "imbot.chat.sendTyping").len(), 1);
    // The reserve is still there for the reply itself.
    portal.post_reply(DialogId::Chat(chat), "Here is your answer").await.expect("reply goes");
    assert_eq!(emu.chat(chat.get()).map(|s| s.typing), Some(vec![bot.get()]));
}

#[tokio::test]
async fn replies_are_not_replayed_when_they_may_have_landed() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let c = fast_client(&demo.webhook_url);
    let bot = register_bot(&emu, &c, demo.whatsapp_line_id).await;
    let (chat, _) = customer_chat(&emu, demo.whatsapp_line_id).await;
    let portal = BotPortal::new(c, bot, client_id());
    let dialog = DialogId::Chat(chat);

    emu.inject_fault(Fault::error("imbot.message.add", 1, "INTERNAL_SERVER_ERROR", "Internal server error", 500));
    let err = portal.post_reply(dialog, "first try").await.expect_err("a 500 is returned, not replayed");
    assert_eq!(err.kind, PortalErrorKind::Retryable);
    assert_eq!(calls_of(&emu, "imbot.message.add").len(), 1);

    emu.inject_fault(Fault::error("imbot.message.add", 1, "QUERY_LIMIT_EXCEEDED", "Too many requests", 503));
    portal.post_reply(dialog, "second try").await.expect("a refusal before processing is replayed");
    assert_eq!(calls_of(&emu, "imbot.message.add").len(), 3);
    let inbox: Vec<String> = emu.customer_inbox(PHONE).into_iter().map(|m| m.text).collect();
    assert_eq!(inbox.iter().filter(|t| *t == "second try").count(), 1, "{inbox:?}");
}

#[tokio::test]
async fn failures_keep_their_class_through_the_port() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let c = fast_client(&demo.webhook_url);
    let bot = register_bot(&emu, &c, demo.whatsapp_line_id).await;
    let (chat, _) = customer_chat(&emu, demo.whatsapp_line_id).await;
    let wrong = BotPortal::new(c.clone(), bot, Secret::new("someone-else"));
    let err = wrong.post_reply(DialogId::Chat(chat), "hi").await.expect_err("wrong client id");
    assert_eq!(err.kind, PortalErrorKind::Permanent, "{err}");
    emu.inject_fault(Fault::error("imopenlines.bot.session.operator", 1, "insufficient_scope", "", 403));
    let err = BotPortal::new(c, bot, client_id()).transfer_to_operator(chat).await.expect_err("scope");
    assert_eq!((err.kind, err.code.as_str()), (PortalErrorKind::Auth, "insufficient_scope"));
}

#[tokio::test]
async fn the_service_user_serves_and_hands_over_in_operator_mode() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    // The client's polling setup: the service user first in a WhatsApp line's queue.
    let line = emu.add_line(b24_emulator::NewLine {
        name: "WhatsApp (polled)".into(),
        connector_id: Some("whatsappbyedna".into()),
        queue: vec![demo.service_user_id, demo.operator_id],
        ..b24_emulator::NewLine::default()
    });
    let (chat, first) = customer_chat(&emu, line).await;
    assert_eq!(emu.chat(chat.get()).and_then(|s| s.operator_id), Some(demo.service_user_id), "first in the queue");
    let portal = OperatorPortal::new(fast_client(&demo.webhook_url), None);
    assert_eq!(portal.author_id(), demo.service_user_id);

    let id = portal.post_reply(DialogId::Chat(chat), "Hello from the assistant").await.expect("reply");
    assert!(emu.customer_inbox(PHONE).iter().any(|m| m.message_id == id.get() && m.text == "Hello from the assistant"));
    assert_eq!(portal.typing(DialogId::Chat(chat)).await, Ok(true));
    let after = portal.messages_after(DialogId::Chat(chat), first).await.expect("messages");
    assert!(after.iter().any(|m| m.id == id));

    assert_eq!(portal.transfer_to_operator(chat).await, Ok(Transfer::Done));
    assert_eq!(emu.chat(chat.get()).and_then(|s| s.operator_id), Some(demo.operator_id));
    assert_eq!(portal.transfer_to_operator(chat).await, Ok(Transfer::AlreadyHuman));
    assert_eq!(calls_of(&emu, "imopenlines.operator.transfer").len(), 1);
}

#[tokio::test]
async fn when_a_human_holds_the_chat_the_operator_portal_tells_them_in_a_system_message_only_operators_see() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    // The demo's WhatsApp line puts the human first: she holds every new session.
    let (chat, _) = customer_chat(&emu, demo.whatsapp_line_id).await;
    assert_eq!(emu.chat(chat.get()).and_then(|s| s.operator_id), Some(demo.operator_id));
    let portal = OperatorPortal::new(fast_client(&demo.webhook_url), None);
    portal.post_reply(DialogId::Chat(chat), "Hi! How can I help?").await.expect("the service user answers in her chat");

    assert_eq!(portal.transfer_to_operator(chat).await, Ok(Transfer::AlreadyHuman));
    assert!(calls_of(&emu, "imopenlines.operator.transfer").is_empty(), "nothing to transfer");
    let snapshot = emu.chat(chat.get()).expect("chat");
    assert_eq!(snapshot.operator_id, Some(demo.operator_id), "she keeps it");
    let note = snapshot.messages.iter().find(|m| m.text == OperatorPortal::HOLDER_NOTICE).expect("the holder was told");
    assert!(note.system && !note.to_customer, "visible to operators only: {note:?}");
    assert!(emu.customer_inbox(PHONE).iter().all(|m| m.text != OperatorPortal::HOLDER_NOTICE), "never on WhatsApp");
}

#[tokio::test]
async fn a_configured_target_gets_the_chat_and_the_service_user_never_transfers_to_itself() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let second = emu.add_employee("Omar", "Operator");
    let line = emu.add_line(b24_emulator::NewLine {
        name: "WhatsApp (polled)".into(),
        connector_id: Some("whatsappbyedna".into()),
        queue: vec![demo.service_user_id, demo.operator_id, second],
        ..b24_emulator::NewLine::default()
    });
    let (chat, _) = customer_chat(&emu, line).await;
    let to = olbridge_core::b24::imopenlines::TransferTarget::User(olbridge_core::domain::ids::UserId::new(second).unwrap());
    let portal = OperatorPortal::new(fast_client(&demo.webhook_url), Some(to));
    assert_eq!(portal.transfer_to_operator(chat).await, Ok(Transfer::Done));
    assert_eq!(emu.chat(chat.get()).and_then(|s| s.operator_id), Some(second), "the configured operator, not the queue's first human");

    // Configured as the service user itself (a mistake): the line's queue instead, never itself.
    let emu_chat = emu.customer_writes(line, "+49 151 7654321", "Hi").await.unwrap().chat_id;
    let me = olbridge_core::b24::imopenlines::TransferTarget::User(olbridge_core::domain::ids::UserId::new(demo.service_user_id).unwrap());
    let portal = OperatorPortal::new(fast_client(&demo.webhook_url), Some(me));
    assert_eq!(portal.transfer_to_operator(ChatId::new(emu_chat).unwrap()).await, Ok(Transfer::Done));
    assert_eq!(emu.chat(emu_chat).and_then(|s| s.operator_id), Some(demo.operator_id));
}
