//! The emulator's responses and events against the contract's verbatim examples (fixtures/).

use crate::common::*;
use crate::shape::*;
use b24_emulator::{EmulatorConfig, RateLimit};
use serde_json::{Value, json};

#[tokio::test]
async fn envelopes_match_fixtures() {
    let p = start().await;
    let (_, ok) = p.call("scope", json!({})).await;
    assert_shape(&fixture("envelope_success.json"), &ok, Rules { opaque: &["result"], ..Rules::default() });
    let (status, err) = p.call_at(&format!("{}/rest/1/nope/", p.emu.base_url()), "scope", json!({})).await;
    assert_eq!(status, 401);
    assert_shape(&fixture("envelope_error.json"), &err, Rules::default());
}

#[tokio::test]
async fn batch_matches_fixtures() {
    let p = start().await;
    let hook = p.emu.add_webhook(p.demo.service_user_id, &["user", "department", "im"]);
    let cmd = json!({"get_user": "user.current", "get_department": "department.get?ID=$result[get_user][UF_DEPARTMENT][0]"});
    let (status, body) = p.call_at(&hook, "batch", json!({"halt": 0, "cmd": cmd})).await;
    assert_eq!(status, 200);
    // The doc's batch example predates the operating keys; SRC appendDebugInfo adds them to every command too.
    let extra = [
        "time.operating_reset_at",
        "time.operating",
        "result.result_time.get_user.operating_reset_at",
        "result.result_time.get_user.operating",
        "result.result_time.get_department.operating_reset_at",
        "result.result_time.get_department.operating",
    ];
    assert_shape(&fixture("batch_success.json"), &body, Rules { extra: &extra, ..Rules::default() });
    let restricted = p.emu.add_webhook(p.demo.service_user_id, &["im"]);
    let (status, body) = p.call_at(&restricted, "batch", json!({"halt": 0, "cmd": cmd})).await;
    assert_eq!(status, 200);
    let expected = fixture("batch_error.json");
    assert_eq!(body["result"], expected["result"], "error batch is identical to the documented one");
}

/// A portal where a v1 bot got every kind of event once.
async fn all_v1_events() -> (Portal, Receiver, u64) {
    // The captures come from a WhatsApp line; a keyboard press there needs the buttons to reach it.
    let p = start_with(EmulatorConfig { rate: RateLimit::UNLIMITED, keyboards_reach_whatsapp: true, ..EmulatorConfig::default() }).await;
    let rx = receiver().await;
    let bot = p.register_bot(&rx.url, "192735").await;
    p.ok(
        "imbot.command.register",
        json!({"BOT_ID": bot, "COMMAND": "rate", "HIDDEN": "Y", "EXTRANET_SUPPORT": "Y", "EVENT_COMMAND_ADD": rx.url,
               "LANG": [{"LANGUAGE_ID": "en", "TITLE": "Rate"}], "CLIENT_ID": "192735"}),
    )
    .await;
    let m = p.emu.customer_writes(3, "+491709998877", "hahahahaha").await.expect("write");
    p.ok(
        "imbot.message.add",
        json!({"BOT_ID": bot, "DIALOG_ID": format!("chat{}", m.chat_id), "MESSAGE": "Helpful?", "CLIENT_ID": "192735",
               "KEYBOARD": {"BUTTONS": [{"TEXT": "👍", "COMMAND": "rate", "COMMAND_PARAMS": "up", "BLOCK": "Y"}]}}),
    )
    .await;
    p.emu.customer_presses(m.chat_id, bot, "rate", "up").await.expect("press");
    p.ok("imbot.unregister", json!({"BOT_ID": bot, "CLIENT_ID": "192735"})).await;
    assert!(p.emu.wait_idle(WAIT).await);
    (p, rx, bot)
}

fn rekey(fixture_keys: &[String], from: &str, to: &str) -> Vec<String> {
    fixture_keys.iter().map(|k| k.replace(&format!("[{from}]"), &format!("[{to}]"))).collect()
}

