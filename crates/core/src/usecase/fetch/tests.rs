//! The fetch use case over the memory store and a fake queue that acknowledges by offset as the
//! portal does; failures are injected into the queue sink and the offset store to stand for a crash
//! at each point of a tick, and a new `Fetcher` over the same stores stands for the restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::{FetchError, FetchSettings, Fetcher, MORE_GAP, Tick};
use crate::domain::event::Job;
use crate::domain::ids::{BotId, MemberId, PortalDomain};
use crate::memory::MemoryStore;
use crate::ports::{EventFeed, FeedEvent, FeedPage, JobSink, MetaPut, MetaStore, PortalError, StoreError, StoreResult, Versioned, WorkQueue};
use crate::usecase::receive::{MemberPin, ReceiveSettings, Receiver};

const MEMBER: &str = "abc123";
const BOT: u64 = 456;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000, 0).single().unwrap()
}

/// The portal's queue: `fetch(Some(n))` drops every event below `n`, then returns the first page.
#[derive(Default)]
struct FakeFeed {
    queue: Mutex<Vec<FeedEvent>>,
    next_id: AtomicU32,
    calls: Mutex<Vec<Option<u64>>>,
}

impl FakeFeed {
    fn push(&self, raw: impl FnOnce(u64) -> Value) {
        let id = u64::from(self.next_id.fetch_add(1, Ordering::SeqCst)) + 1000;
        self.queue.lock().unwrap().push(FeedEvent { id, raw: raw(id) });
    }

    fn held(&self) -> usize {
        self.queue.lock().unwrap().len()
    }
}

#[async_trait]
impl EventFeed for FakeFeed {
    async fn fetch(&self, offset: Option<u64>, limit: u32) -> Result<FeedPage, PortalError> {
        self.calls.lock().unwrap().push(offset);
        let mut q = self.queue.lock().unwrap();
        if let Some(o) = offset {
            q.retain(|e| e.id >= o);
        }
        let events: Vec<FeedEvent> = q.iter().take(limit as usize).cloned().collect();
        let next_offset = events.last().map(|e| e.id + 1).or(offset);
        Ok(FeedPage { has_more: q.len() > events.len(), events, next_offset })
    }
}

/// A customer's message in an Open Lines chat, as fetch mode delivers it (native JSON types).
fn message(chat: u64, message_id: u64, text: &str) -> impl FnOnce(u64) -> Value {
    let text = text.to_owned();
    move |event_id| {
        json!({"eventId": event_id, "type": "ONIMBOTV2MESSAGEADD", "date": "2025-06-15T10:30:00+03:00", "data": {
            "bot": {"id": BOT, "code": "olbridge", "eventMode": "fetch"},
            "message": {"id": message_id, "chatId": chat, "authorId": 77, "date": "2025-06-15T10:30:00+03:00", "text": text, "isSystem": false},
            "chat": {"id": chat, "dialogId": format!("chat{chat}"), "type": "lines", "entityType": "LINES",
                "entityId": "whatsappbyedna|3|4915112345678@olbridge|77", "entityData1": "Y|LEAD|12|N|N|301|1750000000|0|0|0"},
            "user": {"id": 77, "name": "Customer 5678", "connector": true, "bot": false},
            "language": "en"}})
    }
}

/// Fails the next `n` sends, then delegates.
struct FlakySink {
    store: Arc<MemoryStore>,
    failures: AtomicU32,
}

#[async_trait]
impl JobSink for FlakySink {
    async fn send(&self, job: &Job, now: DateTime<Utc>) -> StoreResult<()> {
        if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(StoreError::Backend("the process died here".into()));
        }
        self.store.send(job, now).await
    }
}

/// Fails the next `n` writes, then delegates.
struct FlakyMeta {
    store: Arc<MemoryStore>,
    failures: AtomicU32,
}

#[async_trait]
impl MetaStore for FlakyMeta {
    async fn get_value(&self, name: &str) -> StoreResult<Option<Versioned>> {
        self.store.get_value(name).await
    }
    async fn put_value(&self, name: &str, value: &str, expected: Option<u64>) -> StoreResult<MetaPut> {
        if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(StoreError::Backend("the process died here".into()));
        }
        self.store.put_value(name, value, expected).await
    }
}

