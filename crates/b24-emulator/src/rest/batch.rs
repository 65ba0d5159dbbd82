//! `batch`: up to 50 commands in one request, with `$result[cmd][...]` references (contract §2.3).
//!
//! Commands run in the order given (the parameter tree keeps insertion order), each through the normal
//! dispatch path (scope check, injected faults, operating-time check, handler) and each is recorded with
//! `in_batch = true`. The batch itself counts as one request for the rate limiter and always answers HTTP 200;
//! failures are reported per command in `result_error`. Empty maps are `[]`, as PHP encodes them.
//!
//! More than 50 commands: the first 50 run and every further one gets `ERROR_BATCH_LENGTH_EXCEEDED` "Max batch
//! length exceeded" in `result_error` (with `halt`, the first extra one stops the batch). That is SRC
//! `CRestProvider::methodsBatch` (`if(($cnt++) < \CRestUtil::BATCH_MAX_LENGTH) ... else $res = array('error' =>
//! self::ERROR_BATCH_LENGTH_EXCEEDED, 'error_description' => 'Max batch length exceeded')`); the docs' error
//! table (HTTP 400 for the whole call) describes no code path of the source.

use super::dispatch::{Ctx, Output, execute, figures};
use super::envelope::{Timing, error_body, php_map, time_object};
use super::errors::ApiError;
use super::params::{DEFAULT_LIMITS, Param, parse_query};
use crate::record::RecordedCall;
use chrono::Utc;
use serde_json::{Map, Value, json};
use std::time::Instant;

const MAX_COMMANDS: usize = 50;

struct Results {
    result: Map<String, Value>,
    total: Map<String, Value>,
    next: Map<String, Value>,
}

/// The `batch` method.
pub(crate) fn batch(ctx: &Ctx<'_>, p: &Param) -> Result<Output, ApiError> {
    if ctx.in_batch {
        return Err(not_allowed());
    }
    let halt = p.get_ci("halt").is_some_and(|h| h.is_yes() || h.int() == Some(1) || h.text().is_some_and(|t| t.eq_ignore_ascii_case("true")));
    let cmds = match p.get_ci("cmd") {
        Some(c) if c.is_container() => c.entries(),
        Some(c) if c.is_php_empty() => Vec::new(),
        None => Vec::new(),
        Some(_) => return Err(ApiError::bad("INVALID_REQUEST", "Parameter 'cmd' must be an array")),
    };
    let tz = ctx.portal().ident.tz;
    let mut res = Results { result: Map::new(), total: Map::new(), next: Map::new() };
    let mut errors = Map::new();
    let mut times = Map::new();
    for (n, (key, cmd)) in cmds.into_iter().enumerate() {
        if n >= MAX_COMMANDS {
            errors.insert(key, error_body(&length_exceeded()));
            if halt {
                break;
            }
            continue;
        }
        let started = Instant::now();
        let at = Utc::now();
        let (name, params, outcome) = run_one(ctx, cmd, &res);
        let method = name.clone();
        let latency = started.elapsed();
        ctx.shared.recorder.call(RecordedCall {
            method: name,
            params,
            status: outcome.as_ref().map_or_else(|e| e.status, |_| 200),
            error: outcome.as_ref().err().map(|e| e.code.clone()),
            at,
            latency,
            in_batch: true,
            user_id: Some(ctx.user()),
        });
        match outcome {
            Ok(o) => {
                res.result.insert(key.clone(), o.result);
                if let Some(t) = o.total {
                    res.total.insert(key.clone(), json!(t));
                }
                if let Some(n) = o.next {
                    res.next.insert(key.clone(), json!(n));
                }
                let operating = figures(ctx, &method);
                times.insert(key, time_object(Timing { start: at, elapsed: latency }, tz, Some(operating)));
            }
            Err(mut e) => {
                // The documented example shows scope errors inside a batch with an empty description.
                if e.code == "insufficient_scope" {
                    e.description.clear();
                }
                errors.insert(key, error_body(&e));
                if halt {
                    break;
                }
            }
        }
    }
    Ok(Output::of(json!({
        "result": php_map(res.result),
        "result_error": php_map(errors),
        "result_total": php_map(res.total),
        "result_next": php_map(res.next),
        "result_time": php_map(times),
    })))
}

