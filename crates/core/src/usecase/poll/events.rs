//! Operator mode's other source: the webhook user's `im.v2.Event.get` log (contract §3.7).
//!
//! One call per poll whatever the number of chats, and cheap in operating time. The caveats, which
//! is why the recent-list traversal stays the default and, when this source is chosen, still runs
//! on a longer period as the safety net:
//! - Whether the log covers Open Lines chats is UNCONFIRMED (contract §10 item 5).
//! - Only one consumer may read a user's log: `offset` acknowledges, and removes, the events for
//!   every consumer. Nothing else may poll `im.v2.Event.get` as the webhook's user.
//! - Events are kept 24 hours; a bridge stopped longer loses them (the traversal finds the
//!   messages).
//! - Only events after `im.v2.Event.subscribe` are logged (the traversal covers the gap at start).
//!
//! The offset is kept in the `MetaStore` and moved only past events that were enqueued (or
//! passed over), so a crash re-reads, and the keys make that harmless. Each message also moves its
//! chat's operator cursor, so the safety-net traversal does not read it again.

use std::collections::HashSet;

use super::{Outcome, PassReport, Policy, PollError, Poller};
use crate::domain::parse::poll::from_im_v2_json;

impl Poller {
    /// Where the event log was last acknowledged.
    pub const EVENTS_OFFSET: &'static str = "poll.events.offset";

    /// Starts the webhook user's event log (once per start; idempotent on the portal).
    pub async fn subscribe(&self) -> Result<(), PollError> {
        Ok(self.deps.feed.subscribe_events().await?)
    }

    /// One pass over the event log (operator mode only).
    pub async fn events_pass(&self) -> Result<PassReport, PollError> {
        let mut report = PassReport::default();
        if self.settings.policy != Policy::Operator {
            report.skipped = Some("the event log is an operator-mode source");
            return Ok(report);
        }
        let now = self.deps.clock.now();
        let first = self.first_start(now).await?;
        let Some(portal) = self.portal().await? else { return Ok(report) };
        let horizon = match self.cursors.get(Self::FIRST_MESSAGE).await? {
            Some(_) => self.horizon(first, 0).await?,
            None => {
                // The first start's newest message is not known yet: one look at the recent list.
                let newest = self.deps.feed.recent_chats(now, 1).await?.iter().filter_map(|c| c.last_message_id).map(|m| m.get()).max();
                self.horizon(first, newest.unwrap_or(0)).await?
            }
        };
        let offset = self.cursors.get(Self::EVENTS_OFFSET).await?;
        let page = self.deps.feed.events(offset).await?;
        let mut next = None;
        let mut chats = HashSet::new();
        for event in &page.events {
            let Some(id) = event.get("eventId").and_then(serde_json::Value::as_u64) else { continue };
            let message = match from_im_v2_json(event, &portal, self.settings.policy.source()) {
                Ok(Some(m)) if m.lines.user_code.is_some() && !horizon.before(m.message_id.get(), m.sent_at) => Some(m),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(event = id, error = %e, "an im.v2 event could not be read; passed over");
                    None
                }
            };
            if let Some(m) = message {
                let (chat, message_id) = (m.chat_id, m.message_id);
                chats.insert(chat);
                let outcome = self.take(self.own(m), self.deps.clock.now(), None).await?;
                report.count(outcome);
                if outcome == Outcome::Wait {
                    break;
                }
                self.advance(chat, message_id.get()).await?;
            }
            next = Some(id.saturating_add(1));
        }
        report.chats = chats.len();
        report.read = usize::from(!page.events.is_empty());
        if let Some(next) = next {
            self.cursors.advance(Self::EVENTS_OFFSET, next).await?;
        }
        Ok(report)
    }
}
