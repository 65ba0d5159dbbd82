//! JSON renderings of portal records, each shaped after a documented example (key sets and value types).
//!
//! v1 `im.*` prints snake_case users with integer ids and booleans; `imopenlines.dialog.get` mixes integers and
//! strings exactly like its example; Chatbots 2.0 prints camelCase. Keeping every shape here means a method
//! module never hand-builds a user or chat object of its own.

use super::Portal;
use super::model::{Bot, Chat, Line, Message, User};
use crate::api::{ChatSnapshot, SnapshotMessage};
use crate::rest::envelope::{iso, php_map};
use serde_json::{Map, Value, json};

fn date(p: &Portal, t: &super::model::Time) -> String {
    iso(t.to_utc(), p.ident.tz)
}

fn phones(p: &Portal, u: &User) -> Value {
    match (&u.phone, u.is_connector() && !p.ident.expose_connector_phones) {
        (Some(ph), false) => json!({"personal_mobile": ph}),
        _ => json!(false),
    }
}

fn bot_data(p: &Portal, u: &User) -> Value {
    match p.bots.get(&u.id) {
        Some(b) => json!({
            "code": b.code, "type": b.v2.as_ref().map_or(b.bot_type.as_str(), |v| v.bot_type.as_str()),
            "app_id": b.app_id, "is_hidden": false, "is_support_openline": b.serves_openlines(),
        }),
        None => Value::Null,
    }
}

/// A user as `im.user.get` / `im.dialog.messages.get` print it (snake_case).
pub(crate) fn user_snake(p: &Portal, u: &User) -> Value {
    json!({
        "id": u.id, "active": u.active, "name": u.name(), "first_name": u.first_name, "last_name": u.last_name,
        "work_position": u.work_position, "color": u.color, "avatar": "", "avatar_hr": "", "gender": u.gender,
        "birthday": "", "extranet": u.is_extranet(), "network": false, "bot": u.is_bot(), "connector": u.is_connector(),
        "external_auth_id": u.external_auth_id(), "status": "online", "idle": false,
        "last_activity_date": date(p, &u.last_activity), "mobile_last_date": false, "desktop_last_date": false,
        "absent": false, "departments": u.departments, "phones": phones(p, u), "bot_data": bot_data(p, u),
        "type": u.user_type(), "website": "", "email": u.email,
    })
}

/// A user as Chatbots 2.0 events print it (camelCase).
pub(crate) fn user_v2(p: &Portal, u: &User) -> Value {
    json!({
        "id": u.id, "active": u.active, "name": u.name(), "firstName": u.first_name, "lastName": u.last_name,
        "workPosition": u.work_position, "color": u.color, "avatar": "", "gender": u.gender, "birthday": "",
        "extranet": u.is_extranet(), "bot": u.is_bot(), "connector": u.is_connector(),
        "externalAuthId": u.external_auth_id(), "status": "online", "idle": false,
        "lastActivityDate": date(p, &u.last_activity), "absent": false, "departments": u.departments,
        "phones": false, "type": if u.is_connector() { "extranet" } else if u.is_bot() { "bot" } else { "employee" },
    })
}

/// A user inside `imopenlines.session.history.get` (camelCase, string id).
pub(crate) fn user_history(p: &Portal, u: &User) -> Value {
    let mut v = user_v2(p, u);
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), json!(u.id.to_string()));
        o.insert("network".into(), json!(false));
        o.insert("profile".into(), json!(format!("/company/personal/user/{}/", u.id)));
        o.insert("type".into(), json!(u.user_type()));
    }
    v
}

/// A message as `im.dialog.messages.get` prints it.
pub(crate) fn message_im(p: &Portal, m: &Message, reader: u64) -> Value {
    let read_up_to = p.chats.get(&m.chat_id).and_then(|c| c.read.get(&reader)).copied().unwrap_or(0);
    json!({
        "id": m.id, "chat_id": m.chat_id, "author_id": m.author_id, "date": date(p, &m.date), "text": m.text,
        "unread": m.author_id != reader && m.id > read_up_to, "uuid": m.uuid, "replaces": [],
        "params": php_map(m.params.clone()), "disappearing_date": null,
    })
}

