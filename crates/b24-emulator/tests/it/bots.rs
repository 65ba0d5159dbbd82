//! v1 bot registration details, commands and unregistration.

use crate::common::*;
use b24_emulator::{EmulatorConfig, RateLimit};
use serde_json::json;

#[tokio::test]
async fn register_validates_and_stays_listable() {
    let p = start().await;
    let (s, b) = p.call("imbot.register", json!({"CODE": "x", "EVENT_HANDLER": "http://h/x", "PROPERTIES": {"NAME": "X"}})).await;
    assert_eq!((s, b["error"].as_str(), b["error_description"].as_str()), (403, Some("ACCESS_DENIED"), Some("Access denied! Client ID not specified")));
    let (_, b) = p.call("imbot.register", json!({"CODE": "x", "PROPERTIES": {"NAME": "X"}, "CLIENT_ID": "c"})).await;
    assert_eq!(b["error"], "EVENT_MESSAGE_ADD_ERROR");
    let (_, b) = p.call("imbot.register", json!({"EVENT_HANDLER": "http://h/x", "PROPERTIES": {"NAME": "X"}, "CLIENT_ID": "c"})).await;
    assert_eq!(b["error"], "CODE_ERROR");
    let (_, b) = p.call("imbot.register", json!({"CODE": "x", "EVENT_HANDLER": "http://h/x", "CLIENT_ID": "c"})).await;
    assert_eq!(b["error"], "NAME_ERROR");
    let (_, b) = p.call("imbot.register", json!({"CODE": "x", "EVENT_HANDLER": "not a url", "PROPERTIES": {"NAME": "X"}, "CLIENT_ID": "c"})).await;
    assert_eq!(b["error"], "EVENT_MESSAGE_ADD_ERROR");
    assert_eq!(p.ok("imbot.bot.list", json!({})).await, json!([]), "PHP encodes an empty list as []");
    let id = p
        .ok("imbot.register", json!({"CODE": "newbot", "TYPE": "O", "EVENT_HANDLER": "http://h/x?a=1", "PROPERTIES": {"NAME": "NewBot"}, "CLIENT_ID": "c"}))
        .await;
    let list = p.ok("imbot.bot.list", json!({})).await;
    assert_eq!(list[id.to_string()], json!({"ID": id, "NAME": "NewBot", "CODE": "newbot", "OPENLINE": "Y"}));
    let (s, b) = p.call("imbot.register", json!({"CODE": "newbot", "EVENT_HANDLER": "http://h/x", "PROPERTIES": {"NAME": "Again"}, "CLIENT_ID": "c"})).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("WRONG_REQUEST")), "same CODE for the same CLIENT_ID");
    let bots = p.http.get(format!("{}/_emulator/bots", p.emu.base_url())).send().await.expect("get").json::<serde_json::Value>().await.expect("json");
    assert_eq!(bots[0]["handlers"]["message_add"], "http://h/x?a=1&CLIENT_ID=c");
}

