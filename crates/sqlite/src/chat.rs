//! `ChatStore` on the `chat_modes` and `history` tables.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use olbridge_core::domain::ids::{ChatId, Phone, SessionId};
use olbridge_core::ports::{ChatMode, ChatStore, HistoryTurn, StoreResult};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, from_ms, ms};

/// A chat id as stored. Ids are only compared for equality, so the bit-preserving cast keeps the
/// (theoretical) ids above `i64::MAX` distinct.
pub(super) fn chat_col(chat: ChatId) -> i64 {
    chat.get() as i64
}

/// A session as stored: `None` is 0, which no real session id is.
fn session_col(session: Option<SessionId>) -> i64 {
    session.map_or(0, |s| s.get() as i64)
}

#[async_trait]
impl ChatStore for SqliteStore {
    async fn mode(&self, chat: ChatId, session: Option<SessionId>) -> StoreResult<ChatMode> {
        let (chat, session) = (chat_col(chat), session_col(session));
        self.run(move |c| {
            let row: Option<(String, i64)> = c
                .query_row("SELECT rule, since FROM chat_modes WHERE chat = ?1 AND session = ?2", [chat, session], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            Ok(match row {
                Some((rule, since)) => ChatMode::Human { rule, since: from_ms(since)? },
                None => ChatMode::Bot,
            })
        })
        .await
    }

    async fn set_human(&self, chat: ChatId, session: Option<SessionId>, rule: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let (chat, session, rule, now) = (chat_col(chat), session_col(session), rule.to_owned(), ms(now));
        self.run(move |c| {
            // The first rule and time win: an existing row is left alone.
            c.execute("INSERT INTO chat_modes (chat, session, rule, since) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING", params![chat, session, rule, now])?;
            Ok(())
        })
        .await
    }

    async fn set_bot(&self, chat: ChatId, session: Option<SessionId>) -> StoreResult<()> {
        let (chat, session) = (chat_col(chat), session_col(session));
        self.run(move |c| {
            c.execute("DELETE FROM chat_modes WHERE chat = ?1 AND session = ?2", [chat, session])?;
            Ok(())
        })
        .await
    }

    async fn append_history(&self, chat: ChatId, turn: &HistoryTurn) -> StoreResult<()> {
        let (chat, at, role, text) = (chat_col(chat), ms(turn.at), turn.role.clone(), turn.text.clone());
        self.run(move |c| {
            c.execute("INSERT INTO history (chat, at, role, text) VALUES (?1, ?2, ?3, ?4)", params![chat, at, role, text])?;
            Ok(())
        })
        .await
    }

    async fn history(&self, chat: ChatId, limit: usize) -> StoreResult<Vec<HistoryTurn>> {
        let (chat, limit) = (chat_col(chat), i64::try_from(limit).unwrap_or(i64::MAX));
        self.run(move |c| {
            let mut stmt = c.prepare_cached("SELECT at, role, text FROM history WHERE chat = ?1 ORDER BY at DESC, id DESC LIMIT ?2")?;
            let rows = stmt.query_map([chat, limit], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))?;
            let mut turns = Vec::new();
            for row in rows {
                let (at, role, text) = row?;
                turns.push(HistoryTurn { role, text, at: from_ms(at)? });
            }
            turns.reverse();
            Ok(turns)
        })
        .await
    }

    async fn purge_history_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let cutoff = ms(cutoff);
        self.run(move |c| {
            let tx = super::immediate(c)?;
            let n = tx.execute("DELETE FROM history WHERE at < ?1", [cutoff])? as u64;
            tx.execute("DELETE FROM phone_chats WHERE seen_at < ?1", [cutoff])?;
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    async fn link_phone(&self, chat: ChatId, phone: &Phone, now: DateTime<Utc>) -> StoreResult<()> {
        let (chat, phone, now) = (chat_col(chat), phone.as_str().to_owned(), ms(now));
        self.run(move |c| {
            c.execute(
                "INSERT INTO phone_chats (phone, chat, seen_at) VALUES (?1, ?2, ?3) ON CONFLICT DO UPDATE SET seen_at = MAX(seen_at, excluded.seen_at)",
                params![phone, chat, now],
            )?;
            Ok(())
        })
        .await
    }
}
