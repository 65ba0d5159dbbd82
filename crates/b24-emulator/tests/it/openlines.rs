//! Open Lines rules with a v1 bot registered through the webhook.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn customer_message_reaches_welcome_bot_as_documented() {
    let p = start().await;
    let rx = receiver().await;
    let bot = p.register_bot(&rx.url, "olb-client").await;
    let m = p.emu.customer_writes(3, "+49 170 1234567", "Hello there").await.expect("write");
    assert!(p.emu.wait_idle(WAIT).await);
    let got = rx.received();
    assert_eq!(got.len(), 2, "join then message: {got:?}");
    let (join, msg) = (got[0].decoded(), got[1].decoded());
    assert_eq!(join["event"], "ONIMBOTJOINCHAT");
    assert_eq!(msg["event"], "ONIMBOTMESSAGEADD");
    assert!(got[1].uri.ends_with("/bitrix/events?CLIENT_ID=olb-client"), "{}", got[1].uri);
    assert_eq!(got[1].content_type, "application/x-www-form-urlencoded");
    assert_all_strings(&msg, "");
    let params = &msg["data"]["PARAMS"];
    assert_eq!(params["MESSAGE"], "Hello there");
    assert_eq!(params["CHAT_TYPE"], "L");
    assert_eq!(params["MESSAGE_TYPE"], "L");
    assert_eq!(params["CHAT_ENTITY_TYPE"], "LINES");
    assert_eq!(params["DIALOG_ID"], format!("chat{}", m.chat_id));
    assert_eq!(params["TO_USER_ID"], "0");
    assert_eq!(params["MESSAGE_ID"], m.message_id.to_string());
    assert_eq!(params["FROM_USER_ID"], m.user_id.to_string());
    let entity_id = params["CHAT_ENTITY_ID"].as_str().expect("entity id");
    assert_eq!(entity_id, format!("whatsappbyedna|3|491701234567@olbridge|{}", m.user_id));
    let d1: Vec<&str> = params["CHAT_ENTITY_DATA_1"].as_str().expect("d1").split('|').collect();
    assert_eq!(d1.len(), 10);
    assert_eq!((d1[0], d1[1], d1[5]), ("Y", "LEAD", m.session_id.to_string().as_str()));
    assert_eq!(msg["data"]["USER"]["IS_CONNECTOR"], "Y");
    assert_eq!(msg["data"]["USER"]["IS_EXTRANET"], "Y");
    assert_eq!(msg["data"]["BOT"][bot.to_string()]["BOT_ID"], bot.to_string());
    assert_eq!(msg["auth"]["application_token"], "olb-client");
    assert_eq!(msg["auth"]["domain"], p.emu.domain());
    assert_eq!(msg["auth"]["member_id"], p.emu.member_id());
    assert_eq!(msg["auth"]["client_endpoint"], format!("{}/rest/", p.emu.base_url()));
    let chat = p.emu.chat(m.chat_id).expect("chat");
    assert_eq!(chat.operator_id, Some(bot));
    assert!(chat.bot_in_chat.contains(&bot));
}

#[tokio::test]
async fn bot_replies_reach_the_customer_in_order_but_system_and_skip_connector_do_not() {
    let p = start().await;
    let rx = receiver().await;
    let bot = p.register_bot(&rx.url, "c1").await;
    let m = p.emu.customer_writes(3, "+491700000001", "hi").await.expect("write");
    let dialog = format!("chat{}", m.chat_id);
    let typing = p.ok("imbot.chat.sendTyping", json!({"BOT_ID": bot, "DIALOG_ID": dialog, "CLIENT_ID": "c1"})).await;
    assert_eq!(typing, json!(true));
    let mut ids = Vec::new();
    for (text, system, skip) in [("one", "N", "N"), ("internal", "Y", "N"), ("hidden", "N", "Y"), ("[b]two[/b]", "N", "N")] {
        let id = p
            .ok("imbot.message.add", json!({"BOT_ID": bot, "DIALOG_ID": dialog, "MESSAGE": text, "SYSTEM": system, "SKIP_CONNECTOR": skip, "CLIENT_ID": "c1"}))
            .await;
        ids.push(id.as_u64().expect("integer message id"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let inbox = p.emu.customer_inbox("+491700000001");
    let texts: Vec<&str> = inbox.iter().map(|i| i.text.as_str()).collect();
    assert_eq!(texts, ["one", "two"], "BB codes stripped for WhatsApp");
    assert_eq!(inbox[1].raw_text, "[b]two[/b]");
    assert!(inbox.iter().all(|i| i.author_id == bot));
    assert_eq!(p.emu.chat(m.chat_id).expect("chat").typing, vec![bot]);
    let (s, b) = p.call("imbot.message.add", json!({"BOT_ID": bot, "DIALOG_ID": dialog, "MESSAGE": "x", "CLIENT_ID": "other"})).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("APP_ID_ERROR")));
    let (s, b) = p.call("imbot.message.add", json!({"BOT_ID": bot, "DIALOG_ID": dialog, "MESSAGE": "  ", "CLIENT_ID": "c1"})).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("MESSAGE_EMPTY")));
}

