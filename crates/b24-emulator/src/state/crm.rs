//! CRM v1: leads, contacts, deals (fields typed as the documented `crm.lead.get` example), multifields,
//! and timeline comments.
//!
//! Items are stored as field maps built from per-type templates, so every `get` returns the full documented key
//! set with Bitrix's value types (ids as strings, `"Y"`/`"N"`, `null` for unset optional fields).

use super::model::Time;
use crate::rest::envelope::iso;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum EntityType {
    Lead,
    Deal,
    Contact,
    Company,
}

impl EntityType {
    pub fn parse(s: &str) -> Option<EntityType> {
        match s.to_ascii_lowercase().as_str() {
            "lead" | "1" => Some(EntityType::Lead),
            "deal" | "2" => Some(EntityType::Deal),
            "contact" | "3" => Some(EntityType::Contact),
            "company" | "4" => Some(EntityType::Company),
            _ => None,
        }
    }
    pub fn lower(self) -> &'static str {
        match self {
            EntityType::Lead => "lead",
            EntityType::Deal => "deal",
            EntityType::Contact => "contact",
            EntityType::Company => "company",
        }
    }
}

/// Multifield keys: matched exactly, returned only when selected (contract §7).
pub(crate) const MULTI: [&str; 5] = ["PHONE", "EMAIL", "WEB", "IM", "LINK"];

#[derive(Clone, Debug)]
pub(crate) struct MultiField {
    pub id: u64,
    pub value_type: String,
    pub value: String,
    pub type_id: String,
}

#[derive(Clone, Debug)]
pub(crate) struct CrmItem {
    pub fields: Map<String, Value>,
    pub multi: BTreeMap<String, Vec<MultiField>>,
}

#[derive(Clone, Debug)]
pub(crate) struct TimelineComment {
    pub id: u64,
    pub entity_type: EntityType,
    pub entity_id: u64,
    pub comment: String,
    pub author_id: u64,
    pub created: Time,
}

#[derive(Debug)]
pub(crate) struct Crm {
    pub items: BTreeMap<(EntityType, u64), CrmItem>,
    pub comments: BTreeMap<u64, TimelineComment>,
    next: BTreeMap<EntityType, u64>,
    next_multi: u64,
    next_comment: u64,
}

impl Default for Crm {
    fn default() -> Self {
        let next = [(EntityType::Lead, 1200), (EntityType::Deal, 800), (EntityType::Contact, 500), (EntityType::Company, 60)].into_iter().collect();
        Crm { items: BTreeMap::new(), comments: BTreeMap::new(), next, next_multi: 11650, next_comment: 90 }
    }
}

