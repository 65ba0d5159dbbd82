//! CRM methods, line config, dialog lookups and the CRM binding of Open Lines chats.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn chats_get_leads_with_phone_and_imol() {
    let p = start().await;
    let m = p.emu.customer_writes(3, "+491704440000", "need help").await.expect("write");
    let chat = p.emu.chat(m.chat_id).expect("chat");
    let lead: u64 = chat.entity_data_2.split('|').nth(1).and_then(|x| x.parse().ok()).expect("lead id");
    assert!(lead > 0);
    assert_eq!(chat.entity_data_1.split('|').take(3).collect::<Vec<_>>(), ["Y", "LEAD", &lead.to_string()]);
    let l = p.ok("crm.lead.get", json!({"id": lead})).await;
    assert_eq!(l["PHONE"][0]["VALUE"], "+491704440000");
    assert_eq!(l["IM"][0]["VALUE_TYPE"], "OPENLINE");
    assert_eq!(l["HAS_IMOL"], "Y");
    assert_eq!(l["SOURCE_ID"], "3|WHATSAPPBYEDNA");
    let found = p.ok("imopenlines.crm.chat.get", json!({"CRM_ENTITY_TYPE": "lead", "CRM_ENTITY": lead})).await;
    assert_eq!(found, json!([{"CHAT_ID": m.chat_id.to_string(), "CONNECTOR_ID": "whatsappbyedna", "CONNECTOR_TITLE": "Edna.com WhatsApp"}]));
    let d = p.ok("imopenlines.dialog.get", json!({"USER_CODE": chat.entity_id})).await;
    assert_eq!(d["id"], json!(m.chat_id));
    let (s, b) = p.call("crm.lead.get", json!({"id": 1})).await;
    assert_eq!((s, b), (400, json!({"error": "", "error_description": "Not found"})));
    let (_, b) = p.call("crm.lead.get", json!({})).await;
    assert_eq!(b, json!({"error": "", "error_description": "ID is not defined or invalid."}));
    // A line without CRM binds nothing.
    let m5 = p.emu.customer_writes(5, "+491704440001", "hi").await.expect("write");
    assert_eq!(p.emu.chat(m5.chat_id).expect("chat").entity_data_2, "LEAD|0|COMPANY|0|CONTACT|0|DEAL|0");
}

#[tokio::test]
async fn contacts_match_phone_exactly_and_bind_chats() {
    let p = start().await;
    let c = p.ok("crm.contact.add", json!({"fields": {"NAME": "Anna", "PHONE": [{"VALUE": "+491704440002", "VALUE_TYPE": "MOBILE"}]}})).await;
    let res = p.call("crm.contact.list", json!({"filter": {"PHONE": "+491704440002"}, "select": ["ID", "NAME", "PHONE"]})).await.1;
    assert_eq!(res["total"], json!(1));
    assert_eq!(res["result"][0]["ID"], c.to_string());
    assert_eq!(res["result"][0]["PHONE"][0]["VALUE"], "+491704440002");
    let partial = p.call("crm.contact.list", json!({"filter": {"PHONE": "491704440002"}})).await.1;
    assert_eq!(partial["total"], json!(0), "multifield filters match exactly only");
    let no_select = p.call("crm.contact.list", json!({"filter": {"PHONE": "+491704440002"}})).await.1;
    assert!(no_select["result"][0].get("PHONE").is_none(), "multifields only when selected");
    let (s, b) = p.call("crm.contact.list", json!({"filter": "x"})).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("")));
    let m = p.emu.customer_writes(3, "+491704440002", "it's Anna").await.expect("write");
    assert_eq!(p.emu.chat(m.chat_id).expect("chat").entity_data_2, format!("LEAD|0|COMPANY|0|CONTACT|{c}|DEAL|0"));
}

