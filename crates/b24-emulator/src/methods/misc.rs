//! Methods without a scope: `scope`, `profile`, `user.current`, `batch`, and `event.bind` (refused for webhooks).

use crate::rest::batch::batch;
use crate::rest::dispatch::{Ctx, Keys, MethodDef, Output};
use crate::rest::errors::ApiError;
use crate::rest::params::Param;
use serde_json::json;

pub(crate) static METHODS: &[MethodDef] = &[
    MethodDef { name: "scope", scope: None, keys: Keys::AsIs, handler: scope },
    MethodDef { name: "profile", scope: None, keys: Keys::AsIs, handler: profile },
    MethodDef { name: "user.current", scope: None, keys: Keys::AsIs, handler: user_current },
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
    Ok(Output::of(json!({
        "ID": u.id.to_string(), "ACTIVE": u.active, "NAME": u.first_name, "LAST_NAME": u.last_name,
        "EMAIL": u.email, "PERSONAL_GENDER": u.gender, "WORK_POSITION": u.work_position,
        "UF_DEPARTMENT": u.departments, "IS_ONLINE": "Y",
    })))
}

/// `event.bind` (and `event.get`) need an application context (contract §3.5; the code is UNCONFIRMED).
fn event_bind(_ctx: &Ctx<'_>, _p: &Param) -> Result<Output, ApiError> {
    Err(ApiError::wrong_auth_type())
}
