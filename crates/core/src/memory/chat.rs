//! Chat modes and history in memory.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, lock};
use crate::domain::ids::{ChatId, Phone, SessionId};
use crate::ports::{ChatMode, ChatStore, HistoryTurn, StoreResult};

#[derive(Debug, Default)]
pub(super) struct State {
    /// Only human modes are stored: "nothing recorded" is `Bot`, so `set_bot` is a removal.
    pub(super) human: HashMap<(ChatId, Option<SessionId>), (String, DateTime<Utc>)>,
    /// Per chat, sorted by `at`; turns with the same `at` stay in append order.
    pub(super) history: HashMap<ChatId, Vec<HistoryTurn>>,
    /// Per phone, its chats and when each was last seen.
    pub(super) links: HashMap<Phone, HashMap<ChatId, DateTime<Utc>>>,
}

#[async_trait]
impl ChatStore for MemoryStore {
    async fn mode(&self, chat: ChatId, session: Option<SessionId>) -> StoreResult<ChatMode> {
        let state = lock(&self.chats);
        Ok(match state.human.get(&(chat, session)) {
            Some((rule, since)) => ChatMode::Human { rule: rule.clone(), since: *since },
            None => ChatMode::Bot,
        })
    }

    async fn set_human(&self, chat: ChatId, session: Option<SessionId>, rule: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let mut state = lock(&self.chats);
        state.human.entry((chat, session)).or_insert_with(|| (rule.to_owned(), now));
        Ok(())
    }

    async fn set_bot(&self, chat: ChatId, session: Option<SessionId>) -> StoreResult<()> {
        lock(&self.chats).human.remove(&(chat, session));
        Ok(())
    }

    async fn append_history(&self, chat: ChatId, turn: &HistoryTurn) -> StoreResult<()> {
        let mut state = lock(&self.chats);
        let turns = state.history.entry(chat).or_default();
        let at = turns.partition_point(|t| t.at <= turn.at);
        turns.insert(at, turn.clone());
        Ok(())
    }

    async fn history(&self, chat: ChatId, limit: usize) -> StoreResult<Vec<HistoryTurn>> {
        let state = lock(&self.chats);
        let turns = state.history.get(&chat).map(Vec::as_slice).unwrap_or_default();
        Ok(turns[turns.len().saturating_sub(limit)..].to_vec())
    }

    async fn purge_history_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let mut state = lock(&self.chats);
        let mut purged = 0;
        for turns in state.history.values_mut() {
            let before = turns.len();
            turns.retain(|t| t.at >= cutoff);
            purged += (before - turns.len()) as u64;
        }
        state.history.retain(|_, turns| !turns.is_empty());
        for chats in state.links.values_mut() {
            chats.retain(|_, seen| *seen >= cutoff);
        }
        state.links.retain(|_, chats| !chats.is_empty());
        Ok(purged)
    }

    async fn link_phone(&self, chat: ChatId, phone: &Phone, now: DateTime<Utc>) -> StoreResult<()> {
        lock(&self.chats).links.entry(phone.clone()).or_default().insert(chat, now);
        Ok(())
    }
}
