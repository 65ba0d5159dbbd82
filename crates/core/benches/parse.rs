//! Micro-benchmarks of the two parsers on the hot path: the form-body event parser (a real
//! `ONIMBOTMESSAGEADD`, the contract's OBS capture (a)) and the bot-response parser (a typical
//! answer, and a large one). Figures and the command: `docs/performance.md`, "Micro-benchmarks".
#![allow(clippy::expect_used)] // fixtures are known-good; a failure should stop the bench

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use olbridge_core::bot::contract::parse_answer;
use olbridge_core::domain::form::{FormLimits, FormValue};
use olbridge_core::domain::ids::{MemberId, PortalDomain};
use olbridge_core::domain::message::PortalRef;
use olbridge_core::domain::parse::{self, EventEnvelope};

const CAPTURE: &[u8] = include_bytes!("../tests/fixtures/obs_a_v1_messageadd_lines.form");

fn form(c: &mut Criterion) {
    let limits = FormLimits::default();
    let portal = PortalRef {
        member_id: MemberId::parse("869e4953d7e841e02de675524e65f51a").expect("member"),
        domain: PortalDomain::parse("b24-1x2ywp.bitrix24.ru").expect("domain"),
    };
    let mut g = c.benchmark_group("form");
    g.throughput(Throughput::Bytes(CAPTURE.len() as u64));
    g.bench_function("tree/onimbotmessageadd", |b| b.iter(|| FormValue::parse(black_box(CAPTURE), &limits).expect("parses")));
    g.bench_function("event/onimbotmessageadd", |b| {
        b.iter(|| {
            let env = EventEnvelope::parse(black_box(CAPTURE), &limits).expect("envelope");
            parse::to_portal_event_as(&env, portal.clone()).expect("decodes").expect("handled")
        })
    });
    g.finish();
}

fn bot_answer(c: &mut Criterion) {
    let typical = br#"{"reply_text": "Hello! Our opening hours are 9:00 to 18:00, Monday to Friday. How else can I help?", "handoff": false, "profile": {"name": "Ana", "lang": "en"}}"#.to_vec();
    // A large answer: 20 replies of ~1,000 characters each (about 20 KB), with escapes.
    let paragraph = "Thank you for writing to us. \\\"Quoted\\\" details follow.\\n".repeat(18);
    let replies = (0..20).map(|i| format!("\"{i}: {paragraph}\"")).collect::<Vec<_>>().join(", ");
    let large = format!(r#"{{"replies": [{replies}], "handoff": true, "cacheable": 1}}"#).into_bytes();
    let mut g = c.benchmark_group("bot_answer");
    for (name, body) in [("typical", &typical), ("large", &large)] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| b.iter(|| parse_answer(200, Some("application/json; charset=utf-8"), black_box(body)).expect("valid")));
    }
    g.finish();
}

criterion_group!(benches, form, bot_answer);
criterion_main!(benches);