fn template(et: EntityType, id: u64, user: u64, now: &str) -> Vec<(&'static str, Value)> {
    let (id, user) = (json!(id.to_string()), json!(user.to_string()));
    let n = Value::Null;
    match et {
        EntityType::Lead => vec![
            ("ID", id),
            ("TITLE", json!("")),
            ("HONORIFIC", n.clone()),
            ("NAME", json!("")),
            ("SECOND_NAME", n.clone()),
            ("LAST_NAME", n.clone()),
            ("COMPANY_TITLE", n.clone()),
            ("COMPANY_ID", n.clone()),
            ("CONTACT_ID", n.clone()),
            ("IS_RETURN_CUSTOMER", json!("N")),
            ("BIRTHDATE", json!("")),
            ("SOURCE_ID", json!("")),
            ("SOURCE_DESCRIPTION", n.clone()),
            ("STATUS_ID", json!("NEW")),
            ("STATUS_DESCRIPTION", n.clone()),
            ("POST", n.clone()),
            ("COMMENTS", n.clone()),
            ("CURRENCY_ID", json!("EUR")),
            ("OPPORTUNITY", json!("0.00")),
            ("IS_MANUAL_OPPORTUNITY", json!("N")),
            ("HAS_PHONE", json!("N")),
            ("HAS_EMAIL", json!("N")),
            ("HAS_IMOL", json!("N")),
            ("ASSIGNED_BY_ID", user.clone()),
            ("CREATED_BY_ID", user.clone()),
            ("MODIFY_BY_ID", user.clone()),
            ("DATE_CREATE", json!(now)),
            ("DATE_MODIFY", json!(now)),
            ("DATE_CLOSED", json!("")),
            ("STATUS_SEMANTIC_ID", json!("P")),
            ("OPENED", json!("Y")),
            ("ORIGINATOR_ID", n.clone()),
            ("ORIGIN_ID", n.clone()),
            ("MOVED_BY_ID", user.clone()),
            ("MOVED_TIME", json!(now)),
            ("ADDRESS", n.clone()),
            ("ADDRESS_2", n.clone()),
            ("ADDRESS_CITY", n.clone()),
            ("ADDRESS_POSTAL_CODE", n.clone()),
            ("ADDRESS_REGION", n.clone()),
            ("ADDRESS_PROVINCE", n.clone()),
            ("ADDRESS_COUNTRY", n.clone()),
            ("ADDRESS_COUNTRY_CODE", n.clone()),
            ("ADDRESS_LOC_ADDR_ID", n.clone()),
            ("UTM_SOURCE", n.clone()),
            ("UTM_MEDIUM", n.clone()),
            ("UTM_CAMPAIGN", n.clone()),
            ("UTM_CONTENT", n.clone()),
            ("UTM_TERM", n),
            ("LAST_ACTIVITY_BY", user),
            ("LAST_ACTIVITY_TIME", json!(now)),
        ],
        EntityType::Contact | EntityType::Company => vec![
            ("ID", id),
            ("POST", n.clone()),
            ("COMMENTS", n.clone()),
            ("HONORIFIC", n.clone()),
            ("NAME", json!("")),
            ("SECOND_NAME", n.clone()),
            ("LAST_NAME", n.clone()),
            ("PHOTO", n.clone()),
            ("LEAD_ID", n.clone()),
            ("TYPE_ID", json!("CLIENT")),
            ("SOURCE_ID", json!("")),
            ("SOURCE_DESCRIPTION", n.clone()),
            ("COMPANY_ID", n.clone()),
            ("BIRTHDATE", json!("")),
            ("EXPORT", json!("Y")),
            ("HAS_PHONE", json!("N")),
            ("HAS_EMAIL", json!("N")),
            ("HAS_IMOL", json!("N")),
            ("DATE_CREATE", json!(now)),
            ("DATE_MODIFY", json!(now)),
            ("ASSIGNED_BY_ID", user.clone()),
            ("CREATED_BY_ID", user.clone()),
            ("MODIFY_BY_ID", user.clone()),
            ("OPENED", json!("Y")),
            ("ORIGINATOR_ID", n.clone()),
            ("ORIGIN_ID", n.clone()),
            ("ORIGIN_VERSION", n.clone()),
            ("FACE_ID", n.clone()),
            ("ADDRESS", n.clone()),
            ("UTM_SOURCE", n.clone()),
            ("UTM_MEDIUM", n.clone()),
            ("UTM_CAMPAIGN", n.clone()),
            ("UTM_CONTENT", n.clone()),
            ("UTM_TERM", n),
            ("LAST_ACTIVITY_TIME", json!(now)),
            ("LAST_ACTIVITY_BY", user),
        ],
        EntityType::Deal => vec![
            ("ID", id),
            ("TITLE", json!("")),
            ("TYPE_ID", json!("SALE")),
            ("STAGE_ID", json!("NEW")),
            ("PROBABILITY", n.clone()),
            ("CURRENCY_ID", json!("EUR")),
            ("OPPORTUNITY", json!("0.00")),
            ("IS_MANUAL_OPPORTUNITY", json!("N")),
            ("TAX_VALUE", json!("0.00")),
            ("LEAD_ID", n.clone()),
            ("COMPANY_ID", json!("0")),
            ("CONTACT_ID", n.clone()),
            ("QUOTE_ID", n.clone()),
            ("BEGINDATE", json!(now)),
            ("CLOSEDATE", json!(now)),
            ("ASSIGNED_BY_ID", user.clone()),
            ("CREATED_BY_ID", user.clone()),
            ("MODIFY_BY_ID", user.clone()),
            ("DATE_CREATE", json!(now)),
            ("DATE_MODIFY", json!(now)),
            ("OPENED", json!("Y")),
            ("CLOSED", json!("N")),
            ("COMMENTS", n.clone()),
            ("ADDITIONAL_INFO", n.clone()),
            ("LOCATION_ID", n.clone()),
            ("CATEGORY_ID", json!("0")),
            ("STAGE_SEMANTIC_ID", json!("P")),
            ("IS_NEW", json!("Y")),
            ("IS_RECURRING", json!("N")),
            ("IS_RETURN_CUSTOMER", json!("N")),
            ("IS_REPEATED_APPROACH", json!("N")),
            ("SOURCE_ID", json!("")),
            ("SOURCE_DESCRIPTION", n.clone()),
            ("ORIGINATOR_ID", n.clone()),
            ("ORIGIN_ID", n.clone()),
            ("MOVED_BY_ID", user.clone()),
            ("MOVED_TIME", json!(now)),
            ("LAST_ACTIVITY_TIME", json!(now)),
            ("UTM_SOURCE", n.clone()),
            ("UTM_MEDIUM", n.clone()),
            ("UTM_CAMPAIGN", n.clone()),
            ("UTM_CONTENT", n.clone()),
            ("UTM_TERM", n),
            ("LAST_ACTIVITY_BY", user),
        ],
    }
}