#[tokio::test]
async fn service_user_polls_messages_newest_first() {
    let p = start().await;
    // The client's polling setup: the service user is the operator of a WhatsApp line.
    let line = p.emu.add_line(b24_emulator::NewLine {
        name: "WhatsApp (polled)".into(),
        connector_id: Some("whatsappbyedna".into()),
        queue: vec![p.demo.service_user_id],
        ..b24_emulator::NewLine::default()
    });
    let m1 = p.emu.customer_writes(line, "+491700000002", "first").await.expect("write");
    let m2 = p.emu.customer_writes(line, "+491700000002", "second").await.expect("write");
    assert_eq!(m1.chat_id, m2.chat_id);
    assert_eq!(m1.session_id, m2.session_id);
    let chat = p.emu.chat(m1.chat_id).expect("chat");
    assert_eq!(chat.operator_id, Some(p.demo.service_user_id), "no bot: first queue operator takes the chat");
    let recent = p.ok("im.recent.list", json!({})).await;
    let item = &recent["items"][0];
    assert_eq!(item["id"], format!("chat{}", m1.chat_id));
    assert_eq!(item["chat"]["entity_type"], "LINES");
    assert_eq!(item["lines"]["id"], json!(m1.session_id));
    let res = p.ok("im.dialog.messages.get", json!({"DIALOG_ID": format!("chat{}", m1.chat_id)})).await;
    let ids: Vec<u64> = res["messages"].as_array().expect("msgs").iter().map(|m| m["id"].as_u64().expect("id")).collect();
    assert_eq!(ids, vec![m2.message_id, m1.message_id]);
    let newer = p.ok("im.dialog.messages.get", json!({"DIALOG_ID": format!("chat{}", m1.chat_id), "FIRST_ID": m1.message_id})).await;
    assert_eq!(newer["messages"].as_array().map(Vec::len), Some(1));
    let (s, b) = p.call("im.dialog.messages.get", json!({"DIALOG_ID": format!("chat{}", m1.chat_id), "FIRST_ID": "abc"})).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("FIRST_ID_STRING")));
    let id = p.ok("im.message.add", json!({"DIALOG_ID": format!("chat{}", m1.chat_id), "MESSAGE": "Hello from AI"})).await;
    let inbox = p.emu.customer_inbox("491700000002");
    assert_eq!(inbox.last().map(|i| (i.message_id, i.text.as_str())), Some((id.as_u64().unwrap_or(0), "Hello from AI")));
    let other = p.emu.add_employee("Not", "Queue");
    let hook = p.emu.add_webhook(other, &["im"]);
    let (s, b) = p.call_at(&hook, "im.dialog.messages.get", json!({"DIALOG_ID": format!("chat{}", m1.chat_id)})).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("ACCESS_ERROR")));
}

#[tokio::test]
async fn handoff_to_operator_silences_the_bot() {
    let p = start().await;
    let rx = receiver().await;
    let bot = p.register_bot(&rx.url, "c2").await;
    let m = p.emu.customer_writes(3, "+491700000003", "I want a human").await.expect("write");
    assert_eq!(p.ok("imopenlines.bot.session.operator", json!({"CHAT_ID": m.chat_id})).await, json!(true));
    let chat = p.emu.chat(m.chat_id).expect("chat");
    assert_eq!(chat.operator_id, Some(p.demo.operator_id), "first human in the queue");
    assert!(!chat.members.contains(&bot));
    assert!(chat.messages.last().is_some_and(|m| m.system && m.author_id == 0));
    let (s, b) = p.call("imopenlines.bot.session.operator", json!({"CHAT_ID": m.chat_id})).await;
    assert_eq!((s, b["error"].as_str(), b["error_description"].as_str()), (400, Some("WRONG_CHAT"), Some("Operator is not a bot")));
    let (s, b) =
        p.call("imbot.message.add", json!({"BOT_ID": bot, "DIALOG_ID": format!("chat{}", m.chat_id), "MESSAGE": "still here?", "CLIENT_ID": "c2"})).await;
    assert_eq!((s, b["error"].as_str(), b["error_description"].as_str()), (400, Some("WRONG_REQUEST"), Some("Message isn't added")));
    p.emu.customer_writes(3, "+491700000003", "hello?").await.expect("write");
    assert!(p.emu.wait_idle(WAIT).await);
    assert_eq!(rx.events("ONIMBOTMESSAGEADD").len(), 1, "no bot event after handoff");
}

