//! Event decoding over real payloads: the contract's OBS captures (form bodies), its DOC examples
//! (JSON, encoded here the way PHP's `http_build_query` would send them) and the Chatbots 2.0
//! webhook and fetch shapes. Fixture sources: `tests/fixtures/README.md`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers fail loudly by design

use chrono::{DateTime, Utc};
use olbridge_core::domain::event::PortalEvent;
use olbridge_core::domain::form::FormLimits;
use olbridge_core::domain::ids::{BotId, ChatId, DialogId, LineId, MemberId, MessageId, Phone, PortalDomain, SessionId, UserId};
use olbridge_core::domain::message::{Author, AuthorKind, CrmBinding, InboundMessage, LinesContext, PortalRef, Source};
use olbridge_core::domain::parse::{EventEnvelope, ParseError, from_v2_json, to_portal_event};
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).expect("fixture is JSON")
}

/// Encodes JSON as PHP's `http_build_query` does (independently of the crate's own encoder):
/// bracketed keys, booleans as `1`/`0`, `null` as empty, empty objects omitted.
fn php_form(v: &Value) -> String {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        let key = |k: &str| if prefix.is_empty() { k.to_owned() } else { format!("{prefix}[{k}]") };
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| walk(&key(k), v, out)),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| walk(&key(&i.to_string()), v, out)),
            Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            Value::Bool(b) => out.push((prefix.to_owned(), if *b { "1" } else { "0" }.to_owned())),
            Value::Number(n) => out.push((prefix.to_owned(), n.to_string())),
            Value::Null => out.push((prefix.to_owned(), String::new())),
        }
    }
    let mut pairs = Vec::new();
    walk("", v, &mut pairs);
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// Sets (`Some`) or removes (`None`) decoded keys of a form body.
fn edit(body: &str, changes: &[(&str, Option<&str>)]) -> String {
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    for (key, value) in changes {
        pairs.retain(|(k, _)| k != key);
        if let Some(v) = value {
            pairs.push(((*key).to_owned(), (*v).to_owned()));
        }
    }
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

fn envelope(body: &str) -> EventEnvelope {
    EventEnvelope::parse(body.as_bytes(), &FormLimits::default()).expect("envelope parses")
}

fn decode(body: &str) -> Result<Option<PortalEvent>, ParseError> {
    to_portal_event(&envelope(body))
}

fn message(body: &str) -> InboundMessage {
    match decode(body) {
        Ok(Some(PortalEvent::Message(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn portal(member: &str, domain: &str) -> PortalRef {
    PortalRef { member_id: MemberId::parse(member).expect("member"), domain: PortalDomain::parse(domain).expect("domain") }
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("time")
}

fn author(id: u64, name: &str, kind: AuthorKind) -> Author {
    Author { id: UserId::new(id).ok(), name: name.into(), kind }
}

fn crm(entity_type: &str, entity_id: u64) -> Option<CrmBinding> {
    Some(CrmBinding { entity_type: entity_type.into(), entity_id })
}

fn id<T>(r: Result<T, olbridge_core::domain::ids::IdError>) -> T {
    r.expect("valid id")
}

#[test]
fn obs_capture_a_webhook_bot_in_a_telegram_line() {
    let body = fixture("obs_a_v1_messageadd_lines.form");
    let env = envelope(&body);
    assert_eq!((env.event.as_str(), env.handler_id.as_deref(), env.ts), ("ONIMBOTMESSAGEADD", None, Some(1_711_455_834)));
    assert_eq!(env.auth.domain.as_deref(), Some("b24-1x2ywp.bitrix24.ru"));
    assert_eq!(env.auth.member_id.as_deref(), Some("869e4953d7e841e02de675524e65f51a"));
    assert_eq!(env.auth.application_token.as_deref(), Some("192735"));
    assert_eq!(env.auth.client_endpoint.as_deref(), Some("https://b24-1x2ywp.bitrix24.ru/rest/"));
    assert_eq!(env.auth.server_endpoint.as_deref(), Some("https://oauth.bitrix.info/rest/"));
    assert_eq!((env.auth.user_id.as_deref(), env.auth.status.as_deref()), (None, None));
    assert!(!format!("{env:?}").contains("192735"), "the application token must not be in Debug output");
    let expected = InboundMessage {
        source: Source::BotPushV1,
        portal: portal("869e4953d7e841e02de675524e65f51a", "b24-1x2ywp.bitrix24.ru"),
        message_id: id(MessageId::parse("17")),
        chat_id: id(ChatId::parse("5")),
        dialog_id: id(DialogId::parse("chat5")),
        author: author(13, "[Dev] Oleg Pashchenko", AuthorKind::Customer),
        text: "hahahahaha".into(),
        system: false,
        lines: LinesContext {
            line_id: LineId::new(1).ok(),
            connector: Some("telegrambot".into()),
            user_code: Some("telegrambot|1|1398715343|13".into()),
            session_id: SessionId::new(1).ok(),
            crm: crm("lead", 3),
            phone: None,
            window: None,
        },
        bot_id: BotId::new(11).ok(),
        language: Some("ru".into()),
        sent_at: at(1_711_455_834),
    };
    let m = message(&body);
    assert_eq!(m, expected);
    assert_eq!(m.dedup_key().as_str(), "869e4953d7e841e02de675524e65f51a:msg:17");
    assert_eq!(m.answerability(), Ok(()));
}

#[test]
fn obs_capture_b_local_app_bot_drops_tokens_from_data() {
    let body = fixture("obs_b_v1_messageadd_lines.form");
    let env = envelope(&body);
    assert_eq!((env.auth.user_id.as_deref(), env.auth.status.as_deref()), (Some("13"), Some("L")));
    assert_eq!(env.data.get_path(&["BOT", "7", "BOT_CODE"]), Some("itrbot"));
    assert_eq!(env.data.get_path(&["BOT", "7", "application_token"]), None);
    assert_eq!(env.data.get_path(&["BOT", "7", "AUTH", "application_token"]), None);
    let shown = format!("{env:?}");
    for secret in ["c54784eb91e4985a507201de08986486", "b27004640061cf48", "a2ef2b640061cf48"] {
        assert!(!shown.contains(secret), "{secret} leaked");
    }
    let m = message(&body);
    assert_eq!((m.message_id.get(), m.chat_id.get(), m.dialog_id.to_string()), (51, 7, "chat7".into()));
    assert_eq!(m.author, author(13, "ddos kim", AuthorKind::Customer));
    assert_eq!((m.text.as_str(), m.system, m.bot_id.map(BotId::get)), ("Ро", false, Some(7)));
    assert_eq!(m.lines.user_code.as_deref(), Some("telegrambot|1|786792821|13"));
    assert_eq!((m.lines.line_id.map(LineId::get), m.lines.session_id.map(SessionId::get)), (Some(1), Some(3)));
    assert_eq!(m.lines.crm, crm("deal", 3), "CHAT_ENTITY_DATA_1 binding wins");
    assert_eq!((m.language.as_deref(), m.sent_at), (Some("ru"), at(1_678_008_994)));
    assert_eq!(m.portal, portal("e6c13a5fc0ea8379279efc4c504e2dea", "b24-bada6b.bitrix24.ru"));
}

#[test]
fn whatsapp_user_codes_give_the_phone_and_entity_data_2_the_binding() {
    let body = edit(
        &fixture("obs_a_v1_messageadd_lines.form"),
        &[
            ("data[PARAMS][CHAT_ENTITY_ID]", Some("whatsappbyedna|3|79991234567@edna-sender|13")),
            ("data[PARAMS][CHAT_ENTITY_DATA_1]", Some("N|NONE|0|N|N|44|1711455826|0|0|0")),
            ("data[PARAMS][CHAT_ENTITY_DATA_2]", Some("LEAD|8|COMPANY|2|CONTACT|0|DEAL|0")),
        ],
    );
    let lines = message(&body).lines;
    assert_eq!(lines.phone, Phone::parse("+79991234567").ok());
    assert_eq!((lines.connector.as_deref(), lines.line_id.map(LineId::get)), (Some("whatsappbyedna"), Some(3)));
    assert_eq!((lines.session_id.map(SessionId::get), lines.crm), (Some(44), crm("lead", 8)));
    let no_at = edit(&body, &[("data[PARAMS][CHAT_ENTITY_ID]", Some("whatsappbytwilio|3|+971501234567|13"))]);
    assert_eq!(message(&no_at).lines.phone, Phone::parse("+971501234567").ok());
}

#[test]
fn doc_v1_private_and_group_messages() {
    let m = message(&php_form(&json_fixture("doc_v1_messageadd_private.json")));
    assert_eq!((m.message_id.get(), m.chat_id.get(), m.dialog_id), (84331, 1407, DialogId::User(id(UserId::parse("27")))));
    assert_eq!(m.author, author(27, "Svetlana Ivanova", AuthorKind::Operator));
    assert_eq!((m.text.as_str(), m.lines.clone(), m.bot_id.map(BotId::get)), ("Hello", LinesContext::default(), Some(567)));
    assert_eq!((m.language.as_deref(), m.sent_at, m.source), (Some("en"), at(1_771_928_985), Source::BotPushV1));
    assert_eq!(m.portal, portal("bac1cd5c8940947a75e0d71b1a84e348", "some-domain.bitrix24.com"));
    let g = message(&php_form(&json_fixture("doc_v1_messageadd_group.json")));
    assert_eq!((g.message_id.get(), g.chat_id.get(), g.dialog_id.to_string()), (84351, 1157, "chat1157".into()));
    assert_eq!((g.text.as_str(), g.lines.user_code.clone()), (", how to set up the left menu", None), "THREAD is not Open Lines");
}

#[test]
fn doc_v1_join_delete_and_command() {
    assert_eq!(decode(&php_form(&json_fixture("doc_v1_joinchat_private.json"))), Ok(None), "a private dialog is not served");
    let portal = portal("bac1cd5c8940947a75e0d71b1a84e348", "some-domain.bitrix24.com");
    let joined = decode(&php_form(&json_fixture("doc_v1_joinchat_group.json")));
    assert_eq!(
        joined,
        Ok(Some(PortalEvent::BotJoined {
            portal: portal.clone(),
            bot_id: id(BotId::parse("571")),
            chat_id: id(ChatId::parse("1157")),
            dialog_id: id(DialogId::parse("chat1157")),
            lines: LinesContext::default(),
            sent_at: at(1_772_094_525),
        }))
    );
    let deleted = decode(&php_form(&json_fixture("doc_v1_botdelete.json")));
    assert_eq!(deleted, Ok(Some(PortalEvent::BotDeleted { portal, bot_id: id(BotId::parse("567")), sent_at: at(1_772_090_363) })));
    let command = decode(&php_form(&json_fixture("doc_v1_commandadd_private.json")));
    assert_eq!(
        command,
        Ok(Some(PortalEvent::Command {
            portal: self::portal("d897063e1ce7c5eb9f04b9751eef5915", "some-domain.bitrix24.com"),
            bot_id: id(BotId::parse("1291")),
            chat_id: id(ChatId::parse("2737")),
            dialog_id: id(DialogId::parse("1269")),
            command: "echo".into(),
            params: "test".into(),
            message_id: id(MessageId::parse("33899")),
            author: author(1269, "John Smith", AuthorKind::Operator),
            lines: LinesContext::default(),
            sent_at: at(1_772_109_486),
        }))
    );
}

#[test]
fn author_kinds() {
    let base = fixture("obs_a_v1_messageadd_lines.form");
    let kind = |changes: &[(&str, Option<&str>)]| {
        let m = message(&edit(&base, changes));
        (m.author.kind, m.author.id.map(UserId::get), m.system)
    };
    let operator = [("data[USER][IS_CONNECTOR]", Some("N"))];
    assert_eq!(kind(&operator), (AuthorKind::Operator, Some(13), false));
    assert_eq!(kind(&[operator[0], ("data[USER][IS_BOT]", Some("Y"))]), (AuthorKind::Bot, Some(13), false));
    let ours = [operator[0], ("data[PARAMS][AUTHOR_ID]", Some("11")), ("data[PARAMS][FROM_USER_ID]", Some("11"))];
    assert_eq!(kind(&ours), (AuthorKind::Bot, Some(11), false));
    assert_eq!(kind(&[operator[0], ("data[PARAMS][SYSTEM]", Some("Y"))]), (AuthorKind::System, Some(13), true));
    let zero = [("data[PARAMS][AUTHOR_ID]", Some("0")), ("data[PARAMS][FROM_USER_ID]", Some("0")), ("data[USER][IS_CONNECTOR]", None)];
    assert_eq!(kind(&zero), (AuthorKind::System, None, false));
    assert_eq!(kind(&[("data[PARAMS][SYSTEM]", Some("Y"))]), (AuthorKind::Customer, Some(13), true));
    // No `data[USER]` verdict: the user code's connector user (13) is still the customer.
    let unsaid = [("data[USER][IS_CONNECTOR]", None), ("data[USER][IS_BOT]", None)];
    assert_eq!(kind(&unsaid), (AuthorKind::Customer, Some(13), false));
    let someone_else = [unsaid[0], unsaid[1], ("data[PARAMS][AUTHOR_ID]", Some("20"))];
    assert_eq!(kind(&someone_else), (AuthorKind::Operator, Some(20), false));
}

#[test]
fn malformed_v1_events_are_refused_with_the_field_named() {
    let base = fixture("obs_a_v1_messageadd_lines.form");
    let err = |changes: &[(&str, Option<&str>)]| match EventEnvelope::parse(edit(&base, changes).as_bytes(), &FormLimits::default()) {
        Ok(env) => to_portal_event(&env).err().map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    };
    let says = |changes: &[(&str, Option<&str>)], field: &str| {
        let e = err(changes).unwrap_or_else(|| panic!("{changes:?} must be refused"));
        assert!(e.contains(field), "{e:?} should name {field}");
    };
    says(&[("data[PARAMS][MESSAGE_ID]", None)], "data[PARAMS][MESSAGE_ID]");
    says(&[("data[PARAMS][MESSAGE_ID]", Some("abc"))], "data[PARAMS][MESSAGE_ID]");
    says(&[("data[PARAMS][CHAT_ID]", None), ("data[PARAMS][TO_CHAT_ID]", None), ("data[PARAMS][DIALOG_ID]", None)], "data[PARAMS][CHAT_ID]");
    says(&[("data[PARAMS][DIALOG_ID]", Some("chat6"))], "data[PARAMS][DIALOG_ID]");
    says(&[("data[PARAMS][AUTHOR_ID]", Some("x"))], "data[PARAMS][AUTHOR_ID]");
    says(&[("auth[member_id]", None)], "auth[member_id]");
    says(&[("auth[member_id]", Some("not-hex!"))], "auth[member_id]");
    says(&[("auth[domain]", None)], "auth[domain]");
    says(&[("event", None)], "event");
    says(&[("ts", Some("yesterday"))], "ts");
    says(&[("ts", None)], "ts");
    // Only the chat id, or only the dialog, is enough.
    assert!(err(&[("data[PARAMS][CHAT_ID]", None), ("data[PARAMS][TO_CHAT_ID]", None)]).is_none());
    assert!(err(&[("data[PARAMS][DIALOG_ID]", None)]).is_none());
    // Unknown events are ignored, whatever they carry.
    assert_eq!(decode("event=onCrmDealAdd&data[FIELDS][ID]=1"), Ok(None));
    let big = EventEnvelope::parse(base.as_bytes(), &FormLimits { max_bytes: 100, ..FormLimits::default() });
    assert!(big.err().is_some_and(|e| e.is_too_large()));
}

/// The DOC v2 webhook envelope with the DOC fetch-mode `data`, the bot in its webhook form, and
/// the `auth` the envelope example abbreviates (`member_id`) filled in.
fn v2_envelope(edit_data: impl FnOnce(&mut Value)) -> Value {
    let mut env = json_fixture("doc_v2_webhook_envelope.json");
    let mut data = json_fixture("doc_v2_messageadd_data.json");
    data["bot"] = env["data"]["bot"].clone();
    edit_data(&mut data);
    env["data"] = data;
    env["auth"]["member_id"] = json!("bac1cd5c8940947a75e0d71b1a84e348");
    env
}

fn v2_lines(data: &mut Value) {
    data["chat"]["entityType"] = json!("LINES");
    data["chat"]["entityId"] = json!("whatsappbyedna|3|971501234567@wa|1");
    data["chat"]["entityData1"] = json!("Y|LEAD|12|N|N|900|1772093900|3|0|0");
    data["chat"]["entityData2"] = json!("LEAD|12|COMPANY|0|CONTACT|0|DEAL|0");
    data["user"]["connector"] = json!(true);
}

#[test]
fn v2_webhook_and_fetch_decode_alike() {
    let env = envelope(&php_form(&v2_envelope(|_| {})));
    assert_eq!((env.event.as_str(), env.ts, env.auth.application_token.as_deref()), ("ONIMBOTV2MESSAGEADD", Some(1_772_093_963), Some("...")));
    assert_eq!(env.data.get_path(&["bot", "auth", "access_token"]), None);
    let pushed = match to_portal_event(&env) {
        Ok(Some(PortalEvent::Message(m))) => m,
        other => panic!("{other:?}"),
    };
    let member = "bac1cd5c8940947a75e0d71b1a84e348";
    let expected = InboundMessage {
        source: Source::BotPushV2,
        portal: portal(member, "your-account.bitrix24.com"),
        message_id: id(MessageId::parse("789")),
        chat_id: id(ChatId::parse("5")),
        dialog_id: id(DialogId::parse("chat5")),
        author: author(1, "John Smith", AuthorKind::Operator),
        text: "Hello bot!".into(),
        system: false,
        lines: LinesContext::default(),
        bot_id: BotId::new(456).ok(),
        language: Some("en".into()),
        sent_at: at(1_772_093_963),
    };
    assert_eq!(pushed, expected);

    let mut fetched_event = json_fixture("doc_v2_event_get.json")["result"]["events"][0].clone();
    fetched_event["data"] = json_fixture("doc_v2_messageadd_data.json");
    let fetched = match from_v2_json(&fetched_event, &expected.portal) {
        Ok(Some(PortalEvent::Message(m))) => m,
        other => panic!("{other:?}"),
    };
    let date = DateTime::parse_from_rfc3339("2025-01-15T10:30:00+02:00").expect("date").with_timezone(&Utc);
    assert_eq!(fetched, InboundMessage { source: Source::BotFetch, sent_at: date, ..expected });

    let verbatim = &json_fixture("doc_v2_event_get.json")["result"]["events"][0];
    assert_eq!(from_v2_json(verbatim, &fetched.portal), Err(ParseError::Missing("data[message][id]")), "the DOC example's data is {{}}");
    let other = json!({"eventId": 1, "type": "ONIMBOTV2REACTIONCHANGE", "data": {}});
    assert_eq!(from_v2_json(&other, &fetched.portal), Ok(None));
}

#[test]
fn v2_open_lines_customer_both_ways() {
    let env = envelope(&php_form(&v2_envelope(v2_lines)));
    let Ok(Some(PortalEvent::Message(pushed))) = to_portal_event(&env) else { panic!("message expected") };
    assert_eq!(pushed.author.kind, AuthorKind::Customer);
    let lines = LinesContext {
        line_id: LineId::new(3).ok(),
        connector: Some("whatsappbyedna".into()),
        user_code: Some("whatsappbyedna|3|971501234567@wa|1".into()),
        session_id: SessionId::new(900).ok(),
        crm: crm("lead", 12),
        phone: Phone::parse("+971501234567").ok(),
        window: None,
    };
    assert_eq!(pushed.lines, lines);
    let mut data = json_fixture("doc_v2_messageadd_data.json");
    v2_lines(&mut data);
    let event = json!({"eventId": 7, "type": "onimbotv2messageadd", "date": "2025-01-15T10:30:00+02:00", "data": data});
    let Ok(Some(PortalEvent::Message(fetched))) = from_v2_json(&event, &pushed.portal) else { panic!("message expected") };
    assert_eq!((fetched.lines, fetched.author), (lines, pushed.author));
}

#[test]
fn v2_join_command_delete_and_malformed() {
    let decode_v2 = |event: &str, edit_data: &dyn Fn(&mut Value)| {
        let mut env = v2_envelope(|d| edit_data(d));
        env["event"] = json!(event);
        decode(&php_form(&env))
    };
    let Ok(Some(PortalEvent::BotJoined { bot_id, chat_id, dialog_id, .. })) = decode_v2("ONIMBOTV2JOINCHAT", &|d| {
        d["dialogId"] = json!("chat5");
        d.as_object_mut().map(|o| o.remove("message"));
    }) else {
        panic!("join expected")
    };
    assert_eq!((bot_id.get(), chat_id.get(), dialog_id.to_string()), (456, 5, "chat5".into()));
    let Ok(Some(PortalEvent::Command { command, params, message_id, author, .. })) = decode_v2("ONIMBOTV2COMMANDADD", &|d| {
        d["command"] = json!({"id": 78, "command": "/help", "params": "topic", "context": "textarea"});
    }) else {
        panic!("command expected")
    };
    assert_eq!((command.as_str(), params.as_str(), message_id.get(), author.kind), ("help", "topic", 789, AuthorKind::Operator));
    let deleted = decode_v2("ONIMBOTV2DELETE", &|d| *d = json!({"bot": d["bot"].clone()}));
    assert!(matches!(deleted, Ok(Some(PortalEvent::BotDeleted { bot_id, .. })) if bot_id.get() == 456));

    let refused = |event: &str, f: &dyn Fn(&mut Value)| decode_v2(event, f).err().map(|e| e.to_string()).unwrap_or_default();
    let drop = |obj: &'static str, key: &'static str| {
        move |d: &mut Value| {
            if let Some(o) = d[obj].as_object_mut() {
                o.remove(key);
            }
        }
    };
    assert!(refused("ONIMBOTV2MESSAGEADD", &drop("message", "id")).contains("data[message][id]"));
    let no_chat = |d: &mut Value| {
        drop("message", "chatId")(d);
        drop("chat", "id")(d);
        drop("chat", "dialogId")(d);
    };
    assert!(refused("ONIMBOTV2MESSAGEADD", &no_chat).contains("data[chat][id]"));
    assert!(refused("ONIMBOTV2MESSAGEADD", &|d| d["bot"]["id"] = json!("x")).contains("data[bot][id]"));
    assert!(refused("ONIMBOTV2DELETE", &|d| *d = json!({"language": "en"})).contains("data[bot][id]"));
    assert!(refused("ONIMBOTV2COMMANDADD", &|_| {}).contains("data[command][command]"));
    let fetched = json!({"eventId": 1, "type": "ONIMBOTV2DELETE", "data": {"bot": {"id": 456}}});
    let p = portal("abc", "x.bitrix24.com");
    assert_eq!(from_v2_json(&fetched, &p), Err(ParseError::Missing("ts (or date)")));
    assert!(matches!(from_v2_json(&json!({"type": "ONIMBOTV2DELETE", "date": "soon", "data": {}}), &p), Err(ParseError::Invalid { .. })));
    assert_eq!(from_v2_json(&json!({"data": {}}), &p), Err(ParseError::Missing("type")));
}
