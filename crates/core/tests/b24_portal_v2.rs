//! The Chatbots 2.0 `Portal` adapter (`BotV2Portal`) against the emulator: replies with
//! `imbot.v2.Chat.Message.send`, typing with `imbot.v2.Chat.InputAction.notify`, handoff with
//! `imopenlines.bot.session.operator` + `CLIENT_ID = botToken`, and the fetch-mode event feed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod b24_support;

use b24_emulator::{Emulator, Fault, RateLimit};
use b24_support::{calls_of, client, emulator, fast_client};
use olbridge_core::b24::imbot::{BotProperties, V2BotRegistration, V2EventMode};
use olbridge_core::b24::{B24Client, BotV2Portal, Priority, RatePlan};
use olbridge_core::domain::ids::{BotId, ChatId, DialogId, MessageId};
use olbridge_core::domain::secret::Secret;
use olbridge_core::ports::{EventFeed, Portal, PortalErrorKind, Transfer};
use olbridge_core::retry::RetryPolicy;

const PHONE: &str = "+49 151 7654321";

fn token() -> Secret {
    Secret::new("olbridge-v2-test-token")
}

/// Registers a v2 Open Lines bot through the webhook and makes it the WhatsApp line's welcome bot.
async fn register(emu: &Emulator, c: &B24Client, line: u64, mode: V2EventMode) -> BotId {
    let r = V2BotRegistration {
        code: "olbridge_v2".into(),
        properties: BotProperties { name: "Assistant".into(), ..Default::default() },
        mode,
        bot_token: token(),
    };
    let bot = c.imbot_v2_bot_register(&r).await.expect("imbot.v2.Bot.register");
    assert_eq!(bot.kind, "openline");
    emu.attach_welcome_bot(line, bot.id).expect("welcome bot");
    BotId::new(bot.id).expect("bot id")
}

fn webhook_mode() -> V2EventMode {
    V2EventMode::Webhook("http://127.0.0.1:9/bitrix/events".into())
}

async fn customer_chat(emu: &Emulator, line: u64) -> (ChatId, MessageId) {
    let m = emu.customer_writes(line, PHONE, "Hello, do you ship to Austria?").await.expect("customer writes");
    (ChatId::new(m.chat_id).expect("chat"), MessageId::new(m.message_id).expect("message"))
}

#[tokio::test]
async fn replies_reach_the_customer_with_the_bot_token_and_can_be_read_back() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let c = fast_client(&demo.webhook_url);
    let bot = register(&emu, &c, demo.whatsapp_line_id, webhook_mode()).await;
    let (chat, first) = customer_chat(&emu, demo.whatsapp_line_id).await;
    let portal = BotV2Portal::new(c, bot, token());
    assert_eq!(portal.author_id(), bot.get());

    let dialog = DialogId::Chat(chat);
    let id = portal.post_reply(dialog, "Yes, we [b]do[/b].").await.expect("reply");
    let inbox = emu.customer_inbox(PHONE);
    assert!(inbox.iter().any(|m| m.message_id == id.get() && m.author_id == bot.get() && m.text == "Yes, we do."), "{inbox:?}");
    let sent = calls_of(&emu, "imbot.v2.Chat.Message.send");
    assert_eq!(sent[0].params["botToken"], "olbridge-v2-test-token");
    assert_eq!(sent[0].params["dialogId"], format!("chat{chat}"));
    assert_eq!(sent[0].params["fields"]["message"], "Yes, we [b]do[/b].");

    let after = portal.messages_after(dialog, first).await.expect("messages");
    assert!(after.iter().any(|m| m.id == id && m.author_id == bot.get()), "{after:?}");
}

