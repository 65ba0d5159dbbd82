//! The cost controls of `process` over the memory store and the fakes: the FAQ answer cache, the
//! rate limit and the daily cap. (End to end against the emulator: `tests/e2e/cost.rs`.)

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use super::process;
use super::tests::{customer, names, owner, world};
use crate::config::RateLimit;
use crate::domain::event::PortalEvent;
use crate::domain::ids::{ChatId, Phone};
use crate::domain::turn::{HandoffReason, TurnOutcome};
use crate::ports::{BotAnswer, PortalErrorKind, TurnLog};
use crate::testing::BotScript;

fn faq(text: &str, version: Option<&str>) -> BotScript {
    BotScript::Answer(BotAnswer { replies: vec![text.into()], cacheable: true, kb_version: version.map(Into::into), ..BotAnswer::default() })
}

#[tokio::test]
async fn the_second_identical_question_is_answered_from_the_cache() {
    let w = world();
    w.bot.script([faq("We open 9–18, Monday to Friday.", None)]);
    let r = process(&w.deps, &[customer(1, "When are you open?")], &owner()).await;
    assert_eq!(names(&r), ["answered"]);
    let r = process(&w.deps, &[customer(2, "  when ARE you open ")], &owner()).await;
    assert_eq!(names(&r), ["cached"]);
    assert_eq!(w.bot.texts().len(), 1, "the second question cost no bot call");
    assert_eq!(w.portal.posts(), ["We open 9–18, Monday to Friday.", "We open 9–18, Monday to Friday."]);
    let recorded: Vec<&str> = w.store.recent(10).await.unwrap().iter().map(|r| r.outcome.name()).collect();
    assert_eq!(recorded, ["cached", "answered"], "the turn log counts cache hits");
}

#[tokio::test]
async fn personalised_answers_and_personal_questions_are_never_cached() {
    let w = world();
    let profiled =
        BotAnswer { replies: vec!["Open 9–18.".into()], cacheable: true, profile: Some(serde_json::json!({"lang": "en"})), ..BotAnswer::default() };
    let handoff = BotAnswer { replies: vec!["Open 9–18.".into()], cacheable: true, handoff: true, ..BotAnswer::default() };
    w.bot.script([
        faq("Hi Ana, we open at 9.", None), // names the customer (the author's name)
        BotScript::Answer(profiled),        // patched the profile
        BotScript::Answer(BotAnswer { replies: vec!["Open 9–18.".into()], ..BotAnswer::default() }), // not cacheable
        faq("Your order ships today.", None), // a personal question (an order number)
    ]);
    for (id, q) in [(1, "When do you open?"), (2, "When do you open?"), (3, "When do you open?"), (4, "When do you open?")] {
        process(&w.deps, &[customer(id, q)], &owner()).await;
    }
    assert_eq!(w.bot.texts().len(), 4, "none of the first three answers was cached");
    process(&w.deps, &[customer(5, "Where is order 123456?")], &owner()).await;
    process(&w.deps, &[customer(6, "Where is order 123456?")], &owner()).await;
    assert_eq!(w.bot.texts().len(), 6, "a question with a long number is never cached");
    // A cacheable answer with a handoff is not cached either (and a turn that escalates never
    // reads the cache).
    let w = world();
    w.bot.script([BotScript::Answer(handoff)]);
    process(&w.deps, &[customer(1, "When do you open?")], &owner()).await;
    let r = process(&w.deps, &[customer(2, "When do you open?")], &owner()).await;
    assert_eq!((names(&r), w.bot.texts().len()), (vec!["ignored"], 1), "the chat is human now");
}

