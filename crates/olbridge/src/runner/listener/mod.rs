//! The receiver's accept loop: how many connections it holds, how long it waits on each, and what
//! happens when a client will not finish its request.
//!
//! # Why
//! `axum::serve` accepts every connection and waits on each for ever: fifty idle or slow-loris
//! connections (a head or body sent a byte a second) were held for minutes, and under a 64-descriptor
//! limit they used up the process's descriptors, so `/health` and genuine events timed out. Bitrix24
//! does not retry an event it could not deliver, so a receiver that can be held up loses messages.
//!
//! # What bounds an attacker
//! - **Timeouts** ([`ReceiverLimits`]; one connection: [`connection`]): a silent connection is
//!   closed after the idle timeout, an unfinished head after the header timeout, an unfinished body
//!   after the body timeout (`408`). One attacking connection holds a slot for at most
//!   header + body timeout, whatever it sends.
//! - **A cap** on connections held at once, `OLBRIDGE_MAX_CONNECTIONS`, lowered at start-up to half
//!   the process's descriptor limit when that is smaller: the other half stays free for the store,
//!   the calls to the portal and the bot, and the runtime, so an attack on the receiver cannot starve
//!   the workers of descriptors. The cap counts connection tasks until they have ended (evicted ones
//!   included), so open sockets exceed it by at most the one just accepted.
//! - **Eviction at the cap** ([`slots`]). Below the cap an attack is simply held, each connection
//!   until its timeout, and genuine clients get a slot at once. With a plain cap, newcomers would
//!   then wait in the kernel's accept queue until a timeout freed a slot — several timeouts behind a
//!   few hundred attackers, past the portal's delivery timeout. Instead, at the cap, the loop
//!   accepts the newcomer and closes the connection that has waited on its client (for a head or a
//!   body) the longest, once that one is older than a grace of 250 ms. Genuine clients send their
//!   request in one go and wait on themselves for milliseconds, so the one closed is an attacker;
//!   connections whose request we are handling are never closed. The grace makes a slot change
//!   hands at most four times a second, so at the cap the loop admits up to 4 × cap connections a
//!   second (1024 at the default 256, 128 at 32): a genuine connection queued behind N attacking
//!   ones waits about N / (4 × cap) seconds — about a second for 200 attackers at a cap of 32.
//! - **A deep accept queue** ([`bind`], [`LISTEN_BACKLOG`] = 1024). The standard library's 128 is
//!   smaller than a modest attack: with the queue full the kernel drops new SYNs, and a genuine
//!   client races the attackers' retries for each freed place, backing off 1 s, 3 s, 7 s. With a
//!   queue deeper than the attack it waits its turn instead. An attack larger than cap + queue (about
//!   1300 connections by default) is a volumetric flood: the firewall's or the reverse proxy's job.
//! - **Out of descriptors** (`EMFILE`/`ENFILE`, or `ENOBUFS`/`ENOMEM`; possible when the workers'
//!   outgoing connections take more than their half): `accept` fails and the pending connection
//!   stays queued. The loop then closes the connection that has waited on its client longest (if one
//!   is due), which frees a descriptor for the next `accept`; if none is, it backs off
//!   [`ACCEPT_BACKOFF`] — no spinning on an error that cannot clear at once, no exit. It warns at
//!   most once per [`ACCEPT_ERROR_LOG_EVERY`].
//!
//! Each request carries its connection's peer address (`ConnectInfo<SocketAddr>`), which the
//! routes' source allow-list reads (`http`).
//!
//! Connections closed by a timeout or an eviction are counted in the refusal summary
//! (`refusals`), never logged one by one above DEBUG.
//!
//! # Shutdown
//! On `stop` the loop stops accepting; connections waiting for a request, or for a body that is
//! late, close at once; those with a request under way finish it (hyper's graceful shutdown). The
//! loop returns when all have ended; the bridge's shutdown grace bounds the wait.