#[tokio::test]
async fn customer_zero_ends_bot_session_silently() {
    let p = start().await;
    let rx = receiver().await;
    let bot = p.register_bot(&rx.url, "c3").await;
    let m = p.emu.customer_writes(3, "+491700000004", "hi").await.expect("write");
    p.emu.customer_writes(3, "+491700000004", "0").await.expect("write");
    assert!(p.emu.wait_idle(WAIT).await);
    let msgs: Vec<String> = rx.events("ONIMBOTMESSAGEADD").iter().map(|e| e["data"]["PARAMS"]["MESSAGE"].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(msgs, ["hi"]);
    let chat = p.emu.chat(m.chat_id).expect("chat");
    assert_eq!(chat.operator_id, Some(p.demo.operator_id));
    assert!(!chat.bot_in_chat.contains(&bot));
    assert!(chat.messages.iter().any(|m| m.system && m.author_id == 0), "system message about the handoff");
}

#[tokio::test]
async fn finished_session_restarts_with_welcome_bot() {
    let p = start().await;
    let rx = receiver().await;
    let bot = p.register_bot(&rx.url, "c4").await;
    let m1 = p.emu.customer_writes(3, "+491700000005", "one").await.expect("write");
    p.emu.finish_session(m1.chat_id).await.expect("finish");
    let snap = p.emu.chat(m1.chat_id).expect("chat");
    assert!(!snap.session_open);
    assert_eq!(snap.members, vec![m1.user_id]);
    let m2 = p.emu.customer_writes(3, "+491700000005", "two").await.expect("write");
    assert_eq!(m2.chat_id, m1.chat_id);
    assert!(m2.session_id > m1.session_id);
    assert!(p.emu.wait_idle(WAIT).await);
    assert_eq!(rx.events("ONIMBOTJOINCHAT").len(), 2);
    let last = rx.events("ONIMBOTMESSAGEADD").pop().expect("event");
    let d1 = last["data"]["PARAMS"]["CHAT_ENTITY_DATA_1"].as_str().unwrap_or("").to_owned();
    assert_eq!(d1.split('|').nth(5), Some(m2.session_id.to_string().as_str()));
    assert_eq!(p.emu.chat(m2.chat_id).expect("chat").operator_id, Some(bot));
    // Bot-initiated finish works the same way.
    assert_eq!(p.ok("imopenlines.bot.session.finish", json!({"CHAT_ID": m2.chat_id, "CLIENT_ID": "c4"})).await, json!(true));
    assert!(!p.emu.chat(m2.chat_id).expect("chat").session_open);
}

#[tokio::test]
async fn employee_messages_reach_bot_with_is_connector_n() {
    let p = start().await;
    let rx = receiver().await;
    p.register_bot(&rx.url, "c5").await;
    let m = p.emu.customer_writes(3, "+491700000006", "hi").await.expect("write");
    let id = p.emu.operator_writes(m.chat_id, p.demo.operator_id, "Operator here").await.expect("op");
    assert!(p.emu.wait_idle(WAIT).await);
    let ev = rx.events("ONIMBOTMESSAGEADD").pop().expect("event");
    assert_eq!(ev["data"]["PARAMS"]["MESSAGE_ID"], id.to_string());
    assert_eq!(ev["data"]["USER"]["IS_CONNECTOR"], "N");
    assert_eq!(p.emu.customer_inbox("+491700000006").last().map(|i| i.message_id), Some(id));
}

#[tokio::test]
async fn polling_methods_follow_the_source() {
    let p = start().await;
    let me = p.demo.service_user_id;
    let line = p.emu.add_line(b24_emulator::NewLine { name: "WA".into(), queue: vec![me, p.demo.operator_id], ..b24_emulator::NewLine::default() });
    let m1 = p.emu.customer_writes(line, "+491700000020", "one").await.expect("write");
    let m2 = p.emu.customer_writes(line, "+491700000020", "two").await.expect("write");
    let m3 = p.emu.customer_writes(line, "+491700000020", "three").await.expect("write");
    let dialog = format!("chat{}", m1.chat_id);
    let ids = |b: &serde_json::Value| -> Vec<u64> { b["messages"].as_array().map(|a| a.iter().filter_map(|m| m["id"].as_u64()).collect()).unwrap_or_default() };
    // SRC Chat::getMessages: newest first, except after FIRST_ID (oldest first, the oldest `LIMIT` newer ones).
    let latest = p.ok("im.dialog.messages.get", json!({"DIALOG_ID": dialog})).await;
    assert_eq!(ids(&latest), [m3.message_id, m2.message_id, m1.message_id]);
    let newer = p.ok("im.dialog.messages.get", json!({"DIALOG_ID": dialog, "FIRST_ID": m1.message_id - 1, "LIMIT": 2})).await;
    assert_eq!(ids(&newer), [m1.message_id, m2.message_id]);
    let older = p.ok("im.dialog.messages.get", json!({"DIALOG_ID": dialog, "LAST_ID": m3.message_id, "LIMIT": 1})).await;
    assert_eq!(ids(&older), [m2.message_id]);
    assert_eq!(latest["users"][0]["id"], json!(m1.user_id));
    assert_eq!(latest["users"][0]["connector"], json!(true));
    let members = p.ok("im.dialog.users.list", json!({"DIALOG_ID": dialog})).await;
    let member_ids: Vec<u64> = members.as_array().expect("users").iter().filter_map(|u| u["id"].as_u64()).collect();
    assert_eq!(member_ids, [m1.user_id, me]);
    assert_eq!(members[0]["connector"], json!(true));
    // im.recent.get: ONLY_OPENLINES / SKIP_OPENLINES / LAST_SYNC_DATE (at most seven days back).
    p.ok("im.message.add", json!({"DIALOG_ID": p.demo.operator_id, "MESSAGE": "private note"})).await;
    let chat_ids = |v: &serde_json::Value| -> Vec<String> { v.as_array().map(|a| a.iter().map(|i| i["id"].to_string()).collect()).unwrap_or_default() };
    let only = p.ok("im.recent.get", json!({"ONLY_OPENLINES": "Y"})).await;
    assert_eq!(chat_ids(&only), [format!("\"{dialog}\"")]);
    assert_eq!(only[0]["chat"]["entity_type"], "LINES");
    assert!(!chat_ids(&p.ok("im.recent.get", json!({"SKIP_OPENLINES": "Y"})).await).contains(&format!("\"{dialog}\"")));
    assert_eq!(p.ok("im.recent.get", json!({"LAST_SYNC_DATE": "2999-01-01T00:00:00+00:00"})).await, json!([]));
    assert_eq!(chat_ids(&p.ok("im.recent.get", json!({"LAST_SYNC_DATE": "2001-01-01T00:00:00+00:00"})).await).len(), 2);
    // imopenlines.dialog.get: the session holder is the chat's owner.
    let d = p.ok("imopenlines.dialog.get", json!({"DIALOG_ID": dialog})).await;
    assert_eq!((d["owner"].as_u64(), d["role"].as_str()), (Some(me), Some("owner")));
    // SYSTEM=Y from the webhook user: in the chat for operators, never on the customer's WhatsApp.
    let sys = p.ok("im.message.add", json!({"DIALOG_ID": dialog, "MESSAGE": "internal note", "SYSTEM": "Y"})).await;
    let snap = p.emu.chat(m1.chat_id).expect("chat");
    assert!(snap.messages.iter().any(|m| Some(m.id) == sys.as_u64() && m.system && !m.to_customer));
    assert!(p.emu.customer_inbox("+491700000020").iter().all(|i| i.text != "internal note"));
    assert_eq!(ids(&p.ok("im.dialog.messages.get", json!({"DIALOG_ID": dialog, "LIMIT": 1})).await), [sys.as_u64().unwrap_or(0)]);
    // SRC Operator::transfer: not to oneself; Chat::transferToOperator: not to a bot.
    let wrong = (400, Some("OPERATOR_WRONG"));
    let (s, b) = p.call("imopenlines.operator.transfer", json!({"CHAT_ID": m1.chat_id, "TRANSFER_ID": me})).await;
    assert_eq!((s, b["error"].as_str()), wrong);
    let bot =
        p.ok("imbot.register", json!({"CODE": "t", "TYPE": "O", "EVENT_HANDLER": "http://127.0.0.1:9/x", "PROPERTIES": {"NAME": "B"}, "CLIENT_ID": "t"})).await;
    let (s, b) = p.call("imopenlines.operator.transfer", json!({"CHAT_ID": m1.chat_id, "USER_ID": bot})).await;
    assert_eq!((s, b["error"].as_str()), wrong);
    assert_eq!(p.ok("imopenlines.operator.transfer", json!({"CHAT_ID": m1.chat_id, "USER_ID": p.demo.operator_id})).await, json!(true));
    let d = p.ok("imopenlines.dialog.get", json!({"CHAT_ID": m1.chat_id})).await;
    assert_eq!(d["owner"].as_u64(), Some(p.demo.operator_id), "the new holder");
}

#[tokio::test]
async fn whatsapps_window_is_in_the_session_string_and_free_text_after_it_is_not_delivered() {
    let p = start().await;
    let rx = receiver().await;
    p.register_bot(&rx.url, "olb-window").await;
    let before = chrono::Utc::now().timestamp();
    let m = p.emu.customer_writes(3, "+491700000009", "hello").await.expect("write");
    assert!(p.emu.wait_idle(WAIT).await);
    // The event carries BLOCK_DATE = the message + 24 h, and the reason (fields 9 and 10).
    let events = rx.events("ONIMBOTMESSAGEADD");
    let data_1 = events.last().and_then(|e| e["data"]["PARAMS"]["CHAT_ENTITY_DATA_1"].as_str()).expect("CHAT_ENTITY_DATA_1").to_owned();
    let fields: Vec<&str> = data_1.split('|').collect();
    assert_eq!(fields.len(), 10, "{data_1}");
    let block: i64 = fields[8].parse().expect("BLOCK_DATE is unix seconds");
    assert!((before + 86_400..=chrono::Utc::now().timestamp() + 86_400).contains(&block), "{data_1}");
    assert_eq!(fields[9], b24_emulator::WHATSAPP_BLOCK_REASON);
    let dialog = json!(format!("chat{}", m.chat_id));
    let open = p.ok("im.message.add", json!({"DIALOG_ID": dialog, "MESSAGE": "in time"})).await;

    // A day later the window has closed: the post is accepted and recorded, but never delivered.
    p.emu.advance_clock(std::time::Duration::from_secs(86_400));
    let late = p.ok("im.message.add", json!({"DIALOG_ID": dialog, "MESSAGE": "too late"})).await;
    let chat = p.emu.chat(m.chat_id).expect("chat");
    let by_id = |id: &serde_json::Value| chat.messages.iter().find(|x| x.id == id.as_u64().unwrap_or(0)).cloned().expect("message");
    assert!(by_id(&open).to_customer && !by_id(&open).window_blocked);
    assert!(!by_id(&late).to_customer && by_id(&late).window_blocked);
    let texts: Vec<String> = p.emu.customer_inbox("491700000009").into_iter().map(|i| i.text).collect();
    assert_eq!(texts, ["in time"]);

    // The customer writes again: the window reopens.
    p.emu.customer_writes(3, "+491700000009", "anyone?").await.expect("write");
    p.ok("im.message.add", json!({"DIALOG_ID": dialog, "MESSAGE": "yes"})).await;
    assert_eq!(p.emu.customer_inbox("491700000009").last().map(|i| i.text.clone()).as_deref(), Some("yes"));

    // The control: a block date in the past closes it at once; None clears it.
    p.emu.set_block_date(m.chat_id, Some(chrono::Utc::now() - chrono::Duration::hours(1))).expect("set");
    p.ok("im.message.add", json!({"DIALOG_ID": dialog, "MESSAGE": "blocked"})).await;
    assert_eq!(p.emu.customer_inbox("491700000009").last().map(|i| i.text.clone()).as_deref(), Some("yes"));
    p.emu.set_block_date(m.chat_id, None).expect("clear");
    assert!(p.emu.chat(m.chat_id).expect("chat").entity_data_1.ends_with("|0|0"));
}
