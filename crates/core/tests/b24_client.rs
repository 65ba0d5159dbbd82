//! The Bitrix24 REST client against the emulator: rate limiting measured at the portal, backoff,
//! error classification, batch, pagination, and the webhook code staying secret.
//!
//! No assertion here depends on how fast the machine is: rate checks use the emulator's own arrival
//! timestamps with a tolerance, everything else asserts counts and outcomes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod b24_support;

use std::time::Duration;

use b24_emulator::{Fault, RateLimit};
use b24_support::{Capture, calls_of, client, code_of, emulator, fast_client, ms, single_client};
use futures::future::join_all;
use olbridge_core::b24::crm::CrmEntityType;
use olbridge_core::b24::{B24Client, Batch, ClientOptions, CoalesceStats, ErrorKind, RatePlan, WebhookBase};
use olbridge_core::ports::PortalError;
use olbridge_core::retry::RetryPolicy;
use serde_json::{Value, json};
use tracing::instrument::WithSubscriber;

async fn fire(client: &B24Client, n: usize, method: &str) -> Vec<Result<Value, olbridge_core::b24::B24Error>> {
    join_all((0..n).map(|_| {
        let c = client.clone();
        let method = method.to_owned();
        async move { c.call::<Value>(&method, &json!({})).await }
    }))
    .await
}

#[tokio::test]
async fn concurrent_calls_stay_under_the_portal_limit() {
    let (emu, demo) = emulator(RateLimit { per_sec: 20.0, burst: 20.0 }).await;
    let (rate, burst) = (15.0, 15_u32);
    let c = single_client(&demo.webhook_url, RatePlan::new(rate, burst), RetryPolicy::none());

    let started = chrono::Utc::now();
    let results = fire(&c, 200, "profile").await;

    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
    let calls = calls_of(&emu, "profile");
    assert_eq!(calls.len(), 200);
    assert!(calls.iter().all(|c| c.status == 200 && c.error.is_none()), "the portal refused a call");
    // The limiter spaced them: 200 calls through a bucket of 15 refilled at 15/s cannot all have
    // left before (200 - 15) / 15 = 12.3 s. A lower bound only: a loaded machine makes the run
    // slower, never faster, so this cannot flake (an upper bound on arrivals per window would, as
    // scheduling bunches requests that left evenly spaced). Without the limiter all 200 would
    // arrive within a few milliseconds.
    let last = calls.iter().map(|c| c.at).max().expect("calls");
    let needed = (200.0 - f64::from(burst)) / rate;
    let took = (last - started).num_milliseconds() as f64 / 1e3;
    assert!(took >= needed - 0.05, "200 calls arrived within {took:.3}s; the bucket allows no less than {needed:.1}s");
}

/// The same 200 concurrent calls with coalescing (the default): they wait for the budget together
/// and go in batches of up to 50, each answered as if sent alone, one portal request per batch.
#[tokio::test]
async fn concurrent_calls_waiting_for_the_budget_share_batches() {
    let (emu, demo) = emulator(RateLimit { per_sec: 2.0, burst: 10.0 }).await;
    let c = client(&demo.webhook_url, RatePlan::new(2.0, 8), RetryPolicy::none());

    let results = fire(&c, 200, "profile").await;

    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
    assert!(results.iter().all(|r| r.as_ref().ok().and_then(|v| v.get("ID")).is_some()), "each caller got a profile");
    let calls = emu.calls();
    let commands = calls.iter().filter(|c| c.method == "profile").count();
    let requests = calls.iter().filter(|c| !c.in_batch).count();
    assert_eq!(commands, 200, "every call ran exactly once");
    assert!(calls.iter().all(|c| c.error.is_none()), "the portal refused nothing");
    // 200 calls need at least 4 batches of 50; a few go alone while the budget is free.
    assert!(requests <= 8 + 200 / 50 + 4, "{requests} portal requests for 200 calls");
    let stats = c.coalesce_stats();
    assert_eq!((stats.requests, stats.calls), (requests, 200));
}

