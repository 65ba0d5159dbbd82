//! [`MemoryOutbox`]: the timeline outbox in memory, the reference semantics of
//! [`TimelineOutbox`] (the SQLite adapter must agree with it).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ports::{PendingComment, StoreResult, TimelineLine, TimelineOutbox};

#[derive(Debug, Default)]
struct Comment {
    due_at: Option<DateTime<Utc>>,
    attempts: u32,
    /// (id, turn key, line).
    lines: Vec<(i64, String, TimelineLine)>,
}

#[derive(Debug, Default)]
struct State {
    next_id: i64,
    comments: BTreeMap<String, Comment>,
}

/// The timeline outbox in memory.
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    state: Mutex<State>,
}

impl MemoryOutbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl TimelineOutbox for MemoryOutbox {
    async fn append(&self, line: &TimelineLine, due_at: DateTime<Utc>) -> StoreResult<()> {
        let mut s = self.lock();
        s.next_id += 1;
        let id = s.next_id;
        let c = s.comments.entry(line.comment_key.clone()).or_default();
        if c.lines.iter().any(|(_, k, _)| *k == line.turn_key) {
            return Ok(());
        }
        c.lines.push((id, line.turn_key.clone(), line.clone()));
        // A comment already due (a handoff flushed it) or waiting out a failure keeps its time;
        // otherwise the new line sets it (in `session` mode, the quiet period starts again).
        let already_due = c.due_at.is_some_and(|d| d <= line.at);
        if c.due_at.is_none() || (c.attempts == 0 && !already_due) {
            c.due_at = Some(due_at);
        }
        Ok(())
    }

    async fn due(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<Vec<PendingComment>> {
        let s = self.lock();
        let mut due: Vec<(DateTime<Utc>, PendingComment)> = s
            .comments
            .iter()
            .filter(|(_, c)| !c.lines.is_empty() && c.due_at.is_some_and(|d| d <= now))
            .filter_map(|(k, c)| {
                let first = c.lines.first()?;
                Some((
                    c.due_at?,
                    PendingComment {
                        comment_key: k.clone(),
                        entity: first.2.entity.clone(),
                        lines: c.lines.iter().map(|(id, _, l)| (*id, l.text.clone())).collect(),
                        attempts: c.attempts,
                    },
                ))
            })
            .collect();
        due.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.comment_key.cmp(&b.1.comment_key)));
        Ok(due.into_iter().take(limit).map(|(_, c)| c).collect())
    }

    async fn written(&self, comment_key: &str, line_ids: &[i64]) -> StoreResult<()> {
        let mut s = self.lock();
        if let Some(c) = s.comments.get_mut(comment_key) {
            c.lines.retain(|(id, _, _)| !line_ids.contains(id));
            c.attempts = 0;
            if c.lines.is_empty() {
                s.comments.remove(comment_key);
            }
        }
        Ok(())
    }

    async fn failed(&self, comment_key: &str, retry_at: DateTime<Utc>, _error: &str) -> StoreResult<()> {
        let mut s = self.lock();
        if let Some(c) = s.comments.get_mut(comment_key) {
            c.attempts += 1;
            c.due_at = Some(retry_at);
        }
        Ok(())
    }

    async fn pending(&self) -> StoreResult<u64> {
        Ok(self.lock().comments.values().map(|c| c.lines.len() as u64).sum())
    }
}
