//! The migrate worker: one job from its queue, from pick-up to the answered task token.
//! The local worker pools (`skein run`) and the SQS function call [`Worker::work`], each
//! with its adapters of the ports [`TaskCallbacks`], [`ReaderSlots`] and [`InFlight`].
//!
//! The sequence:
//! 1. a heartbeat on the job's token: a token that no longer waits means the job was
//!    answered (only the message's delete was lost) or its task ended; the message is
//!    dropped unread;
//! 2. the dataset's source system from the catalog (an unknown dataset fails the task);
//! 3. a reader slot of that system: none free, the job waits ([`Handled::Again`]);
//! 4. [`tasks::migrate_job`] (stage and verify), with a heartbeat every
//!    [`Worker::heartbeat`] on the token and on the message's visibility;
//! 5. the slot back, then the token answered.
//!
//! A heartbeat that the backend refuses because the token is gone stops the job at once
//! (the data-plane future is dropped): another attempt may own the dataset by now, and a
//! job only stages and verifies, so it leaves nothing published.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use skein_core::callbacks::TaskCallbacks;
use skein_core::catalog::Catalog;
use skein_core::queue::Job;
use skein_core::slots::ReaderSlots;

use crate::lease::LEASE_SECS;
use crate::tasks::{self, JobAnswer};
use skein_core::names;

/// The message a job came in: kept hidden from other workers while the job works.
#[async_trait]
pub trait InFlight: Send + Sync {
    /// Keeps the message hidden for `d` from now.
    async fn keep_hidden(&self, d: Duration);
}

/// What to do with the message after [`Worker::work`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Done with: delete it (answered, or nothing left to answer).
    Done,
    /// Deliver it again after `after`: the catalog or the callback failed before the
    /// token was answered (a failed delivery, counted toward the dead letters).
    Again { after: Duration },
    /// Not started yet (every reader slot of its source system is taken): deliver it
    /// again after `after` without counting a failed delivery, since waiting for a slot
    /// must never send a job to the dead letters.
    Wait { after: Duration },
}

/// What one job came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worked {
    pub handled: Handled,
    /// Time spent in the data plane (zero when the job did not get that far).
    pub busy: Duration,
    /// Whether the token was answered with success (`None`: not answered).
    pub succeeded: Option<bool>,
}

/// The worker's ports and settings.
pub struct Worker<'a, C: ?Sized> {
    pub catalog: &'a C,
    pub callbacks: Arc<dyn TaskCallbacks>,
    pub slots: &'a dyn ReaderSlots,
    pub data: &'a skein_data::Settings,
    pub allow_schema_change: bool,
    /// Between heartbeats on the token and the message.
    pub heartbeat: Duration,
    /// How long the message stays hidden after each heartbeat.
    pub visibility: Duration,
    /// How long a job waits when its source system has no free reader slot.
    pub slot_wait: Duration,
}

