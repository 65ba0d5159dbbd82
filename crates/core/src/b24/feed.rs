//! [`RestFeed`]: the [`ChatFeed`] port over the REST client, as the webhook's user.
//!
//! - `recent_chats`: `im.recent.list` pages of 50 (`OFFSET` advanced by `LIMIT`, pages may
//!   overlap: contract §6.3), stopping at the first item last active before the caller's bound;
//!   only Open Lines chats are kept. An idle pass costs one request.
//! - `messages`: one `batch` of `im.dialog.messages.get` commands (`FIRST_ID` = the cursor, so
//!   strictly newer; 50 per page), up to 50 chats per request.
//! - `events`: `im.v2.Event.get` (`im.v2.Event.subscribe` first).
//!
//! Every read goes at background priority: it waits for headroom in the client's rate budget and
//! never queues in front of a reply. `pressure` is the largest share of the operating-time limit
//! (`B24_OPERATING_LIMIT_SEC`) the portal reported for these methods.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::batch::Batch;
use super::client::B24Client;
use super::error::B24Error;
use super::im::{DialogMessages, MessagesQuery, RecentItem, RecentQuery, messages_params};
use crate::domain::ids::{ChatId, DialogId, MessageId, UserId};
use crate::ports::{ChatFeed, ChatMessages, EventPage, FeedChat, FeedMessage, FeedUser, MessagesWanted, PortalError, Pressure};

/// `im.recent.list` page size.
const RECENT_PAGE: u32 = 50;
/// `im.dialog.messages.get` page size (its maximum).
const MESSAGES_PAGE: u32 = 50;
/// `im.v2.Event.get` page size.
const EVENTS_PAGE: u32 = 100;
/// The methods whose operating time the pollers spend.
const POLLED: [&str; 3] = ["im.recent.list", "im.dialog.messages.get", "im.v2.Event.get"];

/// The pollers' view of the portal.
#[derive(Debug, Clone)]
pub struct RestFeed {
    client: B24Client,
    operating_limit_secs: f64,
}

impl RestFeed {
    /// A feed over `client`; `operating_limit_secs` is the portal's per-method operating-time
    /// limit over ten minutes (the cloud value is not published; the docs' example is 480 s).
    pub fn new(client: B24Client, operating_limit_secs: f64) -> Self {
        Self { client, operating_limit_secs: operating_limit_secs.max(1.0) }
    }
}

fn date(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw.trim()).ok().map(|d| d.with_timezone(&Utc))
}

/// An Open Lines chat of the recent list; `None` for other chats.
fn lines_chat(item: &RecentItem) -> Option<FeedChat> {
    let chat = item.chat.as_ref();
    let is_lines = chat.is_some_and(|c| c.entity_type.eq_ignore_ascii_case("LINES")) || item.lines.is_some();
    let chat_id = ChatId::new(item.chat_id).ok().or_else(|| item.dialog().and_then(DialogId::chat)).filter(|_| is_lines)?;
    let last = item.message.as_ref().map_or(item.last_id, |m| m.id.max(item.last_id));
    let activity = date(&item.date_last_activity).or_else(|| item.message.as_ref().and_then(|m| date(&m.date)));
    Some(FeedChat {
        chat_id,
        owner: chat.and_then(|c| UserId::new(c.owner).ok()),
        last_message_id: MessageId::new(last).ok(),
        last_activity: activity,
        entity_id: chat.map(|c| c.entity_id.clone()).unwrap_or_default(),
        entity_data_1: chat.map(|c| c.entity_data_1.clone()).unwrap_or_default(),
        entity_data_2: chat.map(|c| c.entity_data_2.clone()).unwrap_or_default(),
    })
}

fn chat_messages(chat: ChatId, after: Option<MessageId>, page: DialogMessages) -> ChatMessages {
    let full = page.messages.len() >= MESSAGES_PAGE as usize;
    let floor = after.map_or(0, MessageId::get);
    let mut messages: Vec<FeedMessage> = page
        .messages
        .into_iter()
        .filter(|m| m.id > floor)
        .filter_map(|m| Some(FeedMessage { id: MessageId::new(m.id).ok()?, author_id: m.author_id, sent_at: date(&m.date), text: m.text }))
        .collect();
    messages.sort_by_key(|m| m.id);
    messages.dedup_by_key(|m| m.id);
    let users = page.users.into_iter().map(|u| FeedUser { id: u.id, name: u.name, connector: u.connector, bot: u.bot }).collect();
    ChatMessages { chat, messages, users, full }
}