/// A background call (a timeline comment, a poller's read) waiting for headroom rides along in a
/// batch sent for essential calls: it costs the portal no request of its own.
#[tokio::test]
async fn a_background_call_rides_along_in_a_batch_sent_for_essential_ones() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    // Essential calls may fill the bucket to 2, background ones only to 1: after two calls, the
    // essential ones get a slot after 2 s, a background one would wait 4 s.
    let plan = RatePlan { per_sec: 0.5, burst: 2, optional_reserve: 1, adaptive: true };
    let c = client(&demo.webhook_url, plan, RetryPolicy::none());
    for _ in 0..2 {
        c.call::<Value>("profile", &json!({})).await.expect("profile");
    }
    let background = {
        let c = c.clone();
        tokio::spawn(async move { c.call_background::<Value>("scope", &json!({})).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let essential = fire(&c, 3, "profile").await;
    assert!(essential.iter().all(Result::is_ok), "{essential:?}");
    assert!(background.await.expect("task").is_ok());
    let calls = emu.calls();
    let scope: Vec<_> = calls.iter().filter(|c| c.method == "scope").collect();
    assert_eq!(scope.len(), 1);
    assert!(scope[0].in_batch, "the background call went in the essential calls' batch");
    assert_eq!(calls.iter().filter(|c| !c.in_batch).count(), 3, "two calls alone, then one batch of four");
}

/// 100 timeline comments written at once (background, creating calls) through a small bucket: the
/// rider that gets the first slot takes the others along, so they go in a few batches, not 100
/// requests, and each comment lands exactly once.
#[tokio::test]
async fn background_calls_waiting_for_headroom_batch_together() {
    let (emu, demo) = emulator(RateLimit { per_sec: 2.0, burst: 10.0 }).await;
    let lead = emu.add_crm_item("lead", json!({"TITLE": "riders"})).expect("lead");
    // Background calls may fill the bucket to 2 of 4.
    let plan = RatePlan { per_sec: 2.0, burst: 4, optional_reserve: 2, adaptive: true };
    let c = client(&demo.webhook_url, plan, RetryPolicy::none());

    let results = join_all((0..100).map(|i| {
        let c = c.clone();
        async move { c.crm_timeline_comment_add_background(CrmEntityType::Lead, lead, &format!("comment {i}")).await }
    }))
    .await;

    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
    let mut ids: Vec<u64> = results.into_iter().map(Result::unwrap).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 100, "each caller got its own comment");
    let mut comments = emu.timeline_comments("lead", lead);
    comments.sort();
    comments.dedup();
    assert_eq!(comments.len(), 100, "every comment landed");
    let calls = emu.calls();
    assert_eq!(calls.iter().filter(|c| c.method == "crm.timeline.comment.add").count(), 100, "each comment ran exactly once");
    assert!(calls.iter().all(|c| c.error.is_none()), "the portal refused nothing");
    let requests = calls.iter().filter(|c| !c.in_batch).count();
    assert!(requests <= 3, "{requests} portal requests for 100 background calls");
    assert_eq!(c.coalesce_stats(), CoalesceStats { requests, calls: 100 });
}

/// A batch a background call drove (its riders: timeline comments) whose response was lost: each
/// creating call gets the timeout back, unreplayed, and ran once.
#[tokio::test]
async fn a_lost_batch_of_background_calls_is_answered_per_call() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let lead = emu.add_crm_item("lead", json!({"TITLE": "lost"})).expect("lead");
    let webhook = WebhookBase::parse(&demo.webhook_url).expect("webhook");
    let options =
        ClientOptions { rate: RatePlan::new(4.0, 8), retry: RetryPolicy::new(vec![ms(300); 6]), timeout: Duration::from_secs(1), ..Default::default() };
    let c = B24Client::new(webhook, options).expect("client");
    emu.inject_fault(Fault::delay_response("batch", 1, Duration::from_secs(3)));

    let results = join_all((0..5).map(|i| {
        let c = c.clone();
        async move { c.crm_timeline_comment_add_background(CrmEntityType::Lead, lead, &format!("comment {i}")).await }
    }))
    .await;

    assert!(results.iter().all(|r| r.as_ref().is_err_and(|e| e.code == "HTTP_TIMEOUT")), "{results:?}");
    let calls = emu.calls();
    let added: Vec<_> = calls.iter().filter(|c| c.method == "crm.timeline.comment.add").collect();
    assert_eq!(added.len(), 5, "each comment ran once, in the lost batch, and was not replayed");
    assert!(added.iter().all(|c| c.in_batch && c.error.is_none()));
}

