//! `ChatStore`: a chat's modes and history share its partition (`pk = chat#<id>`): modes at
//! `sk = mode#<session or 0>` (only human modes are stored: no item means the bot serves the chat),
//! history turns at `sk = hist#<at ms>#<stamp>`, so one `Query` reads the last turns in order.
//! A chat's link to its customer's phone lives in the phone's partition (`privacy`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use olbridge_core::domain::ids::{ChatId, Phone, SessionId};
use olbridge_core::ports::{ChatMode, ChatStore, HistoryTurn, StoreResult};

use super::codec::{Fields, Item, expires, ms, n, names, s, sortable_ms, values};
use super::error::{backend, conditional};
use super::{DynamoStore, key, stamp};

pub(super) const PREFIX: &str = "chat#";
pub(super) const HISTORY: &str = "hist#";

pub(super) fn pk(chat: ChatId) -> String {
    format!("{PREFIX}{}", chat.get())
}

/// A session as stored: `None` is 0, which no real session id is.
fn mode_key(chat: ChatId, session: Option<SessionId>) -> Item {
    key(pk(chat), format!("mode#{}", session.map_or(0, SessionId::get)))
}

#[async_trait]
impl ChatStore for DynamoStore {
    async fn mode(&self, chat: ChatId, session: Option<SessionId>) -> StoreResult<ChatMode> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(mode_key(chat, session)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem (chat mode)", e))?;
        let Some(item) = out.item else { return Ok(ChatMode::Bot) };
        let what = format!("mode of chat {}", chat.get());
        let f = Fields::new(&item, &what);
        Ok(ChatMode::Human { rule: f.s("rule")?.to_owned(), since: f.time("since")? })
    }

    async fn set_human(&self, chat: ChatId, session: Option<SessionId>, rule: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let condition = "attribute_not_exists(#pk)";
        let mut item = mode_key(chat, session);
        item.extend([("rule".to_owned(), s(rule)), ("since".to_owned(), n(ms(now)))]);
        let sent = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .send()
            .await;
        // The first rule and time win: an existing item is left alone.
        conditional("PutItem (set human)", sent).map(|_| ())
    }

    async fn set_bot(&self, chat: ChatId, session: Option<SessionId>) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(mode_key(chat, session)))
            .send()
            .await
            .map_err(|e| backend("DeleteItem (set bot)", e))?;
        Ok(())
    }

    async fn append_history(&self, chat: ChatId, turn: &HistoryTurn) -> StoreResult<()> {
        let mut item = key(pk(chat), format!("{HISTORY}{}#{}", sortable_ms(turn.at), stamp()));
        item.extend([
            ("role".to_owned(), s(&turn.role)),
            ("text".to_owned(), s(&turn.text)),
            ("at".to_owned(), n(ms(turn.at))),
            ("expires_at".to_owned(), expires(turn.at, self.retention.history)),
        ]);
        self.client.put_item().table_name(self.table()).set_item(Some(item)).send().await.map_err(|e| backend("PutItem (history)", e))?;
        Ok(())
    }

    async fn history(&self, chat: ChatId, limit: usize) -> StoreResult<Vec<HistoryTurn>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let condition = "#pk = :pk AND begins_with(#sk, :hist)";
        let mut pages = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression(condition)
            .set_expression_attribute_names(names(&[condition]))
            .set_expression_attribute_values(values(&[condition], [(":pk", s(pk(chat))), (":hist", s(HISTORY))]))
            .scan_index_forward(false)
            .consistent_read(true)
            .into_paginator()
            .page_size(i32::try_from(limit).unwrap_or(i32::MAX))
            .items()
            .send();
        let what = format!("history of chat {}", chat.get());
        let mut turns = Vec::with_capacity(limit.min(100));
        while turns.len() < limit {
            let Some(item) = pages.next().await else { break };
            let item = item.map_err(|e| backend("Query (history)", e))?;
            let f = Fields::new(&item, &what);
            turns.push(HistoryTurn { role: f.s("role")?.to_owned(), text: f.s("text")?.to_owned(), at: f.time("at")? });
        }
        turns.reverse();
        Ok(turns)
    }

    async fn purge_history_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let purged = self
            .purge(
                "purge history",
                "begins_with(#pk, :prefix) AND begins_with(#sk, :hist)",
                "#at < :cutoff",
                [(":prefix", s(PREFIX)), (":hist", s(HISTORY)), (":cutoff", n(ms(cutoff)))],
            )
            .await?;
        // Links exist to find history: they go with it.
        self.purge(
            "purge phone links",
            "begins_with(#pk, :phone) AND begins_with(#sk, :chat)",
            "#seen_at < :cutoff",
            [(":phone", s(super::profile::PREFIX)), (":chat", s(PREFIX)), (":cutoff", n(ms(cutoff)))],
        )
        .await?;
        Ok(purged)
    }

    async fn link_phone(&self, chat: ChatId, phone: &Phone, now: DateTime<Utc>) -> StoreResult<()> {
        let mut item = super::privacy::link_key(phone, chat);
        item.extend([("seen_at".to_owned(), n(ms(now))), ("expires_at".to_owned(), expires(now, self.retention.history))]);
        self.client.put_item().table_name(self.table()).set_item(Some(item)).send().await.map_err(|e| backend("PutItem (phone link)", e))?;
        Ok(())
    }
}