fn length_exceeded() -> ApiError {
    ApiError::bad("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
}

fn not_allowed() -> ApiError {
    ApiError::new(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")
}

fn run_one(ctx: &Ctx<'_>, cmd: &Param, res: &Results) -> (String, Value, Result<Output, ApiError>) {
    let Some(text) = cmd.text().filter(|_| !cmd.is_container()) else {
        return (String::new(), cmd.to_json(), Err(ApiError::bad("INVALID_REQUEST", "Batch command must be a string")));
    };
    let (method, query) = text.split_once('?').unwrap_or((text.as_str(), ""));
    let method = method.trim().trim_start_matches('/');
    let method = method.strip_suffix(".json").unwrap_or(method).to_owned();
    let params = match parse_query(query, DEFAULT_LIMITS) {
        Ok(p) => p.map_strings(&mut |s| substitute(&s, res)),
        Err(e) => return (method, Value::Null, Err(e.into())),
    };
    let params_json = params.to_json();
    if method.eq_ignore_ascii_case("batch") {
        return (method, params_json, Err(not_allowed()));
    }
    let sub = Ctx { shared: ctx.shared, auth: ctx.auth, in_batch: true, extra_delay: Default::default(), hit: ctx.hit };
    let (name, outcome) = execute(&sub, &method, params);
    if let Some(d) = ctx.shared.faults.take_delay(&name) {
        ctx.extra_delay.set(ctx.extra_delay.get().saturating_add(d));
    }
    (name, params_json, outcome)
}

/// A reference `$result[cmd][a][0]` (or `$result_total[cmd]`, `$result_next[cmd]`) found at byte `at`.
struct Ref {
    end: usize,
    value: Option<Value>,
}

fn parse_ref(s: &str, at: usize, res: &Results) -> Option<Ref> {
    let rest = &s[at..];
    let (source, after) = [("$result_total", &res.total), ("$result_next", &res.next), ("$result", &res.result)]
        .into_iter()
        .find_map(|(prefix, map)| rest.strip_prefix(prefix).filter(|r| r.starts_with('[')).map(|r| (map, r)))?;
    let mut path = Vec::new();
    let mut tail = after;
    while let Some(inner) = tail.strip_prefix('[') {
        let close = inner.find(']')?;
        path.push(&inner[..close]);
        tail = &inner[close + 1..];
    }
    let end = s.len() - tail.len();
    let (first, more) = path.split_first()?;
    let mut v = source.get(*first).cloned();
    for key in more {
        v = v.and_then(|cur| match cur {
            Value::Object(o) => o.get(*key).cloned(),
            Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i).cloned()),
            _ => None,
        });
    }
    Some(Ref { end, value: v })
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => {
            if *b {
                "1".to_owned()
            } else {
                String::new()
            }
        }
        other => other.to_string(),
    }
}

/// Replaces references in one parameter value. A value that is exactly one reference takes the referenced value
/// as is (so arrays pass through); otherwise references are replaced textually. Unknown references become empty.
fn substitute(s: &str, res: &Results) -> Param {
    if !s.contains("$result") {
        return Param::Str(s.to_owned());
    }
    if let Some(r) = parse_ref(s, 0, res).filter(|r| r.end == s.len()) {
        return r.value.as_ref().map_or(Param::Str(String::new()), Param::from_json);
    }
    let mut out = String::new();
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with("$result")
            && let Some(r) = parse_ref(s, i, res)
        {
            out.push_str(&r.value.as_ref().map(scalar_text).unwrap_or_default());
            i = r.end;
            continue;
        }
        let ch = s[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    Param::Str(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve() {
        let mut res = Results { result: Map::new(), total: Map::new(), next: Map::new() };
        res.result.insert("u".into(), json!({"ID": "7", "DEP": [3, 4]}));
        res.total.insert("l".into(), json!(12));
        assert_eq!(substitute("$result[u][ID]", &res), Param::Str("7".into()));
        assert_eq!(substitute("$result[u][DEP][1]", &res), Param::Num(4.into()));
        assert_eq!(substitute("x$result[u][ID]y$result_total[l]", &res), Param::Str("x7y12".into()));
        assert_eq!(substitute("$result[zz][a]", &res), Param::Str(String::new()));
        assert_eq!(substitute("$result[u", &res), Param::Str("$result[u".into()));
    }
}