#[tokio::test]
async fn keyboard_command_and_unregister_events() {
    let p = start().await;
    let rx = receiver().await;
    let bot = p.register_bot(&rx.url, "k1").await;
    let cmd = p
        .ok(
            "imbot.command.register",
            json!({"BOT_ID": bot, "COMMAND": "rate", "EVENT_COMMAND_ADD": rx.url, "LANG": [{"LANGUAGE_ID": "en", "TITLE": "Rate"}], "CLIENT_ID": "k1"}),
        )
        .await;
    // The website widget (line 1, `livechat`) shows keyboards; WhatsApp does not (see below).
    p.emu.attach_welcome_bot(1, bot).expect("attach");
    let m = p.emu.customer_writes(1, "+491706660000", "hi").await.expect("write");
    let (_, b) = p
        .call(
            "imbot.message.add",
            json!({"BOT_ID": bot, "DIALOG_ID": format!("chat{}", m.chat_id), "MESSAGE": "Rate me", "KEYBOARD": [{"NOPE": 1}], "CLIENT_ID": "k1"}),
        )
        .await;
    assert_eq!(b["error"], "KEYBOARD_ERROR");
    let kb = json!({"BUTTONS": [{"TEXT": "👍", "COMMAND": "rate", "COMMAND_PARAMS": "up"}, {"TYPE": "NEWLINE"}, {"TEXT": "👎", "COMMAND": "rate", "COMMAND_PARAMS": "down"}]});
    let msg = p
        .ok(
            "imbot.message.add",
            json!({"BOT_ID": bot, "DIALOG_ID": format!("chat{}", m.chat_id), "MESSAGE": "Rate me", "KEYBOARD": kb.to_string(), "CLIENT_ID": "k1"}),
        )
        .await;
    assert_eq!(
        p.emu.customer_inbox("+491706660000").last().and_then(|i| i.keyboard.clone()),
        Some(kb["BUTTONS"].clone()),
        "the widget shows the buttons (stored normalised)"
    );
    p.emu.customer_presses(m.chat_id, bot, "rate", "down").await.expect("press");
    assert!(p.emu.customer_presses(m.chat_id, bot, "nope", "").await.is_err());
    assert!(p.emu.customer_presses(m.chat_id, bot, "rate", "sideways").await.is_err(), "no such button");
    p.ok("imbot.unregister", json!({"BOT_ID": bot, "CLIENT_ID": "k1"})).await;
    assert!(p.emu.wait_idle(WAIT).await);
    let c = rx.events("ONIMCOMMANDADD").pop().expect("command event");
    let entry = &c["data"]["COMMAND"][cmd.to_string()];
    assert_eq!(entry["COMMAND_PARAMS"], "down");
    assert_eq!(entry["MESSAGE_ID"], msg.to_string());
    assert_eq!(c["data"]["USER"]["ID"], m.user_id.to_string());
    let d = rx.events("ONIMBOTDELETE").pop().expect("delete event");
    assert_eq!(d["data"], json!({"BOT_ID": bot.to_string(), "BOT_CODE": "bot_k1"}));
    assert!(rx.received().last().is_some_and(|r| r.uri.contains("CLIENT_ID=k1")));
    assert_eq!(p.ok("imbot.bot.list", json!({})).await, json!([]));
    let chat = p.emu.chat(m.chat_id).expect("chat");
    assert!(!chat.members.contains(&bot));
    assert_eq!(chat.operator_id, Some(p.demo.operator_id), "an unregistered bot's chats go to the queue");
    let (_, b) = p.call("imbot.unregister", json!({"BOT_ID": bot, "CLIENT_ID": "k1"})).await;
    assert_eq!(b["error"], "BOT_ID_ERROR");
}

#[tokio::test]
async fn a_whatsapp_customer_sees_no_keyboard_and_cannot_press_one() {
    let p = start().await;
    let rx = receiver().await;
    let bot = p.register_bot(&rx.url, "k2").await;
    p.ok(
        "imbot.command.register",
        json!({"BOT_ID": bot, "COMMAND": "rate", "EVENT_COMMAND_ADD": rx.url, "LANG": [{"LANGUAGE_ID": "en", "TITLE": "Rate"}], "CLIENT_ID": "k2"}),
    )
    .await;
    let m = p.emu.customer_writes(3, "+491706660001", "hi").await.expect("write");
    let kb = json!({"BUTTONS": [{"TEXT": "👍", "COMMAND": "rate", "COMMAND_PARAMS": "up"}]});
    p.ok("imbot.message.add", json!({"BOT_ID": bot, "DIALOG_ID": format!("chat{}", m.chat_id), "MESSAGE": "Rate me", "KEYBOARD": kb, "CLIENT_ID": "k2"})).await;
    let inbox = p.emu.customer_inbox("+491706660001");
    assert_eq!(inbox.last().map(|i| (i.text.as_str(), i.keyboard.is_none())), Some(("Rate me", true)), "the text arrives, the buttons do not");
    let err = p.emu.customer_presses(m.chat_id, bot, "rate", "up").await.expect_err("no buttons on WhatsApp");
    assert!(err.to_string().contains("KEYBOARD_NOT_SHOWN"), "{err}");
    assert!(p.emu.wait_idle(WAIT).await);
    assert!(rx.events("ONIMCOMMANDADD").is_empty());

    // If the evidence were wrong, one switch makes WhatsApp show them.
    let p = start_with(EmulatorConfig { rate: RateLimit::UNLIMITED, keyboards_reach_whatsapp: true, ..EmulatorConfig::default() }).await;
    let bot = p.register_bot(&rx.url, "k3").await;
    p.ok(
        "imbot.command.register",
        json!({"BOT_ID": bot, "COMMAND": "rate", "EVENT_COMMAND_ADD": rx.url, "LANG": [{"LANGUAGE_ID": "en", "TITLE": "Rate"}], "CLIENT_ID": "k3"}),
    )
    .await;
    let m = p.emu.customer_writes(3, "+491706660002", "hi").await.expect("write");
    p.ok("imbot.message.add", json!({"BOT_ID": bot, "DIALOG_ID": format!("chat{}", m.chat_id), "MESSAGE": "Rate me", "KEYBOARD": kb, "CLIENT_ID": "k3"})).await;
    assert!(p.emu.customer_inbox("+491706660002").last().is_some_and(|i| i.keyboard.is_some()));
    p.emu.customer_presses(m.chat_id, bot, "rate", "up").await.expect("press");
}
