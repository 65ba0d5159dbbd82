//! Decoding what an Open Lines chat says about itself: the user code (`CHAT_ENTITY_ID`,
//! `entity_id`) and the session and CRM strings (`CHAT_ENTITY_DATA_1/2`, `entity_data_1/2`).
//!
//! Push events, fetched events and `imopenlines.dialog.get` (the polling path) carry the same
//! strings, so the decoding lives here once. Every field is optional and decoded tolerantly: a
//! short or odd string yields what can be read from it, never an error, because none of it is
//! needed to answer the customer.

use crate::domain::ids::{LineId, Phone, SessionId};
use crate::domain::message::{CrmBinding, LinesContext};
use crate::domain::window::Block;

/// An Open Lines user code, `connector|line|connectorChatId|connectorUserId`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCode<'a> {
    /// The connector id (`whatsappbyedna`, `telegrambot`, ...).
    pub connector: &'a str,
    /// The line, when the second part is a positive integer.
    pub line_id: Option<LineId>,
    /// The connector's chat id (for Edna WhatsApp `<phone>@<sender id>`).
    pub connector_chat_id: &'a str,
    /// The connector user: in practice the customer's Bitrix24 user id.
    pub connector_user_id: &'a str,
}

impl<'a> UserCode<'a> {
    /// Splits a user code; `None` when it has no connector part. Missing parts are empty.
    pub fn parse(raw: &'a str) -> Option<Self> {
        let mut parts = raw.trim().splitn(4, '|');
        let connector = parts.next().filter(|c| !c.is_empty())?;
        let line_id = parts.next().and_then(|l| LineId::parse(l).ok());
        Some(Self { connector, line_id, connector_chat_id: parts.next().unwrap_or(""), connector_user_id: parts.next().unwrap_or("") })
    }

    /// The customer's phone, for WhatsApp connectors (`whatsapp*`): the connector chat id up to
    /// `@`, with or without `+` (the exact format is UNCONFIRMED, so parsing is tolerant). Other
    /// connectors put other things there, so they yield `None`.
    pub fn phone(&self) -> Option<Phone> {
        if !self.connector.to_ascii_lowercase().starts_with("whatsapp") {
            return None;
        }
        let address = self.connector_chat_id.split('@').next().unwrap_or("");
        Phone::parse(address).ok()
    }
}

/// The session string `CRM|TYPE|ID|PAUSE|WAIT|SESSION_ID|DATE|LINE|BLOCK_DATE|BLOCK_REASON`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionData {
    /// Field 6.
    pub session_id: Option<SessionId>,
    /// Fields 1–3, when CRM is `Y` and the id is positive.
    pub crm: Option<CrmBinding>,
    /// Field 8, when positive (often `0` in captures).
    pub line_id: Option<LineId>,
    /// Fields 9–10, `BLOCK_DATE` and `BLOCK_REASON`, when a block date is set.
    pub block: Option<Block>,
}

impl SessionData {
    /// Decodes `entity_data_1`, tolerating missing fields.
    pub fn parse(raw: &str) -> Self {
        let f: Vec<&str> = raw.trim().split('|').collect();
        let field = |i: usize| f.get(i).copied().unwrap_or("");
        let crm = if field(0).eq_ignore_ascii_case("Y") { crm_binding(field(1), field(2)) } else { None };
        Self { session_id: SessionId::parse(field(5)).ok(), crm, line_id: LineId::parse(field(7)).ok(), block: Block::parse(field(8), field(9)) }
    }
}

/// Decodes `entity_data_2` (`LEAD|id|COMPANY|id|CONTACT|id|DEAL|id`) into the binding the chat
/// is most about: a deal, else a lead, else a contact, else a company.
pub fn crm_links(raw: &str) -> Option<CrmBinding> {
    let f: Vec<&str> = raw.trim().split('|').collect();
    let found: Vec<CrmBinding> = f.chunks(2).filter_map(|pair| crm_binding(pair.first()?, pair.get(1)?)).collect();
    ["deal", "lead", "contact", "company"].iter().find_map(|wanted| found.iter().find(|b| b.entity_type == *wanted).cloned())
}

/// A binding from a type name and an id; `None` for `NONE`, unknown types and ids ≤ 0.
fn crm_binding(entity_type: &str, id: &str) -> Option<CrmBinding> {
    let entity_type = entity_type.trim().to_ascii_lowercase();
    if !matches!(entity_type.as_str(), "lead" | "deal" | "contact" | "company") {
        return None;
    }
    let entity_id = id.trim().parse::<u64>().ok().filter(|n| *n > 0)?;
    Some(CrmBinding { entity_type, entity_id })
}