#[async_trait]
impl ChatFeed for RestFeed {
    async fn recent_chats(&self, active_since: DateTime<Utc>, max: usize) -> Result<Vec<FeedChat>, PortalError> {
        let mut out: Vec<FeedChat> = Vec::new();
        let mut offset = 0;
        loop {
            let q = RecentQuery { offset, limit: RECENT_PAGE, skip_dialog: true, ..RecentQuery::default() };
            let page = self.client.im_recent_list_background(&q).await?;
            let older = page.items.last().and_then(|i| date(&i.date_last_activity)).is_some_and(|d| d < active_since);
            for chat in page.items.iter().filter_map(lines_chat) {
                if !out.iter().any(|c| c.chat_id == chat.chat_id) {
                    out.push(chat);
                }
            }
            if !page.has_more || older || page.items.is_empty() || out.len() >= max {
                break;
            }
            offset += RECENT_PAGE;
        }
        out.truncate(max);
        Ok(out)
    }

    async fn messages(&self, wanted: &[MessagesWanted]) -> Result<Vec<Result<ChatMessages, PortalError>>, PortalError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut batch = Batch::new();
        for w in wanted {
            let q = MessagesQuery { first_id: w.after, last_id: None, limit: Some(MESSAGES_PAGE) };
            batch.add(format!("c{}", w.chat), "im.dialog.messages.get", &messages_params(DialogId::Chat(w.chat), q));
        }
        let result = self.client.batch_background(&batch).await?;
        Ok(wanted
            .iter()
            .map(|w| {
                let page: Result<DialogMessages, B24Error> = result.get(&format!("c{}", w.chat));
                page.map(|p| chat_messages(w.chat, w.after, p)).map_err(PortalError::from)
            })
            .collect())
    }

    async fn subscribe_events(&self) -> Result<(), PortalError> {
        self.client.im_v2_event_subscribe().await?;
        Ok(())
    }

    async fn events(&self, offset: Option<u64>) -> Result<EventPage, PortalError> {
        let page = self.client.im_v2_event_get_background(offset, EVENTS_PAGE).await?;
        let events =
            page.events.into_iter().map(|e| serde_json::json!({"eventId": e.event_id, "type": e.kind, "date": e.date, "data": e.data})).collect::<Vec<Value>>();
        Ok(EventPage { events, has_more: page.has_more })
    }

    fn pressure(&self) -> Pressure {
        let worst = POLLED.iter().filter_map(|m| self.client.operating(m)).max_by(|a, b| a.secs.total_cmp(&b.secs));
        worst.map_or_else(Pressure::default, |o| Pressure {
            share: o.secs / self.operating_limit_secs,
            eases_at: o.reset_at.and_then(|t| DateTime::from_timestamp(t, 0)),
        })
    }

    fn self_id(&self) -> UserId {
        self.client.webhook().user_id()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_open_lines_chats_of_the_recent_list_are_kept_with_their_owner_and_strings() {
        let item: RecentItem = serde_json::from_value(json!({"id": "chat7", "chat_id": 7, "type": "chat", "last_id": 90,
            "date_last_activity": "2026-03-04T10:18:24+03:00", "message": {"id": 90, "author_id": 41, "date": "2026-03-04T10:18:24+03:00"},
            "chat": {"owner": 0, "entity_type": "LINES", "entity_id": "whatsappbyedna|3|4915@s|41", "entity_data_1": "N|NONE|0|N|N|301|0|0|0|0"}}))
        .expect("parses");
        let chat = lines_chat(&item).expect("an Open Lines chat");
        assert_eq!((chat.chat_id.get(), chat.owner, chat.last_message_id.map(MessageId::get)), (7, None, Some(90)));
        assert_eq!(chat.last_activity, DateTime::parse_from_rfc3339("2026-03-04T07:18:24Z").ok().map(|d| d.with_timezone(&Utc)));
        let group: RecentItem = serde_json::from_value(json!({"id": "chat8", "chat_id": 8, "type": "chat", "chat": {"entity_type": ""}})).expect("parses");
        assert_eq!(lines_chat(&group), None);
        let private: RecentItem = serde_json::from_value(json!({"id": 5, "type": "user"})).expect("parses");
        assert_eq!(lines_chat(&private), None);
    }

    #[test]
    fn messages_come_out_oldest_first_and_strictly_after_the_cursor() {
        let page: DialogMessages = serde_json::from_value(json!({"chat_id": 7, "messages": [
            {"id": 12, "author_id": 41, "date": "2026-03-04T10:18:24+03:00", "text": "b"},
            {"id": 10, "author_id": 41, "date": "2026-03-04T10:18:20+03:00", "text": "at the cursor"},
            {"id": 11, "author_id": 0, "date": "bad", "text": "a"}],
            "users": [{"id": 41, "name": "Customer", "connector": true}]}))
        .expect("parses");
        let chat = ChatId::new(7).expect("chat");
        let m = chat_messages(chat, MessageId::new(10).ok(), page);
        assert_eq!(m.messages.iter().map(|x| x.id.get()).collect::<Vec<_>>(), vec![11, 12]);
        assert_eq!(m.messages[0].sent_at, None);
        assert!(m.users[0].connector && !m.full);
    }
}