/// A batch that ran but whose response was lost (it came after the client's timeout): each creating
/// call gets the timeout back, unreplayed (its caller reconciles, as after a lost single post);
/// each idempotent one is retried. Nothing is posted twice.
#[tokio::test]
async fn a_lost_batch_response_is_answered_per_call_as_a_lost_single_call_would_be() {
    let (emu, demo) = emulator(RateLimit { per_sec: 4.0, burst: 1.0 }).await;
    let webhook = WebhookBase::parse(&demo.webhook_url).expect("webhook");
    let options =
        ClientOptions { rate: RatePlan::new(4.0, 1), retry: RetryPolicy::new(vec![ms(300); 6]), timeout: Duration::from_secs(1), ..Default::default() };
    let c = B24Client::new(webhook, options).expect("client");
    // Take the one slot, so the next calls wait together and go as one batch.
    c.call::<Value>("profile", &json!({})).await.expect("profile");
    emu.inject_fault(Fault::delay_response("batch", 1, Duration::from_secs(3)));
    let dialog = demo.operator_id.to_string();
    let (posts, reads) = tokio::join!(
        join_all((0..3).map(|i| {
            let (c, params) = (c.clone(), json!({"DIALOG_ID": dialog, "MESSAGE": format!("m{i}")}));
            async move { c.call_no_replay::<Value>("im.message.add", &params).await }
        })),
        join_all((0..3).map(|_| {
            let c = c.clone();
            async move { c.call::<Value>("scope", &json!({})).await }
        }))
    );
    assert!(posts.iter().all(|r| r.as_ref().is_err_and(|e| e.code == "HTTP_TIMEOUT")), "{posts:?}");
    assert!(reads.iter().all(Result::is_ok), "{reads:?}");
    let calls = emu.calls();
    let posted: Vec<_> = calls.iter().filter(|c| c.method == "im.message.add").collect();
    assert_eq!(posted.len(), 3, "each post ran once, in the lost batch, and was not replayed");
    assert!(posted.iter().all(|c| c.in_batch && c.error.is_none()));
    let batches = calls.iter().filter(|c| c.method == "batch").count();
    assert!(batches >= 1);
}

#[tokio::test]
async fn a_stricter_portal_is_absorbed_by_backoff() {
    let (emu, demo) = emulator(RateLimit { per_sec: 5.0, burst: 5.0 }).await;
    let patient = RetryPolicy::new([vec![ms(200); 3], vec![ms(1_000); 40]].concat()).with_jitter(0.5);
    let c = single_client(&demo.webhook_url, RatePlan::new(20.0, 20), patient);

    let results = fire(&c, 40, "scope").await;

    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
    let calls = calls_of(&emu, "scope");
    let refused = calls.iter().filter(|c| c.error.as_deref() == Some("QUERY_LIMIT_EXCEEDED")).count();
    let served = calls.iter().filter(|c| c.status == 200).count();
    assert!(refused > 0, "the portal should have refused some calls");
    assert_eq!(served, 40, "every call served exactly once");
    assert_eq!(refused + served, calls.len());
}