fn scalar_string(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::String(_) => v.clone(),
        Value::Bool(b) => json!(if *b { "Y" } else { "N" }),
        other => json!(other.to_string()),
    }
}

impl Crm {
    /// Adds an item from a `fields` object (multifields as `[{VALUE, VALUE_TYPE}]` lists or PHP maps).
    pub fn add(&mut self, et: EntityType, fields: &Value, user: u64, now: Time) -> u64 {
        let seq = self.next.entry(et).or_insert(1);
        *seq += 1;
        let id = *seq;
        let now_s = iso(now.to_utc(), *now.offset());
        let mut item = CrmItem { fields: template(et, id, user, &now_s).into_iter().map(|(k, v)| (k.to_owned(), v)).collect(), multi: BTreeMap::new() };
        self.apply(&mut item, fields);
        self.items.insert((et, id), item);
        id
    }

    fn apply(&mut self, item: &mut CrmItem, fields: &Value) {
        let Some(obj) = fields.as_object() else { return };
        for (k, v) in obj {
            let key = k.to_uppercase();
            if key == "ID" {
                continue;
            }
            if MULTI.contains(&key.as_str()) {
                let entries: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    Value::Object(o) => o.values().collect(),
                    _ => Vec::new(),
                };
                for e in entries {
                    let value = e.get("VALUE").map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned));
                    let Some(value) = value.filter(|x| !x.is_empty()) else { continue };
                    self.next_multi += 1;
                    let value_type = e.get("VALUE_TYPE").and_then(Value::as_str).unwrap_or("WORK").to_owned();
                    item.multi.entry(key.clone()).or_default().push(MultiField { id: self.next_multi, value_type, value, type_id: key.clone() });
                }
            } else {
                item.fields.insert(key, scalar_string(v));
            }
        }
        for (flag, key) in [("HAS_PHONE", "PHONE"), ("HAS_EMAIL", "EMAIL"), ("HAS_IMOL", "IM")] {
            if item.fields.contains_key(flag) {
                let has = item.multi.get(key).is_some_and(|l| !l.is_empty());
                item.fields.insert(flag.to_owned(), json!(if has { "Y" } else { "N" }));
            }
        }
    }

    /// Updates fields of an existing item; `false` if it does not exist.
    pub fn update(&mut self, et: EntityType, id: u64, fields: &Value) -> bool {
        let Some(mut item) = self.items.remove(&(et, id)) else { return false };
        self.apply(&mut item, fields);
        self.items.insert((et, id), item);
        true
    }

    pub fn exists(&self, et: EntityType, id: u64) -> bool {
        self.items.contains_key(&(et, id))
    }

    /// The full item, as `crm.*.get` prints it.
    pub fn render(&self, et: EntityType, id: u64) -> Option<Value> {
        let item = self.items.get(&(et, id))?;
        let mut m = item.fields.clone();
        for (k, list) in &item.multi {
            if !list.is_empty() {
                m.insert(k.clone(), multi_json(list));
            }
        }
        Some(Value::Object(m))
    }

    /// The item restricted to `select` (empty or `*` = all regular fields; multifields only when named).
    pub fn render_selected(&self, et: EntityType, id: u64, select: &[String]) -> Option<Value> {
        let item = self.items.get(&(et, id))?;
        let all = select.is_empty() || select.iter().any(|s| s == "*");
        let mut m = Map::new();
        for (k, v) in &item.fields {
            if all || k == "ID" || select.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                m.insert(k.clone(), v.clone());
            }
        }
        for key in MULTI {
            if select.iter().any(|s| s.eq_ignore_ascii_case(key) || s == "FM") {
                let list = item.multi.get(key).cloned().unwrap_or_default();
                m.insert(key.to_owned(), multi_json(&list));
            }
        }
        Some(Value::Object(m))
    }

    /// Items of a type matching every filter condition, ordered by `ID` (`desc` reverses).
    pub fn list(&self, et: EntityType, filter: &[(String, Value)], desc: bool) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .items
            .range((et, 0)..=(et, u64::MAX))
            .filter(|(_, item)| filter.iter().all(|(k, v)| matches_filter(item, k, v)))
            .map(|((_, id), _)| *id)
            .collect();
        if desc {
            ids.reverse();
        }
        ids
    }

    pub fn find_by_phone(&self, et: EntityType, phone: &str) -> Option<u64> {
        self.list(et, &[("PHONE".to_owned(), json!(phone))], false).first().copied()
    }

    pub fn add_comment(&mut self, et: EntityType, entity_id: u64, comment: &str, author: u64, now: Time) -> u64 {
        self.next_comment += 1;
        let id = self.next_comment;
        self.comments.insert(id, TimelineComment { id, entity_type: et, entity_id, comment: comment.to_owned(), author_id: author, created: now });
        id
    }
}

