//! A scriptable bot server speaking the bot contract, for end-to-end tests.
//!
//! Each request takes the next scripted [`Reply`] (or the default one), and is recorded with its
//! headers and raw body so tests can check what the bridge sent.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// What the bot does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Echo the text back as `{"reply_text": "echo: <text>"}`.
    Echo,
    /// Answer 200 with this JSON.
    Json(Value),
    /// Answer 200 with this plain text.
    Text(String),
    /// Answer with this status and content type and raw body.
    Raw(u16, &'static str, String),
    /// Answer 204.
    NoContent,
    /// Wait, then do the inner reply.
    After(Duration, Box<Reply>),
}

/// One request as the bot received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub raw: Vec<u8>,
    /// The body as JSON (`Null` if it was not JSON).
    pub body: Value,
}

#[derive(Debug, Default)]
struct Inner {
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    received: Mutex<Vec<Received>>,
    arrived: Notify,
    answered: Notify,
    answered_count: Mutex<usize>,
    stop: Notify,
}

/// The test bot server.
#[derive(Debug, Clone)]
pub struct TestBot {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl TestBot {
    /// Starts on 127.0.0.1:0, echoing by default.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::default());
        let app = Router::new().route("/webhook/whatsapp", post(handle)).with_state(Arc::clone(&inner));
        let stopping = Arc::clone(&inner);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(async move { stopping.stop.notified().await }).await;
        });
        Ok(Self { addr, inner })
    }

    /// Stops the server, as a bot that went down: the port is closed and idle keep-alive
    /// connections are closed too, so the next call fails to connect.
    pub fn stop(&self) {
        self.inner.stop.notify_one();
    }

    /// `BOT_HTTP_URL`.
    pub fn url(&self) -> String {
        format!("http://{}/webhook/whatsapp", self.addr)
    }

    /// Queues replies for the next requests.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.inner.script).extend(replies);
    }

    /// The reply used when the script is empty.
    pub fn set_default(&self, reply: Reply) {
        *lock(&self.inner.default) = Some(reply);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.inner.received).clone()
    }

    /// Waits until at least `n` requests arrived (or the timeout passes); returns how many did.
    pub async fn wait_requests(&self, n: usize, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.arrived.notified();
            let count = lock(&self.inner.received).len();
            if count >= n || tokio::time::Instant::now() >= deadline {
                return count;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// Waits until at least `n` answers were fully sent.
    pub async fn wait_answers(&self, n: usize, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.answered.notified();
            let count = *lock(&self.inner.answered_count);
            if count >= n || tokio::time::Instant::now() >= deadline {
                return count;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    lock(&inner.received).push(Received { headers, raw: body.to_vec(), body: parsed.clone() });
    inner.arrived.notify_waiters();
    let reply = lock(&inner.script).pop_front().or_else(|| lock(&inner.default).clone()).unwrap_or(Reply::Echo);
    let response = respond(reply, &parsed).await;
    *lock(&inner.answered_count) += 1;
    inner.answered.notify_waiters();
    response
}

async fn respond(mut reply: Reply, request: &Value) -> Response {
    loop {
        match reply {
            Reply::After(d, inner) => {
                tokio::time::sleep(d).await;
                reply = *inner;
            }
            Reply::Echo => {
                let text = request.get("text").and_then(Value::as_str).unwrap_or("");
                return axum::Json(json!({"reply_text": format!("echo: {text}")})).into_response();
            }
            Reply::Json(v) => return axum::Json(v).into_response(),
            Reply::Text(t) => return (StatusCode::OK, [("content-type", "text/plain")], t).into_response(),
            Reply::Raw(status, ct, body) => {
                return (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), [("content-type", ct)], body).into_response();
            }
            Reply::NoContent => return StatusCode::NO_CONTENT.into_response(),
        }
    }
}