/// The Open Lines context of a chat from its entity fields (any may be absent or empty). The CRM
/// binding of the session string wins over the links string; the line comes from the user code,
/// else from the session string.
pub fn lines_context(entity_id: Option<&str>, data_1: Option<&str>, data_2: Option<&str>) -> LinesContext {
    let code = entity_id.and_then(UserCode::parse);
    let session = data_1.map(SessionData::parse).unwrap_or_default();
    LinesContext {
        line_id: code.as_ref().and_then(|c| c.line_id).or(session.line_id),
        connector: code.as_ref().map(|c| c.connector.to_owned()),
        user_code: code.as_ref().and(entity_id).map(|s| s.trim().to_owned()),
        session_id: session.session_id,
        crm: session.crm.or_else(|| data_2.and_then(crm_links)),
        phone: code.as_ref().and_then(UserCode::phone),
        window: session.block,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_and_whatsapp_phones() {
        let c = UserCode::parse("whatsappbyedna|3|79991234567@sender|42").expect("code");
        assert_eq!((c.connector, c.line_id.map(LineId::get), c.connector_user_id), ("whatsappbyedna", Some(3), "42"));
        assert_eq!(c.phone().map(|p| p.to_string()), Some("+79991234567".into()));
        let plus = UserCode::parse("whatsappbytwilio|1|+4917612345678|7").and_then(|c| c.phone());
        assert_eq!(plus.map(|p| p.to_string()), Some("+4917612345678".into()));
        assert_eq!(UserCode::parse("telegrambot|1|1398715343|13").and_then(|c| c.phone()), None);
        assert_eq!(UserCode::parse("whatsappbyedna|3|not-a-phone@x|42").and_then(|c| c.phone()), None);
        let short = UserCode::parse("livechat").expect("code");
        assert_eq!((short.line_id, short.connector_chat_id), (None, ""));
        assert_eq!(UserCode::parse(""), None);
        assert_eq!(UserCode::parse("|1|2|3"), None);
    }

    #[test]
    fn session_and_crm_strings() {
        let s = SessionData::parse("Y|LEAD|1209|N|N|343|1773682918|0|0|0");
        assert_eq!(s.session_id.map(SessionId::get), Some(343));
        assert_eq!(s.crm, Some(CrmBinding { entity_type: "lead".into(), entity_id: 1209 }));
        assert_eq!((s.line_id, s.block), (None, None), "0|0: no block date");
        let blocked = SessionData::parse("N|NONE|0|N|N|343|1773682918|0|1773769318|WHATSAPP_24H");
        assert_eq!(blocked.block.as_ref().map(|b| (b.at.timestamp(), b.reason.as_deref())), Some((1_773_769_318, Some("WHATSAPP_24H"))));
        assert_eq!(SessionData::parse("N|NONE|0|N|N|343|1773682918|0|1773769318").block.map(|b| b.reason), Some(None), "no reason field");
        assert_eq!(SessionData::parse("N|NONE|0|N|N|5"), SessionData { session_id: SessionId::new(5).ok(), ..Default::default() });
        assert_eq!(SessionData::parse(""), SessionData::default());
        assert_eq!(crm_links("LEAD|3|COMPANY|9|CONTACT|3|DEAL|4"), Some(CrmBinding { entity_type: "deal".into(), entity_id: 4 }));
        assert_eq!(crm_links("LEAD|0|COMPANY|9|CONTACT|0|DEAL|0").map(|b| b.entity_type), Some("company".into()));
        assert_eq!(crm_links("LEAD|0|COMPANY|0|CONTACT|0|DEAL|0"), None);
        assert_eq!(crm_links("LEAD|x|DEAL"), None);
    }

    #[test]
    fn context_prefers_session_binding_and_code_line() {
        let ctx = lines_context(Some("whatsappbyedna|5|+971501234567@s|9"), Some("N|NONE|0|N|N|77|0|6|0|0"), Some("LEAD|0|COMPANY|0|CONTACT|42|DEAL|0"));
        assert_eq!(ctx.line_id.map(LineId::get), Some(5));
        assert_eq!(ctx.session_id.map(SessionId::get), Some(77));
        assert_eq!(ctx.crm, Some(CrmBinding { entity_type: "contact".into(), entity_id: 42 }));
        assert_eq!(ctx.phone.map(|p| p.to_string()), Some("+971501234567".into()));
        let fallback = lines_context(None, Some("Y|DEAL|3|N|N|3|1678008993|8|0|0"), None);
        assert_eq!((fallback.line_id.map(LineId::get), fallback.connector), (Some(8), None));
        assert_eq!(lines_context(None, None, None), LinesContext::default());
    }
}
