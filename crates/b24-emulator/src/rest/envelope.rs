//! Success and error envelopes, and the `time` object every response carries (contract §1.2, §1.4).

use super::errors::ApiError;
use super::operating::Figures;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// When a call started and how long it took; renders the `time` object.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Wall-clock start.
    pub start: DateTime<Utc>,
    /// Elapsed until the response was built.
    pub elapsed: Duration,
}

fn unix_f64(t: DateTime<Utc>) -> f64 {
    t.timestamp() as f64 + f64::from(t.timestamp_subsec_micros()) / 1_000_000.0
}

/// ISO-8601 with the portal's offset, as Bitrix prints dates (`2026-05-14T10:26:32+02:00`).
pub fn iso(t: DateTime<Utc>, tz: FixedOffset) -> String {
    t.with_timezone(&tz).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The `time` object, with `operating_reset_at` and `operating` when given (every successful call on a cloud
/// portal, batch commands included: SRC `CRestServer::appendDebugInfo` runs for `CRestServerBatchItem` too).
pub(crate) fn time_object(t: Timing, tz: FixedOffset, operating: Option<Figures>) -> Value {
    let finish = t.start + chrono::Duration::from_std(t.elapsed).unwrap_or_default();
    let dur = t.elapsed.as_secs_f64();
    let mut m = Map::new();
    m.insert("start".into(), json!(unix_f64(t.start)));
    m.insert("finish".into(), json!(unix_f64(finish)));
    m.insert("duration".into(), json!(dur));
    m.insert("processing".into(), json!(dur));
    m.insert("date_start".into(), json!(iso(t.start, tz)));
    m.insert("date_finish".into(), json!(iso(finish, tz)));
    if let Some(f) = operating {
        m.insert("operating_reset_at".into(), json!(f.reset_at));
        // The docs print an idle method's figure as the integer 0.
        m.insert("operating".into(), if f.operating == 0.0 { json!(0) } else { json!(f.operating) });
    }
    Value::Object(m)
}

/// `{"result": ..., ["total", "next",] "time": {...}}`.
pub fn success_body(result: Value, total: Option<u64>, next: Option<u64>, time: Value) -> Value {
    let mut m = Map::new();
    m.insert("result".into(), result);
    if let Some(n) = next {
        m.insert("next".into(), json!(n));
    }
    if let Some(t) = total {
        m.insert("total".into(), json!(t));
    }
    m.insert("time".into(), time);
    Value::Object(m)
}

/// `{"error": CODE, "error_description": TEXT}`.
pub fn error_body(e: &ApiError) -> Value {
    json!({"error": e.code, "error_description": e.description})
}

/// PHP's `json_encode` of an array: a JSON list when its keys are exactly `0, 1, 2, ...` in order (so an empty
/// map is `[]`, and a batch sent as a list answers with lists while none of its commands failed), else an object.
pub fn php_map(m: Map<String, Value>) -> Value {
    // `Map` sorts its keys as strings ("10" before "2"), so look for the set {0..n-1} and order by number.
    let mut indexed: Vec<(usize, Value)> = Vec::with_capacity(m.len());
    for (k, v) in &m {
        match k.parse::<usize>() {
            Ok(i) if i.to_string() == *k && i < m.len() => indexed.push((i, v.clone())),
            _ => return Value::Object(m),
        }
    }
    indexed.sort_by_key(|(i, _)| *i);
    Value::Array(indexed.into_iter().map(|(_, v)| v).collect())
}

#[cfg(test)]
mod tests {
    use super::php_map;
    use serde_json::{Map, Value, json};

    fn map(keys: &[&str]) -> Map<String, Value> {
        keys.iter().map(|k| ((*k).to_owned(), json!(k))).collect()
    }

    #[test]
    fn json_encode_lists_and_maps() {
        assert_eq!(php_map(Map::new()), json!([]));
        let twelve: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        let keys: Vec<&str> = twelve.iter().map(String::as_str).collect();
        assert_eq!(php_map(map(&keys)), json!(twelve));
        assert_eq!(php_map(map(&["0", "2"])), json!({"0": "0", "2": "2"}));
        assert_eq!(php_map(map(&["1701"])), json!({"1701": "1701"}));
        assert_eq!(php_map(map(&["a"])), json!({"a": "a"}));
    }
}
