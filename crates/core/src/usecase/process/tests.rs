//! `process` and `give_up` over the memory store and the fakes: every decision path, no emulator.
//! (The same behaviours are proved end to end against the emulator in `tests/e2e`.)

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use super::{Deps, GroupResult, Owner, ProcessSettings, Stopped, give_up, process};
use crate::config::Config;
use crate::contract::t;
use crate::domain::event::{Job, PortalEvent};
use crate::domain::ids::DedupKey;
use crate::domain::ids::{ChatId, DialogId, MemberId, MessageId, PortalDomain, SessionId, UserId};
use crate::domain::message::{Author, AuthorKind, InboundMessage, LinesContext, PortalRef, Source};
use crate::domain::turn::{HandoffReason, TurnOutcome};
use crate::domain::window::Block;
use crate::memory::MemoryStore;
use crate::ports::{Bot, BotAnswer, BotError, BotRequest, ChatMode, ChatStore, Claim, IdempotencyStore, ManualClock, PortalErrorKind, TurnLog};
use crate::testing::{BotScript, FakeBot, FakePortal};

const BOT_USER: u64 = 700;
pub(super) const CHAT: u64 = 1763;

pub(super) struct World {
    pub(super) store: Arc<MemoryStore>,
    pub(super) portal: Arc<FakePortal>,
    pub(super) bot: Arc<FakeBot>,
    pub(super) clock: ManualClock,
    pub(super) deps: Deps,
}

pub(super) fn world() -> World {
    let store = Arc::new(MemoryStore::new());
    let portal = Arc::new(FakePortal::new(BOT_USER));
    let bot = Arc::new(FakeBot::new());
    let mut settings = ProcessSettings::from_config(&Config::from_map(&Default::default()).expect("defaults"));
    settings.bot_retry = crate::retry::RetryPolicy::new(vec![Duration::ZERO, Duration::ZERO]);
    let clock = ManualClock::new(t(100));
    let deps = Deps {
        idempotency: store.clone(),
        chats: store.clone(),
        profiles: store.clone(),
        log: store.clone(),
        cache: store.clone(),
        usage: store.clone(),
        portal: portal.clone(),
        bot: bot.clone(),
        clock: Arc::new(clock.clone()),
        settings,
        crm: None,
        csat: None,
    };
    World { store, portal, bot, clock, deps }
}

fn message(id: u64, text: &str, kind: AuthorKind) -> Job {
    let chat = ChatId::new(CHAT).unwrap();
    let m = InboundMessage {
        source: Source::BotPushV1,
        portal: PortalRef { member_id: MemberId::parse("unit").unwrap(), domain: PortalDomain::parse("unit.bitrix24.test").unwrap() },
        message_id: MessageId::new(id).unwrap(),
        chat_id: chat,
        dialog_id: DialogId::Chat(chat),
        author: Author { id: UserId::new(42).ok(), name: "Ana".into(), kind },
        text: text.into(),
        system: false,
        lines: LinesContext {
            user_code: Some("whatsappbyedna|3|4915112345678@olbridge|42".into()),
            session_id: SessionId::new(301).ok(),
            ..LinesContext::default()
        },
        bot_id: None,
        language: None,
        sent_at: t(0),
    };
    Job::new(PortalEvent::Message(m), t(0))
}

pub(super) fn customer(id: u64, text: &str) -> Job {
    message(id, text, AuthorKind::Customer)
}

pub(super) fn owner() -> Owner {
    Owner::new("unit-worker")
}

pub(super) fn names(r: &GroupResult) -> Vec<&'static str> {
    r.outcomes.iter().map(TurnOutcome::name).collect()
}

