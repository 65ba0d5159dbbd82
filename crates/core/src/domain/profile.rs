//! The per-phone customer profile: what the bot may remember between sessions.
//!
//! The profile is sent with every bot request and stored per phone, and the bot grows it by
//! answering with patches. Nothing about a bot's patches is bounded by the contract, so the store
//! is: a bot that added 600 KB per turn grew one profile to 4.2 MB in eight turns, every byte of it
//! re-sent on each request. [`Profile::merge_bounded`] refuses, as a whole, a patch that would push
//! the serialised profile over a configured limit (`OLBRIDGE_PROFILE_MAX_BYTES`, default 16 KiB):
//! the old profile is kept, and the [`ProfilePatchRefused`] error says by how much, for the log.
//! Refusing the whole patch rather than applying part of it keeps the profile a state the bot
//! actually wrote; the bot learns nothing was kept by reading the profile back on the next turn.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::Phone;

/// The default limit on a stored profile, in bytes of its JSON (as the bot receives it).
pub const DEFAULT_PROFILE_MAX_BYTES: usize = 16 * 1024;

/// A profile patch refused because the profile would outgrow its limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile patch from the bot dropped: it would grow the profile to {size} bytes, over the limit of {limit}")]
pub struct ProfilePatchRefused {
    /// The size the patched profile would have had, in bytes of JSON.
    pub size: usize,
    /// The configured limit.
    pub limit: usize,
}

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
    /// The stored version this profile was read at (0: never stored). Stores write a profile only
    /// if its version is still the stored one, so two turns updating one profile at once never
    /// lose an update. Not part of the JSON the bot sees.
    #[serde(skip)]
    pub version: u64,
}

impl Profile {
    /// A new, empty profile.
    pub fn new(phone: Phone, now: DateTime<Utc>) -> Self {
        Self {
            phone,
            name: None,
            language: None,
            location: None,
            last_context: None,
            consent: None,
            extra: Map::new(),
            created_at: now,
            updated_at: now,
            version: 0,
        }
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

    /// As [`Profile::merge`], but refuses the whole patch, leaving the profile untouched, when the
    /// patched profile would be larger than `max_bytes` of JSON and larger than it is now. A
    /// profile already over the limit (stored before the limit, or the limit lowered) still takes
    /// patches that do not grow it, so a bot can shrink it back.
    pub fn merge_bounded(&mut self, patch: &Value, now: DateTime<Utc>, max_bytes: usize) -> Result<(), ProfilePatchRefused> {
        if !patch.is_object() {
            return Ok(());
        }
        let mut patched = self.clone();
        patched.merge(patch, now);
        let size = patched.json_len();
        if size > max_bytes && size > self.json_len() {
            return Err(ProfilePatchRefused { size, limit: max_bytes });
        }
        *self = patched;
        Ok(())
    }

    /// The size of the profile's JSON, in bytes (what the bot receives and the store keeps).
    pub fn json_len(&self) -> usize {
        serde_json::to_vec(self).map_or(usize::MAX, |json| json.len())
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

    #[test]
    fn a_patch_that_outgrows_the_limit_is_refused_whole() {
        let now = Utc::now();
        let mut p = Profile::new(Phone::parse("+4917612345678").expect("phone"), now);
        p.merge_bounded(&json!({"name": "Ana", "tier": "gold"}), now, DEFAULT_PROFILE_MAX_BYTES).expect("small patch");
        let before = p.clone();
        // The incident: a bot adding 600 KB per turn. Every one of eight turns is refused.
        for turn in 0..8 {
            let patch = json!({ format!("blob{turn}"): "x".repeat(600 * 1024), "name": "Changed" });
            let refused = p.merge_bounded(&patch, now, DEFAULT_PROFILE_MAX_BYTES).expect_err("over the limit");
            assert_eq!(refused.limit, DEFAULT_PROFILE_MAX_BYTES);
            assert!(refused.size > 600 * 1024, "{refused:?}");
            assert_eq!(p, before, "the old profile is kept whole, the name too");
        }
        assert!(p.json_len() <= DEFAULT_PROFILE_MAX_BYTES);
        let message = ProfilePatchRefused { size: 614_500, limit: 16_384 }.to_string();
        assert_eq!(message, "profile patch from the bot dropped: it would grow the profile to 614500 bytes, over the limit of 16384");
    }

    #[test]
    fn the_limit_counts_the_json_the_bot_receives() {
        let now = Utc::now();
        let mut p = Profile::new(Phone::parse("+4917612345678").expect("phone"), now);
        let base = p.json_len();
        assert_eq!(base, serde_json::to_vec(&p.to_bot_json()).expect("json").len());
        // Exactly at the limit is accepted; one byte over is not.
        let room = 1000 - base - r#","note":"""#.len();
        let mut at_limit = p.clone();
        at_limit.merge_bounded(&json!({"note": "é".repeat(room / 2)}), now, 1000).expect("at the limit");
        assert!(at_limit.json_len() <= 1000);
        let refused = p.merge_bounded(&json!({"note": "x".repeat(room + 1)}), now, 1000).expect_err("one byte over");
        assert_eq!(refused.size, 1001);
        p.merge_bounded(&json!("not an object"), now, 10).expect("ignored, as in merge");
    }

    #[test]
    fn an_oversized_profile_still_takes_patches_that_shrink_it() {
        let now = Utc::now();
        let mut p = Profile::new(Phone::parse("+4917612345678").expect("phone"), now);
        p.merge(&json!({"blob": "x".repeat(50_000), "other": "y".repeat(20_000)}), now);
        p.merge_bounded(&json!({"blob": null}), now, DEFAULT_PROFILE_MAX_BYTES).expect("shrinking is fine");
        assert!(!p.extra.contains_key("blob"));
        assert!(p.merge_bounded(&json!({"more": "z"}), now, DEFAULT_PROFILE_MAX_BYTES).is_err(), "still over: no growth");
        p.merge_bounded(&json!({"other": null, "more": "z"}), now, DEFAULT_PROFILE_MAX_BYTES).expect("back under the limit");
        assert!(p.json_len() <= DEFAULT_PROFILE_MAX_BYTES);
    }
}
