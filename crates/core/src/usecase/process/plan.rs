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
//!
//! A folded message's own record names the turn's first key (`TurnProgress::part_of`), so one
//! that comes back without the first message's record (dead-lettered, or further back) is
//! finished through that turn ([`through_primary`]), never asked about alone.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::turn::{Claimed, run_turn};
use super::{Deps, GroupResult, Owner, ProcessError, Stopped, handle_event, lease, release_all};
use crate::domain::event::{Job, PortalEvent};
use crate::domain::ids::DedupKey;
use crate::domain::message::{AuthorKind, InboundMessage};
use crate::domain::turn::TurnProgress;
use crate::ports::Claim;

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
    claim_key(deps, &job.key, owner).await
}

async fn claim_key(deps: &Deps, key: &DedupKey, owner: &Owner) -> Result<Claim, ProcessError> {
    let now = deps.clock.now();
    Ok(deps.idempotency.claim(key, &owner.id, now, lease(deps, owner, now)).await?)
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
        Claim::Resumed(p) => match p.part_of.clone().filter(|primary| *primary != head.key) {
            Some(primary) if through_primary(deps, jobs, i, owner, give_up, result, &primary).await? => return Ok(()),
            Some(_) => (TurnProgress::default(), false),
            None => (p, false),
        },
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
    let keys: Vec<_> = members.iter().map(|&j| jobs[j].key.clone()).collect();
    turn(deps, jobs, owner, claimed, received_at, give_up, &keys, result).await
}

/// Runs one turn and marks the jobs it finished: its members, and any other job whose key the
/// turn marked done (a resumed composition's messages). On failure `held` are released.
#[allow(clippy::too_many_arguments)]
async fn turn(
    deps: &Deps,
    jobs: &[Job],
    owner: &Owner,
    claimed: Vec<Claimed<'_>>,
    received_at: DateTime<Utc>,
    give_up: Option<&str>,
    held: &[DedupKey],
    result: &mut GroupResult,
) -> Result<(), Stopped> {
    // REST calls are counted per turn for its record (`crate::b24::usage`).
    match crate::b24::usage::scope(run_turn(deps, owner, claimed, received_at, give_up)).await {
        Ok(turn) => {
            for (j, job) in jobs.iter().enumerate() {
                if held.contains(&job.key) || turn.keys.contains(&job.key) {
                    result.finished[j] = true;
                }
            }
            result.outcomes.extend(turn.outcomes);
            Ok(())
        }
        Err(e) => {
            release_all(deps, held, owner).await;
            Err(Stopped::Failed(e))
        }
    }
}

/// `jobs[i]` (claimed by `owner`) was folded into the turn whose first message is `primary`, and
/// came back without it: the primary's record was dead-lettered, or waits further back. The
/// message is finished through that turn, never asked about alone (its answer may be out):
/// - the turn is done: so is this message (its mark was all that was missing);
/// - someone holds the turn: this message is given back, for the turn to mark;
/// - the turn is free: it is resumed here, from its saved composition, marking this message too.
///
/// `false` when the primary's record is gone (purged) or predates the saved first message: the
/// message is then answered alone, as before such records existed.
#[allow(clippy::too_many_arguments)]
async fn through_primary(
    deps: &Deps,
    jobs: &[Job],
    i: usize,
    owner: &Owner,
    give_up: Option<&str>,
    result: &mut GroupResult,
    primary: &DedupKey,
) -> Result<bool, Stopped> {
    let head = &jobs[i];
    let held = [head.key.clone()];
    let claim = match claim_key(deps, primary, owner).await {
        Ok(c) => c,
        Err(e) => {
            release_all(deps, &held, owner).await;
            return Err(Stopped::Failed(e));
        }
    };
    match claim {
        Claim::Done(outcome) => {
            if let Err(e) = deps.idempotency.complete(&head.key, &owner.id, &outcome, deps.clock.now()).await {
                release_all(deps, &held, owner).await;
                return Err(Stopped::Failed(e.into()));
            }
            info!(key = %head.key, primary = %primary, "a folded message came back after its turn finished: marked done, not asked again");
            result.finished[i] = true;
            Ok(true)
        }
        Claim::InProgress { until } => {
            release_all(deps, &held, owner).await;
            Err(Stopped::Busy { until })
        }
        Claim::Resumed(progress) if let Some(first) = progress.head.clone() => {
            warn!(key = %head.key, primary = %primary, "a folded message came back without its turn's first message: resuming that turn");
            let claimed = vec![Claimed { message: &first, progress }];
            let held = [primary.clone(), head.key.clone()];
            turn(deps, jobs, owner, claimed, head.received_at, give_up, &held, result).await.map(|()| true)
        }
        Claim::New | Claim::Resumed(_) => {
            release_all(deps, std::slice::from_ref(primary), owner).await;
            warn!(key = %head.key, primary = %primary, "a folded message's turn left no composition to resume: answering it alone");
            Ok(false)
        }
    }
}