/// The chat object of `imopenlines.dialog.get`.
pub(crate) fn dialog_get(p: &Portal, c: &Chat, caller: u64) -> Value {
    let entity_id = c.lines.as_ref().map(|l| l.entity_id.clone()).unwrap_or_default();
    let last = c.message_ids.last().copied().unwrap_or(0);
    let role = if c.owner == caller && caller > 0 {
        "owner"
    } else if c.is_member(caller) {
        "member"
    } else {
        "none"
    };
    json!({
        "id": c.id, "parent_chat_id": 0, "parent_message_id": 0, "name": c.title, "description": null,
        "owner": c.owner, "extranet": true, "avatar": "", "color": c.color, "type": "lines", "counter": 0,
        "user_counter": c.members.len(), "message_count": c.message_ids.len(), "unread_id": 0,
        "restrictions": {"avatar": true, "rename": true, "extend": true, "call": true, "mute": true, "leave": true,
            "leave_owner": true, "send": true, "user_list": true},
        "last_message_id": last, "last_id": last, "marked_id": 0, "disk_folder_id": 0, "entity_type": "LINES",
        "entity_id": entity_id, "entity_data_1": p.entity_data_1(c), "entity_data_2": p.entity_data_2(c),
        "entity_data_3": p.entity_data_3(c), "mute_list": [], "date_create": date(p, &c.date_create),
        "message_type": "L", "public": "", "role": role,
        "entity_link": {"type": "LINES", "url": "", "id": entity_id}, "text_field_enabled": true,
        "background_id": null,
        "permissions": {"manage_users_add": "member", "manage_users_delete": "manager", "manage_ui": "member",
            "manage_settings": "owner", "manage_messages": "member", "can_post": "member"},
        "is_new": false, "readed_list": [], "manager_list": if c.owner > 0 { vec![c.owner] } else { Vec::new() },
        "last_message_views": {"message_id": last, "first_viewers": [], "count_of_viewers": 0},
        "dialog_id": c.dialog_id(),
    })
}

/// The chat block used in recent lists and session history (`entity_*` included).
pub(crate) fn chat_short(p: &Portal, c: &Chat) -> Value {
    let lines = c.lines.is_some();
    json!({
        "id": c.id, "name": c.title, "owner": c.owner, "extranet": lines, "avatar": "", "color": c.color,
        "type": if lines { "lines" } else { "chat" }, "entity_type": if lines { "LINES" } else { "" },
        "entity_id": c.lines.as_ref().map(|l| l.entity_id.clone()).unwrap_or_default(),
        "entity_data_1": p.entity_data_1(c), "entity_data_2": p.entity_data_2(c), "entity_data_3": p.entity_data_3(c),
        "date_create": date(p, &c.date_create), "message_type": if lines { "L" } else { "C" },
    })
}

/// Session status codes as Bitrix uses them in `lines.status` (20 client wrote, 40 operator answered, 60 closed).
fn session_status(p: &Portal, c: &Chat) -> u64 {
    let Some(l) = &c.lines else { return 0 };
    match p.sessions.get(&l.session_id) {
        Some(s) if !s.open => 60,
        Some(_) => {
            let last_author = c.message_ids.iter().rev().filter_map(|id| p.messages.get(id)).find(|m| m.author_id != 0);
            if last_author.is_some_and(|m| m.author_id == l.customer_id) { 20 } else { 40 }
        }
        None => 0,
    }
}

