//! Step 1, and the shape of a group: claims the jobs in order and cuts them into turns.
//!
//! Folding is a pure decision over the jobs at hand, made here and nowhere else: a customer
//! message never claimed before starts a turn, and the customer messages right after it that were
//! never claimed either join that turn (up to `max_turn_messages`). A message an earlier attempt
//! claimed keeps the composition that attempt gave it: its first message's checkpoint lists the
//! others when there were others (saved before the bot is asked), and otherwise it was asked about
//! alone. So a resumed turn asks the bot the same question under the same `Idempotency-Key` and
//! answers exactly the messages it answered before a crash, never more — at no extra write for
//! the common one-message turn.

use std::time::Duration;

use super::turn::{Claimed, run_turn};
use super::{Deps, GroupResult, Owner, ProcessError, Stopped, handle_event, release_all};
use crate::domain::event::{Job, PortalEvent};
use crate::domain::message::{AuthorKind, InboundMessage};
use crate::domain::turn::TurnProgress;
use crate::ports::Claim;

/// The shortest lease a claim is taken with, even when a deadline is closer: a turn that cannot
/// finish in time checkpoints and is resumed.
const MIN_LEASE: Duration = Duration::from_secs(1);

/// Runs the group; `give_up` applies to its first turn.
pub(super) async fn run(deps: &Deps, jobs: &[Job], owner: &Owner, mut give_up: Option<&str>) -> GroupResult {
    let mut result = GroupResult { finished: vec![false; jobs.len()], outcomes: Vec::new(), stopped: None };
    let mut i = 0;
    while i < jobs.len() {
        if !result.finished[i]
            && let Err(stop) = step(deps, jobs, i, owner, give_up.take(), &mut result).await
        {
            result.stopped = Some(stop);
            return result;
        }
        i += 1;
    }
    result
}

fn customer_message(job: &Job) -> Option<&InboundMessage> {
    match &job.event {
        PortalEvent::Message(m) if m.author.kind == AuthorKind::Customer => Some(m),
        _ => None,
    }
}

async fn claim(deps: &Deps, job: &Job, owner: &Owner) -> Result<Claim, ProcessError> {
    let now = deps.clock.now();
    let lease = owner.bound(deps.settings.lease, now, Duration::ZERO).max(MIN_LEASE);
    Ok(deps.idempotency.claim(&job.key, &owner.id, now, lease).await?)
}

/// One turn or event starting at `jobs[i]`; marks what it finished.
async fn step(deps: &Deps, jobs: &[Job], i: usize, owner: &Owner, give_up: Option<&str>, result: &mut GroupResult) -> Result<(), Stopped> {
    let head = &jobs[i];
    let (progress, fresh) = match claim(deps, head, owner).await.map_err(Stopped::Failed)? {
        Claim::Done(_) => {
            result.finished[i] = true;
            return Ok(());
        }
        Claim::InProgress { until } => return Err(Stopped::Busy { until }),
        Claim::New => (TurnProgress::default(), true),
        Claim::Resumed(p) => (p, false),
    };
    let PortalEvent::Message(first) = &head.event else {
        let done = match handle_event(deps, head).await {
            Ok(outcome) => deps.idempotency.complete(&head.key, &owner.id, &outcome, deps.clock.now()).await.map(|()| outcome),
            Err(e) => Err(e),
        };
        let outcome = match done {
            Ok(outcome) => outcome,
            Err(e) => {
                release_all(deps, std::slice::from_ref(&head.key), owner).await;
                return Err(Stopped::Failed(e.into()));
            }
        };
        result.finished[i] = true;
        result.outcomes.push(outcome);
        return Ok(());
    };

    let mut claimed = vec![Claimed { message: first, progress }];
    let mut members = vec![i];
    if customer_message(head).is_some() && fresh && give_up.is_none() {
        for (j, job) in jobs.iter().enumerate().skip(i + 1) {
            if claimed.len() >= deps.settings.max_turn_messages {
                break;
            }
            let Some(m) = customer_message(job) else { break };
            match claim(deps, job, owner).await {
                Ok(Claim::Done(_)) => result.finished[j] = true,
                Ok(Claim::New) => {
                    claimed.push(Claimed { message: m, progress: TurnProgress::default() });
                    members.push(j);
                }
                // Claimed by an earlier attempt (its own turn, or one that composed it), or by
                // someone else: not ours to fold.
                Ok(Claim::Resumed(_) | Claim::InProgress { .. }) | Err(_) => break,
            }
        }
    }

    let received_at = members.iter().map(|&j| jobs[j].received_at).min().unwrap_or(head.received_at);
    // REST calls are counted per turn for its record (`crate::b24::usage`).
    match crate::b24::usage::scope(run_turn(deps, owner, claimed, received_at, give_up)).await {
        Ok(turn) => {
            for (j, job) in jobs.iter().enumerate() {
                if members.contains(&j) || turn.keys.contains(&job.key) {
                    result.finished[j] = true;
                }
            }
            result.outcomes.extend(turn.outcomes);
            Ok(())
        }
        Err(e) => {
            let keys: Vec<_> = members.iter().map(|&j| jobs[j].key.clone()).collect();
            release_all(deps, &keys, owner).await;
            Err(Stopped::Failed(e))
        }
    }
}