#[tokio::test]
async fn deals_and_timeline_comments() {
    let p = start().await;
    let deal = p.ok("crm.deal.add", json!({"fields": {"TITLE": "Order"}})).await;
    let d = p.ok("crm.deal.get", json!({"id": deal})).await;
    assert_eq!((d["ID"].as_str(), d["TITLE"].as_str(), d["STAGE_ID"].as_str()), (Some(deal.to_string().as_str()), Some("Order"), Some("NEW")));
    let id = p.ok("crm.timeline.comment.add", json!({"fields": {"ENTITY_ID": deal, "ENTITY_TYPE": "deal", "COMMENT": "Bot said hi"}})).await;
    assert!(id.is_u64());
    let (s, b) = p.call("crm.timeline.comment.add", json!({"FIELDS": {"ENTITY_ID": deal, "ENTITY_TYPE": "deal", "COMMENT": "x"}})).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("100")), "uppercase FIELDS is not read");
    let (_, b) = p.call("crm.timeline.comment.add", json!({"fields": {"ENTITY_ID": 424242, "ENTITY_TYPE": "deal", "COMMENT": "x"}})).await;
    assert_eq!(b["error"], "OWNER_NOT_FOUND");
    let (_, b) = p.call("crm.timeline.comment.add", json!({"fields": {"ENTITY_ID": deal, "ENTITY_TYPE": "deal", "COMMENT": ""}})).await;
    assert_eq!(b["error"], "INVALID_ARG_VALUE");
    let list = p.call("crm.timeline.comment.list", json!({"filter": {"ENTITY_ID": deal, "ENTITY_TYPE": "deal"}})).await.1;
    assert_eq!(list["total"], json!(1));
    assert_eq!(list["result"][0]["COMMENT"], "Bot said hi");
    assert_eq!(list["result"][0]["ENTITY_ID"], deal.to_string());
}

#[tokio::test]
async fn list_paging_is_fifty_per_page() {
    let p = start().await;
    let cmds: serde_json::Map<String, serde_json::Value> = (0..40).map(|i| (format!("l{i}"), json!(format!("crm.lead.add?fields[TITLE]=L{i}")))).collect();
    p.ok("batch", json!({"cmd": cmds.clone()})).await;
    p.ok("batch", json!({"cmd": cmds})).await;
    let first = p.call("crm.lead.list", json!({})).await.1;
    assert_eq!((first["total"].as_u64(), first["next"].as_u64()), (Some(80), Some(50)));
    assert_eq!(first["result"].as_array().map(Vec::len), Some(50));
    let second = p.call("crm.lead.list", json!({"start": 50})).await.1;
    assert_eq!(second["result"].as_array().map(Vec::len), Some(30));
    assert!(second.get("next").is_none());
}

