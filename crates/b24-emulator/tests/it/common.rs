//! Test harness: an emulator on port 0 with the demo portal, a REST client, and an event receiver.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::any;
use b24_emulator::{DemoPortal, Emulator, EmulatorConfig, RateLimit};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(10);

pub struct Portal {
    pub emu: Emulator,
    pub demo: DemoPortal,
    pub http: reqwest::Client,
}

pub async fn start() -> Portal {
    start_with(EmulatorConfig { rate: RateLimit::UNLIMITED, ..EmulatorConfig::default() }).await
}

pub async fn start_with(config: EmulatorConfig) -> Portal {
    let emu = Emulator::start(config).await.expect("emulator starts");
    let demo = emu.seed_demo();
    Portal { emu, demo, http: reqwest::Client::builder().no_proxy().build().expect("client") }
}

impl Portal {
    /// POSTs a JSON body to the demo webhook.
    pub async fn call(&self, method: &str, params: Value) -> (u16, Value) {
        self.call_at(&self.demo.webhook_url, method, params).await
    }

    pub async fn call_at(&self, webhook: &str, method: &str, params: Value) -> (u16, Value) {
        let resp = self.http.post(format!("{webhook}{method}")).json(&params).send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Sends a raw body with a content type.
    pub async fn raw(&self, method: &str, content_type: &str, body: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{method}", self.demo.webhook_url))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Calls and asserts success, returning `result`.
    pub async fn ok(&self, method: &str, params: Value) -> Value {
        let (status, body) = self.call(method, params).await;
        assert_eq!(status, 200, "{method} failed: {body}");
        body["result"].clone()
    }

    /// Registers a v1 Open Lines bot posting to `handler` and makes it the WhatsApp line's welcome bot.
    pub async fn register_bot(&self, handler: &str, client_id: &str) -> u64 {
        let id = self
            .ok(
                "imbot.register",
                json!({"CODE": format!("bot_{client_id}"), "TYPE": "O", "EVENT_HANDLER": handler,
                       "PROPERTIES": {"NAME": "AI Bot"}, "CLIENT_ID": client_id}),
            )
            .await;
        let id = id.as_u64().expect("integer bot id");
        self.emu.attach_welcome_bot(self.demo.whatsapp_line_id, id).expect("attach");
        id
    }
}

/// One POST the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub uri: String,
    pub content_type: String,
    pub body: String,
}

impl Received {
    pub fn decoded(&self) -> Value {
        b24_emulator::decode_form(&self.body).expect("form body")
    }
}

/// A tiny HTTP endpoint standing in for the bridge's receiver.
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
    _server: tokio::task::JoinHandle<()>,
}

async fn store(State(got): State<Arc<Mutex<Vec<Received>>>>, uri: Uri, headers: HeaderMap, body: Bytes) -> &'static str {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    got.lock().expect("lock").push(Received { uri: uri.to_string(), content_type, body: String::from_utf8_lossy(&body).into_owned() });
    "{\"status\":\"ok\"}"
}

pub async fn receiver() -> Receiver {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let app = Router::new().route("/{*path}", any(store)).with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { url: format!("http://{addr}/bitrix/events"), got, _server: server }
}

impl Receiver {
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    pub fn events(&self, name: &str) -> Vec<Value> {
        self.received().iter().map(Received::decoded).filter(|v| v["event"] == name).collect()
    }
}

/// Asserts every leaf of a decoded form body is a string.
pub fn assert_all_strings(v: &Value, path: &str) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| assert_all_strings(v, &format!("{path}[{k}]"))),
        Value::String(_) => {}
        other => panic!("{path} is not a string: {other}"),
    }
}
