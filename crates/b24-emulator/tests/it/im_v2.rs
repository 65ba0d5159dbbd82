//! `im.v2.Event.*`: the webhook user's event log, and `imbot.v2.Event.get` with `withUserEvents`.

use crate::common::*;
use b24_emulator::{EmulatorConfig, NewLine, RateLimit};
use serde_json::{Value, json};
use std::time::Duration;

fn types(r: &Value) -> Vec<String> {
    r["events"].as_array().map(|a| a.iter().map(|e| e["type"].as_str().unwrap_or("").to_owned()).collect()).unwrap_or_default()
}

/// A line where the service user is the first queue operator, so it takes (and belongs to) new chats.
fn polled_line(p: &Portal) -> u64 {
    p.emu.add_line(NewLine { name: "WA polled".into(), queue: vec![p.demo.service_user_id], ..NewLine::default() })
}

#[tokio::test]
async fn subscribed_users_get_message_and_join_events_acknowledged_by_offset() {
    let p = start().await;
    let line = polled_line(&p);
    let before = p.emu.customer_writes(line, "+491706660000", "before subscribing").await.expect("write");
    let r = p.ok("im.v2.Event.get", json!({})).await;
    assert_eq!((r["events"].clone(), r["hasMore"].clone()), (json!([]), json!(false)), "not subscribed: nothing");
    assert_eq!(p.ok("im.v2.Event.subscribe", json!({})).await, json!(true));
    let m = p.emu.customer_writes(line, "+491706660000", "Hello").await.expect("write");
    assert_eq!(m.chat_id, before.chat_id);
    let other = p.emu.add_employee("Ivan", "Helper");
    p.emu.operator_writes(m.chat_id, other, "I'll join").await.expect("op");
    let r = p.ok("im.v2.Event.get", json!({"limit": 2})).await;
    assert_eq!(types(&r), ["ONIMV2MESSAGEADD", "ONIMV2JOINCHAT"]);
    assert_eq!(r["hasMore"], json!(true));
    let msg = &r["events"][0];
    assert!(msg["eventId"].is_u64() && msg["date"].is_string());
    let data = &msg["data"];
    assert_eq!(data["message"]["id"], json!(m.message_id));
    assert_eq!(data["message"]["text"], "Hello");
    assert_eq!(data["message"]["isSystem"], json!(false));
    assert_eq!(data["chat"]["dialogId"], format!("chat{}", m.chat_id));
    assert_eq!(data["chat"]["entityType"], "LINES");
    assert!(data["chat"]["entityData1"].as_str().is_some_and(|d| d.split('|').count() == 10));
    assert!(data["chat"].get("role").is_none() && data["chat"].get("muteList").is_none());
    assert_eq!(data["user"]["connector"], json!(true));
    assert_eq!(data["user"]["lastActivityDate"], json!(false), "online fields are false in events");
    assert_eq!(data["language"], "en");
    let join = &r["events"][1]["data"];
    assert_eq!((join["dialogId"].as_str(), join["user"]["id"].as_u64()), (Some(format!("chat{}", m.chat_id).as_str()), Some(other)));
    // Not acknowledged: the same again. nextOffset acknowledges, for every consumer.
    assert_eq!(types(&p.ok("im.v2.Event.get", json!({"limit": 2})).await).len(), 2);
    let next = r["nextOffset"].as_u64().expect("nextOffset");
    let r = p.ok("im.v2.Event.get", json!({"offset": next})).await;
    assert_eq!(types(&r), ["ONIMV2MESSAGEADD"], "the employee's message");
    assert_eq!(r["hasMore"], json!(false));
    let r = p.ok("im.v2.Event.get", json!({"offset": r["nextOffset"]})).await;
    assert_eq!(types(&r), Vec::<String>::new());
    // Records are kept 24 hours.
    p.emu.customer_writes(line, "+491706660000", "old news").await.expect("write");
    p.emu.advance_clock(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(types(&p.ok("im.v2.Event.get", json!({})).await), Vec::<String>::new());
    // Unsubscribed: nothing new is logged.
    assert_eq!(p.ok("im.v2.Event.unsubscribe", json!({})).await, json!(true));
    p.emu.customer_writes(line, "+491706660000", "unheard").await.expect("write");
    assert_eq!(types(&p.ok("im.v2.Event.get", json!({})).await), Vec::<String>::new());
}

#[tokio::test]
async fn open_lines_chats_can_be_left_out() {
    let p = start_with(EmulatorConfig { rate: RateLimit::UNLIMITED, im_v2_events_include_openlines: false, ..EmulatorConfig::default() }).await;
    let line = polled_line(&p);
    p.ok("im.v2.Event.subscribe", json!({})).await;
    p.emu.customer_writes(line, "+491706660001", "Hello").await.expect("write");
    assert_eq!(types(&p.ok("im.v2.Event.get", json!({})).await), Vec::<String>::new());
    // A private chat still is.
    p.ok("im.message.add", json!({"DIALOG_ID": p.demo.operator_id, "MESSAGE": "ping"})).await;
    assert_eq!(types(&p.ok("im.v2.Event.get", json!({})).await), ["ONIMV2MESSAGEADD"]);
}

#[tokio::test]
async fn a_fetch_bot_can_take_user_events_in_the_same_stream() {
    let p = start().await;
    let line = polled_line(&p);
    let reg = p.ok("imbot.v2.Bot.register", json!({"botToken": "u1", "fields": {"code": "u1", "type": "openline", "properties": {"name": "U"}}})).await;
    let bot = reg["bot"]["id"].as_u64().expect("bot");
    let auth = json!({"botId": bot, "botToken": "u1", "withUserEvents": true});
    let (s, b) = p.call("imbot.v2.Event.get", auth.clone()).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("USER_NOT_SUBSCRIBED")));
    p.ok("im.v2.Event.subscribe", json!({})).await;
    p.emu.attach_welcome_bot(3, bot).expect("attach");
    p.emu.customer_writes(3, "+491706660002", "to the bot").await.expect("write");
    p.emu.customer_writes(line, "+491706660003", "to the user").await.expect("write");
    let r = p.ok("imbot.v2.Event.get", auth.clone()).await;
    // The service user, first in that line's queue, joins the new chat (ONIMV2JOINCHAT) before the message.
    assert_eq!(types(&r), ["ONIMBOTV2JOINCHAT", "ONIMBOTV2MESSAGEADD", "ONIMV2JOINCHAT", "ONIMV2MESSAGEADD"]);
    let ids: Vec<u64> = r["events"].as_array().expect("events").iter().filter_map(|e| e["eventId"].as_u64()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let next = r["nextOffset"].clone();
    let mut acked = auth.clone();
    acked["offset"] = next;
    assert_eq!(types(&p.ok("imbot.v2.Event.get", acked).await), Vec::<String>::new(), "one offset acknowledges both");
    assert_eq!(types(&p.ok("im.v2.Event.get", json!({})).await), Vec::<String>::new());
    let narrow = p.emu.add_webhook(p.demo.service_user_id, &["imbot"]);
    let (s, b) = p.call_at(&narrow, "imbot.v2.Event.get", auth).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("SCOPE_ERROR")));
}
