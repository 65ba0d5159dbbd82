//! The two policies of the one traversal, as pure decisions.
//!
//! - **Operator** (operator mode: the webhook's user serves the chats): every customer or operator
//!   message found is enqueued at once; the worker answers the customer's, and an operator's
//!   silences the bot for the session. Our own replies, other bots and the portal's system messages
//!   are passed over.
//! - **Reconcile** (push mode's safety net): only chats our bot serves, and only messages older than
//!   the grace period, so an event that is merely on its way is not raced; what is found goes
//!   through the same key, so an event that did arrive is never answered twice and one that was
//!   lost is answered late rather than never.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::ids::UserId;
use crate::domain::message::{AuthorKind, InboundMessage, Source};
use crate::ports::Pressure;

/// What a pass does with what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Operator mode: enqueue at once.
    Operator,
    /// Push mode's reconciliation: chats served by `bot`, messages older than the grace period.
    Reconcile {
        /// Our bot's user id (the chat's `owner` while the bot serves it).
        bot: UserId,
    },
}

impl Policy {
    /// The name cursors and logs use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Reconcile { .. } => "reconcile",
        }
    }

    /// The source the found messages are tagged with.
    pub fn source(self) -> Source {
        match self {
            Self::Operator => Source::OperatorPoll,
            Self::Reconcile { .. } => Source::Reconcile,
        }
    }

    /// Whether this policy looks at a chat served by `owner` at all.
    pub fn serves(self, owner: Option<UserId>) -> bool {
        match self {
            Self::Operator => true,
            Self::Reconcile { bot } => owner == Some(bot),
        }
    }
}

/// What to do with one message found after a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Enqueue it through its key.
    Enqueue,
    /// Nothing to do; the cursor moves past it.
    Skip,
    /// Not decidable yet (younger than the grace period): the cursor stays before it.
    Wait,
}

/// The decision for `m` at `now`.
pub fn judge(policy: Policy, m: &InboundMessage, now: DateTime<Utc>, grace: Duration) -> Verdict {
    match (m.author.kind, policy) {
        (AuthorKind::Bot | AuthorKind::System, _) => Verdict::Skip,
        (AuthorKind::Customer | AuthorKind::Operator, Policy::Operator) => Verdict::Enqueue,
        (AuthorKind::Customer | AuthorKind::Operator, Policy::Reconcile { .. }) => {
            let age = (now - m.sent_at).to_std().unwrap_or_default();
            if age < grace { Verdict::Wait } else { Verdict::Enqueue }
        }
    }
}

/// How long to wait before the next pass: the configured interval while the polled methods use
/// less than half the portal's operating-time limit, then longer and longer (up to eight times at
/// 90 %), and from 90 % on nothing until the portal's count eases (its oldest counted minute
/// expires), so the portal never blocks them (contract §2.2: the call that passes the limit still
/// runs, the next one is refused for minutes). Never more than ten minutes, the limit's window.
pub fn pace(base: Duration, pressure: Pressure, now: DateTime<Utc>) -> Duration {
    const WINDOW: Duration = Duration::from_secs(600);
    let share = if pressure.share.is_finite() { pressure.share.max(0.0) } else { 1.0 };
    let wait = if share < 0.9 {
        base.mul_f64(1.0 + (share - 0.5).max(0.0) * 17.5)
    } else {
        let eases = pressure.eases_at.map_or(WINDOW, |at| (at - now).to_std().unwrap_or_default());
        eases.max(base.mul_f64(8.0))
    };
    wait.min(WINDOW).max(base.min(WINDOW))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{ChatId, DialogId, MemberId, MessageId, PortalDomain};
    use crate::domain::message::{Author, LinesContext, PortalRef};

    fn message(kind: AuthorKind, age_secs: i64, now: DateTime<Utc>) -> InboundMessage {
        let chat = ChatId::new(5).expect("chat");
        InboundMessage {
            source: Source::Reconcile,
            portal: PortalRef { member_id: MemberId::parse("m1").expect("m"), domain: PortalDomain::parse("p.example").expect("d") },
            message_id: MessageId::new(9).expect("id"),
            chat_id: chat,
            dialog_id: DialogId::Chat(chat),
            author: Author { id: UserId::new(41).ok(), name: String::new(), kind },
            text: "hi".into(),
            system: false,
            lines: LinesContext::default(),
            bot_id: None,
            language: None,
            sent_at: now - chrono::Duration::seconds(age_secs),
        }
    }

    #[test]
    fn the_operator_policy_enqueues_customers_and_operators_at_once() {
        let now = Utc::now();
        let grace = Duration::from_secs(30);
        assert_eq!(judge(Policy::Operator, &message(AuthorKind::Customer, 0, now), now, grace), Verdict::Enqueue);
        assert_eq!(judge(Policy::Operator, &message(AuthorKind::Operator, 0, now), now, grace), Verdict::Enqueue);
        assert_eq!(judge(Policy::Operator, &message(AuthorKind::Bot, 0, now), now, grace), Verdict::Skip);
        assert_eq!(judge(Policy::Operator, &message(AuthorKind::System, 0, now), now, grace), Verdict::Skip);
    }

    #[test]
    fn reconciliation_waits_out_the_grace_period_and_only_looks_at_our_bots_chats() {
        let now = Utc::now();
        let grace = Duration::from_secs(30);
        let bot = UserId::new(38_007).expect("bot");
        let p = Policy::Reconcile { bot };
        assert_eq!(judge(p, &message(AuthorKind::Customer, 29, now), now, grace), Verdict::Wait);
        assert_eq!(judge(p, &message(AuthorKind::Customer, 30, now), now, grace), Verdict::Enqueue);
        assert_eq!(judge(p, &message(AuthorKind::Operator, 31, now), now, grace), Verdict::Enqueue);
        assert_eq!(judge(p, &message(AuthorKind::Bot, 300, now), now, grace), Verdict::Skip);
        assert!(p.serves(Some(bot)) && !p.serves(None) && !p.serves(UserId::new(38_006).ok()));
        assert!(Policy::Operator.serves(None));
    }

    #[test]
    fn polling_slows_down_as_the_operating_time_nears_the_limit_and_stops_until_it_eases() {
        let base = Duration::from_secs(2);
        let now = Utc::now();
        let p = |share: f64, eases_in: Option<i64>| Pressure { share, eases_at: eases_in.map(|s| now + chrono::Duration::seconds(s)) };
        assert_eq!(pace(base, p(0.0, None), now), base);
        assert_eq!(pace(base, p(0.5, Some(100)), now), base);
        assert_eq!(pace(base, p(0.7, Some(100)), now), Duration::from_secs(9));
        assert_eq!(pace(base, p(0.9, Some(100)), now), Duration::from_secs(100), "until the count eases");
        assert_eq!(pace(base, p(3.0, Some(5)), now), Duration::from_secs(16), "at least eight intervals");
        assert_eq!(pace(base, p(0.95, None), now), Duration::from_secs(600), "the window when the portal did not say");
        assert_eq!(pace(base, p(f64::NAN, Some(-10)), now), Duration::from_secs(16));
        assert_eq!(pace(Duration::from_secs(900), p(0.0, None), now), Duration::from_secs(600));
    }
}