#[tokio::test]
async fn errors_are_classified_and_only_retryable_ones_are_retried() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let c = fast_client(&demo.webhook_url);
    let cases: [(&str, &str, u16, ErrorKind, usize); 10] = [
        ("QUERY_LIMIT_EXCEEDED", "Too many requests", 503, ErrorKind::RateLimited, 3),
        ("QUERY_LIMIT_EXCEEDED", "Too many requests", 429, ErrorKind::RateLimited, 3),
        ("OPERATION_TIME_LIMIT", "", 429, ErrorKind::RateLimited, 3),
        ("INTERNAL_SERVER_ERROR", "Internal server error", 500, ErrorKind::Retryable, 3),
        ("NO_AUTH_FOUND", "Wrong authorization data", 401, ErrorKind::Auth, 1),
        ("expired_token", "The access token provided has expired", 401, ErrorKind::Auth, 1),
        ("insufficient_scope", "The request requires higher privileges", 403, ErrorKind::Auth, 1),
        ("WRONG_AUTH_TYPE", "Application context required", 403, ErrorKind::Auth, 1),
        ("ACCESS_DENIED", "Access denied!", 403, ErrorKind::Permanent, 1),
        ("", "Not found", 400, ErrorKind::Permanent, 1),
    ];
    for (code, description, status, kind, attempts) in cases {
        emu.clear_recordings();
        emu.inject_fault(Fault::error("profile", attempts as u32, code, description, status));
        let err = c.profile().await.expect_err(code);
        assert_eq!((err.kind, err.code.as_str(), err.status), (kind, code, Some(status)), "{code}");
        assert_eq!(calls_of(&emu, "profile").len(), attempts, "{code}: attempts");
        let portal: PortalError = err.into();
        assert_eq!(portal.is_retryable(), attempts > 1, "{code}");
    }
    // A method's own error, from the method itself, and a transient failure that clears up.
    let err = c.crm_lead_get(987_654).await.expect_err("no such lead");
    assert_eq!((err.kind, err.code.as_str(), err.description.as_str()), (ErrorKind::Permanent, "", "Not found"));
    let err = c.call::<Value>("im.message.add", &json!({"DIALOG_ID": "chat1"})).await.expect_err("no message");
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    emu.clear_recordings();
    emu.inject_fault(Fault::error("profile", 2, "INTERNAL_SERVER_ERROR", "boom", 500));
    assert_eq!(c.profile().await.expect("third attempt succeeds").id, demo.service_user_id);
    assert_eq!(calls_of(&emu, "profile").len(), 3);
}

#[tokio::test]
async fn timeouts_and_unknown_codes() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let wrong = demo.webhook_url.replace(&code_of(&demo.webhook_url), "wrongcode123");
    let err = fast_client(&wrong).scope().await.expect_err("unknown code");
    assert_eq!((err.kind, err.code.as_str(), err.status), (ErrorKind::Auth, "NO_AUTH_FOUND", Some(401)));
    assert_eq!(calls_of(&emu, "scope").len(), 1, "auth errors are not retried");

    let webhook = WebhookBase::parse(&demo.webhook_url).expect("url");
    let opts = olbridge_core::b24::ClientOptions { timeout: ms(200), retry: RetryPolicy::new(vec![ms(10)]), ..Default::default() };
    let slow = B24Client::new(webhook, opts).expect("client");
    emu.inject_fault(Fault::delay("scope", 2, Duration::from_secs(3)));
    let err = slow.scope().await.expect_err("times out");
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Retryable, "HTTP_TIMEOUT"));
}

#[tokio::test]
async fn batches_return_results_and_errors_per_command_and_halt() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let c = fast_client(&demo.webhook_url);
    let mut b = Batch::new();
    b.add("me", "profile", &json!({}))
        .add("user", "im.user.get", &json!({"ID": demo.operator_id}))
        .add("missing", "crm.lead.get", &json!({"id": 987_654}))
        .add("lead", "crm.lead.add", &json!({"fields": {"TITLE": "From batch & co", "NAME": "Ann"}}));
    let r = c.batch(&b).await.expect("batch");
    assert_eq!(r.get::<Value>("me").expect("profile")["ID"], json!(demo.service_user_id.to_string()));
    assert_eq!(r.get::<Value>("user").expect("user")["id"], json!(demo.operator_id));
    let e = r.error("missing").expect("missing lead fails");
    assert_eq!((e.kind, e.code.as_str(), e.description.as_str(), e.method.as_str()), (ErrorKind::Permanent, "", "Not found", "crm.lead.get"));
    let lead_id: u64 = r.get("lead").expect("lead added");
    assert_eq!(c.crm_lead_get(lead_id).await.expect("lead").title, "From batch & co", "PHP-style encoding round-trips");
    assert_eq!(calls_of(&emu, "batch").len(), 1, "one request for the batch");

    let mut halted = Batch::new();
    halted.halt(true);
    halted.add("a", "profile", &json!({})).add("b", "crm.lead.get", &json!({"id": 987_654})).add("c", "scope", &json!({}));
    let r = c.batch(&halted).await.expect("batch");
    assert!(r.raw("a").is_some() && r.error("b").is_some());
    assert_eq!(r.get::<Value>("c").expect_err("not run").code, "BATCH_COMMAND_NOT_RUN");
}