#[tokio::test]
async fn line_config_and_transfer_priority() {
    let p = start().await;
    let lines = p.ok("imopenlines.config.list.get", json!({"PARAMS": {"select": ["ID", "LINE_NAME"], "limit": 2}})).await;
    assert_eq!(lines.as_array().map(Vec::len), Some(2));
    assert_eq!(lines[0], json!({"ID": "1", "LINE_NAME": "Website chat"}));
    let (s, b) = p.call("imopenlines.config.list.get", json!({"PARAMS": "oops"})).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("INVALID_FORMAT")));
    let rx = receiver().await;
    p.register_bot(&rx.url, "tp").await;
    let m = p.emu.customer_writes(3, "+491704440003", "transfer me").await.expect("write");
    let extra = p.emu.add_employee("Second", "Operator");
    p.ok("imopenlines.bot.session.transfer", json!({"CHAT_ID": m.chat_id, "USER_ID": extra, "QUEUE_ID": 1, "CLIENT_ID": "tp"})).await;
    assert_eq!(p.emu.chat(m.chat_id).expect("chat").operator_id, Some(extra), "USER_ID wins over QUEUE_ID");
    let (_, b) = p.call("imopenlines.bot.session.transfer", json!({"CHAT_ID": m.chat_id, "CLIENT_ID": "tp"})).await;
    assert_eq!(b["error"], "TRANSFER_ID_EMPTY");
    let (_, b) = p.call("imopenlines.bot.session.transfer", json!({"CHAT_ID": m.chat_id, "USER_ID": extra, "CLIENT_ID": "nobody"})).await;
    assert_eq!(b["error"], "BOT_ID_ERROR");
    // Operator methods act as the webhook user (38005 is in line 3's queue).
    p.ok("imopenlines.operator.answer", json!({"CHAT_ID": m.chat_id})).await;
    assert_eq!(p.emu.chat(m.chat_id).expect("chat").operator_id, Some(p.demo.service_user_id));
    p.ok("imopenlines.operator.transfer", json!({"CHAT_ID": m.chat_id, "TRANSFER_ID": extra})).await;
    assert_eq!(p.emu.chat(m.chat_id).expect("chat").operator_id, Some(extra));
    let h = p.ok("imopenlines.session.history.get", json!({"CHAT_ID": m.chat_id})).await;
    assert_eq!(h["sessionId"], json!(m.session_id));
    assert!(h["message"][m.message_id.to_string()]["text"].is_string());
}

#[tokio::test]
async fn start_pages_by_fifty_and_minus_one_skips_the_count() {
    let p = start().await;
    for i in 0..60 {
        p.ok("crm.lead.add", json!({"fields": {"TITLE": format!("Lead {i}")}})).await;
    }
    let ids = |b: &serde_json::Value| -> Vec<String> {
        b["result"].as_array().map(|a| a.iter().map(|l| l["ID"].as_str().unwrap_or("").to_owned()).collect()).unwrap_or_default()
    };
    let (_, first) = p.call("crm.lead.list", json!({"order": {"ID": "ASC"}, "select": ["ID"]})).await;
    assert_eq!((ids(&first).len(), &first["total"], &first["next"]), (50, &json!(60), &json!(50)));
    let (_, second) = p.call("crm.lead.list", json!({"order": {"ID": "ASC"}, "select": ["ID"], "start": 50})).await;
    assert_eq!((ids(&second).len(), &second["total"]), (10, &json!(60)));
    assert!(second.get("next").is_none(), "no next on the last page: {second}");
    // SRC getNavData: a start inside a page selects that page (iNumPage = start / 50 + 1).
    let (_, inside) = p.call("crm.lead.list", json!({"order": {"ID": "ASC"}, "select": ["ID"], "start": 10})).await;
    assert_eq!(ids(&inside), ids(&first));
    // DOC huge-data.md: start=-1 skips the count: up to 50 items, total 0, no next; page on with >ID.
    let (s, fast) = p.call("crm.lead.list", json!({"order": {"ID": "ASC"}, "filter": {">ID": 0}, "select": ["ID"], "start": -1})).await;
    assert_eq!(s, 200);
    assert_eq!((ids(&fast).len(), &fast["total"]), (50, &json!(0)));
    assert!(fast.get("next").is_none(), "{fast}");
    let last = ids(&fast).last().cloned().unwrap_or_default();
    let (_, rest) = p.call("crm.lead.list", json!({"order": {"ID": "ASC"}, "filter": {">ID": last}, "select": ["ID"], "start": -1})).await;
    assert_eq!((ids(&rest).len(), &rest["total"]), (10, &json!(0)));
    // The same inside a batch: result_total 0, no result_next.
    let res = p.ok("batch", json!({"cmd": {"a": "crm.lead.list?start=-1&select[]=ID"}})).await;
    assert_eq!((res["result_total"]["a"].clone(), res["result_next"].clone()), (json!(0), json!([])));
    let form = p.raw("crm.lead.list", "application/x-www-form-urlencoded", "start=-1&select[]=ID").await.1;
    assert_eq!(form["total"], json!(0));
}
