//! `batch`: up to 50 commands in one request, which costs one slot of the rate budget (contract
//! §2.3).
//!
//! Each command travels as a string `method?query`, the query encoded the way PHP's
//! `http_build_query` does it (`fields[TITLE]=...&fields[PHONE][0][VALUE]=...`), because the portal
//! parses it with `parse_str`. The call answers 200 even when commands fail; each failure comes back
//! per command in `result_error` and is classified here like any other [`B24Error`].
//!
//! A [`Batch`] larger than 50 commands is sent as several batches, in order. References between
//! commands (`$result[cmd][ID]`) only work within one batch of 50, and with `halt` a failure stops
//! the batches after it too.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use url::form_urlencoded;

use super::client::{B24Client, Replay};
use super::error::{B24Error, ErrorKind};
use super::ratelimit::Priority;

/// Commands to send together. Build with [`Batch::add`], send with [`B24Client::batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    commands: Vec<Command>,
    halt: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Command {
    id: String,
    method: String,
    query: String,
}

impl Batch {
    /// The most commands Bitrix24 runs in one batch.
    pub const MAX_COMMANDS: usize = 50;

    /// An empty batch that runs every command even when some fail.
    pub fn new() -> Self {
        Self::default()
    }

    /// With `true`, execution stops at the first failing command (Bitrix24's `halt=1`).
    pub fn halt(&mut self, halt: bool) -> &mut Self {
        self.halt = halt;
        self
    }

    /// Adds a command. `params` is a JSON object (or `null`); an id used before replaces that
    /// command, keeping its position.
    pub fn add(&mut self, id: impl Into<String>, method: &str, params: &Value) -> &mut Self {
        let id = id.into();
        let query = php_query(params);
        let command = Command { id, method: method.to_owned(), query };
        match self.commands.iter_mut().find(|c| c.id == command.id) {
            Some(existing) => *existing = command,
            None => self.commands.push(command),
        }
        self
    }

    /// How many commands.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// Whether there is no command.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The `cmd` string of command `id` (`method?query`), for inspection.
    pub fn command(&self, id: &str) -> Option<String> {
        self.commands.iter().find(|c| c.id == id).map(Command::cmd)
    }

    /// The request bodies, one per batch of at most 50.
    fn bodies(&self) -> impl Iterator<Item = (Value, &[Command])> + '_ {
        self.commands.chunks(Self::MAX_COMMANDS).map(move |chunk| {
            let cmd: Map<String, Value> = chunk.iter().map(|c| (c.id.clone(), Value::String(c.cmd()))).collect();
            (serde_json::json!({ "halt": u8::from(self.halt), "cmd": cmd }), chunk)
        })
    }
}

impl Command {
    fn cmd(&self) -> String {
        if self.query.is_empty() { self.method.clone() } else { format!("{}?{}", self.method, self.query) }
    }
}

/// Encodes parameters as PHP's `http_build_query` does: nested keys in brackets, arrays by index,
/// `true`/`false` as `1`/`0`, `null` and empty arrays left out, form-urlencoded.
pub fn php_query(params: &Value) -> String {
    fn walk(key: &str, v: &Value, out: &mut Vec<(String, String)>) {
        let child = |k: &str| if key.is_empty() { k.to_owned() } else { format!("{key}[{k}]") };
        match v {
            Value::Null => {}
            Value::Bool(b) => out.push((key.to_owned(), if *b { "1" } else { "0" }.to_owned())),
            Value::Number(n) => out.push((key.to_owned(), n.to_string())),
            Value::String(s) => out.push((key.to_owned(), s.clone())),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| walk(&child(&i.to_string()), x, out)),
            Value::Object(m) => m.iter().for_each(|(k, x)| walk(&child(k), x, out)),
        }
    }
    let mut pairs = Vec::new();
    if params.is_object() || params.is_array() {
        walk("", params, &mut pairs);
    }
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// What a batch returned, per command id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchResult {
    results: HashMap<String, Value>,
    errors: HashMap<String, B24Error>,
    totals: HashMap<String, u64>,
    nexts: HashMap<String, u64>,
}

