//! Invariants shared by the event targets: what any decoded event must satisfy, whichever path
//! produced it.

use chrono::{DateTime, Utc};
use olbridge_core::domain::event::{Job, PortalEvent};
use olbridge_core::domain::ids::{MemberId, PortalDomain};
use olbridge_core::domain::message::PortalRef;

/// The portal every target attributes events to (as the receiver does with the verified one).
pub fn portal() -> Option<PortalRef> {
    let member_id = MemberId::parse("a1b2c3d4e5f60718293a4b5c6d7e8f90").ok()?;
    let domain = PortalDomain::parse("example.bitrix24.com").ok()?;
    Some(PortalRef { member_id, domain })
}

/// A decoded event: its de-duplication key and FIFO group are non-empty and scoped to the portal
/// it was attributed to, its ids are Bitrix24 ids (never 0), and the queue payload built from it
/// survives a JSON round trip unchanged (what the SQLite queue and SQS store and read back).
pub fn check_event(event: &PortalEvent, portal: &PortalRef) {
    assert_eq!(event.portal(), portal, "the event is attributed to the portal it was decoded for");
    let member = portal.member_id.as_str();
    let key = event.dedup_key().to_string();
    assert!(key.len() > member.len() + 1 && key.starts_with(member) && key[member.len()..].starts_with(':'), "dedup key {key:?}");
    let group = event.group();
    assert!(group.as_str().starts_with(member) && group.as_str().len() > member.len() + 1, "group {:?}", group.as_str());
    match event {
        PortalEvent::Message(m) => {
            assert!(m.message_id.get() != 0 && m.chat_id.get() != 0);
            assert!(m.author.id.is_none_or(|u| u.get() != 0));
            assert!(m.dialog_id.chat().is_none_or(|c| c == m.chat_id), "dialog {} vs chat {}", m.dialog_id, m.chat_id);
        }
        PortalEvent::BotJoined { bot_id, chat_id, dialog_id, .. } => {
            assert!(bot_id.get() != 0 && chat_id.get() != 0);
            assert!(dialog_id.chat().is_none_or(|c| c == *chat_id));
        }
        PortalEvent::Command { bot_id, chat_id, message_id, .. } => assert!(bot_id.get() != 0 && chat_id.get() != 0 && message_id.get() != 0),
        PortalEvent::BotDeleted { bot_id, .. } => assert!(bot_id.get() != 0),
    }
    let received_at = DateTime::<Utc>::UNIX_EPOCH;
    let job = Job::new(event.clone(), received_at);
    let json = match serde_json::to_string(&job) {
        Ok(json) => json,
        Err(e) => panic!("a decoded event cannot be serialised: {e}"),
    };
    match serde_json::from_str::<Job>(&json) {
        Ok(back) => assert_eq!(back, job, "the queue payload changed in a JSON round trip: {json}"),
        Err(e) => panic!("a queued event cannot be read back: {e}: {json}"),
    }
}
