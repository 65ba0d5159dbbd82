//! Chatbots 2.0: fetch mode (offset-acknowledged queue) and webhook mode (form-encoded POSTs).

use crate::common::*;
use serde_json::{Value, json};

async fn register(p: &Portal, token: &str, mode: &str, url: Option<&str>) -> u64 {
    let mut fields = json!({"code": format!("b_{token}"), "type": "openline", "eventMode": mode, "properties": {"name": "V2"}});
    if let Some(u) = url {
        fields["webhookUrl"] = json!(u);
    }
    let reg = p.ok("imbot.v2.Bot.register", json!({"botToken": token, "fields": fields})).await;
    reg["bot"]["id"].as_u64().expect("id")
}

fn types(events: &Value) -> Vec<String> {
    events.as_array().map(|a| a.iter().map(|e| e["type"].as_str().unwrap_or("").to_owned()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn fetch_mode_queue_is_acknowledged_by_offset() {
    let p = start().await;
    let bot = register(&p, "t1", "fetch", None).await;
    p.emu.attach_welcome_bot(3, bot).expect("attach");
    let m = p.emu.customer_writes(3, "+491703330000", "Hello bot!").await.expect("write");
    let auth = json!({"botId": bot, "botToken": "t1"});
    let r = p.ok("imbot.v2.Event.get", auth.clone()).await;
    assert_eq!(types(&r["events"]), ["ONIMBOTV2JOINCHAT", "ONIMBOTV2MESSAGEADD"]);
    let msg = &r["events"][1]["data"];
    assert_eq!(msg["message"]["id"], json!(m.message_id));
    assert_eq!(msg["message"]["text"], "Hello bot!");
    assert_eq!(msg["chat"]["dialogId"], format!("chat{}", m.chat_id));
    assert_eq!(msg["chat"]["entityType"], "LINES");
    assert_eq!(msg["user"]["connector"], json!(true));
    assert_eq!(msg["bot"]["eventMode"], "fetch");
    let next = r["nextOffset"].as_u64().expect("next");
    // Not acknowledged yet: the same events again.
    assert_eq!(types(&p.ok("imbot.v2.Event.get", auth.clone()).await["events"]).len(), 2);
    p.emu.customer_writes(3, "+491703330000", "second").await.expect("write");
    let r = p.ok("imbot.v2.Event.get", json!({"botId": bot, "botToken": "t1", "offset": next, "limit": 1})).await;
    assert_eq!(types(&r["events"]), ["ONIMBOTV2MESSAGEADD"]);
    assert_eq!(r["hasMore"], json!(false));
    // Reply and handoff through the same methods as v1.
    let sent = p
        .ok("imbot.v2.Chat.Message.send", json!({"botId": bot, "botToken": "t1", "dialogId": format!("chat{}", m.chat_id), "fields": {"message": "Hi!"}}))
        .await;
    assert!(sent["id"].is_u64());
    assert_eq!(p.emu.customer_inbox("+491703330000").last().map(|i| i.text.clone()), Some("Hi!".to_owned()));
    assert_eq!(p.ok("imbot.v2.Chat.InputAction.notify", json!({"botId": bot, "botToken": "t1", "dialogId": format!("chat{}", m.chat_id)})).await, json!(true));
    p.ok("imopenlines.bot.session.transfer", json!({"CHAT_ID": m.chat_id, "QUEUE_ID": 3, "CLIENT_ID": "t1"})).await;
    let (s, b) = p
        .call("imbot.v2.Chat.Message.send", json!({"botId": bot, "botToken": "t1", "dialogId": format!("chat{}", m.chat_id), "fields": {"message": "x"}}))
        .await;
    assert_eq!((s, b["error"].as_str()), (403, Some("ACCESS_DENIED")));
}

#[tokio::test]
async fn documented_errors() {
    let p = start().await;
    let bot = register(&p, "t2", "fetch", None).await;
    let cases = [
        (json!({"botId": bot}), "BOT_TOKEN_NOT_SPECIFIED"),
        (json!({"botToken": "t2"}), "BOT_ID_REQUIRED"),
        (json!({"botId": 1, "botToken": "t2"}), "BOT_NOT_FOUND"),
        (json!({"botId": bot, "botToken": "other"}), "BOT_OWNERSHIP_ERROR"),
    ];
    for (params, code) in cases {
        let (s, b) = p.call("imbot.v2.Event.get", params).await;
        assert!(s == 400 || s == 403, "{code}: {s}");
        assert_eq!(b["error"], code);
    }
    // DOC bot-register.md: idempotent for the same application and code; another application gets the error.
    let again = p.ok("imbot.v2.Bot.register", json!({"botToken": "t2", "fields": {"code": "b_t2", "properties": {"name": "x"}}})).await;
    assert_eq!((again["bot"]["id"].as_u64(), again["bot"]["appId"].as_str()), (Some(bot), Some("v2:t2")));
    let (_, b) = p.call("imbot.v2.Bot.register", json!({"botToken": "t9", "fields": {"code": "b_t2", "properties": {"name": "x"}}})).await;
    assert_eq!(b["error"], "BOT_CODE_ALREADY_TAKEN");
    let (_, b) = p.call("imbot.v2.Bot.register", json!({"botToken": "t3", "fields": {"code": "c", "eventMode": "webhook", "properties": {"name": "x"}}})).await;
    assert_eq!(b["error"], "BOT_WEBHOOK_URL_REQUIRED");
    let (_, b) = p.call("imbot.v2.Chat.Message.send", json!({"botId": bot, "botToken": "t2", "dialogId": "chat1", "fields": {"message": ""}})).await;
    assert_eq!(b["error"], "EMPTY_MESSAGE");
}

#[tokio::test]
async fn webhook_mode_posts_form_encoded_strings() {
    let p = start().await;
    let rx = receiver().await;
    let bot = register(&p, "t4", "webhook", Some(&rx.url)).await;
    p.emu.attach_welcome_bot(3, bot).expect("attach");
    let m = p.emu.customer_writes(3, "+491703330001", "hook").await.expect("write");
    assert!(p.emu.wait_idle(WAIT).await);
    let ev = rx.events("ONIMBOTV2MESSAGEADD").pop().expect("event");
    assert_all_strings(&ev, "");
    assert_eq!(ev["data"]["message"]["id"], m.message_id.to_string());
    assert_eq!(ev["data"]["message"]["isSystem"], "0");
    assert_eq!(ev["data"]["user"]["connector"], "1");
    assert_eq!(ev["data"]["bot"]["id"], bot.to_string());
    assert!(ev["data"]["bot"]["auth"]["application_token"].is_string());
    assert_eq!(ev["auth"]["application_token"], p.emu.v2_application_token());
    assert_eq!(ev["auth"]["domain"], p.emu.domain());
    let doc = crate::shape::fixture("v2_webhook_envelope.json");
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(keys(&ev), keys(&doc), "event, data, ts, auth (no event_handler_id in v2)");
    assert_eq!(keys(&ev["data"]["bot"]), keys(&doc["data"]["bot"]));
    for k in keys(&doc["auth"]) {
        assert!(ev["auth"].get(&k).is_some(), "auth.{k}");
    }
}

#[tokio::test]
async fn commands_join_delete_and_open_lines_sessions_through_the_bot_token() {
    let p = start().await;
    let rx = receiver().await;
    let bot = register(&p, "t5", "webhook", Some(&rx.url)).await;
    let cmd = p.ok("imbot.v2.Command.register", json!({"botId": bot, "botToken": "t5", "fields": {"command": "rate", "title": {"en": "Rate"}}})).await;
    assert_eq!(cmd["command"]["command"], "/rate");
    let again = p.ok("imbot.v2.Command.register", json!({"botId": bot, "botToken": "t5", "fields": {"command": "rate", "title": {"en": "Rate"}}})).await;
    assert_eq!(again["command"]["id"], cmd["command"]["id"], "idempotent");
    let (_, b) = p.call("imbot.v2.Command.register", json!({"botId": bot, "botToken": "t5", "fields": {"command": "x"}})).await;
    assert_eq!(b["error"], "COMMAND_TITLE_REQUIRED");
    let (_, b) = p.call("imbot.v2.Command.register", json!({"botId": bot, "botToken": "t5", "fields": {"title": {"en": "x"}}})).await;
    assert_eq!(b["error"], "COMMAND_REQUIRED");
    // The website widget (line 1) shows keyboards; WhatsApp would not.
    p.emu.attach_welcome_bot(1, bot).expect("attach");
    let m = p.emu.customer_writes(1, "+491703330010", "hi").await.expect("write");
    let dialog = format!("chat{}", m.chat_id);
    p.ok(
        "imbot.v2.Chat.Message.send",
        json!({"botId": bot, "botToken": "t5", "dialogId": dialog, "fields": {"message": "Helpful?",
        "keyboard": [{"TEXT": "Yes", "COMMAND": "rate", "COMMAND_PARAMS": "up"}]}}),
    )
    .await;
    p.emu.customer_presses(m.chat_id, bot, "rate", "up").await.expect("press");
    assert!(p.emu.wait_idle(WAIT).await);
    let join = rx.events("ONIMBOTV2JOINCHAT").pop().expect("join");
    assert_eq!(join["data"]["dialogId"], dialog);
    assert_eq!(join["data"]["chat"]["entityType"], "LINES");
    assert_eq!(join["data"]["user"]["id"], m.user_id.to_string());
    let ev = rx.events("ONIMBOTV2COMMANDADD").pop().expect("command event");
    assert_all_strings(&ev, "");
    assert_eq!(ev["data"]["command"]["command"], "/rate");
    assert_eq!(ev["data"]["command"]["params"], "up");
    assert_eq!(ev["data"]["command"]["context"], "keyboard");
    assert_eq!(ev["data"]["message"]["text"], "/rate up");
    assert_eq!(ev["data"]["user"]["connector"], "1");
    // Open Lines session methods take the botToken as CLIENT_ID.
    let (s, b) = p.call("imopenlines.bot.session.finish", json!({"CHAT_ID": m.chat_id, "CLIENT_ID": "nope"})).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("BOT_ID_ERROR")));
    assert_eq!(p.ok("imopenlines.bot.session.finish", json!({"CHAT_ID": m.chat_id, "CLIENT_ID": "t5"})).await, json!(true));
    assert!(!p.emu.chat(m.chat_id).expect("chat").session_open);
    // Unregistering: ONIMBOTV2DELETE carries only the bot.
    p.ok("imbot.v2.Bot.unregister", json!({"botId": bot, "botToken": "t5"})).await;
    assert!(p.emu.wait_idle(WAIT).await);
    let del = rx.events("ONIMBOTV2DELETE").pop().expect("delete");
    let keys: Vec<String> = del["data"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    assert_eq!(keys, ["bot"]);
}
