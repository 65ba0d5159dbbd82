//! Messages the pollers find: read back with `im.dialog.messages.get` (the message, its author from
//! the response's `users[]`, the chat's entity strings from `im.recent.list`), or pulled from the
//! webhook user's `im.v2.Event.get` log (`ONIMV2MESSAGEADD`, the Chatbots 2.0 `message`/`chat`/
//! `user` shape).
//!
//! Both become the same [`InboundMessage`] a push event becomes, through the same private
//! `RawMessage`: the author rule (the connector user is the customer, and when the response does
//! not say, the user code's connector user id decides), the Open Lines context (line, session, CRM,
//! the WhatsApp phone from the user code) and the de-duplication key are written once, so a message
//! seen by push and by polling is one key.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::node;
use super::{Ctx, Kind, Names, ParseError, RawMessage, rfc3339};
use crate::domain::event::PortalEvent;
use crate::domain::message::{InboundMessage, PortalRef, Source};

const NAMES: Names = Names { message_id: "messages[].id", chat: "chat_id", dialog: "dialog_id", author: "messages[].author_id" };

/// A message of an Open Lines chat as `im.dialog.messages.get` describes it, with what the poller
/// knows about its chat.
#[derive(Debug, Clone, Copy)]
pub struct PolledMessage<'a> {
    /// `messages[].id`.
    pub message_id: u64,
    /// The chat.
    pub chat_id: u64,
    /// `messages[].author_id` (0: the portal itself).
    pub author_id: u64,
    /// The author's name from `users[]` (empty when not listed).
    pub author_name: &'a str,
    /// The author's `connector` flag from `users[]`, when the response listed the author.
    pub author_connector: Option<bool>,
    /// The author's `bot` flag from `users[]`.
    pub author_bot: bool,
    /// `messages[].text`.
    pub text: &'a str,
    /// `messages[].date`.
    pub sent_at: DateTime<Utc>,
    /// The chat's user code (`entity_id`).
    pub entity_id: &'a str,
    /// The chat's session string (`entity_data_1`).
    pub entity_data_1: &'a str,
    /// The chat's CRM links (`entity_data_2`).
    pub entity_data_2: &'a str,
}

/// A polled message as the one internal model, attributed to `portal` and to `source`
/// (operator polling or reconciliation).
pub fn from_polled(m: &PolledMessage<'_>, portal: PortalRef, source: Source) -> Result<InboundMessage, ParseError> {
    let owned = |s: &str| (!s.trim().is_empty()).then(|| Cow::Owned(s.trim().to_owned()));
    let raw = RawMessage {
        message_id: Some(Cow::Owned(m.message_id.to_string())),
        chat_id: Some(Cow::Owned(m.chat_id.to_string())),
        dialog_id: None,
        author_id: Some(Cow::Owned(m.author_id.to_string())),
        author_name: m.author_name.trim().to_owned(),
        author_connector: m.author_connector,
        author_bot: m.author_bot,
        system: m.author_id == 0,
        text: m.text.to_owned(),
        lines: true,
        entity_id: owned(m.entity_id),
        entity_data_1: owned(m.entity_data_1),
        entity_data_2: owned(m.entity_data_2),
        language: None,
    };
    raw.into_message(&NAMES, &Ctx { portal, source, sent_at: Some(m.sent_at), bot_id: None })
}