impl BatchResult {
    /// The decoded result of command `id`, or its error. A command that did not run (a `halt`
    /// stopped the batch before it) is a permanent `BATCH_COMMAND_NOT_RUN` error.
    pub fn get<T: DeserializeOwned>(&self, id: &str) -> Result<T, B24Error> {
        if let Some(e) = self.errors.get(id) {
            return Err(e.clone());
        }
        match self.results.get(id) {
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| B24Error::unexpected_result(id, &e)),
            None => Err(B24Error::local(id, ErrorKind::Permanent, "BATCH_COMMAND_NOT_RUN", "the command did not run (halted batch?)")),
        }
    }

    /// The raw result of command `id`, when it succeeded.
    pub fn raw(&self, id: &str) -> Option<&Value> {
        self.results.get(id)
    }

    /// The error of command `id`, when it failed.
    pub fn error(&self, id: &str) -> Option<&B24Error> {
        self.errors.get(id)
    }

    /// All failed commands.
    pub fn errors(&self) -> impl Iterator<Item = (&str, &B24Error)> {
        self.errors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many commands succeeded.
    pub fn succeeded(&self) -> usize {
        self.results.len()
    }

    /// `result_total` of a list command.
    pub fn total(&self, id: &str) -> Option<u64> {
        self.totals.get(id).copied()
    }

    /// `result_next` of a list command that has another page.
    pub fn next(&self, id: &str) -> Option<u64> {
        self.nexts.get(id).copied()
    }

    /// Merges one batch response's `result` object in.
    fn absorb(&mut self, result: Value, chunk: &[Command]) {
        let method_of = |id: &str| chunk.iter().find(|c| c.id == id).map_or("batch", |c| c.method.as_str()).to_owned();
        let Value::Object(mut m) = result else { return };
        for (id, v) in entries(m.remove("result"), chunk) {
            self.results.insert(id, v);
        }
        for (id, v) in entries(m.remove("result_error"), chunk) {
            let code = v.get("error").map(text).unwrap_or_default();
            let description = v.get("error_description").map(text).unwrap_or_default();
            let err = B24Error::from_envelope(&method_of(&id), None, &code, &description, None);
            self.errors.insert(id, err);
        }
        for (id, v) in entries(m.remove("result_total"), chunk) {
            if let Some(n) = number(&v) {
                self.totals.insert(id, n);
            }
        }
        for (id, v) in entries(m.remove("result_next"), chunk) {
            if let Some(n) = number(&v) {
                self.nexts.insert(id, n);
            }
        }
    }
}

