//! The customer's rights over what the bridge stores: export everything about one phone number,
//! and erase it.
//!
//! What "about a phone" means is the same for every adapter:
//! - its **profile** (keyed by the phone);
//! - the **chats** linked to it ([`ChatStore::link_phone`](super::ChatStore::link_phone), written
//!   on every turn whose message carries the phone) and, for each, its **history** and chat modes;
//! - the **turn log** records of those chats (their `dialog` is `chat<N>`);
//! - **jobs** (queued, leased or dead-lettered) and **idempotency records** whose stored JSON
//!   carries the phone's digits (a message's Open Lines context, a merged burst in a checkpoint,
//!   a bot's profile patch). The chats those name are linked too, so history is reached even for
//!   a chat whose link was never written (a turn still queued).
//!
//! The match on stored JSON is by the phone's digits without the `+`, because connectors put the
//! number without it in the user code (`whatsappbyedna|3|917704090366|…`). A number that
//! happens to be a substring of another stored number (7 digits inside 15) also matches: erase
//! errs on the side of removing too much.
//!
//! Erasing a done idempotency record forgets that its message was answered: were Bitrix24 to
//! deliver that very message again, it would be answered again. Erasing a queued job drops that
//! message unanswered. Both are what the customer asked for.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{HistoryTurn, StoreResult};
use crate::domain::event::Job;
use crate::domain::ids::{ChatId, DedupKey, Phone};
use crate::domain::profile::Profile;
use crate::domain::turn::{TurnOutcome, TurnProgress, TurnRecord};

/// A chat linked to the phone, with what is stored about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatData {
    /// The chat.
    pub chat: ChatId,
    /// Its stored history, oldest first.
    pub history: Vec<HistoryTurn>,
}

/// A stored job that carries the phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredJob {
    /// The job.
    pub job: Job,
    /// Why it was dead-lettered, when it was.
    pub dead_reason: Option<String>,
}

/// An idempotency record that carries the phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredClaim {
    /// The de-duplication key.
    pub key: DedupKey,
    /// The turn's checkpoint, if one is stored.
    pub progress: Option<TurnProgress>,
    /// The outcome, once done.
    pub outcome: Option<TurnOutcome>,
}

/// Everything stored about one phone number (`olbridge privacy export`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhoneData {
    /// The phone.
    pub phone: Phone,
    /// Its profile.
    pub profile: Option<Profile>,
    /// The chats linked to it, with their history.
    pub chats: Vec<ChatData>,
    /// Turn log records of those chats, oldest first.
    pub turns: Vec<TurnRecord>,
    /// Jobs that carry the phone (always empty on DynamoDB: the AWS queue is SQS, see
    /// `docs/privacy.md`).
    pub jobs: Vec<StoredJob>,
    /// Idempotency records that carry the phone.
    pub claims: Vec<StoredClaim>,
}

impl PhoneData {
    /// Nothing stored.
    pub fn is_empty(&self) -> bool {
        self.profile.is_none() && self.chats.is_empty() && self.turns.is_empty() && self.jobs.is_empty() && self.claims.is_empty()
    }
}

/// What an erase removed (`olbridge privacy erase`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    /// Profiles (0 or 1).
    pub profiles: u64,
    /// Chats whose history, modes and link were removed.
    pub chats: u64,
    /// History turns.
    pub history: u64,
    /// Turn log records.
    pub turns: u64,
    /// Jobs, queued or dead-lettered.
    pub jobs: u64,
    /// Idempotency records.
    pub claims: u64,
}

/// Export and erase of everything stored about a phone. Each adapter implements it over its
/// own records, with the same meaning (module docs); the contract is `crate::contract::privacy`.
#[async_trait]
pub trait Privacy: Send + Sync {
    /// Everything stored about `phone`.
    async fn export(&self, phone: &Phone) -> StoreResult<PhoneData>;

    /// Removes everything [`export`](Privacy::export) would return, and the links; afterwards
    /// `export` is empty. Not atomic across record kinds (DynamoDB cannot be); running it again
    /// finishes an interrupted erase.
    async fn erase(&self, phone: &Phone) -> StoreResult<Erased>;
}

/// Whether stored JSON (or text) carries `phone`: its digits, with or without the `+`.
pub fn carries_phone(stored: &str, phone: &Phone) -> bool {
    stored.contains(phone_digits(phone))
}

/// The phone's digits, without the `+`.
pub fn phone_digits(phone: &Phone) -> &str {
    phone.as_str().trim_start_matches('+')
}

/// The `dialog` of a chat's turn log records (`chat<N>`).
pub fn dialog_of(chat: ChatId) -> String {
    format!("chat{}", chat.get())
}
