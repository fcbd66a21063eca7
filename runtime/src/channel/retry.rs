//! The one retry loop of every call: pick a candidate the call has not tried (a server of the
//! channel, a sub-channel of a `SelectiveChannel`), attempt, race a backup request against a
//! slow attempt, and retry elsewhere while the retry policy and `max_retry` allow. Unary calls,
//! streaming calls and selective channels all run it; what differs is behind [`Candidates`].
//!
//! No deadline here: callers race the whole loop against theirs.

use std::future::Future;
use std::time::Duration;

use super::policy::{BackupRequestPolicy, RetryPolicy};
use crate::{errno, Controller, Status};

/// How a call retries.
pub(crate) struct RetrySettings<'a> {
    /// Retries allowed (a backup request counts as one).
    pub(crate) max_retry: u32,
    /// Which failures are retried.
    pub(crate) retry_policy: &'a dyn RetryPolicy,
    /// Backup requests: the delay without an answer after which one may be sent, and the
    /// policy asked then.
    pub(crate) backup: Option<(Duration, &'a dyn BackupRequestPolicy)>,
}

/// What the loop tries, one candidate per attempt.
pub(crate) trait Candidates: Sync {
    /// How a candidate is known among those tried (an address, a handle).
    type Key: Copy + PartialEq + Send + Sync;
    /// One candidate.
    type Candidate: Send + Sync;
    /// A successful attempt's result.
    type Output: Send;
    /// What one attempt keeps of its own (a sub-call's controller), for [`record`].
    ///
    /// [`record`]: Candidates::record
    type Slot: Send;

    /// The candidate for the next attempt: one not in `tried` when there is one.
    fn pick(&self, cntl: &Controller, tried: &[Self::Key]) -> Result<Self::Candidate, Status>;

    /// The candidate's key.
    fn key(&self, candidate: &Self::Candidate) -> Self::Key;

    /// A new attempt's slot.
    fn slot(&self, cntl: &Controller) -> Self::Slot;

    /// One attempt on `candidate`.
    fn attempt<'a>(
        &'a self,
        candidate: &'a Self::Candidate,
        slot: &'a mut Self::Slot,
    ) -> impl Future<Output = Result<Self::Output, Status>> + Send + 'a;

    /// Whether a call that failed with `status` may be tried again at all (a streaming call
    /// whose requests went out may not), before the retry policy is asked.
    fn may_retry(&self, status: &Status) -> bool {
        let _ = status;
        true
    }

    /// Whether `status` is retried whatever the retry policy says.
    fn retry_anyway(&self, status: &Status) -> bool {
        let _ = status;
        false
    }

    /// Records a round of one or two attempts in the call's controller: once both are over,
    /// or when the call is dropped with them unfinished.
    fn record(&self, cntl: &mut Controller, round: Round<Self>)
    where
        Self: Sized;
}

/// Which attempt of a round gave the call its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answered {
    /// The first attempt.
    First,
    /// The backup request.
    Backup,
}

/// A round's attempts, as [`Candidates::record`] sees them.
pub(crate) struct Round<C: Candidates> {
    /// The first attempt's candidate and slot.
    pub(crate) first: (C::Candidate, C::Slot),
    /// The backup request's, if one was sent.
    pub(crate) backup: Option<(C::Candidate, C::Slot)>,
    /// Which attempt's outcome is the call's, and whether it failed; `None` when the call was
    /// dropped before the round ended.
    pub(crate) outcome: Option<(Answered, bool)>,
}

/// Hands a round to [`Candidates::record`] when it ends, also when the call is dropped.
struct RoundGuard<'r, C: Candidates> {
    candidates: &'r C,
    cntl: &'r mut Controller,
    first: Option<(C::Candidate, C::Slot)>,
    backup: Option<(C::Candidate, C::Slot)>,
    outcome: Option<(Answered, bool)>,
}

impl<C: Candidates> Drop for RoundGuard<'_, C> {
    fn drop(&mut self) {
        if let Some(first) = self.first.take() {
            let round = Round {
                first,
                backup: self.backup.take(),
                outcome: self.outcome,
            };
            self.candidates.record(self.cntl, round);
        }
    }
}