fn fetcher(store: &Arc<MemoryStore>, feed: &Arc<FakeFeed>, member: Option<&str>, sink: Arc<dyn JobSink>, meta: Arc<dyn MetaStore>) -> Fetcher {
    let bot = BotId::new(BOT).unwrap();
    let member = member.map(|m| MemberId::parse(m).unwrap());
    let settings = ReceiveSettings {
        application_token: None,
        previous_tokens: Vec::new(),
        bot_client_id: None,
        member_id: member.clone(),
        domain: None,
        bot_id: Some(bot),
        ts_window: Duration::from_secs(300),
        max_body_bytes: 64 * 1024,
        sources: Default::default(),
    };
    let receiver = Receiver { settings, idempotency: store.clone(), sink, chats: store.clone(), pin: MemberPin::new(member, store.clone()) };
    let settings = FetchSettings { bot_id: bot, domain: PortalDomain::parse("example.bitrix24.com").unwrap(), limit: 100, idle: Duration::from_secs(2) };
    Fetcher { feed: feed.clone(), meta, receiver, settings }
}

fn plain(store: &Arc<MemoryStore>, feed: &Arc<FakeFeed>) -> Fetcher {
    fetcher(store, feed, Some(MEMBER), store.clone(), store.clone())
}

async fn queued(store: &MemoryStore) -> u64 {
    store.depth(now()).await.unwrap().ready
}

async fn stored_offset(store: &MemoryStore) -> Option<String> {
    store.get_value(&Fetcher::cursor_name(BotId::new(BOT).unwrap())).await.unwrap().map(|v| v.value)
}

#[tokio::test]
async fn fetched_events_are_queued_with_the_push_keys_and_acknowledged_by_the_next_read() {
    let (store, feed) = (Arc::new(MemoryStore::new()), Arc::new(FakeFeed::default()));
    feed.push(message(5, 84001, "hello"));
    feed.push(message(6, 84002, "are you there?"));
    let f = plain(&store, &feed);

    let tick = f.tick(now()).await.unwrap();
    assert_eq!((tick.fetched, tick.enqueued, tick.offset, tick.has_more), (2, 2, Some(1002), false));
    let jobs = store.receive(10, now(), Duration::from_secs(30)).await.unwrap();
    let mut keys: Vec<&str> = jobs.iter().map(|d| d.job.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, [format!("{MEMBER}:msg:84001"), format!("{MEMBER}:msg:84002")], "the keys a pushed event would have");
    assert_eq!(stored_offset(&store).await.as_deref(), Some("1002"));
    assert_eq!(feed.held(), 2, "the portal still holds them until the next read acknowledges them");

    let tick = f.tick(now()).await.unwrap();
    assert_eq!((tick.fetched, tick.enqueued), (0, 0));
    assert_eq!(feed.held(), 0);
    assert_eq!(*feed.calls.lock().unwrap(), [None, Some(1002)]);
}

#[tokio::test]
async fn a_crash_between_the_read_and_the_enqueue_loses_nothing() {
    let (store, feed) = (Arc::new(MemoryStore::new()), Arc::new(FakeFeed::default()));
    feed.push(message(5, 84001, "first"));
    feed.push(message(5, 84002, "second"));
    // The second event's send fails: the process "dies" with one event queued, one not.
    let sink = Arc::new(FlakySink { store: store.clone(), failures: AtomicU32::new(0) });
    let dying = fetcher(&store, &feed, Some(MEMBER), sink.clone(), store.clone());
    let first = dying.tick(now()).await.unwrap();
    assert_eq!(first.enqueued, 2);
    feed.push(message(5, 84003, "third"));
    feed.push(message(6, 85001, "other chat"));
    sink.failures.store(1, Ordering::SeqCst);
    let err = dying.tick(now()).await.expect_err("the store failed mid-page");
    assert!(matches!(err, FetchError::Store(_)) && err.is_retryable(), "{err}");
    assert_eq!(stored_offset(&store).await.as_deref(), Some("1002"), "not moved past what is not queued");
    assert_eq!(feed.held(), 2, "the unqueued events are still on the portal");

    // The restart reads them again.
    let tick = plain(&store, &feed).tick(now()).await.unwrap();
    assert_eq!((tick.fetched, tick.enqueued, tick.duplicates), (2, 2, 0));
    assert_eq!(queued(&store).await, 4, "every message queued once");
    assert_eq!(stored_offset(&store).await.as_deref(), Some("1004"));
}

