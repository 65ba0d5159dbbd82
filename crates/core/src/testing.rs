//! Fakes of the non-storage ports, for unit tests of the use cases (feature `test-util`).
//!
//! They speak the ports' protocol in process: [`FakePortal`] keeps the chat's messages so a post
//! can be read back (`messages_after`), and both fakes take a script of failures, so `process` can
//! be driven through every path without an emulator. End-to-end behaviour is still proved against
//! the emulator; these are for the decision logic.

// Test code: a poisoned lock is a failed test.
#![allow(clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::ids::{ChatId, DedupKey, DialogId, MessageId};
use crate::ports::{Bot, BotAnswer, BotError, BotRequest, Portal, PortalError, PortalErrorKind, PortalMessage, Transfer};

/// A portal that records what the worker did.
#[derive(Debug)]
pub struct FakePortal {
    author: u64,
    state: Mutex<PortalState>,
}

#[derive(Debug, Default)]
struct PortalState {
    next_id: u64,
    posts: Vec<(DialogId, MessageId, String)>,
    transfers: Vec<ChatId>,
    typing: u32,
    /// Scripted failures per method (`post_reply`, `transfer`, `messages_after`), used in order.
    failures: HashMap<&'static str, VecDeque<PortalError>>,
    /// Posts that fail *after* being applied (the answer was lost).
    lost_answers: u32,
    /// The posts that carried a keyboard.
    keyboards: Vec<MessageId>,
}

impl FakePortal {
    /// A portal where our replies are posted as user `author`.
    pub fn new(author: u64) -> Self {
        Self { author, state: Mutex::new(PortalState { next_id: 1000, ..PortalState::default() }) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PortalState> {
        self.state.lock().expect("fake portal lock")
    }

    /// The next call of `method` fails with an error of `kind` and `code`.
    pub fn fail(&self, method: &'static str, kind: PortalErrorKind, code: &str) {
        let e = PortalError { kind, method: method.into(), code: code.into(), description: format!("scripted {code}") };
        self.state().failures.entry(method).or_default().push_back(e);
    }

    /// The next post is applied but its answer is lost (a timeout after the portal took it).
    pub fn lose_next_answer(&self) {
        self.state().lost_answers += 1;
    }

    /// Texts posted, in order.
    pub fn posts(&self) -> Vec<String> {
        self.state().posts.iter().map(|(_, _, t)| t.clone()).collect()
    }

    /// The ids of the posts that carried a keyboard, in order.
    pub fn keyboards(&self) -> Vec<MessageId> {
        self.state().keyboards.clone()
    }

    /// Chats transferred to an operator, in order.
    pub fn transfers(&self) -> Vec<ChatId> {
        self.state().transfers.clone()
    }

    fn scripted(&self, method: &'static str) -> Result<(), PortalError> {
        match self.state().failures.get_mut(method).and_then(VecDeque::pop_front) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Portal for FakePortal {
    async fn post_reply(&self, dialog: DialogId, text: &str) -> Result<MessageId, PortalError> {
        self.scripted("post_reply")?;
        let mut s = self.state();
        s.next_id += 1;
        let id = MessageId::new(s.next_id).expect("positive id");
        s.posts.push((dialog, id, text.to_owned()));
        if s.lost_answers > 0 {
            s.lost_answers -= 1;
            return Err(PortalError {
                kind: PortalErrorKind::Retryable,
                method: "post_reply".into(),
                code: "TIMEOUT".into(),
                description: "answer lost".into(),
            });
        }
        Ok(id)
    }

    async fn post_with_keyboard(&self, dialog: DialogId, text: &str, _keyboard: &serde_json::Value) -> Result<MessageId, PortalError> {
        let id = self.post_reply(dialog, text).await?;
        self.state().keyboards.push(id);
        Ok(id)
    }

    async fn typing(&self, _dialog: DialogId) -> Result<bool, PortalError> {
        self.state().typing += 1;
        Ok(true)
    }

    async fn transfer_to_operator(&self, chat: ChatId) -> Result<Transfer, PortalError> {
        self.scripted("transfer")?;
        let mut s = self.state();
        let again = s.transfers.contains(&chat);
        s.transfers.push(chat);
        Ok(if again { Transfer::AlreadyHuman } else { Transfer::Done })
    }

    async fn messages_after(&self, dialog: DialogId, after: MessageId) -> Result<Vec<PortalMessage>, PortalError> {
        self.scripted("messages_after")?;
        Ok(self
            .state()
            .posts
            .iter()
            .filter(|(d, id, _)| *d == dialog && *id > after)
            .map(|(_, id, text)| PortalMessage { id: *id, author_id: self.author, text: text.clone() })
            .collect())
    }

    fn author_id(&self) -> u64 {
        self.author
    }
}

/// How the fake bot answers one call.
#[derive(Debug, Clone)]
pub enum BotScript {
    /// `echo: <text>`.
    Echo,
    /// This answer.
    Answer(BotAnswer),
    /// This failure.
    Fail(BotError),
}

/// A bot that answers from a script (then echoes) and records every request.
#[derive(Debug, Default)]
pub struct FakeBot {
    state: Mutex<BotState>,
}

#[derive(Debug, Default)]
struct BotState {
    script: VecDeque<BotScript>,
    requests: Vec<(BotRequest, DedupKey, Duration)>,
}

impl FakeBot {
    /// A bot that echoes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues answers for the next calls.
    pub fn script(&self, answers: impl IntoIterator<Item = BotScript>) {
        self.state.lock().expect("fake bot lock").script.extend(answers);
    }

    /// The texts it was asked, in order.
    pub fn texts(&self) -> Vec<String> {
        self.state.lock().expect("fake bot lock").requests.iter().map(|(r, _, _)| r.text.clone()).collect()
    }

    /// The timeouts it was called with, in order.
    pub fn timeouts(&self) -> Vec<Duration> {
        self.state.lock().expect("fake bot lock").requests.iter().map(|(_, _, t)| *t).collect()
    }
}

#[async_trait]
impl Bot for FakeBot {
    async fn ask(&self, request: &BotRequest, idempotency_key: &DedupKey, timeout: Duration) -> Result<BotAnswer, BotError> {
        let mut s = self.state.lock().expect("fake bot lock");
        s.requests.push((request.clone(), idempotency_key.clone(), timeout));
        match s.script.pop_front().unwrap_or(BotScript::Echo) {
            BotScript::Echo => Ok(BotAnswer { replies: vec![format!("echo: {}", request.text)], ..BotAnswer::default() }),
            BotScript::Answer(a) => Ok(a),
            BotScript::Fail(e) => Err(e),
        }
    }
}

mod listen;
pub use listen::listen_through_scoped_subscribers;