/// Runs attempts on `candidates` until one succeeds, or the failure is not retried, or no
/// candidate is left. Each retry (and each backup request) adds one to
/// `cntl.retried_count`.
pub(crate) async fn run<C: Candidates>(
    candidates: &C,
    cntl: &mut Controller,
    settings: &RetrySettings<'_>,
) -> Result<C::Output, Status> {
    let mut tried: Vec<C::Key> = Vec::new();
    let mut last_error: Option<Status> = None;
    loop {
        let candidate = match candidates.pick(cntl, &tried) {
            Ok(candidate) => candidate,
            // Nothing left to try: the last attempt's error says more than "no server".
            Err(status) => return Err(last_error.unwrap_or(status)),
        };
        if let Some(status) = &last_error {
            cntl.retried_count += 1;
            tracing::debug!(retry = cntl.retried_count, %status, "retrying call");
        }
        // Kept aside until a retry or a backup needs the list: a call that succeeds at once
        // allocates none.
        let key = candidates.key(&candidate);
        let backup = settings.backup;
        // As brpc: a backup timer that fires when no retry is left ends the call
        // (EBACKUPREQUEST) instead of waiting on.
        let retries_left = cntl.retried_count < settings.max_retry;
        let mut backup_ended: Option<Duration> = None;
        let slot = candidates.slot(cntl);
        let mut round = RoundGuard {
            candidates,
            cntl: &mut *cntl,
            first: Some((candidate, slot)),
            backup: None,
            outcome: None,
        };
        let (answered, result) = {
            let RoundGuard {
                cntl: round_cntl,
                first,
                backup: backup_slot,
                ..
            } = &mut round;
            let (first_candidate, first_slot) = first.as_mut().expect("set above");
            let first = candidates.attempt(first_candidate, first_slot);
            let tried = &mut tried;
            let backup_ended = &mut backup_ended;
            match backup {
                None => (Answered::First, first.await),
                Some((delay, policy)) => {
                    // Boxed: the race is a large future, and calls nest (combo channels).
                    Box::pin(async move {
                        tokio::pin!(first);
                        tokio::select! {
                            result = &mut first => (Answered::First, result),
                            () = tokio::time::sleep(delay), if !retries_left => {
                                *backup_ended = Some(delay);
                                (Answered::First, Err(Status::new(errno::EBACKUPREQUEST, "")))
                            }
                            () = tokio::time::sleep(delay), if retries_left => {
                                let picked = if policy.do_backup(round_cntl) {
                                    if !tried.contains(&key) {
                                        tried.push(key);
                                    }
                                    candidates.pick(round_cntl, tried).ok()
                                } else {
                                    None
                                };
                                match picked {
                                    Some(candidate) => {
                                        let key = candidates.key(&candidate);
                                        if !tried.contains(&key) {
                                            tried.push(key);
                                        }
                                        round_cntl.retried_count += 1;
                                        tracing::debug!("sending a backup request");
                                        let slot = candidates.slot(round_cntl);
                                        let (candidate, slot) =
                                            backup_slot.insert((candidate, slot));
                                        let second = candidates.attempt(candidate, slot);
                                        first_success(first, second).await
                                    }
                                    None => (Answered::First, first.await),
                                }
                            }
                        }
                    })
                    .await
                }
            }
        };
        // A round ended by its backup timer left its attempt unfinished.
        round.outcome = backup_ended
            .is_none()
            .then_some((answered, result.is_err()));
        drop(round);
        if let Some(delay) = backup_ended {
            // Dropping the round recorded the server it waited for.
            let at = cntl
                .remote_side
                .map_or_else(String::new, |addr| format!(" @{addr}"));
            return Err(Status::new(
                errno::EBACKUPREQUEST,
                format!("Reached backup timeout={}ms{at}", delay.as_millis()),
            ));
        }
        let status = match result {
            Ok(output) => return Ok(output),
            Err(status) => status,
        };
        let retry = cntl.retried_count < settings.max_retry
            && candidates.may_retry(&status)
            && (candidates.retry_anyway(&status) || settings.retry_policy.do_retry(&status, cntl));
        if !retry {
            return Err(status);
        }
        if !tried.contains(&key) {
            tried.push(key);
        }
        cntl.retried_errors.push(status.clone());
        last_error = Some(status);
    }
}

/// Waits for the first of two attempts to succeed; if both fail, the later failure.
async fn first_success<T, A, B>(first: A, second: B) -> (Answered, Result<T, Status>)
where
    A: Future<Output = Result<T, Status>>,
    B: Future<Output = Result<T, Status>>,
{
    tokio::pin!(first, second);
    tokio::select! {
        outcome = &mut first => match outcome {
            Ok(output) => (Answered::First, Ok(output)),
            Err(_) => (Answered::Backup, second.await),
        },
        outcome = &mut second => match outcome {
            Ok(output) => (Answered::Backup, Ok(output)),
            Err(_) => (Answered::First, first.await),
        },
    }
}
