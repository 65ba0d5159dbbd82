//! Micro-benchmark of the receive path on SQLite: one event verified, de-duplicated and enqueued
//! over a `SqliteStore` in a temporary directory, a fresh message id each iteration (so every
//! iteration is a real admission and a real enqueue, never a duplicate).
//!
//! - `receive/full`: `Receiver::receive`, what the local runner's HTTP handler calls: form parse,
//!   token/domain/freshness checks, decode, then `accept`.
//! - `receive/accept`: `Receiver::accept` on an already parsed event: the de-duplication claim and
//!   the enqueue, the two SQLite writes.
//!
//! Figures and the command: `docs/performance.md`, "Micro-benchmarks".
#![allow(clippy::expect_used)] // fixtures are known-good; a failure should stop the bench

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use olbridge_core::domain::event::PortalEvent;
use olbridge_core::domain::ids::{MemberId, MessageId, PortalDomain};
use olbridge_core::domain::secret::Secret;
use olbridge_core::usecase::receive::{InboundRequest, MemberPin, ReceiveSettings, Received, Receiver};
use olbridge_sqlite::SqliteStore;

/// The contract's OBS capture (a): an `ONIMBOTMESSAGEADD` to a webhook bot in an Open Line.
const CAPTURE: &str = include_str!("../../core/tests/fixtures/obs_a_v1_messageadd_lines.form");
const MEMBER: &str = "869e4953d7e841e02de675524e65f51a";
const MESSAGE_ID: &str = "data%5BPARAMS%5D%5BMESSAGE_ID%5D=17";

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_711_455_834, 0).single().expect("valid")
}

fn receiver(store: &SqliteStore) -> Receiver {
    let store = Arc::new(store.clone());
    let settings = ReceiveSettings {
        application_token: None,
        previous_tokens: Vec::new(),
        bot_client_id: Some(Secret::new("192735")),
        member_id: Some(MemberId::parse(MEMBER).expect("member")),
        domain: Some(PortalDomain::parse("b24-1x2ywp.bitrix24.ru").expect("domain")),
        bot_id: None,
        ts_window: Duration::from_secs(300),
        max_body_bytes: 64 * 1024,
        sources: Default::default(),
    };
    Receiver { pin: MemberPin::new(settings.member_id.clone(), store.clone()), settings, idempotency: store.clone(), sink: store.clone(), chats: store }
}

fn receive(c: &mut Criterion) {
    assert!(CAPTURE.contains(MESSAGE_ID), "the capture's message id moved");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("store");
    let receiver = receiver(&store);
    let next = AtomicU64::new(1_000_000);
    let mut g = c.benchmark_group("receive");

    g.bench_function("full", |b| {
        b.iter_batched(
            || CAPTURE.trim().replace(MESSAGE_ID, &format!("data%5BPARAMS%5D%5BMESSAGE_ID%5D={}", next.fetch_add(1, Ordering::Relaxed))),
            |body| {
                let got = rt.block_on(receiver.receive(InboundRequest { body: body.as_bytes(), query: Some("CLIENT_ID=192735") }, now())).expect("accepted");
                assert!(matches!(got, Received::Enqueued(_)), "{got:?}");
            },
            BatchSize::SmallInput,
        )
    });

    let template = {
        let got = rt.block_on(receiver.receive(InboundRequest { body: CAPTURE.trim().as_bytes(), query: None }, now())).expect("accepted");
        assert!(matches!(got, Received::Enqueued(_)), "{got:?}");
        let env = olbridge_core::domain::parse::EventEnvelope::parse(CAPTURE.trim().as_bytes(), &Default::default()).expect("envelope");
        olbridge_core::domain::parse::to_portal_event(&env).expect("decodes").expect("handled")
    };
    g.bench_function("accept", |b| {
        b.iter_batched(
            || {
                let PortalEvent::Message(mut m) = template.clone() else { unreachable!("a message capture") };
                m.message_id = MessageId::new(next.fetch_add(1, Ordering::Relaxed)).expect("non-zero");
                PortalEvent::Message(m)
            },
            |event| {
                let got = rt.block_on(receiver.accept(event, now())).expect("accepted");
                assert!(matches!(got, Received::Enqueued(_)), "{got:?}");
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, receive);
criterion_main!(benches);