/// One item of `im.recent.list` / `im.recent.get`.
pub(crate) fn recent_item(p: &Portal, c: &Chat, caller: u64) -> Value {
    let last = c.message_ids.last().and_then(|id| p.messages.get(id));
    let read = c.read.get(&caller).copied().unwrap_or(0);
    let counter = c.message_ids.iter().filter_map(|id| p.messages.get(id)).filter(|m| m.id > read && m.author_id != caller).count();
    let message = last.map_or(json!({}), |m| {
        json!({"id": m.id, "text": m.text, "file": false, "author_id": m.author_id, "attach": m.attach.is_some(),
               "date": date(p, &m.date), "status": "received", "uuid": m.uuid})
    });
    let activity = last.map_or_else(|| date(p, &c.date_create), |m| date(p, &m.date));
    let lines = c.lines.as_ref().map_or(Value::Null, |l| {
        let created = p.sessions.get(&l.session_id).map_or_else(|| date(p, &c.date_create), |s| date(p, &s.date_create));
        json!({"id": l.session_id, "status": session_status(p, c), "date_create": created})
    });
    json!({
        "id": c.dialog_id(), "chat_id": c.id, "type": "chat", "avatar": {"url": "", "color": c.color},
        "title": c.title, "message": message, "counter": counter, "last_id": last.map_or(0, |m| m.id),
        "pinned": false, "unread": false, "has_reminder": false, "date_update": activity,
        "date_last_activity": activity, "user": {"id": 0}, "chat": chat_short(p, c), "lines": lines, "options": {},
    })
}

/// One line as `imopenlines.config.list.get` prints it.
pub(crate) fn line_config(p: &Portal, l: &Line, queue: bool, config_queue: bool) -> Value {
    let yn = |b: bool| if b { "Y" } else { "N" };
    let mut m: Map<String, Value> = serde_json::from_value(json!({
        "ID": l.id.to_string(), "LINE_NAME": l.name, "ACTIVE": yn(l.active), "CRM": yn(l.crm),
        "CRM_CREATE": "lead", "CRM_CREATE_SECOND": "", "CRM_CREATE_THIRD": "Y", "CRM_FORWARD": "Y",
        "CRM_CHAT_TRACKER": "N", "CRM_TRANSFER_CHANGE": "Y", "CRM_SOURCE": "create",
        "QUEUE_TYPE": "evenly", "QUEUE_TIME": "60", "NO_ANSWER_TIME": "60", "CHECK_AVAILABLE": "N",
        "WATCH_TYPING": "Y", "WELCOME_BOT_ENABLE": yn(l.welcome_bot_enable),
        "WELCOME_BOT_JOIN": l.welcome_bot_join.as_str(), "WELCOME_BOT_ID": l.welcome_bot_id.to_string(),
        "WELCOME_BOT_TIME": l.welcome_bot_time.to_string(), "WELCOME_BOT_LEFT": l.welcome_bot_left.as_str(),
        "WELCOME_MESSAGE": "N", "WELCOME_MESSAGE_TEXT": l.welcome_message, "DATE_CREATE": date(p, &l.date_create),
    }))
    .unwrap_or_default();
    if queue {
        m.insert("QUEUE".into(), json!(l.queue));
        let fields: Map<String, Value> = l
            .queue
            .iter()
            .filter_map(|id| p.user(*id))
            .map(|u| {
                let pos = if u.work_position.is_empty() { Value::Null } else { json!(u.work_position) };
                (u.id.to_string(), json!({"USER_NAME": u.name(), "USER_WORK_POSITION": pos, "USER_AVATAR": "", "USER_AVATAR_ID": null}))
            })
            .collect();
        m.insert("QUEUE_USERS_FIELDS".into(), php_map(fields));
    }
    if config_queue {
        let cq: Vec<Value> = l.queue.iter().map(|u| json!({"ENTITY_ID": u.to_string(), "ENTITY_TYPE": "user"})).collect();
        m.insert("CONFIG_QUEUE".into(), json!(cq));
    }
    Value::Object(m)
}

