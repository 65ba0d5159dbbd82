//! The `ChatStore` contract.
//!
//! Semantics pinned here:
//! - The mode is kept per `(chat, session)`; `session = None` is a key of its own, not a wildcard.
//! - `set_human` keeps the first rule and time until `set_bot`; `set_bot` on a bot chat is a no-op.
//! - History is per chat (all sessions), ordered by `at`, turns with equal `at` in append order;
//!   `history(limit)` is the last `limit` of that order, oldest first.
//! - `purge_history_before(cutoff)` drops turns with `at < cutoff`.

use super::{run_each, t};
use crate::domain::ids::{ChatId, SessionId};
use crate::ports::{ChatMode, ChatStore, HistoryTurn};

fn chat(n: u64) -> ChatId {
    ChatId::new(n).expect("chat id")
}

fn session(n: u64) -> Option<SessionId> {
    Some(SessionId::new(n).expect("session id"))
}

fn turn(role: &str, text: &str, secs: i64) -> HistoryTurn {
    HistoryTurn { role: role.into(), text: text.into(), at: t(secs) }
}

fn human(rule: &str, secs: i64) -> ChatMode {
    ChatMode::Human { rule: rule.into(), since: t(secs) }
}

/// Nothing recorded means the bot serves the chat.
pub async fn mode_defaults_to_bot<S: ChatStore + ?Sized>(s: &S) {
    assert_eq!(s.mode(chat(1), None).await.expect("mode"), ChatMode::Bot);
    assert_eq!(s.mode(chat(1), session(5)).await.expect("mode"), ChatMode::Bot);
}

/// `set_human` is idempotent and keeps the first rule and time; `set_bot` hands back, after which
/// a new `set_human` records its own rule and time.
pub async fn set_human_keeps_the_first_rule<S: ChatStore + ?Sized>(s: &S) {
    let (c, sess) = (chat(1), session(5));
    s.set_human(c, sess, "phrase", t(10)).await.expect("set_human");
    s.set_human(c, sess, "bot_failure", t(20)).await.expect("set_human again");
    assert_eq!(s.mode(c, sess).await.expect("mode"), human("phrase", 10));
    s.set_bot(c, sess).await.expect("set_bot");
    assert_eq!(s.mode(c, sess).await.expect("mode"), ChatMode::Bot);
    s.set_bot(c, sess).await.expect("set_bot on a bot chat");
    s.set_human(c, sess, "operator_wrote", t(30)).await.expect("set_human");
    assert_eq!(s.mode(c, sess).await.expect("mode"), human("operator_wrote", 30));
}

/// Sessions and chats are independent keys; `None` is neither a wildcard nor a default.
pub async fn modes_are_per_chat_and_session<S: ChatStore + ?Sized>(s: &S) {
    s.set_human(chat(1), session(5), "phrase", t(1)).await.expect("set_human");
    s.set_human(chat(2), None, "bot_handoff", t(2)).await.expect("set_human");
    assert_eq!(s.mode(chat(1), session(5)).await.expect("mode"), human("phrase", 1));
    assert_eq!(s.mode(chat(1), session(6)).await.expect("mode"), ChatMode::Bot, "a new session");
    assert_eq!(s.mode(chat(1), None).await.expect("mode"), ChatMode::Bot, "None is its own key");
    assert_eq!(s.mode(chat(2), None).await.expect("mode"), human("bot_handoff", 2));
    assert_eq!(s.mode(chat(2), session(5)).await.expect("mode"), ChatMode::Bot);
    assert_eq!(s.mode(chat(3), session(5)).await.expect("mode"), ChatMode::Bot, "another chat");
    s.set_bot(chat(1), None).await.expect("set_bot");
    assert_eq!(s.mode(chat(1), session(5)).await.expect("mode"), human("phrase", 1), "None does not reach sessions");
}

/// `history(limit)` is the last `limit` turns, oldest first, per chat.
pub async fn history_is_the_last_turns_oldest_first<S: ChatStore + ?Sized>(s: &S) {
    let turns: Vec<HistoryTurn> = (1..=5).map(|i| turn(if i % 2 == 1 { "customer" } else { "bot" }, &format!("turn {i} — ação"), i)).collect();
    for tr in &turns {
        s.append_history(chat(1), tr).await.expect("append");
    }
    s.append_history(chat(2), &turn("operator", "elsewhere", 3)).await.expect("append");
    assert_eq!(s.history(chat(1), 3).await.expect("history"), turns[2..].to_vec());
    assert_eq!(s.history(chat(1), 10).await.expect("history"), turns);
    assert_eq!(s.history(chat(1), 0).await.expect("history"), vec![]);
    assert_eq!(s.history(chat(2), 10).await.expect("history"), vec![turn("operator", "elsewhere", 3)]);
    assert_eq!(s.history(chat(3), 10).await.expect("history"), vec![]);
}

/// History is ordered by `at`, not by arrival; equal times keep their append order.
pub async fn history_is_ordered_by_time<S: ChatStore + ?Sized>(s: &S) {
    let late = turn("customer", "late", 20);
    let early = turn("operator", "early", 10);
    let tie_a = turn("customer", "same time, first", 15);
    let tie_b = turn("bot", "same time, second", 15);
    for tr in [&late, &early, &tie_a, &tie_b] {
        s.append_history(chat(1), tr).await.expect("append");
    }
    assert_eq!(s.history(chat(1), 10).await.expect("history"), vec![early, tie_a, tie_b.clone(), late.clone()]);
    assert_eq!(s.history(chat(1), 2).await.expect("history"), vec![tie_b, late]);
}

/// `purge_history_before` drops turns strictly older than the cutoff, across chats.
pub async fn purge_drops_old_history<S: ChatStore + ?Sized>(s: &S) {
    for (c, secs) in [(1, 1), (1, 5), (1, 9), (2, 2), (2, 6)] {
        s.append_history(chat(c), &turn("customer", &format!("{c}@{secs}"), secs)).await.expect("append");
    }
    assert_eq!(s.purge_history_before(t(5)).await.expect("purge"), 2);
    let texts = |v: Vec<HistoryTurn>| v.into_iter().map(|t| t.text).collect::<Vec<_>>();
    assert_eq!(texts(s.history(chat(1), 10).await.expect("history")), ["1@5", "1@9"]);
    assert_eq!(texts(s.history(chat(2), 10).await.expect("history")), ["2@6"]);
    assert_eq!(s.purge_history_before(t(5)).await.expect("purge"), 0);
}

/// Runs every behaviour of this module, each on a fresh adapter from `fresh`.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: ChatStore + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    run_each!(fresh:
        mode_defaults_to_bot,
        set_human_keeps_the_first_rule,
        modes_are_per_chat_and_session,
        history_is_the_last_turns_oldest_first,
        history_is_ordered_by_time,
        purge_drops_old_history,
    );
}
