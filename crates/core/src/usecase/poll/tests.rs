//! The poll use case over a fake feed and the memory store: what each policy enqueues, what it
//! waits for, and that cursors make a restart repeat and skip nothing.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;
use crate::contract::t;
use crate::domain::ids::{DedupKey, MessageId, SessionId, UserId};
use crate::memory::MemoryStore;
use crate::ports::{ChatMessages, EventPage, FeedChat, FeedMessage, FeedUser, ManualClock, MessagesWanted, WorkQueue};

const SELF: u64 = 38_005;
const BOT: u64 = 38_007;
const OPERATOR: u64 = 38_006;
const CUSTOMER: u64 = 41;
const CHAT: u64 = 7;

#[derive(Default)]
struct World {
    owner: u64,
    messages: Vec<(u64, u64, String, DateTime<Utc>)>,
    events: Vec<Value>,
    acked: Option<u64>,
    reads: usize,
    /// The portal refuses to read the chat's messages (`OPERATION_TIME_LIMIT`).
    blocked: bool,
}

/// One Open Lines chat with a WhatsApp customer, and the user's event log.
#[derive(Default)]
struct FakeFeed(Mutex<World>);

impl FakeFeed {
    fn write(&self, id: u64, author: u64, text: &str, at: DateTime<Utc>) {
        let mut w = self.0.lock().unwrap();
        w.messages.push((id, author, text.into(), at));
        w.events.push(json!({"eventId": id, "type": "ONIMV2MESSAGEADD", "date": at.to_rfc3339(), "data": {
            "message": {"id": id, "chatId": CHAT, "authorId": author, "text": text},
            "chat": {"id": CHAT, "dialogId": format!("chat{CHAT}"), "type": "lines", "entityType": "LINES",
                "entityId": format!("whatsappbyedna|3|4915112345678@s|{CUSTOMER}"), "entityData1": "N|NONE|0|N|N|301|0|0|0|0"},
            "user": {"id": author, "connector": author == CUSTOMER, "bot": author == BOT}}}));
    }
    fn owner(&self, owner: u64) {
        self.0.lock().unwrap().owner = owner;
    }
    fn reads(&self) -> usize {
        self.0.lock().unwrap().reads
    }
}

fn user(id: u64) -> FeedUser {
    FeedUser { id, name: format!("user {id}"), connector: id == CUSTOMER, bot: id == BOT }
}

#[async_trait]
impl ChatFeed for FakeFeed {
    async fn recent_chats(&self, _since: DateTime<Utc>, _max: usize) -> Result<Vec<FeedChat>, PortalError> {
        let w = self.0.lock().unwrap();
        let Some(last) = w.messages.last() else { return Ok(Vec::new()) };
        Ok(vec![FeedChat {
            chat_id: ChatId::new(CHAT).unwrap(),
            owner: UserId::new(w.owner).ok(),
            last_message_id: MessageId::new(last.0).ok(),
            last_activity: Some(last.3),
            entity_id: format!("whatsappbyedna|3|4915112345678@s|{CUSTOMER}"),
            entity_data_1: "N|NONE|0|N|N|301|0|0|0|0".into(),
            entity_data_2: String::new(),
        }])
    }

    async fn messages(&self, wanted: &[MessagesWanted]) -> Result<Vec<Result<ChatMessages, PortalError>>, PortalError> {
        let mut w = self.0.lock().unwrap();
        w.reads += 1;
        Ok(wanted
            .iter()
            .map(|x| {
                if w.blocked {
                    return Err(PortalError {
                        kind: crate::ports::PortalErrorKind::RateLimited,
                        method: "im.dialog.messages.get".into(),
                        code: "OPERATION_TIME_LIMIT".into(),
                        description: "blocked".into(),
                    });
                }
                let after = x.after.map_or(0, MessageId::get);
                let messages: Vec<FeedMessage> = w
                    .messages
                    .iter()
                    .filter(|m| m.0 > after)
                    .map(|m| FeedMessage { id: MessageId::new(m.0).unwrap(), author_id: m.1, text: m.2.clone(), sent_at: Some(m.3) })
                    .collect();
                let users = [CUSTOMER, OPERATOR, BOT, SELF].into_iter().map(user).collect();
                Ok(ChatMessages { chat: x.chat, messages, users, full: false })
            })
            .collect())
    }

    async fn subscribe_events(&self) -> Result<(), PortalError> {
        Ok(())
    }

    async fn events(&self, offset: Option<u64>) -> Result<EventPage, PortalError> {
        let mut w = self.0.lock().unwrap();
        w.acked = offset.or(w.acked);
        let from = offset.unwrap_or(0);
        let events = w.events.iter().filter(|e| e["eventId"].as_u64().unwrap_or(0) >= from).cloned().collect();
        Ok(EventPage { events, has_more: false })
    }