#[tokio::test]
async fn a_crash_after_the_enqueue_before_the_acknowledgement_duplicates_nothing() {
    let (store, feed) = (Arc::new(MemoryStore::new()), Arc::new(FakeFeed::default()));
    feed.push(message(5, 84001, "hello"));
    feed.push(message(5, 84002, "again"));
    // Both events are queued; writing the offset fails, as if the process died right there.
    let meta = Arc::new(FlakyMeta { store: store.clone(), failures: AtomicU32::new(1) });
    let err = fetcher(&store, &feed, Some(MEMBER), store.clone(), meta).tick(now()).await.expect_err("died before the ack");
    assert!(matches!(err, FetchError::Store(_)), "{err}");
    assert_eq!(queued(&store).await, 2);
    assert_eq!(stored_offset(&store).await, None);

    let tick = plain(&store, &feed).tick(now()).await.unwrap();
    assert_eq!((tick.fetched, tick.enqueued, tick.duplicates), (2, 0, 2), "read again, and the keys say: already queued");
    assert_eq!(queued(&store).await, 2, "nothing queued twice");
    assert_eq!(stored_offset(&store).await.as_deref(), Some("1002"));
}

#[tokio::test]
async fn without_a_member_id_nothing_is_read() {
    let (store, feed) = (Arc::new(MemoryStore::new()), Arc::new(FakeFeed::default()));
    feed.push(message(5, 84001, "hello"));
    let f = fetcher(&store, &feed, None, store.clone(), store.clone());
    let err = f.tick(now()).await.expect_err("no member id");
    assert!(matches!(err, FetchError::NoMemberId) && !err.is_retryable());
    assert!(err.to_string().contains("B24_MEMBER_ID"), "{err}");
    assert!(feed.calls.lock().unwrap().is_empty(), "the queue is not even read");
    // One pinned earlier (from a verified pushed event) is enough.
    store.put_value(MemberPin::META_NAME, MEMBER, None).await.unwrap();
    let f = fetcher(&store, &feed, None, store.clone(), store.clone());
    assert_eq!(f.tick(now()).await.unwrap().enqueued, 1);
}

#[tokio::test]
async fn unparsable_and_foreign_events_are_acknowledged_not_retried_forever() {
    let (store, feed) = (Arc::new(MemoryStore::new()), Arc::new(FakeFeed::default()));
    feed.push(|id| json!({"eventId": id, "type": "ONIMBOTV2MESSAGEADD", "data": {"message": {"text": "no ids"}}}));
    feed.push(|id| json!({"eventId": id, "type": "ONIMBOTV2REACTIONCHANGE", "data": {}}));
    feed.push(message(5, 84001, "hello"));
    let tick = plain(&store, &feed).tick(now()).await.unwrap();
    assert_eq!((tick.skipped, tick.ignored, tick.enqueued, tick.offset), (1, 1, 1, Some(1003)));
}

#[tokio::test]
async fn a_full_page_is_followed_after_the_gap_and_an_empty_one_after_the_poll_interval() {
    let (store, feed) = (Arc::new(MemoryStore::new()), Arc::new(FakeFeed::default()));
    for i in 0..5 {
        feed.push(message(5, 84001 + i, "m"));
    }
    let mut f = plain(&store, &feed);
    f.settings.limit = 2;
    let idle = Duration::from_secs(7);
    let mut waits = Vec::new();
    for _ in 0..4 {
        let t: Tick = f.tick(now()).await.unwrap();
        waits.push(t.wait(idle));
    }
    assert_eq!(waits, [MORE_GAP, MORE_GAP, idle, idle]);
    assert_eq!(queued(&store).await, 5);
}

#[tokio::test]
async fn the_offset_never_moves_backwards_when_two_fetchers_race() {
    let (store, feed) = (Arc::new(MemoryStore::new()), Arc::new(FakeFeed::default()));
    feed.push(message(5, 84001, "hello"));
    let name = Fetcher::cursor_name(BotId::new(BOT).unwrap());
    // Another fetcher got further meanwhile.
    store.put_value(&name, "2000", None).await.unwrap();
    let f = plain(&store, &feed);
    // This one still read from the old offset (the stored one is ahead: nothing to read).
    let tick = f.tick(now()).await.unwrap();
    assert_eq!((tick.fetched, tick.offset), (0, Some(2000)));
    let stale = f.advance(&name, None, 1001).await.unwrap();
    assert_eq!(stale, 2000);
    assert_eq!(stored_offset(&store).await.as_deref(), Some("2000"));
}