/// Decodes one event of an `im.v2.Event.get` answer (`{eventId, type, date, data}`): a message
/// (`ONIMV2MESSAGEADD`) as the one internal model; `Ok(None)` for the other events (joins).
pub fn from_im_v2_json(event: &Value, portal: &PortalRef, source: Source) -> Result<Option<InboundMessage>, ParseError> {
    let kind = node::text(event, &["type"]).ok_or(ParseError::Missing("type"))?.to_ascii_uppercase();
    if kind != "ONIMV2MESSAGEADD" {
        return Ok(None);
    }
    let data = event.get("data").filter(|d| d.is_object()).ok_or(ParseError::Missing("data"))?;
    let sent_at = node::text(event, &["date"]).map(|d| rfc3339(&d, "date")).transpose()?;
    match super::v2::decode(Kind::Message, data, Ctx { portal: portal.clone(), source, sent_at, bot_id: None })? {
        Some(PortalEvent::Message(m)) => Ok(Some(m)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::ids::{MemberId, PortalDomain};
    use crate::domain::message::AuthorKind;

    fn portal() -> PortalRef {
        PortalRef { member_id: MemberId::parse("abc123").expect("member"), domain: PortalDomain::parse("example.bitrix24.com").expect("domain") }
    }

    fn polled(author_id: u64, connector: Option<bool>) -> PolledMessage<'static> {
        PolledMessage {
            message_id: 84_001,
            chat_id: 1701,
            author_id,
            author_name: "Customer 5678",
            author_connector: connector,
            author_bot: false,
            text: "Hello",
            sent_at: DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
            entity_id: "whatsappbyedna|3|4915112345678@olbridge|38008",
            entity_data_1: "Y|LEAD|12|N|N|301|1700000000|0|0|0",
            entity_data_2: "LEAD|12|COMPANY|0|CONTACT|0|DEAL|0",
        }
    }

    #[test]
    fn a_polled_customer_message_has_the_push_key_phone_session_and_crm() {
        let m = from_polled(&polled(38_008, Some(true)), portal(), Source::OperatorPoll).expect("decodes");
        assert_eq!(m.author.kind, AuthorKind::Customer);
        assert_eq!(m.dedup_key().as_str(), "abc123:msg:84001", "the same key push gives the same message");
        assert_eq!(m.lines.phone.map(|p| p.to_string()), Some("+4915112345678".into()));
        assert_eq!(m.lines.session_id.map(|s| s.get()), Some(301));
        assert_eq!(m.lines.crm.map(|c| (c.entity_type, c.entity_id)), Some(("lead".into(), 12)));
        assert_eq!((m.dialog_id.to_string(), m.source), ("chat1701".into(), Source::OperatorPoll));
    }

    #[test]
    fn without_a_users_entry_the_user_code_decides_who_the_customer_is() {
        assert_eq!(from_polled(&polled(38_008, None), portal(), Source::Reconcile).expect("decodes").author.kind, AuthorKind::Customer);
        assert_eq!(from_polled(&polled(38_006, None), portal(), Source::Reconcile).expect("decodes").author.kind, AuthorKind::Operator);
        assert_eq!(from_polled(&polled(0, None), portal(), Source::Reconcile).expect("decodes").author.kind, AuthorKind::System);
        let bot = PolledMessage { author_bot: true, ..polled(38_010, Some(false)) };
        assert_eq!(from_polled(&bot, portal(), Source::Reconcile).expect("decodes").author.kind, AuthorKind::Bot);
    }

    #[test]
    fn an_im_v2_message_event_decodes_like_a_bot_event_and_other_events_are_skipped() {
        let event = json!({"eventId": 7, "type": "ONIMV2MESSAGEADD", "date": "2025-01-15T10:30:00+03:00", "data": {
            "message": {"id": 84001, "chatId": 1701, "authorId": 38008, "text": "Hello", "isSystem": false},
            "chat": {"id": 1701, "dialogId": "chat1701", "type": "lines", "entityType": "LINES",
                "entityId": "whatsappbyedna|3|4915112345678@olbridge|38008", "entityData1": "N|NONE|0|N|N|301|0|0|0|0"},
            "user": {"id": 38008, "connector": true, "bot": false, "name": "Customer 5678"}}});
        let m = from_im_v2_json(&event, &portal(), Source::OperatorPoll).expect("decodes").expect("a message");
        assert_eq!((m.author.kind, m.dedup_key().as_str()), (AuthorKind::Customer, "abc123:msg:84001"));
        assert_eq!(m.lines.session_id.map(|s| s.get()), Some(301));
        let join = json!({"eventId": 8, "type": "ONIMV2JOINCHAT", "date": "2025-01-15T10:30:00+03:00", "data": {"dialogId": "chat1701"}});
        assert_eq!(from_im_v2_json(&join, &portal(), Source::OperatorPoll), Ok(None));
    }
}
