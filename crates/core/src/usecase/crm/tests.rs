use std::sync::Mutex;

use async_trait::async_trait;
use chrono::TimeZone;

use super::*;
use crate::memory::MemoryOutbox;
use crate::ports::{DialogCrm, PortalError, PortalErrorKind};

#[derive(Default)]
struct FakeCrm {
    binding: Mutex<Option<CrmBinding>>,
    lookups: Mutex<u32>,
    fail_comments: Mutex<u32>,
    comments: Mutex<Vec<(CrmBinding, String)>>,
    /// Comments being written now, and the most at once.
    in_flight: Mutex<(u32, u32)>,
}

#[async_trait]
impl CrmPortal for FakeCrm {
    async fn binding(&self, _chat: ChatId) -> Result<DialogCrm, PortalError> {
        *self.lookups.lock().unwrap() += 1;
        Ok(DialogCrm { session_id: SessionId::new(7).ok(), binding: self.binding.lock().unwrap().clone() })
    }
    async fn create_lead(&self, _chat: ChatId) -> Result<(), PortalError> {
        *self.binding.lock().unwrap() = Some(lead(99));
        Ok(())
    }
    async fn timeline_comment(&self, entity: &CrmBinding, text: &str) -> Result<u64, PortalError> {
        {
            let mut f = self.in_flight.lock().unwrap();
            f.0 += 1;
            f.1 = f.1.max(f.0);
        }
        // Let the pass's other comments start, as a request waiting for the portal would.
        tokio::task::yield_now().await;
        self.in_flight.lock().unwrap().0 -= 1;
        let mut fail = self.fail_comments.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return Err(PortalError {
                kind: PortalErrorKind::Retryable,
                method: "crm.timeline.comment.add".into(),
                code: "INTERNAL_SERVER_ERROR".into(),
                description: "down".into(),
            });
        }
        self.comments.lock().unwrap().push((entity.clone(), text.to_owned()));
        Ok(1)
    }
}

