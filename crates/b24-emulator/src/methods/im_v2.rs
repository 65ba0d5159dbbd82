//! `im.v2.Event.subscribe` / `unsubscribe` / `get`: the webhook user's event log (contract §3.7; DOC
//! `chat-bots-v2/im.v2/events/*`). No method-specific errors: a user who is not subscribed gets no events.

use crate::rest::dispatch::{Ctx, Keys, MethodDef, Output};
use crate::rest::envelope::iso;
use crate::rest::errors::ApiError;
use crate::rest::params::Param;
use crate::state::model::V2Event;
use chrono::FixedOffset;
use serde_json::{Value, json};

pub(crate) static METHODS: &[MethodDef] = &[
    MethodDef { name: "im.v2.Event.subscribe", scope: Some("im"), keys: Keys::AsIs, handler: subscribe },
    MethodDef { name: "im.v2.Event.unsubscribe", scope: Some("im"), keys: Keys::AsIs, handler: unsubscribe },
    MethodDef { name: "im.v2.Event.get", scope: Some("im"), keys: Keys::AsIs, handler: get },
];

fn subscribe(ctx: &Ctx<'_>, _p: &Param) -> Result<Output, ApiError> {
    ctx.portal().subscribe_user_events(ctx.user());
    Ok(Output::of(true))
}

fn unsubscribe(ctx: &Ctx<'_>, _p: &Param) -> Result<Output, ApiError> {
    ctx.portal().unsubscribe_user_events(ctx.user());
    Ok(Output::of(true))
}

/// `offset` (acknowledges `eventId < offset`) and `limit` (1–1000, default 100; out-of-range values are
/// clamped, UNCONFIRMED).
pub(crate) fn paging(p: &Param) -> (Option<u64>, usize) {
    let offset = p.get("offset").and_then(Param::int).filter(|n| *n > 0).map(i64::unsigned_abs);
    let limit = p.get("limit").and_then(Param::int).map_or(100, |n| n.clamp(1, 1000)) as usize;
    (offset, limit)
}

/// `{events: [{eventId, type, date, data}], nextOffset, hasMore}` over records oldest first (already
/// acknowledged up to `offset`). `nextOffset` is the last returned id + 1, else `offset` (or 0).
pub(crate) fn page(records: &[V2Event], offset: Option<u64>, limit: usize, tz: FixedOffset) -> Value {
    let events: Vec<Value> =
        records.iter().take(limit).map(|e| json!({"eventId": e.id, "type": e.kind, "date": iso(e.date.to_utc(), tz), "data": e.data})).collect();
    let next = records.iter().take(limit).next_back().map_or(offset.unwrap_or(0), |e| e.id.saturating_add(1));
    json!({"events": events, "nextOffset": next, "hasMore": records.len() > limit})
}

fn get(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    let (offset, limit) = paging(p);
    let mut portal = ctx.portal();
    portal.ack_user_events(ctx.user(), offset);
    let records = portal.user_event_records(ctx.user());
    Ok(Output::of(page(&records, offset, limit, portal.ident.tz)))
}
