//! `TimelineOutbox` on `crm_comments` and `crm_lines`: each step is one transaction, so a
//! `SIGKILL` loses no line and a restarted bridge writes what was waiting.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use olbridge_core::domain::message::CrmBinding;
use olbridge_core::ports::{PendingComment, StoreResult, TimelineLine, TimelineOutbox};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, immediate, ms};

#[async_trait]
impl TimelineOutbox for SqliteStore {
    async fn append(&self, line: &TimelineLine, due_at: DateTime<Utc>) -> StoreResult<()> {
        let line = line.clone();
        let (due, at) = (ms(due_at), ms(line.at));
        let entity_id = i64::try_from(line.entity.entity_id).unwrap_or(i64::MAX);
        self.run(move |c| {
            let tx = immediate(c)?;
            let added = tx.execute(
                "INSERT INTO crm_lines (comment_key, turn_key, text, at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![line.comment_key, line.turn_key, line.text, at],
            )?;
            if added == 1 {
                let current: Option<(i64, i64)> = tx
                    .query_row("SELECT due_at, attempts FROM crm_comments WHERE comment_key = ?1", [&line.comment_key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                match current {
                    None => {
                        tx.execute(
                            "INSERT INTO crm_comments (comment_key, entity_type, entity_id, due_at) VALUES (?1, ?2, ?3, ?4)",
                            params![line.comment_key, line.entity.entity_type, entity_id, due],
                        )?;
                    }
                    // Waiting out a failure, or already due (a handoff flushed it): keep its time.
                    Some((current_due, attempts)) if attempts > 0 || current_due <= at => {}
                    Some(_) => {
                        tx.execute("UPDATE crm_comments SET due_at = ?2 WHERE comment_key = ?1", params![line.comment_key, due])?;
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn due(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<PendingComment>> {
        let (now, limit) = (ms(now), i64::try_from(limit).unwrap_or(i64::MAX));
        self.run(move |c| {
            let tx = c.transaction()?;
            let comments: Vec<(String, String, i64, i64)> = tx
                .prepare_cached(
                    "SELECT comment_key, entity_type, entity_id, attempts FROM crm_comments WHERE due_at <= ?1 ORDER BY due_at, comment_key LIMIT ?2",
                )?
                .query_map(params![now, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            for (comment_key, entity_type, entity_id, attempts) in comments {
                let lines: Vec<(i64, String)> = tx
                    .prepare_cached("SELECT id, text FROM crm_lines WHERE comment_key = ?1 ORDER BY id")?
                    .query_map([&comment_key], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                if lines.is_empty() {
                    continue;
                }
                let entity = CrmBinding { entity_type, entity_id: u64::try_from(entity_id).unwrap_or(0) };
                out.push(PendingComment { comment_key, entity, lines, attempts: u32::try_from(attempts).unwrap_or(u32::MAX) });
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn written(&self, comment_key: &str, line_ids: &[i64]) -> StoreResult<()> {
        let (key, ids) = (comment_key.to_owned(), line_ids.to_vec());
        self.run(move |c| {
            let tx = immediate(c)?;
            for id in ids {
                tx.execute("DELETE FROM crm_lines WHERE id = ?1 AND comment_key = ?2", params![id, key])?;
            }
            let left: i64 = tx.query_row("SELECT COUNT(*) FROM crm_lines WHERE comment_key = ?1", [&key], |r| r.get(0))?;
            if left == 0 {
                tx.execute("DELETE FROM crm_comments WHERE comment_key = ?1", [&key])?;
            } else {
                tx.execute("UPDATE crm_comments SET attempts = 0, last_error = NULL WHERE comment_key = ?1", [&key])?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn failed(&self, comment_key: &str, retry_at: DateTime<Utc>, error: &str) -> StoreResult<()> {
        let (key, retry, error) = (comment_key.to_owned(), ms(retry_at), error.to_owned());
        self.run(move |c| {
            c.execute("UPDATE crm_comments SET attempts = attempts + 1, due_at = ?2, last_error = ?3 WHERE comment_key = ?1", params![key, retry, error])?;
            Ok(())
        })
        .await
    }

    async fn pending(&self) -> StoreResult<u64> {
        self.run(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM crm_lines", [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}