#[tokio::test]
async fn a_customer_message_is_answered_and_its_key_done() {
    let w = world();
    let jobs = [customer(1, "hello")];
    let r = process(&w.deps, &jobs, &owner()).await;
    assert!(r.stopped.is_none());
    assert_eq!((r.finished.clone(), names(&r)), (vec![true], vec!["answered"]));
    assert_eq!(w.portal.posts(), ["echo: hello"]);
    assert!(matches!(w.store.claim(&jobs[0].key, "other", t(200), Duration::from_secs(9)).await.unwrap(), Claim::Done(_)));
    assert_eq!(w.store.recent(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn follow_ups_at_hand_are_folded_into_one_turn() {
    let w = world();
    let jobs = [customer(1, "hi"), customer(2, "my parcel is late"), customer(3, "order EX-1")];
    let r = process(&w.deps, &jobs, &owner()).await;
    assert_eq!(r.finished, [true, true, true]);
    assert_eq!(w.bot.texts(), ["hi\nmy parcel is late\norder EX-1"]);
    assert_eq!(w.portal.posts().len(), 1, "one answer for the follow-ups");
}

#[tokio::test]
async fn an_operator_message_is_its_own_step_and_silences_the_bot() {
    let w = world();
    let jobs = [customer(1, "hi"), message(2, "Olga here", AuthorKind::Operator), customer(3, "thanks")];
    let r = process(&w.deps, &jobs, &owner()).await;
    assert_eq!(names(&r), ["answered", "ignored", "ignored"]);
    assert_eq!(w.portal.posts(), ["echo: hi"], "the bot stays silent after the operator wrote");
    let mode = w.store.mode(ChatId::new(CHAT).unwrap(), SessionId::new(301).ok()).await.unwrap();
    assert!(matches!(mode, ChatMode::Human { .. }));
}

#[tokio::test]
async fn a_resumed_turn_keeps_its_composition_and_the_rest_is_the_next_turn() {
    let w = world();
    // A first attempt folded 1+2, asked the bot and died before posting.
    let first = [customer(1, "a"), customer(2, "b")];
    w.portal.fail("post_reply", PortalErrorKind::Retryable, "INTERNAL_SERVER_ERROR");
    let r = process(&w.deps, &first, &owner()).await;
    assert!(matches!(r.stopped, Some(Stopped::Failed(_))));
    assert_eq!(r.finished, [false, false]);
    // Redelivered together with a message that came since: 1+2 stay one turn, 3 is the next.
    let again = [customer(1, "a"), customer(2, "b"), customer(3, "c")];
    let r = process(&w.deps, &again, &Owner::new("second-worker")).await;
    assert_eq!(r.finished, [true, true, true]);
    assert_eq!(w.bot.texts(), ["a\nb", "c"], "the saved answer is reused, not asked again");
    assert_eq!(w.portal.posts(), ["echo: a\nb", "echo: c"]);
}

#[tokio::test]
async fn a_turn_that_asked_the_bot_alone_stays_alone_after_a_crash() {
    let w = world();
    let jobs = [customer(1, "a"), customer(2, "b")];
    // An attempt claimed message 1 alone, asked the bot and died before saving anything.
    w.store.claim(&jobs[0].key, "dead", t(0), Duration::from_secs(1)).await.unwrap();
    let r = process(&w.deps, &jobs, &owner()).await;
    assert_eq!(r.finished, [true, true]);
    assert_eq!(w.bot.texts(), ["a", "b"], "the same question again under the same key; the follow-up is its own turn");
}

#[tokio::test]
async fn a_transient_failure_releases_the_claim_so_the_retry_need_not_wait_for_the_lease() {
    let w = world();
    let jobs = [customer(1, "hello"), customer(2, "later")];
    w.portal.fail("post_reply", PortalErrorKind::Retryable, "INTERNAL_SERVER_ERROR");
    let r = process(&w.deps, &jobs[..1], &owner()).await;
    let Some(Stopped::Failed(e)) = &r.stopped else { panic!("failed expected") };
    assert!(e.is_transient());
    // Another worker, one second later, long before the lease would end.
    let claim = w.store.claim(&jobs[0].key, "next", t(101), Duration::from_secs(30)).await.unwrap();
    assert!(matches!(claim, Claim::Resumed(p) if p.answer.is_some()), "released with its progress");
}

#[tokio::test]
async fn a_failure_stops_the_group_at_the_failed_turn() {
    let w = world();
    let jobs = [customer(1, "one"), message(2, "op", AuthorKind::Operator), customer(3, "three")];
    w.portal.fail("post_reply", PortalErrorKind::Retryable, "INTERNAL_SERVER_ERROR");
    let r = process(&w.deps, &jobs, &owner()).await;
    assert_eq!(r.finished, [false, false, false], "nothing after the failed turn is touched");
    w.bot.script([BotScript::Echo]);
    let r = process(&w.deps, &jobs, &owner()).await;
    assert_eq!(r.finished, [true, true, true]);
}

#[tokio::test]
async fn a_lost_post_answer_is_found_on_the_portal_not_posted_twice() {
    let w = world();
    let jobs = [customer(1, "hello")];
    w.portal.lose_next_answer();
    let r = process(&w.deps, &jobs, &owner()).await;
    assert!(r.stopped.is_some());
    let r = process(&w.deps, &jobs, &owner()).await;
    assert_eq!(names(&r), ["answered"]);
    assert_eq!(w.portal.posts(), ["echo: hello"]);
}

#[tokio::test]
async fn a_reply_refused_for_good_hands_the_chat_to_a_human() {
    let w = world();
    w.portal.fail("post_reply", PortalErrorKind::Permanent, "WRONG_REQUEST");
    let r = process(&w.deps, &[customer(1, "hello")], &owner()).await;
    assert_eq!(r.finished, [true]);
    assert_eq!(r.outcomes, [TurnOutcome::HandedOff { reason: HandoffReason::PortalRefused { code: "WRONG_REQUEST".into() } }]);
    assert_eq!(w.portal.transfers(), [ChatId::new(CHAT).unwrap()]);
}

#[tokio::test]
async fn refused_credentials_are_a_failure_not_an_outcome() {
    let w = world();
    w.portal.fail("post_reply", PortalErrorKind::Auth, "insufficient_scope");
    let r = process(&w.deps, &[customer(1, "hello")], &owner()).await;
    let Some(Stopped::Failed(e)) = r.stopped else { panic!("failed expected") };
    assert!(!e.is_transient() && e.is_retryable());
}

#[tokio::test]
async fn another_workers_live_claim_makes_the_group_wait() {
    let w = world();
    let jobs = [customer(1, "hello")];
    w.store.claim(&jobs[0].key, "someone", t(100), Duration::from_secs(30)).await.unwrap();
    let r = process(&w.deps, &jobs, &owner()).await;
    assert!(matches!(r.stopped, Some(Stopped::Busy { until }) if until == t(130)));
    assert!(w.portal.posts().is_empty());
}

#[tokio::test]
async fn an_escalation_phrase_hands_off_and_a_failing_bot_falls_back() {
    let w = world();
    let r = process(&w.deps, &[customer(1, "I want to talk to an agent")], &owner()).await;
    assert!(matches!(&r.outcomes[..], [TurnOutcome::HandedOff { reason: HandoffReason::Phrase { .. } }]));
    let w = world();
    w.bot.script([BotScript::Fail(BotError::Status(500)), BotScript::Fail(BotError::Status(500)), BotScript::Fail(BotError::Status(500))]);
    let r = process(&w.deps, &[customer(1, "hello")], &owner()).await;
    assert!(matches!(&r.outcomes[..], [TurnOutcome::Fallback { .. }]));
    assert_eq!(w.portal.posts(), std::slice::from_ref(&w.deps.settings.fallback_message));
    assert_eq!(w.portal.transfers().len(), 1);
}

#[tokio::test]
async fn giving_up_tells_the_customer_once_and_hands_the_chat_over() {
    let w = world();
    let jobs = [customer(1, "hello"), customer(2, "anyone?")];
    // The give-up's own post fails once: it resumes, and the fallback is posted once.
    w.portal.fail("transfer", PortalErrorKind::Retryable, "INTERNAL_SERVER_ERROR");
    let r = give_up(&w.deps, &jobs[..1], &owner(), "the portal kept failing").await;
    assert!(r.stopped.is_some());
    let r = give_up(&w.deps, &jobs, &owner(), "the portal kept failing").await;
    assert_eq!(r.finished, [true, true]);
    assert_eq!(names(&r)[0], "gave_up");
    assert_eq!(w.portal.posts(), std::slice::from_ref(&w.deps.settings.fallback_message), "told once; the follow-up finds a human session");
    assert!(w.bot.texts().is_empty(), "the bot is not asked");
    assert_eq!(w.portal.transfers().len(), 1);
}

#[tokio::test]
async fn a_lambda_deadline_cuts_the_bot_timeout() {
    let w = world();
    let owner = Owner { id: "lambda".into(), deadline: Some(t(100) + chrono::Duration::seconds(45)) };
    process(&w.deps, &[customer(1, "hello")], &owner).await;
    assert_eq!(w.bot.timeouts(), [Duration::from_secs(35)], "45 s left minus 10 s kept to post the reply");
}

/// WhatsApp's 24-hour window: the job's message carries a block date `secs` after the epoch of
/// [`t`] (`entity_data_1` field 9).
fn blocked_at(mut job: Job, secs: i64) -> Job {
    if let PortalEvent::Message(m) = &mut job.event {
        m.lines.window = Some(Block { at: t(secs), reason: Some("WHATSAPP_24H".into()) });
    }
    job
}

/// A bot that takes `thinks` of the world's clock to answer (then answers like the fake bot).
struct SlowBot {
    inner: Arc<FakeBot>,
    clock: ManualClock,
    thinks: Duration,
}

#[async_trait::async_trait]
impl Bot for SlowBot {
    async fn ask(&self, request: &BotRequest, key: &DedupKey, timeout: Duration) -> Result<BotAnswer, BotError> {
        self.clock.advance(self.thinks);
        self.inner.ask(request, key, timeout).await
    }
}

fn slow(mut w: World, thinks: Duration) -> World {
    w.deps.bot = Arc::new(SlowBot { inner: w.bot.clone(), clock: w.clock.clone(), thinks });
    w
}

async fn assert_window_closed(w: &World, r: &GroupResult) {
    assert_eq!(names(r), ["window_closed"]);
    assert!(matches!(&r.outcomes[0], TurnOutcome::WindowClosed { block_reason: Some(reason) } if reason == "WHATSAPP_24H"));
    assert!(w.portal.posts().is_empty(), "nothing is posted into a closed chat: {:?}", w.portal.posts());
    assert_eq!(w.portal.transfers(), [ChatId::new(CHAT).unwrap()], "a human gets the chat (to send a template)");
    assert!(
        matches!(w.store.mode(ChatId::new(CHAT).unwrap(), SessionId::new(301).ok()).await.unwrap(), ChatMode::Human { rule, .. } if rule == "window_closed")
    );
    let logged = w.store.recent(10).await.unwrap();
    assert_eq!(logged[0].outcome.name(), "window_closed", "recorded in the turn log");
}

#[tokio::test]
async fn a_window_closed_when_the_turn_starts_asks_no_bot_and_posts_nothing() {
    let w = world();
    let r = process(&w.deps, &[blocked_at(customer(1, "hello?"), 50)], &owner()).await;
    assert_eq!(r.finished, [true]);
    assert!(w.bot.texts().is_empty(), "the bot is not asked");
    assert_window_closed(&w, &r).await;
}

#[tokio::test]
async fn a_window_that_closes_while_the_bot_thinks_gets_no_late_answer() {
    // Open at t(100) (block at t(220), margin 60 s); the bot takes 90 s: t(190) is inside the margin.
    let w = slow(world(), Duration::from_secs(90));
    let r = process(&w.deps, &[blocked_at(customer(1, "hello?"), 220)], &owner()).await;
    assert_eq!(w.bot.texts(), ["hello?"], "asked while the window was open");
    assert_window_closed(&w, &r).await;
}

#[tokio::test]
async fn a_window_that_stays_open_is_answered_and_the_newest_message_decides() {
    let w = slow(world(), Duration::from_secs(90));
    // The first message's window is long closed; the follow-up (folded in) reopened it.
    let jobs = [blocked_at(customer(1, "hi"), 50), blocked_at(customer(2, "still there?"), 100 + 86_400)];
    let r = process(&w.deps, &jobs, &owner()).await;
    assert_eq!(names(&r), ["answered"]);
    assert_eq!(w.portal.posts(), ["echo: hi\nstill there?"]);
}

#[tokio::test]
async fn no_fallback_message_goes_into_a_closed_chat() {
    let w = slow(world(), Duration::from_secs(40));
    w.bot.script([BotScript::Fail(BotError::Status(500)), BotScript::Fail(BotError::Status(500)), BotScript::Fail(BotError::Status(500))]);
    let r = process(&w.deps, &[blocked_at(customer(1, "hello?"), 220)], &owner()).await;
    assert_window_closed(&w, &r).await;

    let w = world();
    let r = give_up(&w.deps, &[blocked_at(customer(1, "hello?"), 50)], &owner(), "kept failing").await;
    assert_window_closed(&w, &r).await;
}

#[tokio::test]
async fn with_the_check_off_a_late_answer_is_posted() {
    let mut w = world();
    w.deps.settings.window.enabled = false;
    let r = process(&w.deps, &[blocked_at(customer(1, "hello?"), 50)], &owner()).await;
    assert_eq!(names(&r), ["answered"]);
}

/// A canary's message: the webhook's user (an operator, for the bridge) in a chat outside Open
/// Lines (the bot's private dialog).
fn canary_message(id: u64) -> Job {
    let PortalEvent::Message(mut m) = message(id, "olbridge canary 3f2a", AuthorKind::Operator).event else { unreachable!() };
    m.lines = LinesContext::default();
    m.dialog_id = DialogId::User(UserId::new(42).unwrap());
    Job::new(PortalEvent::Message(m), t(0))
}

#[tokio::test]
async fn a_canary_outside_open_lines_is_answered_once_without_handoff_history_or_log() {
    let w = world();
    let r = process(&w.deps, &[canary_message(1)], &owner()).await;
    assert_eq!((r.finished.clone(), names(&r)), (vec![true], vec!["answered"]));
    assert_eq!(w.bot.texts(), ["olbridge canary 3f2a"]);
    assert_eq!(w.portal.posts(), ["echo: olbridge canary 3f2a"]);
    assert!(w.store.recent(10).await.unwrap().is_empty(), "not in the turn log");
    assert!(matches!(w.store.mode(ChatId::new(CHAT).unwrap(), None).await.unwrap(), ChatMode::Bot), "the operator's message did not silence the bot");

    // The bot down: the fallback is posted in the canary dialog (the canary counts it as a
    // failure), once, and nothing is handed to anyone.
    w.bot.script([BotScript::Fail(BotError::Status(500)), BotScript::Fail(BotError::Status(500))]);
    let r = process(&w.deps, &[canary_message(2)], &owner()).await;
    assert_eq!(names(&r), ["fallback"]);
    assert_eq!(w.bot.texts().len(), 2, "asked once, no retries");
    assert_eq!(w.portal.posts().last().map(String::as_str), Some(w.deps.settings.fallback_message.as_str()));
    assert!(w.portal.transfers().is_empty());
    assert!(matches!(w.store.mode(ChatId::new(CHAT).unwrap(), None).await.unwrap(), ChatMode::Bot));
}

#[tokio::test]
async fn the_canary_words_from_a_whatsapp_customer_are_an_ordinary_question() {
    let w = world();
    let r = process(&w.deps, &[customer(1, "olbridge canary 3f2a")], &owner()).await;
    assert_eq!(names(&r), ["answered"]);
    assert_eq!(w.store.recent(10).await.unwrap().len(), 1, "a customer turn, in the log");
}

#[test]
fn a_chats_messages_are_put_in_the_order_they_were_written_around_other_events() {
    let joined = |id: u64| {
        let chat = ChatId::new(CHAT).unwrap();
        Job::new(
            PortalEvent::BotJoined {
                portal: PortalRef { member_id: MemberId::parse("unit").unwrap(), domain: PortalDomain::parse("unit.bitrix24.test").unwrap() },
                bot_id: crate::domain::ids::BotId::new(BOT_USER).unwrap(),
                chat_id: chat,
                dialog_id: DialogId::Chat(chat),
                lines: LinesContext { session_id: SessionId::new(id).ok(), ..LinesContext::default() },
                sent_at: t(0),
            },
            t(0),
        )
    };
    // Queued as they reached the bridge: 12 and 11 after 13 (their events were lost, reconciliation
    // found them), a join between two runs, then 15 before 14.
    let mut jobs = vec![customer(13, "c"), customer(11, "a"), customer(12, "b"), joined(2), customer(15, "e"), customer(14, "d")];
    crate::domain::event::written_order(&mut jobs, |j| Some(j));
    let order: Vec<String> = jobs
        .iter()
        .map(|j| match &j.event {
            PortalEvent::Message(m) => m.message_id.get().to_string(),
            _ => "join".to_owned(),
        })
        .collect();
    assert_eq!(order, ["11", "12", "13", "join", "14", "15"]);
}

#[tokio::test]
async fn messages_queued_out_of_order_are_answered_in_the_order_they_were_written() {
    let w = world();
    let mut jobs = vec![customer(2, "second"), customer(1, "first")];
    crate::domain::event::written_order(&mut jobs, |j| Some(j));
    let r = process(&w.deps, &jobs, &owner()).await;
    assert_eq!((r.finished.clone(), names(&r)), (vec![true, true], vec!["answered"]));
    assert_eq!(w.bot.texts(), ["first\nsecond"], "one turn, in the order written");
}
