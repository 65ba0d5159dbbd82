//! One connection: HTTP/1.1 by hyper with the three client timeouts, around the axum router.
//!
//! - **Header timeout** — hyper's `header_read_timeout`. Hyper starts it whenever it begins reading a
//!   request head: on a new connection and again when a kept-alive connection goes idle after a
//!   response (`proto/h1/conn.rs`, `poll_read_head` and `State::idle`), and stops it when the head is
//!   complete; one byte a second does not reset it. It needs a timer (`TokioTimer`).
//! - **Idle timeout** — ours, [`IdleIo`]: a new connection, or one that has just been answered, must
//!   send the first byte of a request within it. Hyper's header timer covers the same wait, so this
//!   only matters when it is the shorter one (the default: 5 s against 10 s); silent connections are
//!   the cheapest to open, and this frees their slots first.
//! - **Body timeout** — ours, [`DeadlineBody`]: one deadline for the whole body, counted from the
//!   complete head. (tower-http's body timeout restarts after every frame, which one byte a second
//!   defeats.) When it fires the router's answer is replaced by `408` with `Connection: close`, and
//!   hyper closes the connection after writing it, since the body was not read to its end.
//!
//! The connection reports its phase to its [`ConnState`] (see `slots`), which the accept loop uses to
//! choose which connection gives way at the cap.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use olbridge_core::config::ReceiverLimits;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;
use tracing::debug;

use super::slots::{ConnState, EVICTION_GRACE, Phase};
use crate::runner::refusals::{Reason, Refusals};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves one accepted connection until the client closes it, a timeout closes it, or `stop`.
///
/// On `stop` a connection that is waiting for a request is closed at once (nothing is lost); one
/// with a request under way finishes it and then closes (hyper's graceful shutdown), unless its body
/// is later than a genuine client's would be ([`EVICTION_GRACE`] after the connection started
/// waiting on it).
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ReceiverLimits,
    state: Arc<ConnState>,
    refusals: Arc<Refusals>,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(IdleIo::new(stream, limits.idle_timeout, Arc::clone(&state)));
    let service = {
        let state = Arc::clone(&state);
        let refusals = Arc::clone(&refusals);
        service_fn(move |request| handle(app.clone(), peer, request, limits.body_timeout, Arc::clone(&state), Arc::clone(&refusals)))
    };
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let finished = tokio::select! {
        result = conn.as_mut() => Some(result),
        _ = stop.wait_for(|s| *s) => None,
    };
    let result = match finished {
        Some(result) => result,
        None => {
            // Stopping. Nothing is lost by closing a connection with no request; one with a request
            // under way finishes it, unless its client is late with the body (then it goes too).
            if state.phase() == Phase::Head {
                return;
            }
            conn.as_mut().graceful_shutdown();
            loop {
                let late_at = state.waiting_since().map(|since| since + EVICTION_GRACE);
                tokio::select! {
                    result = conn.as_mut() => break result,
                    () = tokio::time::sleep_until(late_at.unwrap_or_else(Instant::now)), if late_at.is_some() => {
                        if state.waiting_since().is_some_and(|since| since + EVICTION_GRACE <= Instant::now()) {
                            return;
                        }
                    }
                }
            }
        }
    };
    if state.was_silent() {
        debug!("connection closed: nothing sent within the idle timeout");
        refusals.count(Reason::Silent);
    } else if let Err(e) = result {
        if e.is_timeout() {
            debug!("connection closed: request head not complete within the header timeout");
            refusals.count(Reason::HeaderTimeout);
        } else {
            debug!(error = %e, "connection ended with an error");
        }
    }
}

/// Runs one request through the router, with the body under its deadline.
async fn handle(
    app: Router,
    peer: SocketAddr,
    request: Request<Incoming>,
    body_timeout: Duration,
    state: Arc<ConnState>,
    refusals: Arc<Refusals>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    state.head_received(http_body::Body::is_end_stream(&body));
    let body = DeadlineBody { inner: body, deadline: Box::pin(tokio::time::sleep(body_timeout)), state: Arc::clone(&state), done: false };
    let response = match app.oneshot(Request::from_parts(parts, Body::new(body))).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let response = if state.body_timed_out() {
        debug!("request refused: body not complete within the body timeout");
        refusals.count(Reason::BodyTimeout);
        let mut response = (StatusCode::REQUEST_TIMEOUT, axum::Json(json!({"error": "timeout"}))).into_response();
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    } else {
        response
    };
    state.responded(Instant::now());
    Ok(response)
}

/// The body timer fired.
#[derive(Debug, thiserror::Error)]
#[error("request body not complete within the body timeout")]
struct BodyTimeout;

/// A request body with one deadline for all of it.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    state: Arc<ConnState>,
    done: bool,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.done = true;
                this.state.body_received();
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => {
                if this.inner.is_end_stream() {
                    this.state.body_received();
                }
                Poll::Ready(Some(frame.map_err(BoxError::from)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.done = true;
                    this.state.body_expired();
                    Poll::Ready(Some(Err(BodyTimeout.into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A stream that fails a read with `TimedOut` when a connection waiting for a request sends nothing
/// within the idle timeout.
///
/// The timer is armed when the connection opens and whenever response bytes are written while the
/// connection waits for its next request; any byte read disarms it (hyper's header timer takes over).
#[derive(Debug)]
struct IdleIo {
    inner: TcpStream,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    armed: bool,
    state: Arc<ConnState>,
}

impl IdleIo {
    fn new(inner: TcpStream, timeout: Duration, state: Arc<ConnState>) -> Self {
        Self { inner, timeout, deadline: Box::pin(tokio::time::sleep(timeout)), armed: true, state }
    }

    fn wrote(&mut self, n: usize) {
        if n > 0 && self.state.phase() == Phase::Head {
            self.armed = true;
            self.deadline.as_mut().reset(Instant::now() + self.timeout);
        }
    }
}

impl AsyncRead for IdleIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.armed = false;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.armed && this.deadline.as_mut().poll(cx).is_ready() => {
                this.armed = false;
                this.state.idle_expired();
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "no request within the idle timeout")))
            }
            other => other,
        }
    }
}

impl AsyncWrite for IdleIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            this.wrote(n);
        }
        result
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            this.wrote(n);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
