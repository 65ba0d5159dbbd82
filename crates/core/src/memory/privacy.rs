//! Export and erase of a phone's records in memory: the reference semantics of
//! [`Privacy`](crate::ports::Privacy).

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::{MemoryStore, lock};
use crate::domain::event::PortalEvent;
use crate::domain::ids::{ChatId, DedupKey, Phone};
use crate::ports::{ChatData, Erased, PhoneData, Privacy, RecordPhase, StoreResult, StoredClaim, StoredJob, carries_phone, dialog_of};

/// What a phone reaches, found under the locks one after the other.
struct Found {
    data: PhoneData,
    job_seqs: Vec<u64>,
    claim_keys: Vec<DedupKey>,
}

impl MemoryStore {
    fn find(&self, phone: &Phone) -> Found {
        let profile = lock(&self.profiles).get(phone).cloned();
        let mut chats: BTreeSet<ChatId> = BTreeSet::new();
        let (mut jobs, mut job_seqs) = (Vec::new(), Vec::new());
        for (seq, entry) in &lock(&self.queue).jobs {
            if serde_json::to_string(&entry.job).is_ok_and(|j| carries_phone(&j, phone)) {
                if let PortalEvent::Message(m) = &entry.job.event {
                    chats.insert(m.chat_id);
                }
                jobs.push(StoredJob { job: entry.job.clone(), dead_reason: entry.dead.as_ref().map(|(r, _)| r.clone()) });
                job_seqs.push(*seq);
            }
        }
        let (mut claims, mut claim_keys) = (Vec::new(), Vec::new());
        for (key, record) in lock(&self.idempotency).iter() {
            let outcome = match &record.phase {
                RecordPhase::Done { outcome, .. } => Some(outcome.clone()),
                _ => None,
            };
            let stored = serde_json::to_string(&(&record.progress, &outcome)).unwrap_or_default();
            if carries_phone(&stored, phone) {
                chats.extend(record.progress.iter().flat_map(|p| p.merged.iter().chain(p.head.as_deref()).map(|m| m.chat_id)));
                claims.push(StoredClaim { key: key.clone(), progress: record.progress.clone(), outcome });
                claim_keys.push(key.clone());
            }
        }
        claims.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        let state = lock(&self.chats);
        chats.extend(state.links.get(phone).into_iter().flat_map(|c| c.keys().copied()));
        let chat_data = chats.iter().map(|c| ChatData { chat: *c, history: state.history.get(c).cloned().unwrap_or_default() }).collect();
        drop(state);
        let dialogs: BTreeSet<String> = chats.iter().map(|c| dialog_of(*c)).collect();
        let mut turns: Vec<_> = lock(&self.log).iter().filter(|r| dialogs.contains(&r.dialog)).cloned().collect();
        turns.sort_by_key(|r| r.timings.finished_at);
        Found { data: PhoneData { phone: phone.clone(), profile, chats: chat_data, turns, jobs, claims }, job_seqs, claim_keys }
    }
}

#[async_trait]
impl Privacy for MemoryStore {
    async fn export(&self, phone: &Phone) -> StoreResult<PhoneData> {
        Ok(self.find(phone).data)
    }

    async fn erase(&self, phone: &Phone) -> StoreResult<Erased> {
        let found = self.find(phone);
        let mut erased = Erased { profiles: u64::from(lock(&self.profiles).remove(phone).is_some()), ..Erased::default() };
        lock(&self.counters).retain(|(subject, _), _| match subject {
            crate::ports::Subject::Phone(p) => p != phone,
            crate::ports::Subject::Chat(chat) => !found.data.chats.iter().any(|c| c.chat == *chat),
        });
        {
            let mut queue = lock(&self.queue);
            for seq in &found.job_seqs {
                erased.jobs += u64::from(queue.jobs.remove(seq).is_some());
            }
        }
        {
            let mut claims = lock(&self.idempotency);
            for key in &found.claim_keys {
                erased.claims += u64::from(claims.remove(key).is_some());
            }
        }
        {
            let mut state = lock(&self.chats);
            state.links.remove(phone);
            for c in &found.data.chats {
                erased.history += state.history.remove(&c.chat).map_or(0, |h| h.len() as u64);
                state.human.retain(|(chat, _), _| *chat != c.chat);
                for chats in state.links.values_mut() {
                    chats.remove(&c.chat);
                }
                erased.chats += 1;
            }
        }
        let dialogs: BTreeSet<String> = found.data.chats.iter().map(|c| dialog_of(c.chat)).collect();
        let mut log = lock(&self.log);
        let before = log.len();
        log.retain(|r| !dialogs.contains(&r.dialog));
        erased.turns = (before - log.len()) as u64;
        Ok(erased)
    }
}
