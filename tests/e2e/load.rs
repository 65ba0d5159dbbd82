//! Thirty chats writing at once against a portal limited to 2 requests/s with a burst of 10: every
//! message is answered exactly once, in well under a minute, and the bridge paces itself so the
//! portal never has to answer `QUERY_LIMIT_EXCEEDED`.

use std::time::Duration;

use b24_emulator::RateLimit;
use olbridge_tests::{AppOptions, TestApp};

#[tokio::test]
async fn thirty_chats_at_once_on_a_slow_portal_are_all_answered_once_without_hitting_its_limit() {
    let app = TestApp::spawn(AppOptions {
        portal_rate: RateLimit { per_sec: 2.0, burst: 10.0 },
        // Configured under the portal's limit, as the README says: the portal's bucket is shared
        // with every other user of the webhook (here, the two calls that registered the bot).
        client_rate: (2.0, 8),
        ..AppOptions::default()
    })
    .await
    .unwrap();
    let phones: Vec<String> = (0..30).map(|i| format!("+4917{:08}", 10_000_000 + i)).collect();
    let started = tokio::time::Instant::now();
    let writes = phones.iter().map(|p| app.customer_writes(p, "hello"));
    for r in futures::future::join_all(writes).await {
        r.unwrap();
    }
    let turns = app.wait_turns(30, Duration::from_secs(60)).await;
    let elapsed = started.elapsed();

    assert_eq!(turns.len(), 30, "all 30 turns finished within a minute");
    for p in &phones {
        assert_eq!(app.bot_messages(p), ["echo: hello"], "{p}");
    }
    let calls = app.emulator.calls();
    let limited: Vec<_> = calls.iter().filter(|c| c.status == 503 || c.error.as_deref() == Some("QUERY_LIMIT_EXCEEDED")).collect();
    assert!(limited.is_empty(), "the portal had to refuse {} call(s)", limited.len());
    let posts = calls.iter().filter(|c| c.method == "imbot.message.add").count();
    assert_eq!(posts, 30, "one post per chat");
    let typing = calls.iter().filter(|c| c.method == "imbot.chat.sendTyping").count();
    // Optional calls gave way: there was no budget for a typing indicator per chat.
    assert!(typing < 30, "typing indicators should give way to replies ({typing} sent)");
    eprintln!("30 chats answered in {:.1} s with {} portal calls ({typing} typing indicators)", elapsed.as_secs_f64(), calls.len());
    app.shutdown().await;
}