fn lead(id: u64) -> CrmBinding {
    CrmBinding { entity_type: "lead".into(), entity_id: id }
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

fn link(fake: &Arc<FakeCrm>, timeline: TimelineMode, unbound: UnboundPolicy) -> (CrmLink, Arc<MemoryOutbox>) {
    let outbox = Arc::new(MemoryOutbox::new());
    let settings = CrmSettings { unbound, timeline, quiet: Duration::from_secs(60) };
    (CrmLink::new(fake.clone(), outbox.clone(), settings), outbox)
}

fn chat() -> ChatId {
    ChatId::new(5).unwrap()
}

#[tokio::test]
async fn the_binding_is_looked_up_once_per_session_and_again_when_it_changes() {
    let fake = Arc::new(FakeCrm::default());
    *fake.binding.lock().unwrap() = Some(lead(1));
    let (link, _) = link(&fake, TimelineMode::Turn, UnboundPolicy::Leave);
    let s1 = SessionId::new(7).ok();
    assert_eq!(link.resolve(chat(), s1, None, false).await, Some(lead(1)));
    assert_eq!(link.resolve(chat(), s1, None, false).await, Some(lead(1)));
    assert_eq!(*fake.lookups.lock().unwrap(), 1, "cached for the session");
    *fake.binding.lock().unwrap() = Some(CrmBinding { entity_type: "deal".into(), entity_id: 3 });
    let s2 = SessionId::new(8).ok();
    assert_eq!(link.resolve(chat(), s2, None, false).await.map(|b| b.entity_type), Some("deal".to_owned()));
    assert_eq!(*fake.lookups.lock().unwrap(), 2);
    // The event's own fields win and cost nothing.
    assert_eq!(link.resolve(chat(), s2, Some(&lead(4)), true).await, Some(lead(4)));
    assert_eq!(*fake.lookups.lock().unwrap(), 2);
}

#[tokio::test]
async fn an_unbound_chat_is_left_or_gets_a_lead_per_the_policy() {
    let fake = Arc::new(FakeCrm::default());
    let (leave, _) = link(&fake, TimelineMode::Turn, UnboundPolicy::Leave);
    assert_eq!(leave.resolve(chat(), None, None, false).await, None);
    let (create, _) = link(&fake, TimelineMode::Turn, UnboundPolicy::CreateLead);
    assert_eq!(create.resolve(chat(), None, None, true).await, Some(lead(99)));
}

fn note<'a>(key: &str, entity: &'a CrmBinding, outcome: &'a TurnOutcome, at: DateTime<Utc>) -> TurnNote<'a> {
    TurnNote { turn_key: key.into(), chat: chat(), session: SessionId::new(7).ok(), entity, customer: vec!["hi"], bot: vec!["hello"], outcome, at }
}

#[tokio::test]
async fn session_mode_writes_one_condensed_comment_after_quiet_or_at_a_handoff() {
    let fake = Arc::new(FakeCrm::default());
    let (link, outbox) = link(&fake, TimelineMode::Session, UnboundPolicy::Leave);
    let l = lead(1);
    let answered = TurnOutcome::Answered { reply_ids: vec![] };
    link.note_turn(&note("k1", &l, &answered, t(0))).await.unwrap();
    link.note_turn(&note("k2", &l, &answered, t(10))).await.unwrap();
    link.note_turn(&note("k2", &l, &answered, t(10))).await.unwrap();
    assert_eq!(drain(fake.as_ref(), outbox.as_ref(), t(60), DrainPolicy::default()).await.unwrap().written, 0, "still within the quiet period");
    let handed = TurnOutcome::HandedOff { reason: HandoffReason::Phrase { phrase: "operator".into() } };
    link.note_turn(&note("k3", &l, &handed, t(20))).await.unwrap();
    assert_eq!(drain(fake.as_ref(), outbox.as_ref(), t(20), DrainPolicy::default()).await.unwrap().written, 1);
    let comments = fake.comments.lock().unwrap().clone();
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].1.matches("Bot: hello").count(), 3, "k2 once: {}", comments[0].1);
    assert!(comments[0].1.contains("[phrase]"), "{}", comments[0].1);
    assert_eq!(outbox.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn a_failed_comment_is_retried_with_backoff_and_not_lost() {
    let fake = Arc::new(FakeCrm::default());
    *fake.fail_comments.lock().unwrap() = 2;
    let (link, outbox) = link(&fake, TimelineMode::Turn, UnboundPolicy::Leave);
    let l = lead(1);
    let answered = TurnOutcome::Answered { reply_ids: vec![] };
    link.note_turn(&note("k1", &l, &answered, t(0))).await.unwrap();
    let p = DrainPolicy::default();
    assert_eq!(drain(fake.as_ref(), outbox.as_ref(), t(0), p).await.unwrap().failed, 1);
    assert_eq!(drain(fake.as_ref(), outbox.as_ref(), t(1), p).await.unwrap(), Drained::default(), "waits out the backoff");
    assert_eq!(drain(fake.as_ref(), outbox.as_ref(), t(2), p).await.unwrap().failed, 1);
    assert_eq!(drain(fake.as_ref(), outbox.as_ref(), t(5), p).await.unwrap(), Drained::default(), "the backoff doubled");
    assert_eq!(drain(fake.as_ref(), outbox.as_ref(), t(6), p).await.unwrap().written, 1);
    assert_eq!(fake.comments.lock().unwrap().len(), 1);
}

/// A pass writes its due comments at once (so the client can carry them in one batch), and settles
/// each on its own: the written ones leave the outbox, the failed one waits for its retry.
#[tokio::test]
async fn a_pass_writes_its_comments_at_once_and_settles_each() {
    let fake = Arc::new(FakeCrm::default());
    *fake.fail_comments.lock().unwrap() = 1;
    let (link, outbox) = link(&fake, TimelineMode::Turn, UnboundPolicy::Leave);
    let answered = TurnOutcome::Answered { reply_ids: vec![] };
    let leads: Vec<CrmBinding> = (1..=5).map(lead).collect();
    for (i, l) in leads.iter().enumerate() {
        link.note_turn(&note(&format!("k{i}"), l, &answered, t(0))).await.unwrap();
    }
    let p = DrainPolicy::default();
    assert_eq!(drain(fake.as_ref(), outbox.as_ref(), t(0), p).await.unwrap(), Drained { written: 4, failed: 1 });
    assert_eq!(fake.in_flight.lock().unwrap().1, 5, "all five were in flight together");
    assert_eq!(outbox.pending().await.unwrap(), 1, "only the failed comment is left");
    assert_eq!(drain(fake.as_ref(), outbox.as_ref(), t(2), p).await.unwrap(), Drained { written: 1, failed: 0 });
    assert_eq!(outbox.pending().await.unwrap(), 0);
    assert_eq!(fake.comments.lock().unwrap().len(), 5, "each comment written once");
}
