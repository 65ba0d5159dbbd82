//! One version of the secret: a JSON object of strings, held as [`Secret`]s so no value reaches a
//! `Debug`, a log line or an error message. Only the key names are ever shown.

use std::collections::BTreeMap;
use std::fmt;

use olbridge_core::domain::secret::Secret;

/// The values of one secret version, by key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValues(BTreeMap<String, Secret>);

impl SecretValues {
    /// Parses a `SecretString`: a JSON object whose values are strings. The problem, when there is
    /// one, names a key or a position, never a value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON (line {} column {})", e.line(), e.column()))?;
        let serde_json::Value::Object(map) = value else {
            return Err("not a JSON object".into());
        };
        let mut out = BTreeMap::new();
        for (key, v) in map {
            let serde_json::Value::String(s) = v else {
                return Err(format!("{key} is not a string"));
            };
            out.insert(key, Secret::new(s));
        }
        Ok(Self(out))
    }

    /// The value of `key`, unless absent or blank (a blank value counts as unset, like an empty
    /// environment variable).
    pub fn get(&self, key: &str) -> Option<&Secret> {
        self.0.get(key).filter(|s| !s.expose().trim().is_empty())
    }

    /// Sets `key`.
    pub fn set(&mut self, key: impl Into<String>, value: Secret) {
        self.0.insert(key.into(), value);
    }

    /// The key names, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The `SecretString` to store: a JSON object of strings.
    pub fn to_json(&self) -> String {
        let map: BTreeMap<&str, &str> = self.0.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        serde_json::to_string(&map).unwrap_or_default()
    }
}

impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValues").field("keys", &self.0.keys().collect::<Vec<_>>()).finish()
    }
}

/// A version of the secret as read: its id and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The version id (Secrets Manager's `VersionId`; the rotation's `ClientRequestToken`).
    pub id: String,
    /// Its values.
    pub values: SecretValues,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_hide_in_debug_and_round_trip() {
        let v = SecretValues::parse(r#"{"B24_APPLICATION_TOKEN":"tok-123","BOT_HTTP_AUTH":"  "}"#).unwrap_or_default();
        assert_eq!(v.get("B24_APPLICATION_TOKEN").map(Secret::expose), Some("tok-123"));
        assert!(v.get("BOT_HTTP_AUTH").is_none(), "blank counts as unset");
        let shown = format!("{v:?}");
        assert!(!shown.contains("tok-123") && shown.contains("B24_APPLICATION_TOKEN"), "{shown}");
        assert_eq!(SecretValues::parse(&v.to_json()), Ok(v));
    }

    #[test]
    fn problems_name_keys_never_values() {
        assert_eq!(SecretValues::parse(r#"{"K":42}"#), Err("K is not a string".into()));
        assert_eq!(SecretValues::parse(r#"["s3cret"]"#), Err("not a JSON object".into()));
        let e = SecretValues::parse(r#"{"K":"s3cret"#).err().unwrap_or_default();
        assert!(e.starts_with("not JSON") && !e.contains("s3cret"), "{e}");
    }
}
