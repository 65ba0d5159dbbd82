//! The verdict, from what customers wrote and what their WhatsApp shows.
//!
//! Customer `c` writes `c<c>m<k>`; the echo bot answers `echo: <text>`, and a turn that folded
//! several messages answers `echo: c3m1\nc3m2`, so every answer names the messages it answers.
//! - lost: a message no answer names, in a chat not handed off (a chat that got the fallback
//!   message went to an operator; its unanswered messages are the operator's, not lost);
//! - duplicated: a message named by two answers;
//! - out of order: an answer naming an earlier message of the chat than one already answered;
//!   counted apart when that earlier message's event never reached the bridge (dropped, or sent
//!   while it was dead): Bitrix24 never resends, the reconciliation poller finds it seconds later,
//!   and by then a later message of the chat may have been answered;
//! - misrouted: an answer naming another chat's message.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use b24_emulator::Emulator;
use olbridge_core::config::DEFAULT_FALLBACK_MESSAGE;
use serde::Serialize;

/// The mutex's value, poisoned or not (a panicked writer leaves nothing half-written here).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One message a customer wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The customer.
    pub chat: usize,
    /// Its place in the customer's sequence.
    pub seq: usize,
    /// `c<chat>m<seq>`.
    pub text: String,
    /// The portal's message id.
    pub message_id: u64,
    /// When it was written.
    pub at: Instant,
}

/// What the inboxes show.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// Messages written.
    pub written: usize,
    /// Messages answered by the bot (at least once).
    pub answered: usize,
    /// Messages not answered in chats handed to an operator.
    pub handed_off: usize,
    /// Chats handed to an operator (the fallback message in their inbox).
    pub handed_off_chats: usize,
    /// Messages neither answered nor handed off.
    pub lost: usize,
    /// Messages answered more than once (each counted once, however many extra answers).
    pub duplicated: usize,
    /// Answers naming an earlier message than one already answered in the chat, whose event reached
    /// the bridge.
    pub out_of_order: usize,
    /// The same, for messages whose event never reached the bridge (found by reconciliation).
    pub out_of_order_late: usize,
    /// Answers naming another chat's message, or text the bot never wrote.
    pub misrouted: usize,
    /// Bot messages in the inboxes (answers, fallbacks).
    pub bot_messages: usize,
    /// Customer write -> first sight of its answer in the inbox (ms), per answered message.
    #[serde(skip)]
    pub latencies_ms: Vec<f64>,
    /// Up to 20 examples of what went wrong.
    pub examples: Vec<String>,
}

impl Verdict {
    /// Nothing more will come: every message is answered or handed off.
    pub fn settled(&self) -> bool {
        self.lost == 0
    }

    /// No message lost, duplicated, out of order or misrouted; `late_order_ok`: an answer out of
    /// order because its event never reached the bridge is reported, not failed.
    pub fn ok(&self, late_order_ok: bool) -> bool {
        let late = if late_order_ok { 0 } else { self.out_of_order_late };
        self.lost == 0 && self.duplicated == 0 && self.out_of_order == 0 && late == 0 && self.misrouted == 0
    }

    fn example(&mut self, e: String) {
        if self.examples.len() < 20 {
            self.examples.push(e);
        }
    }
}

/// Message ids whose `ONIMBOTMESSAGEADD` never reached the bridge with a 2xx, on any attempt.
fn undelivered(emulator: &Emulator) -> HashSet<u64> {
    let deliveries = emulator.deliveries();
    let id = |d: &b24_emulator::EventDelivery| d.field(&["data", "PARAMS", "MESSAGE_ID"]).and_then(|s| s.parse::<u64>().ok());
    let delivered: HashSet<u64> = deliveries.iter().filter(|d| d.event == "ONIMBOTMESSAGEADD" && d.delivered()).filter_map(id).collect();
    deliveries.iter().filter(|d| d.event == "ONIMBOTMESSAGEADD").filter_map(id).filter(|m| !delivered.contains(m)).collect()
}

fn parse(text: &str) -> Option<(usize, usize)> {
    let (c, m) = text.strip_prefix('c')?.split_once('m')?;
    Some((c.parse().ok()?, m.parse().ok()?))
}

/// Judges the inboxes of `phones` (customer `i` writes from `phones[i]`) against `written` on the
/// portal emulator whose bot `bot_id` answers; `seen` holds when each bot message was first seen,
/// for latency.
pub fn verdict_on(emulator: &Emulator, bot_id: u64, phones: &[String], written: &[Written], seen: &HashMap<u64, Instant>) -> Verdict {
    let undelivered = undelivered(emulator);
    let mut v = Verdict { written: written.len(), ..Verdict::default() };
    let mut by_chat: HashMap<usize, Vec<&Written>> = HashMap::new();
    for w in written {
        by_chat.entry(w.chat).or_default().push(w);
    }
    for (chat, p) in phones.iter().enumerate() {
        let mine = by_chat.remove(&chat).unwrap_or_default();
        let late = |k: usize| mine.iter().find(|w| w.seq == k).is_some_and(|w| undelivered.contains(&w.message_id));
        let mut answers: HashMap<usize, (usize, Option<Instant>)> = HashMap::new();
        let mut highest: Option<usize> = None;
        let mut fallback = false;
        for m in emulator.customer_inbox(p).into_iter().filter(|m| m.author_id == bot_id) {
            v.bot_messages += 1;
            if m.text == DEFAULT_FALLBACK_MESSAGE {
                fallback = true;
                continue;
            }
            let Some(body) = m.text.strip_prefix("echo: ") else {
                v.misrouted += 1;
                v.example(format!("chat {chat}: unexpected bot message {:?}", m.text));
                continue;
            };
            for line in body.split('\n') {
                match parse(line) {
                    Some((c, k)) if c == chat => {
                        let e = answers.entry(k).or_insert((0, seen.get(&m.message_id).copied()));
                        e.0 += 1;
                        if e.0 > 1 {
                            v.duplicated += usize::from(e.0 == 2);
                            v.example(format!("chat {chat}: {line} answered {} times", e.0));
                        } else if highest.is_some_and(|h| k < h) {
                            let late = late(k);
                            if late {
                                v.out_of_order_late += 1;
                            } else {
                                v.out_of_order += 1;
                            }
                            let why = if late { " (its event never reached the bridge)" } else { "" };
                            v.example(format!("chat {chat}: {line} answered after a later message{why}"));
                        }
                        highest = highest.max(Some(k));
                    }
                    _ => {
                        v.misrouted += 1;
                        v.example(format!("chat {chat}: answer names {line:?}"));
                    }
                }
            }
        }
        v.handed_off_chats += usize::from(fallback);
        for w in mine {
            match answers.get(&w.seq) {
                Some((_, at)) => {
                    v.answered += 1;
                    if let Some(at) = at {
                        v.latencies_ms.push(at.saturating_duration_since(w.at).as_secs_f64() * 1000.0);
                    }
                }
                None if fallback => v.handed_off += 1,
                None => {
                    v.lost += 1;
                    v.example(format!("chat {chat}: {} (message {}) not answered", w.text, w.message_id));
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn message_texts_name_chat_and_place() {
        assert_eq!(parse("c12m3"), Some((12, 3)));
        assert_eq!(parse("echo"), None);
        assert_eq!(parse("c1"), None);
    }
}
