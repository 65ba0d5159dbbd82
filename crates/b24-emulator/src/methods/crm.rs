//! CRM v1 (`crm.lead.*`, `crm.contact.*`, `crm.deal.*`, `crm.timeline.comment.*`, contract §7).
//!
//! Top-level parameter names are lowercase (`id`, `fields`, `filter`, `select`, `order`, `start`) and are looked
//! up case-insensitively, except `crm.timeline.comment.add`, which accepts **only** a lowercase `fields`
//! (crm ≥ 23.100.0). Entity errors have an empty `error` code and the meaning in the description.

use super::text;
use crate::rest::dispatch::{Ctx, Keys, MethodDef, Output, start_param};
use crate::rest::envelope::iso;
use crate::rest::errors::ApiError;
use crate::rest::params::Param;
use crate::state::crm::EntityType;
use serde_json::{Value, json};

macro_rules! entity_methods {
    ($($et:ident => $get:ident, $list:ident, $add:ident, $update:ident;)*) => {
        $(
            fn $get(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> { get(ctx, p, EntityType::$et) }
            fn $list(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> { list(ctx, p, EntityType::$et) }
            fn $add(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> { add(ctx, p, EntityType::$et) }
            fn $update(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> { update(ctx, p, EntityType::$et) }
        )*
    };
}

entity_methods! {
    Lead => lead_get, lead_list, lead_add, lead_update;
    Contact => contact_get, contact_list, contact_add, contact_update;
    Deal => deal_get, deal_list, deal_add, deal_update;
}

const fn m(name: &'static str, handler: crate::rest::dispatch::Handler) -> MethodDef {
    MethodDef { name, scope: Some("crm"), keys: Keys::AsIs, handler }
}

pub(crate) static METHODS: &[MethodDef] = &[
    m("crm.lead.get", lead_get),
    m("crm.lead.list", lead_list),
    m("crm.lead.add", lead_add),
    m("crm.lead.update", lead_update),
    m("crm.contact.get", contact_get),
    m("crm.contact.list", contact_list),
    m("crm.contact.add", contact_add),
    m("crm.contact.update", contact_update),
    m("crm.deal.get", deal_get),
    m("crm.deal.list", deal_list),
    m("crm.deal.add", deal_add),
    m("crm.deal.update", deal_update),
    m("crm.timeline.comment.add", comment_add),
    m("crm.timeline.comment.list", comment_list),
];

fn id_param(p: &Param) -> Result<u64, ApiError> {
    p.get_ci("id").and_then(Param::int).filter(|n| *n > 0).map(i64::unsigned_abs).ok_or_else(|| ApiError::crm("ID is not defined or invalid."))
}

fn fields_param(p: &Param) -> Result<Value, ApiError> {
    match p.get_ci("fields") {
        Some(f) if f.is_container() => Ok(f.to_json()),
        _ => Err(ApiError::crm("The parameter 'fields' must be array.")),
    }
}

fn get(ctx: &Ctx<'_>, p: &Param, et: EntityType) -> Result<Output, ApiError> {
    let id = id_param(p)?;
    let portal = ctx.portal();
    portal.crm.render(et, id).map(Output::of).ok_or_else(|| ApiError::crm("Not found"))
}

fn add(ctx: &Ctx<'_>, p: &Param, et: EntityType) -> Result<Output, ApiError> {
    let fields = fields_param(p)?;
    let mut portal = ctx.portal();
    let now = portal.now();
    Ok(Output::of(portal.crm.add(et, &fields, ctx.user(), now)))
}

fn update(ctx: &Ctx<'_>, p: &Param, et: EntityType) -> Result<Output, ApiError> {
    let id = id_param(p)?;
    let fields = fields_param(p)?;
    let mut portal = ctx.portal();
    if !portal.crm.update(et, id, &fields) {
        return Err(ApiError::crm("Not found"));
    }
    Ok(Output::of(true))
}

fn map_or_error(p: &Param, key: &str) -> Result<Option<Param>, ApiError> {
    match p.get_ci(key) {
        None => Ok(None),
        Some(v) if v.is_container() => Ok(Some(v.clone())),
        Some(v) if v.is_php_empty() => Ok(None),
        Some(_) => Err(ApiError::crm(&format!("Parameter '{key}' must be array."))),
    }
}

fn list(ctx: &Ctx<'_>, p: &Param, et: EntityType) -> Result<Output, ApiError> {
    let filter = map_or_error(p, "filter")?;
    let order = map_or_error(p, "order")?;
    let select: Vec<String> = p
        .get_ci("select")
        .map(|s| if s.is_container() { s.values().iter().filter_map(|v| v.text()).collect() } else { s.text().into_iter().collect() })
        .unwrap_or_default();
    let start = start_param(p);
    let conditions: Vec<(String, Value)> = filter.map(|f| f.entries().into_iter().map(|(k, v)| (k, v.to_json())).collect()).unwrap_or_default();
    let desc = order.and_then(|o| o.get_ci("ID").and_then(Param::text)).is_some_and(|d| d.eq_ignore_ascii_case("desc"));
    let portal = ctx.portal();
    let items: Vec<Value> = portal.crm.list(et, &conditions, desc).into_iter().filter_map(|id| portal.crm.render_selected(et, id, &select)).collect();
    Ok(Output::page(items, start))
}

fn comment_add(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let required = || ApiError::bad("100", "Required fields not provided");
    // Only the lowercase `fields` key is read (contract §1.1).
    let fields = p.get("fields").filter(|f| f.is_container()).ok_or_else(required)?;
    let et = text(fields, "ENTITY_TYPE").ok_or_else(required)?;
    let entity_id = fields.get("ENTITY_ID").and_then(Param::int).filter(|n| *n > 0).ok_or_else(required)?.unsigned_abs();
    let comment = fields.get("COMMENT").ok_or_else(required)?.text().unwrap_or_default();
    if comment.trim().is_empty() {
        return Err(ApiError::bad("INVALID_ARG_VALUE", "Empty comment"));
    }
    let owner_missing = || ApiError::bad("OWNER_NOT_FOUND", "Owner of the element not found");
    let et = EntityType::parse(&et).ok_or_else(owner_missing)?;
    let mut portal = ctx.portal();
    if !portal.crm.exists(et, entity_id) {
        return Err(owner_missing());
    }
    let author = fields.get("AUTHOR_ID").and_then(Param::int).filter(|n| *n > 0).map_or(ctx.user(), i64::unsigned_abs);
    let now = portal.now();
    Ok(Output::of(portal.crm.add_comment(et, entity_id, &comment, author, now)))
}

fn comment_list(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let filter = map_or_error(p, "filter")?.unwrap_or_else(Param::empty);
    let et = filter.get_ci("ENTITY_TYPE").and_then(Param::text).and_then(|t| EntityType::parse(&t));
    let eid = filter.get_ci("ENTITY_ID").and_then(Param::int).map(i64::unsigned_abs);
    let start = start_param(p);
    let portal = ctx.portal();
    let tz = portal.ident.tz;
    let items: Vec<Value> = portal
        .crm
        .comments
        .values()
        .filter(|c| et.is_none_or(|t| t == c.entity_type) && eid.is_none_or(|i| i == c.entity_id))
        .map(|c| {
            json!({"ID": c.id.to_string(), "ENTITY_ID": c.entity_id.to_string(), "ENTITY_TYPE": c.entity_type.lower(),
                   "CREATED": iso(c.created.to_utc(), tz), "COMMENT": c.comment, "AUTHOR_ID": c.author_id.to_string(),
                   "FILES": {}})
        })
        .collect();
    Ok(Output::page(items, start))
}