#[tokio::test]
async fn v1_events_match_the_documented_and_captured_payloads() {
    let (p, rx, bot) = all_v1_events().await;
    let events: Vec<Value> = rx.received().iter().map(Received::decoded).collect();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names, ["ONIMBOTJOINCHAT", "ONIMBOTMESSAGEADD", "ONIMCOMMANDADD", "ONIMBOTDELETE"]);
    for e in &events {
        assert_all_strings(e, "");
        for k in ["event", "event_handler_id", "data", "ts", "auth"] {
            assert!(e.get(k).is_some(), "{k} missing in {e}");
        }
    }
    // ONIMBOTMESSAGEADD: every form field of both Open Lines captures is present (bot id re-keyed).
    let msg = &events[1];
    let mut actual = Vec::new();
    flat_keys(msg, "", &mut actual);
    let obs_a: Vec<String> = fixture("obs_onimbotmessageadd_openlines_webhook_bot.json").as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    for k in rekey(&obs_a, "11", &bot.to_string()) {
        assert!(actual.contains(&k), "capture (a) field {k} missing; got {actual:?}");
    }
    let obs_b: Vec<String> = fixture("obs_onimbotmessageadd_openlines_app_bot.json")
        .as_object()
        .map(|o| o.keys().filter(|k| k.starts_with("data[PARAMS]") || k.starts_with("data[USER]")).cloned().collect())
        .unwrap_or_default();
    for k in obs_b {
        assert!(actual.contains(&k), "capture (b) field {k} missing");
    }
    let auth: Vec<&String> = msg["auth"].as_object().map(|o| o.keys().collect()).unwrap_or_default();
    assert_eq!(auth, ["application_token", "client_endpoint", "domain", "member_id", "server_endpoint"], "webhook bots get no tokens");
    assert_eq!(msg["auth"]["application_token"], "192735", "OBS: application_token == CLIENT_ID");
    assert_shape(&fixture("event_outgoing_webhook.json")["auth"], &msg["auth"], Rules::default());
    // No invented PARAMS keys: each one appears in a captured Open Lines event or in the DOC group-chat example.
    let mut known: Vec<String> = fixture("onimbotmessageadd_group.json")["data"]["PARAMS"]
        .as_object()
        .map(|o| o.keys().map(|k| format!("data[PARAMS][{k}]")).collect())
        .unwrap_or_default();
    known.extend(fixture("obs_onimbotmessageadd_openlines_app_bot.json").as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default());
    for k in actual.iter().filter(|k| k.starts_with("data[PARAMS]")) {
        assert!(known.contains(k), "{k} is neither documented nor captured");
    }
    // USER and the bot block follow the DOC example's keys (the DOC bot block also carries OAuth tokens, which a
    // webhook-registered bot never gets).
    let doc = fixture("onimbotmessageadd_private.json");
    assert_shape(&doc["data"]["USER"], &msg["data"]["USER"], Rules::default());
    let block = &msg["data"]["BOT"][bot.to_string()];
    assert_shape(
        &doc["data"]["BOT"]["567"],
        block,
        Rules {
            missing: &[
                "access_token",
                "expires",
                "expires_in",
                "scope",
                "server_endpoint",
                "status",
                "client_endpoint",
                "refresh_token",
                "user_id",
                "client_id",
                "AUTH.access_token",
                "AUTH.expires",
                "AUTH.expires_in",
                "AUTH.scope",
                "AUTH.server_endpoint",
                "AUTH.status",
                "AUTH.client_endpoint",
                "AUTH.refresh_token",
                "AUTH.user_id",
                "AUTH.client_id",
            ],
            ..Rules::default()
        },
    );
    // ONIMBOTJOINCHAT: the group-chat example's PARAMS and USER keys (an Open Lines chat is a group chat).
    let join = &events[0];
    let doc = fixture("onimbotjoinchat_group.json");
    assert_shape(&doc["data"]["PARAMS"], &join["data"]["PARAMS"], Rules::default());
    assert_shape(&doc["data"]["USER"], &join["data"]["USER"], Rules::default());
    assert_eq!(join["data"]["PARAMS"]["CHAT_TYPE"], "L");
    assert_eq!(join["data"]["PARAMS"]["CHAT_ENTITY_TYPE"], "LINES");
    // ONIMCOMMANDADD.
    let cmd = &events[2];
    let doc = fixture("onimcommandadd.json");
    assert_shape(&doc["data"]["USER"], &cmd["data"]["USER"], Rules::default());
    let entry = cmd["data"]["COMMAND"].as_object().and_then(|o| o.values().next()).cloned().unwrap_or_default();
    for k in ["BOT_ID", "BOT_CODE", "COMMAND", "COMMAND_ID", "COMMAND_PARAMS", "COMMAND_CONTEXT", "MESSAGE_ID"] {
        assert!(entry.get(k).is_some(), "COMMAND entry lacks {k}: {entry}");
    }
    assert_eq!((entry["COMMAND_CONTEXT"].as_str(), entry["COMMAND_PARAMS"].as_str()), (Some("KEYBOARD"), Some("up")));
    // ONIMBOTDELETE: identical data keys.
    assert_shape(&fixture("onimbotdelete.json")["data"], &events[3]["data"], Rules::default());
    assert_eq!(events[3]["data"]["BOT_ID"], bot.to_string());
    drop(p);
}

