//! Typed CRM calls (contract §7). CRM methods take lowercase top-level keys (`id`, `fields`), and
//! `crm.timeline.comment.add` accepts only a lowercase `fields`. Their errors may have an empty code
//! (`{"error": "", "error_description": "Not found"}`), which classifies as permanent.
//!
//! [`RestCrm`] is the [`CrmPortal`] port over the client: the chat's binding from
//! `imopenlines.dialog.get`, a lead through `imopenlines.crm.lead.create`, and timeline comments at
//! background priority. Each is one ordinary REST call through [`B24Client`], so the client's rate
//! budget applies, and so would its coalescing of concurrent writes into one `batch`.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{B24Client, Replay};
use super::de;
use super::error::{B24Error, ErrorKind, codes};
use super::imopenlines::DialogLookup;
use super::ratelimit::Priority;
use crate::domain::ids::ChatId;
use crate::domain::message::CrmBinding;
use crate::domain::parse::lines::{SessionData, crm_links};
use crate::ports::{CrmPortal, DialogCrm, PortalError};

/// A CRM entity type as timeline methods name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrmEntityType {
    /// `lead`.
    Lead,
    /// `deal`.
    Deal,
    /// `contact`.
    Contact,
    /// `company`.
    Company,
}

impl CrmEntityType {
    /// The lowercase name `crm.timeline.*` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lead => "lead",
            Self::Deal => "deal",
            Self::Contact => "contact",
            Self::Company => "company",
        }
    }

    /// Parses `LEAD`/`lead` etc. (as `entity_data_2` and `entity_data_1` write them).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.to_ascii_lowercase().as_str() {
            "lead" => Some(Self::Lead),
            "deal" => Some(Self::Deal),
            "contact" => Some(Self::Contact),
            "company" => Some(Self::Company),
            _ => None,
        }
    }
}

/// A lead (the fields the bridge reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Lead {
    /// The lead id.
    #[serde(deserialize_with = "de::u64")]
    pub id: u64,
    /// Title.
    #[serde(deserialize_with = "de::string")]
    pub title: String,
    /// First name.
    #[serde(deserialize_with = "de::string")]
    pub name: String,
    /// Last name.
    #[serde(deserialize_with = "de::string")]
    pub last_name: String,
    /// Status (`NEW`, `IN_PROCESS`, ...).
    #[serde(deserialize_with = "de::string")]
    pub status_id: String,
    /// Source (`<line>|<CONNECTOR>` for Open Lines).
    #[serde(deserialize_with = "de::string")]
    pub source_id: String,
    /// Responsible user.
    #[serde(deserialize_with = "de::u64")]
    pub assigned_by_id: u64,
    /// Phones.
    #[serde(deserialize_with = "de::list_or_map")]
    pub phone: Vec<Multifield>,
    /// Messenger fields (`imol|<user code>` for Open Lines).
    #[serde(deserialize_with = "de::list_or_map")]
    pub im: Vec<Multifield>,
}

/// A CRM multifield value (`PHONE`, `EMAIL`, `IM`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Multifield {
    /// The value's id.
    #[serde(deserialize_with = "de::u64")]
    pub id: u64,
    /// `WORK`, `MOBILE`, `OPENLINE`, ...
    #[serde(deserialize_with = "de::string")]
    pub value_type: String,
    /// The value.
    #[serde(deserialize_with = "de::string")]
    pub value: String,
}

impl B24Client {
    /// `crm.timeline.comment.add`: the comment's id. Not replayed after a timeout or a 5xx.
    pub async fn crm_timeline_comment_add(&self, entity: CrmEntityType, entity_id: u64, comment: &str) -> Result<u64, B24Error> {
        let p = json!({"fields": {"ENTITY_ID": entity_id, "ENTITY_TYPE": entity.as_str(), "COMMENT": comment}});
        let v: Value = self.call_no_replay("crm.timeline.comment.add", &p).await?;
        positive("crm.timeline.comment.add", &v)
    }

