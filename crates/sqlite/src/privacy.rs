//! `Privacy` over every table: what carries a phone, exported and erased in one transaction.
//!
//! # Leaving no trace in the file
//! A `DELETE` only unlinks rows: their bytes stay in free pages and in the WAL until overwritten.
//! So an erase (1) deletes with `PRAGMA secure_delete = ON`, which zeroes the freed content,
//! (2) runs `VACUUM`, which rebuilds the database from live rows only (removing as well whatever
//! the bridge deleted earlier without zeroing, such as acknowledged jobs), and (3) runs
//! `PRAGMA wal_checkpoint(TRUNCATE)`, which copies the rebuilt pages into the database file and
//! truncates the WAL to zero bytes. The test `erase_leaves_no_trace_in_the_files` scans the
//! database, WAL and shared-memory files for the phone's digits afterwards. A running bridge
//! holding a read snapshot can keep the checkpoint from finishing: [`SqliteStore::erase_and_compact`]
//! then says so and the operator runs erase again (or stops the bridge first).

use std::collections::BTreeSet;

use async_trait::async_trait;
use olbridge_core::domain::event::{Job, PortalEvent};
use olbridge_core::domain::ids::{ChatId, DedupKey, Phone};
use olbridge_core::domain::profile::Profile;
use olbridge_core::domain::turn::{TurnOutcome, TurnProgress, TurnRecord};
use olbridge_core::ports::{ChatData, Erased, HistoryTurn, PhoneData, Privacy, StoreResult, StoredClaim, StoredJob, Subject, dialog_of, phone_digits};
use rusqlite::{Connection, OptionalExtension, params};

use super::chat::chat_col;
use super::{Fail, SqliteStore, from_ms};

/// What a phone reaches, with the row ids erase deletes.
struct Found {
    data: PhoneData,
    job_seqs: Vec<i64>,
}

/// Whether the last step of an erase, shrinking the files, finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compacted {
    /// `VACUUM` and a truncating WAL checkpoint ran: no deleted byte is left in the files.
    Yes,
    /// Another connection (a running bridge) kept the checkpoint from finishing: the deleted rows
    /// are gone from every query but old pages may linger in the WAL until the next checkpoint.
    Busy,
}

fn find(c: &Connection, phone: &Phone) -> Result<Found, Fail> {
    let digits = phone_digits(phone).to_owned();
    let profile: Option<Profile> = c
        .query_row("SELECT body FROM profiles WHERE phone = ?1", [phone.as_str()], |r| r.get::<_, String>(0))
        .optional()?
        .map(|b| serde_json::from_str(&b))
        .transpose()?;
    let mut chats: BTreeSet<ChatId> = BTreeSet::new();
    let (mut jobs, mut job_seqs) = (Vec::new(), Vec::new());
    let mut stmt = c.prepare("SELECT seq, payload, dead_reason FROM jobs WHERE instr(payload, ?1) > 0 ORDER BY seq")?;
    for row in stmt.query_map([&digits], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?)))? {
        let (seq, payload, dead_reason) = row?;
        let job: Job = serde_json::from_str(&payload)?;
        if let PortalEvent::Message(m) = &job.event {
            chats.insert(m.chat_id);
        }
        jobs.push(StoredJob { job, dead_reason });
        job_seqs.push(seq);
    }
    let mut claims = Vec::new();
    let mut stmt = c.prepare(
        "SELECT key, progress, outcome FROM claims WHERE instr(COALESCE(progress, ''), ?1) > 0 OR instr(COALESCE(outcome, ''), ?1) > 0 ORDER BY key",
    )?;
    for row in stmt.query_map([&digits], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, Option<String>>(2)?)))? {
        let (key, progress, outcome) = row?;
        let progress = progress.map(|p| serde_json::from_str::<TurnProgress>(&p)).transpose()?;
        let outcome = outcome.map(|o| serde_json::from_str::<TurnOutcome>(&o)).transpose()?;
        chats.extend(progress.iter().flat_map(|p| p.merged.iter().chain(p.head.as_deref()).map(|m| m.chat_id)));
        claims.push(StoredClaim { key: DedupKey::from_stored(key), progress, outcome });
    }
    let mut stmt = c.prepare("SELECT chat FROM phone_chats WHERE phone = ?1")?;
    for chat in stmt.query_map([phone.as_str()], |r| r.get::<_, i64>(0))? {
        // Stored from a ChatId (bit-preserving cast), so it converts back.
        chats.extend(ChatId::new(chat? as u64).ok());
    }
    let mut chat_data = Vec::with_capacity(chats.len());
    let mut turns = Vec::new();
    let mut history = c.prepare("SELECT at, role, text FROM history WHERE chat = ?1 ORDER BY at, id")?;
    let mut log = c.prepare("SELECT body FROM turns WHERE json_extract(body, '$.dialog') = ?1 ORDER BY finished_at, id")?;
    for chat in chats {
        let mut turns_of_chat = Vec::new();
        for row in history.query_map([chat_col(chat)], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))? {
            let (at, role, text) = row?;
            turns_of_chat.push(HistoryTurn { role, text, at: from_ms(at)? });
        }
        chat_data.push(ChatData { chat, history: turns_of_chat });
        for body in log.query_map([dialog_of(chat)], |r| r.get::<_, String>(0))? {
            turns.push(serde_json::from_str::<TurnRecord>(&body?)?);
        }
    }
    turns.sort_by_key(|r| r.timings.finished_at);
    Ok(Found { data: PhoneData { phone: phone.clone(), profile, chats: chat_data, turns, jobs, claims }, job_seqs })
}