#[tokio::test]
async fn a_new_knowledge_base_version_invalidates_the_cache() {
    let w = world();
    w.bot.script([
        faq("Open 9–18.", Some("kb-1")),
        BotScript::Answer(BotAnswer { replies: vec!["Prices changed.".into()], kb_version: Some("kb-2".into()), ..BotAnswer::default() }),
        faq("Open 8–20 now.", Some("kb-2")),
    ]);
    process(&w.deps, &[customer(1, "Opening hours?")], &owner()).await;
    let r = process(&w.deps, &[customer(2, "opening hours")], &owner()).await;
    assert_eq!((names(&r), w.bot.texts().len()), (vec!["cached"], 1));
    process(&w.deps, &[customer(3, "What about prices?")], &owner()).await;
    let r = process(&w.deps, &[customer(4, "Opening hours?")], &owner()).await;
    assert_eq!((names(&r), w.bot.texts().len()), (vec!["answered"], 3), "the kb-1 entry is stale under kb-2");
    let r = process(&w.deps, &[customer(5, "Opening hours?")], &owner()).await;
    assert_eq!((names(&r), w.bot.texts().len()), (vec!["cached"], 3), "replaced by the kb-2 answer");
    assert_eq!(w.portal.posts().last().map(String::as_str), Some("Open 8–20 now."));
}

#[tokio::test]
async fn over_the_rate_limit_one_notice_then_silence_until_the_next_window() {
    let mut w = world();
    w.deps.settings.cost.rate_limit = Some(RateLimit { messages: 3, window: Duration::from_secs(60) });
    w.deps.settings.cost.rate_limit_notice = "Slow down, please.".into();
    let mut outcomes = Vec::new();
    for id in 1..=6 {
        // One message per turn, as a flood arriving while nothing else is queued.
        outcomes.extend(names(&process(&w.deps, &[customer(id, &format!("spam {id}"))], &owner()).await));
    }
    assert_eq!(outcomes, ["answered", "answered", "answered", "rate_limited", "rate_limited", "rate_limited"]);
    assert_eq!(w.bot.texts().len(), 3, "nothing past the limit reached the bot");
    assert_eq!(w.portal.posts().iter().filter(|p| *p == "Slow down, please.").count(), 1, "one notice");
    assert!(w.portal.transfers().is_empty(), "never escalated");
    let logged = w.store.recent(10).await.unwrap();
    assert_eq!(logged.iter().filter(|r| matches!(r.outcome, TurnOutcome::RateLimited { .. })).count(), 3, "in the turn log");
    // A new window starts afresh (folded messages count one each).
    w.clock.advance(Duration::from_secs(60));
    let r = process(&w.deps, &[customer(7, "a"), customer(8, "b")], &owner()).await;
    assert_eq!(names(&r), ["answered"], "two of three in the new window");
}

#[tokio::test]
async fn a_retried_turn_is_counted_once() {
    let mut w = world();
    w.deps.settings.cost.rate_limit = Some(RateLimit { messages: 1, window: Duration::from_secs(3600) });
    w.portal.fail("post_reply", PortalErrorKind::Retryable, "INTERNAL_SERVER_ERROR");
    let job = customer(1, "hello");
    assert!(process(&w.deps, std::slice::from_ref(&job), &owner()).await.stopped.is_some(), "the post failed after the count");
    let r = process(&w.deps, &[job], &owner()).await;
    assert_eq!(names(&r), ["answered"], "the retry is not over a limit of one");
}

#[tokio::test]
async fn past_the_daily_cap_the_chat_goes_to_a_human_once() {
    let mut w = world();
    w.deps.settings.cost.daily_bot_calls = Some(2);
    let with_phone = |id: u64| {
        let mut j = customer(id, &format!("question {id}"));
        if let PortalEvent::Message(m) = &mut j.event {
            m.lines.phone = Some(Phone::parse("+4915112345678").unwrap());
        }
        j
    };
    let mut outcomes = Vec::new();
    for id in 1..=4 {
        outcomes.extend(process(&w.deps, &[with_phone(id)], &owner()).await.outcomes);
    }
    assert_eq!(w.bot.texts().len(), 2);
    assert!(matches!(&outcomes[2], TurnOutcome::HandedOff { reason: HandoffReason::DailyCap { calls: 3 } }), "{outcomes:?}");
    assert_eq!(outcomes[3].name(), "ignored", "the human has the chat for this session");
    assert_eq!(w.portal.transfers(), [ChatId::new(super::tests::CHAT).unwrap()]);
}