    /// `crm.timeline.comment.add` at background priority: it waits for headroom in the rate
    /// budget instead of taking a reply's slot. Not replayed after a timeout or a 5xx.
    pub async fn crm_timeline_comment_add_background(&self, entity: CrmEntityType, entity_id: u64, comment: &str) -> Result<u64, B24Error> {
        const METHOD: &str = "crm.timeline.comment.add";
        let p = json!({"fields": {"ENTITY_ID": entity_id, "ENTITY_TYPE": entity.as_str(), "COMMENT": comment}});
        let page = self.send_at(METHOD, &p, Replay::IfNotApplied, Priority::Background).await?;
        positive(METHOD, &page.result)
    }

    /// `imopenlines.crm.lead.create`: Bitrix24 creates a lead for the chat and binds it. Only the
    /// session's current operator may call it (`ERROR_USER_NOT_OPERATOR` otherwise).
    pub async fn imopenlines_crm_lead_create(&self, chat: ChatId) -> Result<bool, B24Error> {
        self.call_no_replay("imopenlines.crm.lead.create", &json!({"CHAT_ID": chat.get()})).await
    }

    /// `crm.lead.get`. A missing lead is a permanent error with an empty code ("Not found").
    pub async fn crm_lead_get(&self, id: u64) -> Result<Lead, B24Error> {
        self.call("crm.lead.get", &json!({"id": id})).await
    }
}

/// The [`CrmPortal`] over the REST client (any mode: the calls run as the webhook's user).
#[derive(Debug, Clone)]
pub struct RestCrm {
    client: B24Client,
}

impl RestCrm {
    /// CRM calls through `client`.
    pub fn new(client: B24Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl CrmPortal for RestCrm {
    async fn binding(&self, chat: ChatId) -> Result<DialogCrm, PortalError> {
        let dialog = self.client.imopenlines_dialog_get(&DialogLookup::Chat(chat)).await?;
        let session = SessionData::parse(&dialog.entity_data_1);
        // The session string names the entity the session is about; the links string is read
        // when the session string names none (a line with CRM off still shows links).
        let binding = session.crm.or_else(|| crm_links(&dialog.entity_data_2));
        Ok(DialogCrm { session_id: session.session_id, binding })
    }

    async fn create_lead(&self, chat: ChatId) -> Result<(), PortalError> {
        self.client.imopenlines_crm_lead_create(chat).await?;
        Ok(())
    }

    async fn timeline_comment(&self, entity: &CrmBinding, text: &str) -> Result<u64, PortalError> {
        let kind = CrmEntityType::parse(&entity.entity_type)
            .ok_or_else(|| B24Error::local("crm.timeline.comment.add", ErrorKind::Permanent, codes::UNEXPECTED_RESULT, "unknown CRM entity type"))?;
        Ok(self.client.crm_timeline_comment_add_background(kind, entity.entity_id, text).await?)
    }
}

fn positive(method: &str, v: &Value) -> Result<u64, B24Error> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    n.filter(|n| *n > 0).ok_or_else(|| B24Error::local(method, ErrorKind::Permanent, codes::UNEXPECTED_RESULT, "expected a positive id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_lead_parses() {
        let v = json!({"ID": "123", "TITLE": "Lead #1591", "NAME": "", "LAST_NAME": null, "STATUS_ID": "IN_PROCESS", "SOURCE_ID": "1",
            "ASSIGNED_BY_ID": "1", "PHONE": [{"ID": "11658", "VALUE_TYPE": "OTHER", "VALUE": "+15454777777", "TYPE_ID": "PHONE"}],
            "IM": [{"ID": "11660", "VALUE_TYPE": "OPENLINE", "VALUE": "imol|livechat|1|67|21", "TYPE_ID": "IM"}]});
        let lead: Lead = serde_json::from_value(v).expect("parses");
        assert_eq!((lead.id, lead.phone[0].value.as_str(), lead.im[0].value_type.as_str()), (123, "+15454777777", "OPENLINE"));
        assert_eq!(CrmEntityType::parse("LEAD"), Some(CrmEntityType::Lead));
    }
}