/// The chat object of Chatbots 2.0 and `im.v2` events (DOC `chat-bots-v2/entities.md#chat`, the event example
/// of `im.v2/events/events.md`): no `role`/`muteList` (they depend on the reader), `entity*` filled for Open Lines.
pub(crate) fn chat_v2(p: &Portal, c: &Chat) -> Value {
    let lines = c.lines.is_some();
    let entity_id = c.lines.as_ref().map(|l| l.entity_id.clone()).unwrap_or_default();
    let entity_link = if lines { json!({"type": "LINES", "url": "", "id": entity_id}) } else { json!({}) };
    json!({
        "id": c.id, "dialogId": c.dialog_id(), "name": c.title, "type": if lines { "lines" } else { "chat" },
        "messageType": if lines { "L" } else { "C" }, "owner": c.owner, "color": c.color, "avatar": "",
        "description": "", "extranet": lines, "containsCollaber": false,
        "entityType": if lines { "LINES" } else { "" }, "entityId": entity_id,
        "entityData1": p.entity_data_1(c), "entityData2": p.entity_data_2(c), "entityData3": p.entity_data_3(c),
        "entityLink": entity_link, "diskFolderId": 0, "permissions": {}, "parentChatId": 0, "parentMessageId": 0,
        "isNew": false, "textFieldEnabled": "Y", "backgroundId": null,
    })
}

/// A user inside `im.v2` events: online fields always `false` (DOC `im.v2/events/events.md`), `website`/`email`.
pub(crate) fn user_v2_event(p: &Portal, u: &User) -> Value {
    let mut v = user_v2(p, u);
    if let Some(o) = v.as_object_mut() {
        for k in ["idle", "lastActivityDate", "mobileLastDate", "desktopLastDate"] {
            o.insert(k.into(), json!(false));
        }
        o.insert("website".into(), json!(""));
        o.insert("email".into(), json!(u.email));
    }
    v
}

/// The full Bot object of Chatbots 2.0 (fetch-mode events, `imbot.v2.Bot.register`).
pub(crate) fn bot_v2(p: &Portal, b: &Bot) -> Value {
    let v2 = b.v2.as_ref();
    let chats = p.chats.values().filter(|c| c.is_member(b.id)).count();
    json!({
        "id": b.id, "code": b.code, "type": v2.map_or("bot", |v| v.bot_type.as_str()),
        "isHidden": v2.is_some_and(|v| v.is_hidden), "isSupportOpenline": b.serves_openlines(),
        "isReactionsEnabled": v2.is_some_and(|v| v.is_reactions_enabled), "backgroundId": null,
        "language": p.ident.language, "moduleId": "rest", "eventMode": v2.map_or("webhook", |v| v.event_mode.as_str()),
        "countMessage": b.count_message, "countCommand": b.count_command, "countChat": chats, "countUser": 0,
    })
}

/// A chat's state for tests.
pub(crate) fn snapshot(p: &Portal, c: &Chat) -> ChatSnapshot {
    let session = c.lines.as_ref().and_then(|l| p.sessions.get(&l.session_id));
    let messages = c
        .message_ids
        .iter()
        .filter_map(|id| p.messages.get(id))
        .map(|m| SnapshotMessage {
            id: m.id,
            author_id: m.author_id,
            text: m.text.clone(),
            system: m.system,
            skip_connector: m.skip_connector,
            to_customer: m.to_customer,
            window_blocked: m.window_blocked,
            session_id: m.session_id,
        })
        .collect();
    ChatSnapshot {
        chat_id: c.id,
        dialog_id: c.dialog_id(),
        line_id: c.lines.as_ref().map_or(0, |l| l.line_id),
        customer_id: c.lines.as_ref().map_or(0, |l| l.customer_id),
        operator_id: session.filter(|s| s.open && s.operator_id > 0).map(|s| s.operator_id),
        session_id: session.map_or(0, |s| s.id),
        session_open: session.is_some_and(|s| s.open),
        members: c.members.clone(),
        bot_in_chat: c.members.iter().copied().filter(|m| p.bots.contains_key(m)).collect(),
        entity_id: c.lines.as_ref().map(|l| l.entity_id.clone()).unwrap_or_default(),
        entity_data_1: p.entity_data_1(c),
        entity_data_2: p.entity_data_2(c),
        entity_data_3: p.entity_data_3(c),
        typing: c.typing.clone(),
        messages,
    }
}