#[async_trait]
impl Privacy for SqliteStore {
    async fn export(&self, phone: &Phone) -> StoreResult<PhoneData> {
        let phone = phone.clone();
        self.run(move |c| {
            // One read transaction: a consistent snapshot of every table.
            let tx = c.transaction()?;
            Ok(find(&tx, &phone)?.data)
        })
        .await
    }

    async fn erase(&self, phone: &Phone) -> StoreResult<Erased> {
        let phone = phone.clone();
        self.run(move |c| {
            c.pragma_update(None, "secure_delete", "ON")?;
            let tx = super::immediate(c)?;
            let found = find(&tx, &phone)?;
            let mut erased = Erased { profiles: tx.execute("DELETE FROM profiles WHERE phone = ?1", [phone.as_str()])? as u64, ..Erased::default() };
            for seq in &found.job_seqs {
                erased.jobs += tx.execute("DELETE FROM jobs WHERE seq = ?1", [seq])? as u64;
            }
            for claim in &found.data.claims {
                erased.claims += tx.execute("DELETE FROM claims WHERE key = ?1", [claim.key.as_str()])? as u64;
            }
            tx.execute("DELETE FROM phone_chats WHERE phone = ?1", [phone.as_str()])?;
            tx.execute("DELETE FROM usage_counters WHERE subject = ?1", [super::cost::subject_col(&Subject::Phone(phone.clone()))])?;
            for chat in &found.data.chats {
                let col = chat_col(chat.chat);
                erased.history += tx.execute("DELETE FROM history WHERE chat = ?1", [col])? as u64;
                tx.execute("DELETE FROM chat_modes WHERE chat = ?1", [col])?;
                tx.execute("DELETE FROM usage_counters WHERE subject = ?1", [super::cost::subject_col(&Subject::Chat(chat.chat))])?;
                tx.execute("DELETE FROM phone_chats WHERE chat = ?1", [col])?;
                erased.turns += tx.execute("DELETE FROM turns WHERE json_extract(body, '$.dialog') = ?1", params![dialog_of(chat.chat)])? as u64;
                erased.chats += 1;
            }
            tx.commit()?;
            Ok(erased)
        })
        .await
    }
}

impl SqliteStore {
    /// [`Privacy::erase`], then `VACUUM` and a truncating WAL checkpoint so no deleted byte stays
    /// in the files (module docs). What the admin CLI runs.
    pub async fn erase_and_compact(&self, phone: &Phone) -> StoreResult<(Erased, Compacted)> {
        let erased = self.erase(phone).await?;
        let compacted = self
            .run(|c| {
                c.execute_batch("VACUUM")?;
                let busy: i64 = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
                Ok(if busy == 0 { Compacted::Yes } else { Compacted::Busy })
            })
            .await?;
        Ok((erased, compacted))
    }
}