#[tokio::test]
async fn a_bot_no_longer_in_the_chat_is_a_permanent_refusal_and_the_handoff_uses_the_bot_token() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let c = fast_client(&demo.webhook_url);
    let bot = register(&emu, &c, demo.whatsapp_line_id, webhook_mode()).await;
    let (chat, _) = customer_chat(&emu, demo.whatsapp_line_id).await;
    let portal = BotV2Portal::new(c, bot, token());

    assert_eq!(portal.transfer_to_operator(chat).await, Ok(Transfer::Done));
    let operator = emu.chat(chat.get()).and_then(|s| s.operator_id);
    assert!(operator.is_some_and(|o| o != bot.get()), "a human serves now: {operator:?}");
    let calls = calls_of(&emu, "imopenlines.bot.session.operator");
    assert_eq!(calls[0].params["CLIENT_ID"], "olbridge-v2-test-token");
    assert_eq!(portal.transfer_to_operator(chat).await, Ok(Transfer::AlreadyHuman), "WRONG_CHAT: a human has it");

    // The bot left the chat with the handoff: the portal refuses its reply for good.
    let err = portal.post_reply(DialogId::Chat(chat), "still there?").await.expect_err("not a member");
    assert_eq!((err.kind.clone(), err.code.as_str()), (PortalErrorKind::Permanent, "ACCESS_DENIED"), "{err}");
}

#[tokio::test]
async fn a_wrong_token_is_an_auth_failure_not_a_refusal() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let c = fast_client(&demo.webhook_url);
    let bot = register(&emu, &c, demo.whatsapp_line_id, webhook_mode()).await;
    let (chat, _) = customer_chat(&emu, demo.whatsapp_line_id).await;
    let wrong = BotV2Portal::new(c.clone(), bot, Secret::new("someone-else"));
    let err = wrong.post_reply(DialogId::Chat(chat), "hi").await.expect_err("wrong token");
    assert_eq!((err.kind.clone(), err.code.as_str()), (PortalErrorKind::Auth, "BOT_OWNERSHIP_ERROR"), "{err}");
    emu.inject_fault(Fault::error("imbot.v2.Chat.Message.send", 1, "INTERNAL_SERVER_ERROR", "Internal error", 500));
    let err = BotV2Portal::new(c, bot, token()).post_reply(DialogId::Chat(chat), "hi").await.expect_err("a 500");
    assert_eq!(err.kind, PortalErrorKind::Retryable);
    assert_eq!(calls_of(&emu, "imbot.v2.Chat.Message.send").len(), 2, "a send that may have landed is not replayed");
}

#[tokio::test]
async fn typing_is_optional_and_gives_way_when_the_bucket_is_near_full() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let setup = fast_client(&demo.webhook_url);
    let bot = register(&emu, &setup, demo.whatsapp_line_id, webhook_mode()).await;
    let (chat, _) = customer_chat(&emu, demo.whatsapp_line_id).await;
    let c = client(&demo.webhook_url, RatePlan { per_sec: 0.01, burst: 6, optional_reserve: 3, adaptive: true }, RetryPolicy::none());
    let portal = BotV2Portal::new(c.clone(), bot, token());

    assert_eq!(portal.typing(DialogId::Chat(chat)).await, Ok(true));
    for _ in 0..3 {
        c.limiter().acquire(Priority::Essential).await;
    }
    assert_eq!(portal.typing(DialogId::Chat(chat)).await, Ok(false), "skipped: replies need the budget");
    assert_eq!(calls_of(&emu, "imbot.v2.Chat.InputAction.notify").len(), 1);
    assert_eq!(emu.chat(chat.get()).map(|s| s.typing), Some(vec![bot.get()]));
}

#[tokio::test]
async fn the_event_feed_is_acknowledged_only_by_the_next_offset() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let c = fast_client(&demo.webhook_url);
    let bot = register(&emu, &c, demo.whatsapp_line_id, V2EventMode::Fetch).await;
    let (_, message) = customer_chat(&emu, demo.whatsapp_line_id).await;
    let feed = BotV2Portal::new(c, bot, token());

    let page = feed.fetch(None, 100).await.expect("events");
    let types: Vec<&str> = page.events.iter().map(|e| e.raw["type"].as_str().unwrap_or("")).collect();
    assert_eq!(types, ["ONIMBOTV2JOINCHAT", "ONIMBOTV2MESSAGEADD"]);
    assert_eq!(page.events[1].raw["data"]["message"]["id"], serde_json::json!(message.get()));
    assert!(page.events[1].raw["date"].is_string());
    let ack = page.ack_offset().expect("an offset");
    assert_eq!(feed.fetch(None, 100).await.expect("again").events.len(), 2, "nothing acknowledged yet");
    let one = feed.fetch(None, 1).await.expect("limit 1");
    assert_eq!((one.events.len(), one.has_more), (1, true));
    assert!(feed.fetch(Some(ack), 100).await.expect("acknowledged").events.is_empty());
}
