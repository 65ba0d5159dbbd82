//! The method table and the synchronous core of a call: lookup, scope check, injected errors, key casing,
//! handler.
//!
//! Handlers are plain functions `fn(&Ctx, &Param) -> Result<Output, ApiError>`; they lock the portal, change it and
//! return. Being synchronous lets `batch` run its commands through exactly the same path.

use super::errors::ApiError;
use super::operating::{Figures, Hit, blocked_error};
use super::params::Param;
use crate::shared::Shared;
use serde_json::Value;
use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::MutexGuard;
use std::time::Duration;

/// A method handler.
pub(crate) type Handler = fn(&Ctx<'_>, &Param) -> Result<Output, ApiError>;

/// How top-level parameter keys reach the handler.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Keys {
    /// v1 `im`/`imbot`/`imopenlines`: `array_change_key_case(CASE_UPPER)`.
    Upper,
    /// CRM (lowercase) and v2 (camelCase): as sent.
    AsIs,
}

#[derive(Debug)]
pub(crate) struct MethodDef {
    pub name: &'static str,
    pub scope: Option<&'static str>,
    pub keys: Keys,
    pub handler: Handler,
}

/// The authenticated webhook.
#[derive(Clone, Debug)]
pub(crate) struct Auth {
    pub user_id: u64,
    pub scopes: BTreeSet<String>,
    /// `<user id>/<code>`: whose operating time a call is charged to.
    pub webhook: String,
}

/// Everything a handler may use.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub shared: &'a Shared,
    pub auth: &'a Auth,
    pub in_batch: bool,
    /// Delays injected into batch commands, slept by the router after the batch.
    pub extra_delay: Cell<Duration>,
    /// The HTTP request this call belongs to (operating-time charges).
    pub hit: &'a Hit,
}

impl Ctx<'_> {
    pub fn portal(&self) -> MutexGuard<'_, crate::state::Portal> {
        self.shared.portal()
    }
    pub fn user(&self) -> u64 {
        self.auth.user_id
    }
}

/// A method's result, with list paging.
#[derive(Debug)]
pub(crate) struct Output {
    pub result: Value,
    pub total: Option<u64>,
    pub next: Option<u64>,
}

impl Output {
    pub fn of(v: impl Into<Value>) -> Output {
        Output { result: v.into(), total: None, next: None }
    }

    /// A page of a v1 `start`-paged list (SRC `IRestService::getNavData`/`setNavData`): 50 items per page.
    ///
    /// `start >= 0` selects page `start / 50 + 1` (so `start` is rounded down to a multiple of 50), with `total`
    /// and, when another page exists, `next`. `start < 0` (`-1`, DOC `settings/performance/huge-data.md`) skips
    /// counting: the first 50 items, `total` 0 and no `next`.
    pub fn page(items: Vec<Value>, start: i64) -> Output {
        if start < 0 {
            let page: Vec<Value> = items.into_iter().take(PAGE_SIZE).collect();
            return Output { result: Value::Array(page), total: Some(0), next: None };
        }
        let total = items.len() as u64;
        let first = (start.unsigned_abs() / PAGE_SIZE as u64) * PAGE_SIZE as u64;
        let first = first.min(total);
        let page: Vec<Value> = items.into_iter().skip(first as usize).take(PAGE_SIZE).collect();
        let end = first + page.len() as u64;
        Output { result: Value::Array(page), total: Some(total), next: (end < total).then_some(end) }
    }
}

/// Items per page of `start`-paged lists (SRC `IRestService::LIST_LIMIT`).
const PAGE_SIZE: usize = 50;

/// The `start` parameter as PHP's `intval` reads it (SRC `CRestServer::processCall`); 0 when absent.
pub(crate) fn start_param(p: &Param) -> i64 {
    p.get_ci("start").and_then(Param::int).unwrap_or(0)
}

/// Finds a method (names are case-insensitive).
pub(crate) fn find(name: &str) -> Option<&'static MethodDef> {
    crate::methods::all().find(|m| m.name.eq_ignore_ascii_case(name))
}

/// Runs one method; returns its canonical name (or the requested one) and the outcome.
pub(crate) fn execute(ctx: &Ctx<'_>, method: &str, params: Param) -> (String, Result<Output, ApiError>) {
    let Some(def) = find(method) else {
        return (method.to_owned(), Err(ApiError::method_not_found()));
    };
    let name = def.name.to_owned();
    if let Some(scope) = def.scope
        && !ctx.auth.scopes.contains(scope)
    {
        return (name, Err(ApiError::insufficient_scope()));
    }
    let counted = !def.name.eq_ignore_ascii_case("batch");
    let now = ctx.shared.clock.secs();
    if counted && ctx.shared.operating().blocked(&ctx.auth.webhook, def.name, now, ctx.hit) {
        return (name, Err(blocked_error()));
    }
    if let Some((code, description, status)) = ctx.shared.faults.take_error(def.name) {
        return (name, Err(ApiError { status, code, description }));
    }
    let params = match def.keys {
        Keys::Upper => params.upper_keys(),
        Keys::AsIs => params,
    };
    let outcome = (def.handler)(ctx, &params);
    if counted && outcome.is_ok() {
        let cost = ctx.shared.operating().cost(def.name);
        ctx.hit.charge(def.name, now, cost);
    }
    (name, outcome)
}

/// The `time.operating*` figures of `method` for this request.
pub(crate) fn figures(ctx: &Ctx<'_>, method: &str) -> Figures {
    ctx.shared.operating().figures(&ctx.auth.webhook, method, ctx.shared.clock.secs(), ctx.hit)
}
