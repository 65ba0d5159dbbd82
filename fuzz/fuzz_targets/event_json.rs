//! The event model from JSON: events fetched with `imbot.v2.Event.get` (`from_v2_json`) and
//! `im.v2.Event.get` (`poll::from_im_v2_json`), on arbitrary JSON.
//!
//! Properties: nothing panics (errors are values); a decoded event satisfies
//! `common::check_event` (non-empty key and group scoped to the portal, non-zero ids, the queue
//! payload survives a JSON round trip); and the webhook form path agrees with the fetch path: the
//! same `data`, encoded as PHP would POST it and decoded by `EventEnvelope::from_form` +
//! `to_portal_event_as`, gives the same event (bar its `source`), or fails too.
#![no_main]

#[path = "common.rs"]
mod common;

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use olbridge_core::domain::event::PortalEvent;
use olbridge_core::domain::form::FormValue;
use olbridge_core::domain::message::Source;
use olbridge_core::domain::parse::{self, EventEnvelope, poll};
use serde_json::Value;

/// `data` as PHP's `http_build_query` would send it: every scalar a string (booleans `1`/`0`),
/// lists as maps with index keys, `null`, empty lists and empty objects left out.
fn php_form(value: &Value) -> Option<FormValue> {
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(FormValue::from(if *b { "1" } else { "0" })),
        Value::Number(n) => Some(FormValue::Text(n.to_string())),
        Value::String(s) => Some(FormValue::Text(s.clone())),
        Value::Array(items) => map(items.iter().enumerate().map(|(i, v)| (i.to_string(), v))),
        Value::Object(o) => map(o.iter().map(|(k, v)| (k.clone(), v))),
    }
}

fn map<'a>(entries: impl Iterator<Item = (String, &'a Value)>) -> Option<FormValue> {
    let m: BTreeMap<String, FormValue> = entries.filter_map(|(k, v)| php_form(v).map(|f| (k, f))).collect();
    (!m.is_empty()).then_some(FormValue::Map(m))
}

fn with_source(event: PortalEvent, source: Source) -> PortalEvent {
    match event {
        PortalEvent::Message(mut m) => {
            m.source = source;
            PortalEvent::Message(m)
        }
        other => other,
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Value>(bytes) else { return };
    let Some(portal) = common::portal() else { return };

    if let Ok(Some(m)) = poll::from_im_v2_json(&event, &portal, Source::Reconcile) {
        common::check_event(&PortalEvent::Message(m), &portal);
    }

    let fetched = parse::from_v2_json(&event, &portal);
    if let Ok(Some(e)) = &fetched {
        common::check_event(e, &portal);
    }

    // The same event delivered by webhook: no `date` (the fetch path's `date` has no form
    // counterpart here, so both fall back to the message's own date), `data` form-encoded.
    let (Some(Value::String(kind)), Some(data @ Value::Object(_))) = (event.get("type"), event.get("data")) else { return };
    // Only Chatbots 2.0 codes: a v1 code (`ONIMBOTMESSAGEADD`) is no fetched event (`Ok(None)`)
    // but is a v1 webhook event, decoded from other fields.
    if event.get("date").is_some() || !parse::is_v2_event(kind.trim()) {
        return;
    }
    let mut root = BTreeMap::from([("event".to_owned(), FormValue::from(kind.as_str()))]);
    if let Some(form_data) = php_form(data) {
        root.insert("data".to_owned(), form_data);
    }
    let Ok(env) = EventEnvelope::from_form(&FormValue::Map(root)) else { return };
    let pushed = parse::to_portal_event_as(&env, portal.clone());
    match (fetched, pushed) {
        (Ok(Some(f)), Ok(Some(p))) => assert_eq!(with_source(f, Source::BotPushV2), p, "fetch and webhook decode the same data differently"),
        (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
        (f, p) => panic!("fetch and webhook disagree: {f:?} vs {p:?}"),
    }
});