fn multi_json(list: &[MultiField]) -> Value {
    Value::Array(list.iter().map(|f| json!({"ID": f.id.to_string(), "VALUE_TYPE": f.value_type, "VALUE": f.value, "TYPE_ID": f.type_id})).collect())
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One filter condition: `[op]FIELD` with op in `=`, `!`/`!=`, `>`, `>=`, `<`, `<=`, `%`, `@`, `!@`.
/// Multifields match exactly only.
fn matches_filter(item: &CrmItem, key: &str, want: &Value) -> bool {
    let ops = ["!=", ">=", "<=", "!@", "=%", "%=", "=", "!", ">", "<", "%", "@"];
    let (op, field) = ops.iter().find_map(|op| key.strip_prefix(op).map(|f| (*op, f))).unwrap_or(("=", key));
    let field = field.to_uppercase();
    if MULTI.contains(&field.as_str()) {
        let wants: Vec<String> = match want {
            Value::Array(a) => a.iter().map(as_text).collect(),
            other => vec![as_text(other)],
        };
        let hit = item.multi.get(&field).is_some_and(|l| l.iter().any(|f| wants.contains(&f.value)));
        return if op.starts_with('!') { !hit } else { hit };
    }
    let have = item.fields.get(&field).map(as_text).unwrap_or_default();
    let num = |s: &str| s.parse::<f64>().ok();
    let cmp = |w: &Value| -> std::cmp::Ordering {
        let w = as_text(w);
        match (num(&have), num(&w)) {
            (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
            _ => have.as_str().cmp(w.as_str()),
        }
    };
    use std::cmp::Ordering::*;
    match op {
        "=" => cmp(want) == Equal,
        "!" | "!=" => cmp(want) != Equal,
        ">" => cmp(want) == Greater,
        ">=" => cmp(want) != Less,
        "<" => cmp(want) == Less,
        "<=" => cmp(want) != Greater,
        "%" | "=%" | "%=" => have.to_lowercase().contains(&as_text(want).to_lowercase()),
        "@" | "!@" => {
            let hit = want.as_array().is_some_and(|a| a.iter().any(|w| cmp(w) == Equal));
            if op == "@" { hit } else { !hit }
        }
        _ => false,
    }
}