impl<C: Catalog + ?Sized> Worker<'_, C> {
    /// Works one job, start to answer; see the module's sequence.
    pub async fn work(
        &self,
        job: &Job,
        message: Arc<dyn InFlight>,
        progress: Arc<skein_data::Progress>,
    ) -> Worked {
        let not_answered = |handled| Worked {
            handled,
            busy: Duration::ZERO,
            succeeded: None,
        };
        let token = job.task_token.as_str();
        match self.callbacks.heartbeat(token).await {
            Err(skein_core::Error::TokenGone { reason }) => {
                tracing::info!(dataset = %job.dataset, "the job's task no longer waits ({reason}): dropped");
                return not_answered(Handled::Done);
            }
            // A backend that cannot heartbeat now may answer later: go on.
            Err(e) => tracing::warn!(dataset = %job.dataset, "heartbeat: {e}"),
            Ok(()) => {}
        }
        let system = match self.catalog.dataset(&job.dataset).await {
            Ok(Some(r)) => r.spec.spec.source.system,
            Ok(None) => {
                let cause = format!(
                    "dataset `{}` is not in the catalog; plan the run that registers it first",
                    job.dataset
                );
                let answer = JobAnswer::Failure {
                    error: names::UNKNOWN_DATASET.into(),
                    cause,
                };
                return self.answer(job, answer, Duration::ZERO).await;
            }
            Err(e) => {
                tracing::warn!(dataset = %job.dataset, "catalog: {e}");
                return not_answered(Handled::Again {
                    after: self.slot_wait,
                });
            }
        };
        let holder = format!("{}/{}", job.run_id, job.dataset);
        if let Some(sys) = &system {
            match self.slots.acquire(sys, &holder, LEASE_SECS).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(dataset = %job.dataset, system = %sys, "no free reader slot; the job waits");
                    return not_answered(Handled::Wait {
                        after: self.slot_wait,
                    });
                }
                Err(e) => {
                    tracing::warn!(dataset = %job.dataset, "reader slot: {e}");
                    return not_answered(Handled::Again {
                        after: self.slot_wait,
                    });
                }
            }
        }
        let started = Instant::now();
        let answer = self.migrate_beating(job, message, progress).await;
        let busy = started.elapsed();
        if let Some(sys) = &system
            && let Err(e) = self.slots.release(sys, &holder).await
        {
            tracing::warn!(dataset = %job.dataset, "reader slot: {e}");
        }
        match answer {
            Some(answer) => self.answer(job, answer, busy).await,
            None => Worked {
                handled: Handled::Done,
                busy,
                succeeded: None,
            },
        }
    }

    /// The data plane, with heartbeats beside it; `None` when a heartbeat found the token
    /// gone (the job was stopped).
    async fn migrate_beating(
        &self,
        job: &Job,
        message: Arc<dyn InFlight>,
        progress: Arc<skein_data::Progress>,
    ) -> Option<JobAnswer> {
        let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<String>();
        // Its own task, so a data plane busy on this thread cannot delay a heartbeat.
        let beat = {
            let callbacks = self.callbacks.clone();
            let token = job.task_token.clone();
            let (every, visibility) = (self.heartbeat, self.visibility);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match callbacks.heartbeat(&token).await {
                        Err(skein_core::Error::TokenGone { reason }) => {
                            let _ = gone_tx.send(reason);
                            return;
                        }
                        Err(e) => tracing::warn!("heartbeat: {e}"),
                        Ok(()) => {}
                    }
                    message.keep_hidden(visibility).await;
                }
            })
        };
        // Boxed: the data plane's future is large and deep.
        let migrate = Box::pin(tasks::migrate_job(
            self.catalog,
            self.data,
            job,
            self.allow_schema_change,
            progress,
        ));
        let answer = tokio::select! {
            answer = migrate => Some(answer),
            Ok(reason) = gone_rx => {
                tracing::warn!(dataset = %job.dataset, "the job's task no longer waits ({reason}): stopped");
                None
            }
        };
        beat.abort();
        answer
    }

    async fn answer(&self, job: &Job, answer: JobAnswer, busy: Duration) -> Worked {
        let token = job.task_token.as_str();
        let (sent, ok) = match &answer {
            JobAnswer::Success { output } => (self.callbacks.succeed(token, output).await, true),
            JobAnswer::Failure { error, cause } => {
                // A dataset's failure, not the worker's: info, as the run summary reports it.
                tracing::info!(dataset = %job.dataset, error = %error, cause = %cause, "migration failed");
                (self.callbacks.fail(token, error, cause).await, false)
            }
        };
        let handled = match sent {
            Ok(_) => Handled::Done,
            // The execution has moved on (timed out, stopped, answered): nothing to tell.
            Err(skein_core::Error::TokenGone { reason }) => {
                tracing::warn!(dataset = %job.dataset, "the task token no longer waits: {reason}");
                Handled::Done
            }
            Err(e) => {
                tracing::warn!(dataset = %job.dataset, "answering the task token: {e}");
                return Worked {
                    handled: Handled::Again {
                        after: self.slot_wait,
                    },
                    busy,
                    succeeded: None,
                };
            }
        };
        Worked {
            handled,
            busy,
            succeeded: Some(ok),
        }
    }
}

/// A job that reached its group's dead-letter queue: its deliveries failed or its workers
/// died `receives` times. Fails its task token with `Skein.DeadLettered`, naming the
/// dataset, the receive count and the last error the catalog recorded for it, so the
/// execution rolls the dataset back and ends instead of waiting out the task's timeout.
/// `Ok(false)`: the token no longer waits (answered already); nothing to do.
pub async fn dead_lettered<C: Catalog + ?Sized>(
    catalog: &C,
    callbacks: &dyn TaskCallbacks,
    job: &Job,
    receives: Option<u32>,
) -> skein_core::Result<bool> {
    let last_error = catalog
        .attempts(&job.dataset)
        .await
        .ok()
        .and_then(|a| a.into_iter().rev().find_map(|a| a.error));
    let cause = format!(
        "dataset `{}` (run `{}`{}): its migrate job reached the dead-letter queue after {} delivery(ies){}; see the worker's logs, fix the cause and run again",
        job.dataset,
        job.run_id,
        job.chunk
            .map(|c| format!(", chunk {c}"))
            .unwrap_or_default(),
        receives.map_or_else(|| "repeated".to_string(), |n| n.to_string()),
        last_error
            .map(|e| format!("; the last error recorded: {e}"))
            .unwrap_or_default(),
    );
    tracing::warn!(dataset = %job.dataset, "dead-lettered: {cause}");
    match callbacks
        .fail(&job.task_token, names::DEAD_LETTERED, &cause)
        .await
    {
        Ok(_) => Ok(true),
        Err(skein_core::Error::TokenGone { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
