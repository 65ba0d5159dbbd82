//! A bot's event queue on the portal, read by offset (Chatbots 2.0 fetch mode,
//! `imbot.v2.Event.get`): the source of the `fetch` use case.
//!
//! The queue is acknowledged by the next read: `fetch(Some(n))` drops every event whose id is
//! below `n` on the portal, for good. The use case therefore passes an offset only once the events
//! below it are durably enqueued, and keeps that offset itself (in the `MetaStore`), so a restart
//! resumes where the last durable enqueue ended.

use async_trait::async_trait;
use serde_json::Value;

use super::PortalError;

/// One queued event, as the portal sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    /// Its position in the queue (`eventId`).
    pub id: u64,
    /// The whole event (`{eventId, type, date, data}`), for `parse::from_v2_json`.
    pub raw: Value,
}

/// One read of the queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedPage {
    /// The events, oldest first.
    pub events: Vec<FeedEvent>,
    /// The offset that acknowledges every event of this page (`nextOffset`); `None` when the
    /// portal did not say (then the last event's id + 1 is used).
    pub next_offset: Option<u64>,
    /// More events are waiting beyond this page.
    pub has_more: bool,
}

impl FeedPage {
    /// The offset that acknowledges this page: `nextOffset`, or past the last event.
    pub fn ack_offset(&self) -> Option<u64> {
        let past_last = self.events.iter().map(|e| e.id.saturating_add(1)).max();
        match (self.next_offset, past_last) {
            (Some(n), Some(p)) => Some(n.max(p)),
            (n, p) => n.or(p),
        }
    }
}

/// A bot's event queue.
#[async_trait]
pub trait EventFeed: Send + Sync {
    /// Up to `limit` events from the start of the queue, after acknowledging (deleting) every
    /// event below `offset` when one is given.
    async fn fetch(&self, offset: Option<u64>, limit: u32) -> Result<FeedPage, PortalError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(ids: &[u64], next: Option<u64>) -> FeedPage {
        FeedPage { events: ids.iter().map(|&id| FeedEvent { id, raw: Value::Null }).collect(), next_offset: next, has_more: false }
    }

    #[test]
    fn the_ack_offset_never_falls_behind_the_last_event() {
        assert_eq!(page(&[], None).ack_offset(), None);
        assert_eq!(page(&[], Some(7)).ack_offset(), Some(7));
        assert_eq!(page(&[3, 4], None).ack_offset(), Some(5));
        assert_eq!(page(&[3, 4], Some(5)).ack_offset(), Some(5));
        assert_eq!(page(&[3, 4], Some(4)).ack_offset(), Some(5), "a nextOffset that would re-read the last event is not trusted");
    }
}
