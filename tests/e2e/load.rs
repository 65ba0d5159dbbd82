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
        // with every other user of the webhook (here, the four calls that registered the bot and
        // its CSAT command: `imbot.bot.list`, `imbot.register`, `imbot.command.answer`,
        // `imbot.command.register`).
        client_rate: (2.0, 6),
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

/// The portal's bucket is a quarter of what the bridge was told (2/s, burst 10 against the bridge's
/// 2/s, burst 40: another tool on the portal, or a wrong setting), and customers write in waves with
/// quiet spells between them, when the bridge's bucket drains and would let a burst of 40 go. The
/// bridge learns the real bucket from the first wave's refusals: every message is answered once,
/// and the later waves are never refused. (`B24_RATE_ADAPTIVE=false` refuses part of every wave:
/// `PACE_OFF=1` runs this test that way to see it, and then it fails.)
#[tokio::test]
async fn a_pace_larger_than_the_portal_costs_a_few_refusals_then_none() {
    let off = std::env::var_os("PACE_OFF").is_some();
    let extra_env = if off { vec![("B24_RATE_ADAPTIVE".to_owned(), "false".to_owned())] } else { Vec::new() };
    let opts = AppOptions { portal_rate: RateLimit { per_sec: 2.0, burst: 10.0 }, client_rate: (2.0, 40), extra_env, ..AppOptions::default() };
    let app = TestApp::spawn(opts).await.unwrap();
    let (waves, per_wave) = (3, 15);
    let mut refused_per_wave = Vec::new();
    let mut seen = 0;
    for wave in 0..waves {
        let phones: Vec<String> = (0..per_wave).map(|i| format!("+4917{:08}", 20_000_000 + wave * 100 + i)).collect();
        for r in futures::future::join_all(phones.iter().map(|p| app.customer_writes(p, "hello"))).await {
            r.unwrap();
        }
        let turns = app.wait_turns(per_wave * (wave + 1), Duration::from_secs(90)).await;
        assert_eq!(turns.len(), per_wave * (wave + 1), "wave {wave} answered");
        for p in &phones {
            assert_eq!(app.bot_messages(p), ["echo: hello"], "{p}");
        }
        let calls = app.emulator.calls();
        let refused = calls[seen..].iter().filter(|c| !c.in_batch && c.error.as_deref() == Some("QUERY_LIMIT_EXCEEDED")).count();
        refused_per_wave.push(refused);
        seen = calls.len();
        // A quiet spell: the portal's bucket (10 at 2/s) empties in 5 s, the bridge's drains by 20.
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    eprintln!("refusals per wave of {per_wave} chats (adaptive {}): {refused_per_wave:?}", !off);
    assert!(refused_per_wave[0] >= 1, "the first wave met the portal's smaller bucket");
    assert!(refused_per_wave[0] <= 8, "{refused_per_wave:?}: the pace did not learn from the first refusals");
    assert_eq!(refused_per_wave[1..].iter().sum::<usize>(), 0, "{refused_per_wave:?}: later waves were refused");
    app.shutdown().await;
}