mod connection;
mod slots;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use olbridge_core::config::ReceiverLimits;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use self::slots::{ConnState, Slots};
use super::refusals::{Reason, Refusals};

/// The accept queue's length (the kernel caps it at `net.core.somaxconn`, 4096 by default).
pub const LISTEN_BACKLOG: u32 = 1024;

/// Binds the receiver's socket with a [`LISTEN_BACKLOG`]-deep accept queue.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // As the standard library does on Unix: a restarted bridge can bind while old connections linger.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How long the loop pauses after `accept` failed for lack of descriptors or memory.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning per this interval while `accept` keeps failing.
pub(crate) const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// Accepts connections and serves `app` on each until `stop`.
pub(crate) async fn serve(listener: TcpListener, app: Router, limits: ReceiverLimits, refusals: Arc<Refusals>, mut stop: watch::Receiver<bool>) {
    let fd_limit = descriptor_limit();
    let cap = connection_cap(limits.max_connections, fd_limit);
    if cap < limits.max_connections {
        warn!(
            cap,
            configured = limits.max_connections,
            descriptor_limit = fd_limit,
            "OLBRIDGE_MAX_CONNECTIONS is more than half the descriptor limit; the receiver holds fewer connections (raise the limit: ulimit -n, LimitNOFILE=)"
        );
    }
    info!(max_connections = cap, header_timeout = ?limits.header_timeout, body_timeout = ?limits.body_timeout, idle_timeout = ?limits.idle_timeout, "receiver limits");
    let mut conns = Conns { slots: Slots::new(), tasks: JoinSet::new(), cap };
    let mut accept_errors = Throttle::new(ACCEPT_ERROR_LOG_EVERY);
    let conn_stop = stop.clone();
    loop {
        let gate = conns.gate(Instant::now());
        let waiting = Arc::clone(conns.slots.waiting());
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            Some(joined) = conns.tasks.join_next_with_id() => conns.joined(joined),
            () = waiting.notified(), if gate == Gate::AllBusy => {}
            () = tokio::time::sleep_until(gate.until()), if matches!(gate, Gate::Until(_)) => {}
            accepted = listener.accept(), if gate == Gate::Open => match accepted {
                Ok((stream, peer)) => {
                    if conns.tasks.len() >= conns.cap {
                        conns.evict(&refusals);
                    }
                    let state = ConnState::new(Instant::now(), Arc::clone(conns.slots.waiting()));
                    let task = connection::serve(stream, peer, app.clone(), limits, Arc::clone(&state), Arc::clone(&refusals), conn_stop.clone());
                    conns.slots.insert(state, conns.tasks.spawn(task));
                }
                Err(e) if is_resource_exhaustion(&e) => {
                    if let Some(suppressed) = accept_errors.ready(Instant::now()) {
                        warn!(error = %e, open_connections = conns.tasks.len(), failures_since_last_warning = suppressed, "cannot accept connections: out of descriptors or memory; retrying");
                    }
                    // Free a descriptor by closing a connection that waits on its client, and
                    // accept again once a task has ended (its socket is closed then). Else wait.
                    if conns.evict(&refusals) {
                        if let Some(joined) = conns.tasks.join_next_with_id().await {
                            conns.joined(joined);
                        }
                    } else {
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
                // The client gave up before we accepted (ECONNABORTED) and the like: nothing to do.
                Err(e) => debug!(error = %e, "accept failed"),
            },
        }
    }
    drop(listener);
    while conns.tasks.join_next().await.is_some() {}
}

/// The connection tasks and their slots.
#[derive(Debug)]
struct Conns {
    slots: Slots,
    /// Every connection task not yet reaped, evicted ones included: their sockets are open until
    /// the task has ended, so this, not the slots, is what the cap counts.
    tasks: JoinSet<()>,
    cap: usize,
}

/// What the accept loop may do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Accept (below the cap, or at it with a connection due to give way).
    Open,
    /// At the cap; a connection may give way at this instant.
    Until(Instant),
    /// At the cap, every connection busy on our side: wait until one waits on its client or ends.
    AllBusy,
    /// Above the cap for a moment: an evicted task has not ended yet.
    Full,
}

