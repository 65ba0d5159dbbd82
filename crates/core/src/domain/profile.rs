//! The per-phone customer profile: what the bot may remember between sessions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::Phone;

/// A customer's profile, keyed by phone. It is sent to the bot with every turn and merged with the
/// `profile` object the bot answers with. Unknown keys the bot sets are kept in `extra`, so a bot can
/// remember things we did not foresee without a schema change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The key.
    pub phone: Phone,
    /// The customer's name, as the bot or the connector learnt it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Preferred language (a BCP-47-ish tag such as `en`, `ru`, `pt-BR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Where the customer is, when they said so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// A short summary of the last conversation, written by the bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_context: Option<String>,
    /// Whether the customer consented to being remembered (`None`: never asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<bool>,
    /// Anything else the bot chose to keep; flattened, so the bot reads back the keys it wrote.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// First seen.
    pub created_at: DateTime<Utc>,
    /// Last changed or last seen.
    pub updated_at: DateTime<Utc>,
}

impl Profile {
    /// A new, empty profile.
    pub fn new(phone: Phone, now: DateTime<Utc>) -> Self {
        Self { phone, name: None, language: None, location: None, last_context: None, consent: None, extra: Map::new(), created_at: now, updated_at: now }
    }

    /// Merges the bot's `profile` answer: known keys update the typed fields (a JSON `null` clears
    /// them), other keys go to `extra` (`null` removes them). Non-object patches are ignored.
    pub fn merge(&mut self, patch: &Value, now: DateTime<Utc>) {
        let Some(obj) = patch.as_object() else { return };
        for (k, v) in obj {
            let as_text = || v.as_str().map(str::to_owned).or_else(|| (!v.is_null()).then(|| v.to_string()));
            match k.as_str() {
                "name" => self.name = as_text(),
                "language" | "lang" => self.language = as_text(),
                "location" => self.location = as_text(),
                "last_context" | "context" => self.last_context = as_text(),
                "consent" => self.consent = v.as_bool(),
                "phone" | "created_at" | "updated_at" => {}
                _ if v.is_null() => {
                    self.extra.remove(k);
                }
                _ => {
                    self.extra.insert(k.clone(), v.clone());
                }
            }
        }
        self.updated_at = now;
    }

    /// The profile as the bot sees it (`profile` field of the request).
    pub fn to_bot_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_updates_known_fields_and_keeps_extras() {
        let now = Utc::now();
        let mut p = Profile::new(Phone::parse("+4917612345678").expect("phone"), now);
        p.merge(&json!({"name": "Ana", "language": "pt", "tier": "gold", "consent": true}), now);
        assert_eq!(p.name.as_deref(), Some("Ana"));
        assert_eq!(p.language.as_deref(), Some("pt"));
        assert_eq!(p.consent, Some(true));
        assert_eq!(p.extra.get("tier"), Some(&json!("gold")));
        p.merge(&json!({"tier": null, "name": null, "phone": "+1"}), now);
        assert!(p.extra.is_empty());
        assert_eq!(p.name, None);
        assert_eq!(p.phone.as_str(), "+4917612345678");
        p.merge(&json!("not an object"), now);
    }
}