#[tokio::test]
async fn method_results_match_documented_examples() {
    let p = start().await;
    let m = p.emu.customer_writes(3, "+491701112233", "Hi").await.expect("write");
    p.ok("im.message.add", json!({"DIALOG_ID": format!("chat{}", m.chat_id), "MESSAGE": "Hello!"})).await;
    let (_, dialog) = p.call("imopenlines.dialog.get", json!({"CHAT_ID": m.chat_id})).await;
    assert_shape(&fixture("imopenlines_dialog_get.json"), &dialog, Rules::default());
    let (_, msgs) = p.call("im.dialog.messages.get", json!({"DIALOG_ID": format!("chat{}", m.chat_id)})).await;
    assert_shape(&fixture("im_dialog_messages_get.json"), &msgs, Rules { opaque: &["result.messages[].params"], ..Rules::default() });
    let (_, lines) = p.call("imopenlines.config.list.get", json!({"OPTIONS": {"QUEUE": "Y", "CONFIG_QUEUE": "Y"}})).await;
    let extra: Vec<String> = lines["result"][0].as_object().map(|o| o.keys().map(|k| format!("result[].{k}")).collect()).unwrap_or_default();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    assert_shape(&fixture("imopenlines_config_list_get.json"), &lines, Rules { extra: &extra, ..Rules::default() });
    let lead_id = dialog["result"]["entity_data_2"].as_str().and_then(|d| d.split('|').nth(1)).unwrap_or("0").to_owned();
    let (_, lead) = p.call("crm.lead.get", json!({"id": lead_id})).await;
    assert_shape(&fixture("crm_lead_get.json"), &lead, Rules::default());
    assert_eq!(lead["result"]["IM"][0]["VALUE"], format!("imol|{}", dialog["result"]["entity_id"].as_str().unwrap_or("")));
}

#[tokio::test]
async fn v2_fetch_events_match_documented_examples() {
    let p = start_with(EmulatorConfig { rate: b24_emulator::RateLimit::UNLIMITED, ..EmulatorConfig::default() }).await;
    let reg = p
        .ok(
            "imbot.v2.Bot.register",
            json!({"botToken": "tok-1", "fields": {"code": "support_bot", "type": "openline",
            "properties": {"name": "Support"}}}),
        )
        .await;
    let bot = reg["bot"]["id"].as_u64().expect("bot id");
    p.emu.attach_welcome_bot(3, bot).expect("attach");
    p.emu.customer_writes(3, "+491705550000", "Hello bot!").await.expect("write");
    let (_, body) = p.call("imbot.v2.Event.get", json!({"botId": bot, "botToken": "tok-1"})).await;
    assert_shape(
        &fixture("imbot_v2_event_get.json"),
        &body,
        Rules { opaque: &["result.events[].data"], extra: &["time.operating_reset_at", "time.operating"], ..Rules::default() },
    );
    let events = body["result"]["events"].as_array().cloned().unwrap_or_default();
    let msg = events.iter().find(|e| e["type"] == "ONIMBOTV2MESSAGEADD").expect("message event");
    assert_shape(
        &fixture("v2_fetch_message_data.json"),
        &msg["data"],
        // The fetch example's chat is a subset of the Chat entity; the emulator prints the im.v2 event example's keys.
        Rules {
            extra: &[
                "chat.entityId",
                "chat.entityData1",
                "chat.entityData2",
                "chat.entityData3",
                "chat.messageType",
                "chat.description",
                "chat.extranet",
                "chat.containsCollaber",
                "chat.entityLink",
                "chat.diskFolderId",
                "chat.permissions",
                "chat.parentChatId",
                "chat.parentMessageId",
                "chat.isNew",
                "chat.textFieldEnabled",
                "chat.backgroundId",
            ],
            ..Rules::default()
        },
    );
    assert_eq!(msg["data"]["chat"]["entityType"], "LINES");
    assert_eq!(msg["data"]["user"]["connector"], json!(true));
}
