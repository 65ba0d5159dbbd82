//! `AnswerCache` and `UsageCounters` on the `answer_cache`, `answer_versions` and
//! `usage_counters` tables (schema version 4). Each call is one transaction; expired rows are
//! dropped by the writes themselves (an indexed delete that usually finds nothing), so neither
//! table grows past what is live.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use olbridge_core::ports::{AnswerCache, CacheLookup, CachedAnswer, StoreResult, Subject, UsageCounters};
use rusqlite::{OptionalExtension, params};

use super::{Fail, SqliteStore, immediate, ms, to_json};

/// The `subject` column: `phone:<phone>` or `chat:<id>` (privacy erases by it).
pub(super) fn subject_col(subject: &Subject) -> String {
    match subject {
        Subject::Phone(p) => format!("phone:{}", p.as_str()),
        Subject::Chat(c) => format!("chat:{}", c.get()),
    }
}

#[async_trait]
impl AnswerCache for SqliteStore {
    async fn lookup(&self, line: &str, key: &str, now: DateTime<Utc>) -> StoreResult<CacheLookup> {
        let (line, key) = (line.to_owned(), key.to_owned());
        self.run(move |c| {
            let tx = c.transaction()?;
            let kb_version: Option<String> = tx.query_row("SELECT version FROM answer_versions WHERE line = ?1", [&line], |r| r.get(0)).optional()?;
            let row: Option<(String, i64)> = tx
                .query_row("SELECT body, expires_at FROM answer_cache WHERE line = ?1 AND key = ?2", [&line, &key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let answer = match row {
                Some((body, until)) if until > ms(now) => {
                    let answer: CachedAnswer = serde_json::from_str(&body)?;
                    (answer.kb_version == kb_version).then_some(answer)
                }
                _ => None,
            };
            Ok(CacheLookup { answer, kb_version })
        })
        .await
    }

    async fn set_version(&self, line: &str, version: &str) -> StoreResult<()> {
        let (line, version) = (line.to_owned(), version.to_owned());
        self.run(move |c| {
            c.execute(
                "INSERT INTO answer_versions (line, version) VALUES (?1, ?2) ON CONFLICT (line) DO UPDATE SET version = excluded.version",
                [line, version],
            )?;
            Ok(())
        })
        .await
    }

    async fn store(&self, line: &str, key: &str, answer: &CachedAnswer, now: DateTime<Utc>, expires_at: DateTime<Utc>) -> StoreResult<()> {
        let (line, key, body) = (line.to_owned(), key.to_owned(), to_json(answer)?);
        let now = ms(now);
        self.run(move |c| {
            let tx = immediate(c)?;
            tx.execute("DELETE FROM answer_cache WHERE expires_at <= ?1", [now])?;
            tx.execute(
                "INSERT INTO answer_cache (line, key, body, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (line, key) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at",
                params![line, key, body, ms(expires_at)],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

fn count_of(v: i64) -> Result<u64, Fail> {
    u64::try_from(v).map_err(|_| Fail::Corrupt(format!("usage count {v}")))
}

#[async_trait]
impl UsageCounters for SqliteStore {
    async fn add(&self, subject: &Subject, name: &str, token: &str, amount: u64, now: DateTime<Utc>, expires_at: DateTime<Utc>) -> StoreResult<u64> {
        let (subject, name, token) = (subject_col(subject), name.to_owned(), token.to_owned());
        let amount = i64::try_from(amount).unwrap_or(i64::MAX);
        let now = ms(now);
        self.run(move |c| {
            let tx = immediate(c)?;
            tx.execute("DELETE FROM usage_counters WHERE expires_at <= ?1", [now])?;
            tx.execute(
                "INSERT INTO usage_counters (subject, name, count, last_token, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (subject, name) DO UPDATE SET count = count + excluded.count, last_token = excluded.last_token,
                     expires_at = excluded.expires_at
                 WHERE last_token <> excluded.last_token",
                params![subject, name, amount, token, ms(expires_at)],
            )?;
            let count: i64 = tx.query_row("SELECT count FROM usage_counters WHERE subject = ?1 AND name = ?2", [&subject, &name], |r| r.get(0))?;
            tx.commit()?;
            count_of(count)
        })
        .await
    }

    async fn count(&self, subject: &Subject, name: &str) -> StoreResult<u64> {
        let (subject, name) = (subject_col(subject), name.to_owned());
        self.run(move |c| {
            let count: Option<i64> =
                c.query_row("SELECT count FROM usage_counters WHERE subject = ?1 AND name = ?2", [subject, name], |r| r.get(0)).optional()?;
            count_of(count.unwrap_or(0))
        })
        .await
    }
}
