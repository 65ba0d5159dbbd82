//! The traversal: recent chats, then the messages after each chat's cursor, oldest first.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Horizon, Outcome, PassReport, Policy, PollError, Poller};
use crate::domain::ids::MessageId;
use crate::domain::message::PortalRef;
use crate::domain::parse::poll::{PolledMessage, from_polled};
use crate::ports::{ChatMessages, ChatMode, FeedChat, FeedUser, MessagesWanted};

impl Poller {
    /// One pass over the recent list: every Open Lines chat active since the previous pass (less
    /// the overlap) whose newest message is past its cursor has its newer messages read (all
    /// those chats in one batch) and judged. An idle pass costs one request.
    pub async fn pass(&self) -> Result<PassReport, PollError> {
        self.traverse(None).await
    }

    /// The start-up pass of a process that was down: a pass in which what was written, or
    /// admitted, at or before `down_until` (the moment the restarted process was listening again)
    /// is taken at once instead of after the grace period. Nothing written then can still be on its
    /// way: its event went to a process that no longer runs (Bitrix24 never resends), or was
    /// admitted by it and its job may have died with it. The local runner runs this before its
    /// workers start, so a chat's missed messages are queued before, and answered before, what its
    /// customer writes next.
    pub async fn catch_up(&self, down_until: DateTime<Utc>) -> Result<PassReport, PollError> {
        self.traverse(Some(down_until)).await
    }

    async fn traverse(&self, down_until: Option<DateTime<Utc>>) -> Result<PassReport, PollError> {
        let started = self.deps.clock.now();
        let mut report = PassReport::default();
        // Kept at the very first attempt, even one that cannot go on, so what is written from
        // then on counts as after the first start.
        let first = self.first_start(started).await?;
        let Some(portal) = self.portal().await? else {
            report.skipped = Some("the portal's member id is not known yet (set B24_MEMBER_ID, or wait for the first event)");
            return Ok(report);
        };
        let overlap = chrono::Duration::from_std(self.settings.overlap).unwrap_or(chrono::Duration::zero());
        let since = self.previous_pass().await?.unwrap_or(first) - overlap;
        let chats = self.deps.feed.recent_chats(since, self.settings.max_chats).await?;
        let newest = chats.iter().filter_map(|c| c.last_message_id).map(MessageId::get).max().unwrap_or(0);
        let horizon = self.horizon(first, newest).await?;
        report.chats = chats.len();

        let mut wanted = Vec::new();
        let mut found: HashMap<_, (FeedChat, Option<u64>)> = HashMap::new();
        for chat in chats {
            let Some(last) = chat.last_message_id else { continue };
            let cursor = self.cursor(chat.chat_id).await?;
            let fresh = match cursor {
                Some(c) => last.get() > c,
                None => !horizon.before(last.get(), chat.last_activity.unwrap_or(started)),
            };
            if !fresh {
                continue;
            }
            if !self.ours(&chat).await? {
                // Not ours to answer (a human serves it): move past it without reading it.
                self.advance(chat.chat_id, last.get()).await?;
                continue;
            }
            wanted.push(MessagesWanted { chat: chat.chat_id, after: cursor.and_then(|c| MessageId::new(c).ok()) });
            found.insert(chat.chat_id, (chat, cursor));
        }
        if wanted.is_empty() {
            self.set_pass_started(started).await?;
            return Ok(report);
        }
        let results = self.deps.feed.messages(&wanted).await?;
        for (w, result) in wanted.iter().zip(results) {
            let Some((chat, cursor)) = found.get(&w.chat) else { continue };
            match result {
                Ok(messages) => {
                    report.read += 1;
                    self.chat_pass(&portal, chat, *cursor, messages, (horizon, down_until), &mut report).await?;
                }
                // One chat the portal would not read (access lost, say) does not stop the others;
                // its cursor stays, so it is tried again.
                Err(e) => {
                    report.unread += 1;
                    tracing::warn!(chat = %w.chat, code = %e.code, "cannot read a chat's messages; trying again next pass");
                }
            }
        }
        self.set_pass_started(started).await?;
        Ok(report)
    }

    /// Whether the policy looks at this chat now: reconciliation only at chats our bot serves and
    /// whose session is not with a human in our store.
    async fn ours(&self, chat: &FeedChat) -> Result<bool, PollError> {
        if !self.settings.policy.serves(chat.owner) {
            return Ok(false);
        }
        if let Policy::Reconcile { .. } = self.settings.policy {
            let session = crate::domain::parse::lines::SessionData::parse(&chat.entity_data_1).session_id;
            return Ok(matches!(self.deps.chats.mode(chat.chat_id, session).await?, ChatMode::Bot));
        }
        Ok(true)
    }

    /// Judges one chat's messages, oldest first, and moves its cursor past what was decided.
    async fn chat_pass(
        &self,
        portal: &PortalRef,
        chat: &FeedChat,
        cursor: Option<u64>,
        page: ChatMessages,
        (horizon, down_until): (Horizon, Option<DateTime<Utc>>),
        report: &mut PassReport,
    ) -> Result<(), PollError> {
        let users: HashMap<u64, &FeedUser> = page.users.iter().map(|u| (u.id, u)).collect();
        let mut to = None;
        for msg in &page.messages {
            let now = self.deps.clock.now();
            let sent_at = msg.sent_at.unwrap_or(now);
            if cursor.is_none() && horizon.before(msg.id.get(), sent_at) {
                to = Some(msg.id.get());
                continue;
            }
            let author = users.get(&msg.author_id);
            let polled = PolledMessage {
                message_id: msg.id.get(),
                chat_id: chat.chat_id.get(),
                author_id: msg.author_id,
                author_name: author.map_or("", |u| u.name.as_str()),
                author_connector: author.map(|u| u.connector),
                author_bot: author.is_some_and(|u| u.bot),
                text: &msg.text,
                sent_at,
                entity_id: &chat.entity_id,
                entity_data_1: &chat.entity_data_1,
                entity_data_2: &chat.entity_data_2,
            };
            let outcome = match from_polled(&polled, portal.clone(), self.settings.policy.source()) {
                Ok(m) => self.take(self.own(m), now, down_until).await?,
                Err(e) => {
                    tracing::warn!(chat = %chat.chat_id, message = %msg.id, error = %e, "a polled message could not be read; passed over");
                    Outcome::Skipped
                }
            };
            report.count(outcome);
            if outcome == Outcome::Wait {
                break;
            }
            to = Some(msg.id.get());
        }
        if let Some(to) = to {
            self.advance(chat.chat_id, to).await?;
        }
        Ok(())
    }
}