#[tokio::test]
async fn large_batches_are_split_and_lists_are_paginated() {
    let (emu, demo) = emulator(RateLimit { per_sec: 2.0, burst: 50.0 }).await;
    // A bucket that barely drains, so its level counts the slots taken.
    let c = client(&demo.webhook_url, RatePlan::new(0.01, 40), RetryPolicy::none());
    let mut b = Batch::new();
    for i in 0..120 {
        b.add(format!("l{i}"), "crm.lead.add", &json!({"fields": {"TITLE": format!("Lead {i}")}}));
    }
    let r = c.batch(&b).await.expect("batch");
    assert_eq!(r.succeeded(), 120);
    assert_eq!(calls_of(&emu, "batch").len(), 3, "120 commands = 50 + 50 + 20");
    assert!((c.limiter().level().await - 3.0).abs() < 0.2, "each batch costs one slot, not one per command");

    let leads: Vec<Value> = c.list_all("crm.lead.list", &json!({"select": ["ID", "TITLE"]})).await.expect("list");
    assert!(leads.len() >= 120, "{}", leads.len());
    let lists = calls_of(&emu, "crm.lead.list");
    assert_eq!(lists.len(), leads.len().div_ceil(50));
    let starts: Vec<Option<u64>> = lists.iter().map(|c| c.params["start"].as_u64().or_else(|| c.params["start"].as_str()?.parse().ok())).collect();
    assert_eq!(starts[..3], [Some(0), Some(50), Some(100)], "{starts:?}");
}

#[tokio::test]
async fn the_webhook_code_never_leaks() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    let code = code_of(&demo.webhook_url);
    let c = fast_client(&demo.webhook_url);
    assert!(!format!("{c:?}").contains(&code));
    assert!(format!("{c:?}").contains("/rest/38005/***/"));

    let capture = Capture::default();
    let dead = fast_client(&format!("http://127.0.0.1:9/rest/1/{code}/"));
    let errors = async {
        emu.inject_fault(Fault::error("profile", 3, "INTERNAL_SERVER_ERROR", "boom", 500));
        let a = c.profile().await.expect_err("500");
        let b = c.crm_lead_get(987_654).await.expect_err("not found");
        let d = dead.scope().await.expect_err("connection refused");
        let ok = c.scope().await.expect("scope");
        (vec![a, b, d], ok)
    }
    .with_subscriber(capture.clone())
    .await;
    let (errors, scopes) = errors;
    assert!(scopes.iter().any(|s| s == "imbot"));
    assert_eq!(errors[2].code, "HTTP_CONNECT");
    for e in &errors {
        assert!(!format!("{e} {e:?}").contains(&code), "{e:?}");
        assert!(!PortalError::from(e.clone()).to_string().contains(&code));
    }
    let logged = capture.text();
    assert!(logged.contains("b24.call") && logged.contains("method=\"profile\""), "{logged}");
    assert!(!logged.contains(&code), "{logged}");
}

#[tokio::test]
async fn the_operating_time_the_portal_reports_is_kept_per_method_also_from_batch_commands() {
    let (emu, demo) = emulator(RateLimit::UNLIMITED).await;
    emu.set_method_cost("im.recent.list", Duration::from_millis(700));
    emu.set_method_cost("im.user.get", Duration::from_millis(300));
    let c = fast_client(&demo.webhook_url);
    assert_eq!(c.operating("im.recent.list"), None, "nothing reported yet");
    c.call::<Value>("im.recent.list", &json!({})).await.expect("call");
    c.call::<Value>("im.recent.list", &json!({})).await.expect("call");
    let op = c.operating("im.recent.list").expect("reported");
    assert!((op.secs - 1.4).abs() < 0.05, "two calls of 0.7 s: {op:?}");
    assert!(op.reset_at.is_some());

    let mut b = Batch::new();
    for i in 0..3 {
        b.add(format!("u{i}"), "im.user.get", &json!({}));
    }
    c.batch(&b).await.expect("batch");
    let op = c.operating("im.user.get").expect("reported by result_time");
    assert!((op.secs - 0.9).abs() < 0.05, "three commands of 0.3 s: {op:?}");
}