impl Gate {
    fn until(self) -> Instant {
        match self {
            Gate::Until(at) => at,
            _ => Instant::now(),
        }
    }
}

impl Conns {
    fn gate(&self, now: Instant) -> Gate {
        let open = self.tasks.len();
        if open < self.cap {
            return Gate::Open;
        }
        if open > self.cap {
            return Gate::Full;
        }
        match self.slots.next_eviction() {
            Some(at) if at <= now => Gate::Open,
            Some(at) => Gate::Until(at),
            None => Gate::AllBusy,
        }
    }

    fn joined(&mut self, joined: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        match joined {
            Ok((id, ())) => self.slots.remove(id),
            Err(e) => {
                if e.is_panic() {
                    warn!("a connection task panicked");
                }
                self.slots.remove(e.id());
            }
        }
    }

    /// Closes the connection that has waited on its client longest, if one is due.
    fn evict(&mut self, refusals: &Refusals) -> bool {
        let evicted = self.slots.evict_oldest(Instant::now());
        if evicted {
            debug!("connection closed to make room");
            refusals.count(Reason::Evicted);
        }
        evicted
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // Holds no guard across the caller's later awaits (the `Ref` is dropped here).
    let _ = stop.wait_for(|s| *s).await;
}

/// Connections held at once: the configured cap, or half the descriptor limit if that is lower.
fn connection_cap(configured: usize, descriptor_limit: Option<u64>) -> usize {
    let half = descriptor_limit.map_or(usize::MAX, |n| usize::try_from(n / 2).unwrap_or(usize::MAX));
    configured.min(half).max(1)
}

/// The soft limit on open descriptors, if there is one.
#[cfg(unix)]
fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
fn descriptor_limit() -> Option<u64> {
    None
}

/// Errors that will not clear by accepting again at once.
fn is_resource_exhaustion(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        let Some(code) = e.raw_os_error() else { return false };
        [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM].iter().any(|errno| errno.raw_os_error() == code)
    }
    #[cfg(not(unix))]
    {
        e.kind() == io::ErrorKind::OutOfMemory
    }
}

/// Lets a repeated warning through at most once per interval, counting the ones held back.
#[derive(Debug)]
struct Throttle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    fn new(every: Duration) -> Self {
        Self { every, last: None, suppressed: 0 }
    }

    /// `Some(held back since the last one)` when this occurrence may be logged.
    fn ready(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_half_the_descriptors_to_the_rest_of_the_process() {
        assert_eq!(connection_cap(256, Some(1024)), 256);
        assert_eq!(connection_cap(256, Some(64)), 32);
        assert_eq!(connection_cap(256, None), 256);
        assert_eq!(connection_cap(256, Some(1)), 1, "never zero");
    }

    #[cfg(unix)]
    #[test]
    fn descriptor_exhaustion_is_recognised() {
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(rustix::io::Errno::MFILE.raw_os_error())));
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(rustix::io::Errno::NFILE.raw_os_error())));
        assert!(!is_resource_exhaustion(&io::Error::from_raw_os_error(rustix::io::Errno::CONNABORTED.raw_os_error())));
        assert!(!is_resource_exhaustion(&io::Error::other("not an OS error")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeated_warning_is_let_through_once_per_interval() {
        let mut throttle = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(throttle.ready(t0), Some(0));
        for i in 1..=50 {
            assert_eq!(throttle.ready(t0 + Duration::from_millis(100 * i)), None);
        }
        assert_eq!(throttle.ready(t0 + Duration::from_secs(10)), Some(50), "the ones held back are counted");
    }
}