    fn pressure(&self) -> crate::ports::Pressure {
        crate::ports::Pressure::default()
    }

    fn self_id(&self) -> UserId {
        UserId::new(SELF).unwrap()
    }
}

struct Rig {
    feed: Arc<FakeFeed>,
    store: Arc<MemoryStore>,
    clock: ManualClock,
    member: Option<MemberId>,
}

impl Rig {
    fn new() -> Self {
        Self { feed: Arc::default(), store: Arc::new(MemoryStore::new()), clock: ManualClock::new(t(1_000)), member: MemberId::parse("m1").ok() }
    }

    /// A poller as a new process would build it (same store, fresh caches).
    fn poller(&self, policy: Policy) -> Poller {
        let deps = PollDeps {
            feed: self.feed.clone(),
            idempotency: self.store.clone(),
            sink: self.store.clone(),
            chats: self.store.clone(),
            meta: self.store.clone(),
            pin: MemberPin::new(self.member.clone(), self.store.clone()),
            clock: Arc::new(self.clock.clone()),
        };
        let mut settings = PollSettings::new(policy, PortalDomain::parse("p.example").unwrap());
        settings.grace = Duration::from_secs(20);
        Poller::new(deps, settings)
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn later(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// The keys of the jobs waiting in the queue, in order; each is taken off (acked).
    async fn queued(&self) -> Vec<String> {
        let mut keys = Vec::new();
        loop {
            let jobs = self.store.receive(100, self.now(), Duration::from_secs(1)).await.unwrap();
            if jobs.is_empty() {
                return keys;
            }
            for d in jobs {
                keys.push(d.job.key.as_str().to_owned());
                self.store.settle(&d.receipt, &crate::ports::Settle::Ack, self.now()).await.unwrap();
            }
        }
    }
}

fn key(id: u64) -> String {
    format!("m1:msg:{id}")
}

#[tokio::test]
async fn operator_mode_enqueues_what_the_customer_and_operators_wrote_once_and_a_restart_repeats_nothing() {
    let rig = Rig::new();
    let poller = rig.poller(Policy::Operator);
    assert_eq!(poller.pass().await.unwrap().enqueued, 0, "nothing yet (and the first start is recorded)");
    rig.feed.write(101, CUSTOMER, "hello", rig.now());
    rig.feed.write(102, SELF, "hi, how can I help?", rig.now());
    rig.feed.write(103, BOT, "another bot", rig.now());
    rig.feed.write(104, 0, "system", rig.now());
    let report = poller.pass().await.unwrap();
    assert_eq!((report.chats, report.read, report.enqueued), (1, 1, 1), "{report:?}");
    assert_eq!(rig.queued().await, [key(101)]);

    let reads = rig.feed.reads();
    assert_eq!(poller.pass().await.unwrap(), PassReport { chats: 1, ..PassReport::default() });
    assert_eq!(rig.feed.reads(), reads, "nothing new after the cursor: no read");

    // A new process on the same store: nothing is repeated, the next message is found.
    let restarted = rig.poller(Policy::Operator);
    rig.later(5);
    rig.feed.write(105, OPERATOR, "Olga here", rig.now());
    rig.feed.write(106, CUSTOMER, "thanks", rig.now());
    let report = restarted.pass().await.unwrap();
    assert_eq!((report.enqueued, report.duplicates), (2, 0), "{report:?}");
    assert_eq!(rig.queued().await, [key(105), key(106)]);
    let session = SessionId::new(301).ok();
    assert!(
        matches!(rig.store.mode(ChatId::new(CHAT).unwrap(), session).await.unwrap(), crate::ports::ChatMode::Human { .. }),
        "the operator silenced the bot"
    );
}

#[tokio::test]
async fn messages_from_before_the_first_start_are_not_answered_unless_a_backfill_says_so() {
    let rig = Rig::new();
    rig.feed.write(90, CUSTOMER, "an old question", rig.now() - chrono::Duration::seconds(3600));
    assert_eq!(rig.poller(Policy::Operator).pass().await.unwrap().enqueued, 0);

    let rig = Rig::new();
    rig.feed.write(90, CUSTOMER, "an old question", rig.now() - chrono::Duration::seconds(3600));
    let mut poller = rig.poller(Policy::Operator);
    poller.settings.backfill = Duration::from_secs(7200);
    assert_eq!(poller.pass().await.unwrap().enqueued, 1);
}

#[tokio::test]
async fn a_message_push_already_admitted_is_not_enqueued_again() {
    let rig = Rig::new();
    let poller = rig.poller(Policy::Operator);
    poller.pass().await.unwrap();
    rig.feed.write(101, CUSTOMER, "hello", rig.now());
    // Push admitted it and the worker is on it.
    let k = DedupKey::message(&MemberId::parse("m1").unwrap(), MessageId::new(101).unwrap());
    rig.store.admit(&k, rig.now()).await.unwrap();
    rig.store.claim(&k, "worker", rig.now(), Duration::from_secs(60)).await.unwrap();
    let report = poller.pass().await.unwrap();
    assert_eq!((report.enqueued, report.duplicates), (0, 1), "{report:?}");
    assert!(rig.queued().await.is_empty());
}

#[tokio::test]
async fn an_admitted_key_whose_job_was_lost_is_sent_again_after_the_grace_period() {
    let rig = Rig::new();
    let poller = rig.poller(Policy::Operator);
    poller.pass().await.unwrap();
    rig.feed.write(101, CUSTOMER, "hello", rig.now());
    rig.feed.write(102, CUSTOMER, "anyone?", rig.now());
    // The receiver died between admit and send: the record stays queued, no job.
    let k = DedupKey::message(&MemberId::parse("m1").unwrap(), MessageId::new(101).unwrap());
    rig.store.admit(&k, rig.now()).await.unwrap();
    let report = poller.pass().await.unwrap();
    assert_eq!((report.waiting, report.enqueued), (1, 0), "the cursor waits before it: {report:?}");
    assert!(rig.queued().await.is_empty());
    rig.later(21);
    let report = poller.pass().await.unwrap();
    assert_eq!((report.resent, report.enqueued), (1, 1), "{report:?}");
    assert_eq!(rig.queued().await, [key(101), key(102)]);
}

#[tokio::test]
async fn reconciliation_waits_out_the_grace_period_and_recovers_only_what_was_lost() {
    let rig = Rig::new();
    rig.feed.owner(BOT);
    let poller = rig.poller(Policy::Reconcile { bot: UserId::new(BOT).unwrap() });
    poller.pass().await.unwrap();
    rig.feed.write(101, CUSTOMER, "delivered by push", rig.now());
    rig.feed.write(102, BOT, "echo", rig.now());
    rig.feed.write(103, CUSTOMER, "lost by push", rig.now());
    let k = DedupKey::message(&MemberId::parse("m1").unwrap(), MessageId::new(101).unwrap());
    rig.store.admit(&k, rig.now()).await.unwrap();
    rig.store.claim(&k, "worker", rig.now(), Duration::from_secs(60)).await.unwrap();

    let report = poller.pass().await.unwrap();
    assert_eq!((report.waiting, report.enqueued), (1, 0), "younger than the grace period: {report:?}");
    rig.later(21);
    let report = poller.pass().await.unwrap();
    assert_eq!((report.duplicates, report.enqueued), (1, 1), "{report:?}");
    assert_eq!(rig.queued().await, [key(103)]);
    rig.later(60);
    assert_eq!(poller.pass().await.unwrap().enqueued, 0, "never twice");
}

#[tokio::test]
async fn reconciliation_passes_over_chats_our_bot_does_not_serve_and_human_sessions() {
    let rig = Rig::new();
    let poller = rig.poller(Policy::Reconcile { bot: UserId::new(BOT).unwrap() });
    poller.pass().await.unwrap();
    rig.feed.owner(OPERATOR);
    rig.feed.write(101, CUSTOMER, "for Olga", rig.now());
    rig.later(30);
    assert_eq!(poller.pass().await.unwrap().enqueued, 0);
    assert_eq!(rig.feed.reads(), 0, "not even read");
    // Back with the bot, but our store says a human has this session.
    rig.feed.owner(BOT);
    rig.feed.write(102, CUSTOMER, "still for Olga", rig.now());
    rig.store.set_human(ChatId::new(CHAT).unwrap(), SessionId::new(301).ok(), "phrase", rig.now()).await.unwrap();
    rig.later(30);
    assert_eq!(poller.pass().await.unwrap().enqueued, 0);
}

#[tokio::test]
async fn reconciliation_needs_a_known_member_id_while_operator_mode_uses_a_stand_in() {
    let mut rig = Rig::new();
    rig.member = None;
    rig.feed.owner(BOT);
    rig.feed.write(101, CUSTOMER, "hello", rig.now());
    rig.later(30);
    let report = rig.poller(Policy::Reconcile { bot: UserId::new(BOT).unwrap() }).pass().await.unwrap();
    assert!(report.skipped.is_some() && report.enqueued == 0, "{report:?}");
    let report = rig.poller(Policy::Operator).pass().await.unwrap();
    assert_eq!(report.enqueued, 0, "written before the first start");
    rig.feed.write(102, CUSTOMER, "hello again", rig.now());
    rig.poller(Policy::Operator).pass().await.unwrap();
    assert_eq!(rig.queued().await, ["domainpexample:msg:102"]);
}

#[tokio::test]
async fn the_first_start_is_kept_by_an_attempt_that_cannot_go_on_yet() {
    let mut rig = Rig::new();
    rig.member = None;
    rig.feed.owner(BOT);
    let reconcile = Policy::Reconcile { bot: UserId::new(BOT).unwrap() };
    assert!(rig.poller(reconcile).pass().await.unwrap().skipped.is_some(), "no member id yet");
    rig.later(5);
    rig.feed.write(101, CUSTOMER, "lost while nothing was pinned", rig.now());
    rig.later(30);
    // An event pins the member id; the message is from after the first start: recovered.
    rig.member = MemberId::parse("m1").ok();
    assert_eq!(rig.poller(reconcile).pass().await.unwrap().enqueued, 1);
}

#[tokio::test]
async fn reconciliation_starts_where_operator_mode_stopped() {
    let rig = Rig::new();
    rig.poller(Policy::Operator).pass().await.unwrap();
    rig.feed.write(101, CUSTOMER, "answered in operator mode", rig.now());
    rig.poller(Policy::Operator).pass().await.unwrap();
    assert_eq!(rig.queued().await, [key(101)]);
    // Moved to push mode: the key would be the same here, but with a stand-in it would not; the
    // cursor is what keeps reconciliation off what operator mode handled.
    rig.store.purge_before(rig.now() + chrono::Duration::days(1)).await.unwrap();
    rig.feed.owner(BOT);
    rig.later(30);
    rig.feed.write(102, CUSTOMER, "lost in push mode", rig.now() - chrono::Duration::seconds(25));
    let report = rig.poller(Policy::Reconcile { bot: UserId::new(BOT).unwrap() }).pass().await.unwrap();
    assert_eq!(report.enqueued, 1, "{report:?}");
    assert_eq!(rig.queued().await, [key(102)]);
}

#[tokio::test]
async fn the_event_log_source_enqueues_acknowledges_and_moves_the_chats_cursor() {
    let rig = Rig::new();
    let poller = rig.poller(Policy::Operator);
    poller.subscribe().await.unwrap();
    poller.events_pass().await.unwrap();
    rig.feed.write(101, CUSTOMER, "hello", rig.now());
    rig.feed.write(102, SELF, "hi!", rig.now());
    let report = poller.events_pass().await.unwrap();
    assert_eq!((report.enqueued, report.chats), (1, 1), "{report:?}");
    assert_eq!(rig.queued().await, [key(101)]);
    // The next call acknowledges both; the traversal has nothing to read.
    assert_eq!(poller.events_pass().await.unwrap().enqueued, 0);
    assert_eq!(rig.feed.0.lock().unwrap().acked, Some(103));
    assert_eq!(rig.poller(Policy::Operator).pass().await.unwrap().read, 0, "the chat's cursor moved with the events");
}

#[tokio::test]
async fn a_catch_up_takes_at_once_what_was_written_or_admitted_while_the_process_was_down() {
    let rig = Rig::new();
    rig.feed.owner(BOT);
    let policy = Policy::Reconcile { bot: UserId::new(BOT).unwrap() };
    rig.poller(policy).pass().await.unwrap();
    // The process dies; meanwhile a customer writes twice (both events lost), and one message the
    // dead process had admitted never got its job.
    rig.later(1);
    let m = MemberId::parse("m1").unwrap();
    rig.feed.write(101, CUSTOMER, "admitted, job lost", rig.now());
    rig.store.admit(&DedupKey::message(&m, MessageId::new(101).unwrap()), rig.now()).await.unwrap();
    rig.feed.write(102, CUSTOMER, "lost while down", rig.now());
    rig.later(2);
    let down_until = rig.now();
    // After the restart (listening again), a message whose event is on its way.
    rig.later(1);
    rig.feed.write(103, CUSTOMER, "after the restart", rig.now());

    let restarted = rig.poller(policy);
    rig.feed.0.lock().unwrap().blocked = true;
    let report = restarted.catch_up(down_until).await.unwrap();
    assert_eq!((report.unread, report.enqueued), (1, 0), "a chat the portal would not read: not complete, {report:?}");
    rig.feed.0.lock().unwrap().blocked = false;
    let report = restarted.catch_up(down_until).await.unwrap();
    assert_eq!((report.resent, report.enqueued, report.waiting), (1, 1, 1), "the grace period only for what came after: {report:?}");
    assert_eq!(rig.queued().await, [key(101), key(102)]);

    // A plain pass would have waited out the grace period for all three.
    let rig2 = Rig::new();
    rig2.feed.owner(BOT);
    rig2.poller(policy).pass().await.unwrap();
    rig2.later(1);
    rig2.feed.write(102, CUSTOMER, "lost while down", rig2.now());
    rig2.later(2);
    assert_eq!(rig2.poller(policy).pass().await.unwrap().waiting, 1);
}
