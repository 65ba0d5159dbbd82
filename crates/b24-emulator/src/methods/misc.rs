//! Basic methods: `scope`, `profile`, `batch` (no scope), `user.current` (scope `user`), `department.get`
//! (scope `department`), and `event.bind` (refused for webhooks).

use crate::rest::batch::batch;
use crate::rest::dispatch::{Ctx, Keys, MethodDef, Output};
use crate::rest::errors::ApiError;
use crate::rest::params::Param;
use serde_json::json;

pub(crate) static METHODS: &[MethodDef] = &[
    MethodDef { name: "scope", scope: None, keys: Keys::AsIs, handler: scope },
    MethodDef { name: "profile", scope: None, keys: Keys::AsIs, handler: profile },
    MethodDef { name: "user.current", scope: Some("user"), keys: Keys::AsIs, handler: user_current },
    MethodDef { name: "department.get", scope: Some("department"), keys: Keys::Upper, handler: department_get },
    MethodDef { name: "batch", scope: None, keys: Keys::AsIs, handler: batch },
    MethodDef { name: "event.bind", scope: None, keys: Keys::AsIs, handler: event_bind },
    MethodDef { name: "event.get", scope: None, keys: Keys::AsIs, handler: event_bind },
];

fn scope(ctx: &Ctx<'_>, _p: &Param) -> Result<Output, ApiError> {
    Ok(Output::of(json!(ctx.auth.scopes.iter().collect::<Vec<_>>())))
}

fn profile(ctx: &Ctx<'_>, _p: &Param) -> Result<Output, ApiError> {
    let portal = ctx.portal();
    let u = portal.user(ctx.user()).ok_or_else(ApiError::no_auth)?;
    Ok(Output::of(json!({
        "ID": u.id.to_string(), "ADMIN": u.id == 1, "NAME": u.first_name, "LAST_NAME": u.last_name,
        "PERSONAL_GENDER": u.gender, "PERSONAL_PHOTO": "", "TIME_ZONE": "",
        "TIME_ZONE_OFFSET": portal.ident.tz.local_minus_utc(),
    })))
}

fn user_current(ctx: &Ctx<'_>, _p: &Param) -> Result<Output, ApiError> {
    let portal = ctx.portal();
    let u = portal.user(ctx.user()).ok_or_else(ApiError::no_auth)?;
    let now = crate::rest::envelope::iso(chrono::Utc::now(), portal.ident.tz);
    Ok(Output::of(json!({
        "ID": u.id.to_string(), "ACTIVE": u.active, "NAME": u.first_name, "LAST_NAME": u.last_name,
        "EMAIL": u.email, "LAST_LOGIN": now, "DATE_REGISTER": now, "IS_ONLINE": "Y",
        "TIMESTAMP_X": u.last_activity.format("%d.%m.%Y %H:%M:%S").to_string(),
        "LAST_ACTIVITY_DATE": u.last_activity.format("%Y-%m-%d %H:%M:%S").to_string(),
        "PERSONAL_GENDER": u.gender, "PERSONAL_BIRTHDAY": "", "UF_EMPLOYMENT_DATE": "",
        "UF_DEPARTMENT": u.departments,
    })))
}

/// `department.get` (scope `department`): the single demo department, enough for the documented batch example.
fn department_get(_ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let all = vec![json!({"ID": "1", "NAME": "Company", "SORT": 500})];
    let want = p.get("ID").and_then(Param::text);
    let items: Vec<serde_json::Value> = all.into_iter().filter(|d| want.as_deref().is_none_or(|w| d["ID"] == w)).collect();
    Ok(Output::page(items, crate::rest::dispatch::start_param(p)))
}

/// `event.bind` (and `event.get`) need an application context (contract §3.5; the code is UNCONFIRMED).
fn event_bind(_ctx: &Ctx<'_>, _p: &Param) -> Result<Output, ApiError> {
    Err(ApiError::wrong_auth_type())
}