/// A per-command map. PHP writes an empty map as `[]`, and a map whose keys are 0, 1, 2... as an
/// array; array positions are mapped back to command ids.
fn entries(v: Option<Value>, chunk: &[Command]) -> Vec<(String, Value)> {
    match v {
        Some(Value::Object(m)) => m.into_iter().collect(),
        Some(Value::Array(a)) => a.into_iter().enumerate().map(|(i, v)| (chunk.get(i).map_or_else(|| i.to_string(), |c| c.id.clone()), v)).collect(),
        _ => Vec::new(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl B24Client {
    /// Sends a batch (split into batches of 50), one rate slot per batch of 50. Commands are
    /// retried as a whole on rate limits and transient failures of the batch call itself, so put
    /// only idempotent commands in a batch.
    pub async fn batch(&self, batch: &Batch) -> Result<BatchResult, B24Error> {
        self.batch_at(batch, Priority::Essential).await
    }

    /// [`B24Client::batch`] at background priority: the pollers' reads, which wait for headroom
    /// in the rate budget and leave the reserve to replies.
    pub async fn batch_background(&self, batch: &Batch) -> Result<BatchResult, B24Error> {
        self.batch_at(batch, Priority::Background).await
    }

    async fn batch_at(&self, batch: &Batch, priority: Priority) -> Result<BatchResult, B24Error> {
        let mut out = BatchResult::default();
        for (body, chunk) in batch.bodies() {
            let page = self.send_at("batch", &body, Replay::Always, priority).await?;
            // Each command's `result_time` carries its method's operating time (the batch call
            // itself is not counted).
            for (id, time) in entries(page.result.get("result_time").cloned(), chunk) {
                if let Some(c) = chunk.iter().find(|c| c.id == id) {
                    self.record_operating(&c.method, Some(&time));
                }
            }
            let errors_before = out.errors.len();
            out.absorb(page.result, chunk);
            if batch.halt && out.errors.len() > errors_before {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn params_are_encoded_like_php_http_build_query() {
        let q = php_query(&json!({
            "fields": {"TITLE": "a b&c", "PHONE": [{"VALUE": "+49 1", "VALUE_TYPE": "WORK"}], "OPENED": true, "X": null, "E": []},
            "id": 5
        }));
        // serde_json may or may not keep insertion order; compare the pairs as a set.
        let mut pairs: Vec<&str> = q.split('&').collect();
        pairs.sort_unstable();
        assert_eq!(
            pairs,
            vec![
                "fields%5BOPENED%5D=1",
                "fields%5BPHONE%5D%5B0%5D%5BVALUE%5D=%2B49+1",
                "fields%5BPHONE%5D%5B0%5D%5BVALUE_TYPE%5D=WORK",
                "fields%5BTITLE%5D=a+b%26c",
                "id=5",
            ]
        );
        assert_eq!(php_query(&json!(null)), "");
        assert_eq!(php_query(&json!({"ID": "1"})), "ID=1");
    }

    #[test]
    fn commands_are_method_and_query_and_ids_replace() {
        let mut b = Batch::new();
        b.add("u", "user.current", &json!({})).add("l", "crm.lead.get", &json!({"id": 1})).add("u", "profile", &Value::Null);
        assert_eq!(b.len(), 2);
        assert_eq!(b.command("u").as_deref(), Some("profile"));
        assert_eq!(b.command("l").as_deref(), Some("crm.lead.get?id=1"));
    }

    #[test]
    fn more_than_fifty_commands_make_several_bodies() {
        let mut b = Batch::new();
        b.halt(true);
        for i in 0..120 {
            b.add(format!("c{i}"), "profile", &json!({}));
        }
        let sizes: Vec<usize> = b
            .bodies()
            .map(|(body, chunk)| {
                assert_eq!(body["halt"], json!(1));
                assert_eq!(body["cmd"].as_object().map(Map::len), Some(chunk.len()));
                chunk.len()
            })
            .collect();
        assert_eq!(sizes, vec![50, 50, 20]);
    }

    #[test]
    fn responses_are_split_into_results_errors_totals_and_next() {
        let mut b = Batch::new();
        b.add("get_user", "user.get", &json!({})).add("get_department", "department.get", &json!({}));
        let mut r = BatchResult::default();
        r.absorb(
            json!({
                "result": {"get_department": [{"ID": "1"}]},
                "result_error": {"get_user": {"error": "insufficient_scope", "error_description": ""}},
                "result_total": {"get_department": 1},
                "result_next": [],
                "result_time": []
            }),
            &b.commands,
        );
        assert_eq!(r.get::<Vec<Value>>("get_department").map(|v| v.len()), Ok(1));
        assert_eq!(r.total("get_department"), Some(1));
        assert_eq!(r.next("get_department"), None);
        let e = r.get::<Value>("get_user").expect_err("failed");
        assert_eq!((e.kind, e.method.as_str()), (ErrorKind::Auth, "user.get"));
        assert_eq!(r.get::<Value>("nope").expect_err("not run").code, "BATCH_COMMAND_NOT_RUN");

        let mut r = BatchResult::default();
        r.absorb(json!({"result": ["a", "b"], "result_error": []}), &b.commands);
        assert_eq!(r.raw("get_department"), Some(&json!("b")));
    }
}
