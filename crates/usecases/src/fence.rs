//! Fencing: every attempt of a run gets the catalog's next attempt number
//! ([`Catalog::start_attempt`], a conditional write), and that number is its fencing token.
//!
//! - The attempt stages under its own `staging/<run>/a<N>/` ([`Target::with_attempt`]):
//!   a stale worker of attempt 1 (its token timed out, its heartbeat not yet refused) and
//!   attempt 2 never share, read or delete each other's files.
//! - Its status changes are [`Catalog::transition_in_attempt`]: refused with
//!   `Superseded` once a newer attempt started, in the same conditional write.
//! - Publish takes the staged version of the run's newest attempt only.
//!
//! A chunked dataset stages at the run's level (`staging/<run>/`): its chunk jobs and the
//! combine job are separate tasks of one attempt, and the chunks finished by a failed
//! attempt are reused by the next. Publish finds that staging when the newest attempt
//! has none of its own.

use skein_core::catalog::Catalog;
use skein_data::Target;

use crate::error::Result;

/// The newest attempt the catalog handed out to `run` for dataset `name`, if any.
pub(crate) async fn run_attempt<C: Catalog + ?Sized>(
    catalog: &C,
    name: &str,
    run: &str,
) -> Result<Option<u32>> {
    Ok(catalog
        .attempts(name)
        .await?
        .into_iter()
        .filter(|a| a.run_id == run)
        .map(|a| a.attempt)
        .max())
}

/// The target as publish must see `run`'s staging: the newest attempt's own staging when
/// it staged anything, otherwise the run's level (a chunked dataset, or a staging from
/// before attempts had their own directories).
pub(crate) async fn staged_target<C: Catalog + ?Sized>(
    catalog: &C,
    store: &Target,
    name: &str,
    run: &str,
) -> Result<Target> {
    if let Some(n) = run_attempt(catalog, name, run).await? {
        let fenced = store.clone().with_attempt(n);
        if fenced.has_staging(run).await? {
            return Ok(fenced);
        }
    }
    Ok(store.clone())
}

/// Closes the run's earlier attempts that never ended, now that `attempt` started: their
/// worker died (the job was delivered again) or their task timed out (a stale worker
/// may still run, and is refused at its next status change). The attempt list then says
/// what became of each.
pub(crate) async fn supersede_earlier<C: Catalog + ?Sized>(
    catalog: &C,
    name: &str,
    run: &str,
    attempt: u32,
) -> Result<()> {
    let open = catalog
        .attempts(name)
        .await?
        .into_iter()
        .filter(|a| a.run_id == run && a.attempt < attempt && a.finished_at.is_none());
    for earlier in open {
        let reason = format!(
            "attempt {attempt} of run `{run}` started: this attempt's worker died or its task timed out"
        );
        catalog
            .finish_attempt(name, earlier.attempt, SUPERSEDED, Some(&reason))
            .await?;
    }
    Ok(())
}

/// The outcome of an attempt a newer one superseded.
pub(crate) const SUPERSEDED: &str = "superseded";

/// A worker whose attempt a newer one superseded stops; its attempt is closed as
/// `superseded` unless the newer attempt closed it already. The error goes on.
pub(crate) async fn stop_superseded<C: Catalog + ?Sized>(
    catalog: &C,
    name: &str,
    attempt: u32,
    outcome: Result<()>,
) -> Result<()> {
    if let Err(crate::Error::Catalog(e @ skein_core::Error::Superseded { .. })) = &outcome {
        tracing::warn!(dataset = name, "{e}");
        let open = catalog
            .attempts(name)
            .await
            .map(|all| {
                all.iter()
                    .any(|a| a.attempt == attempt && a.finished_at.is_none())
            })
            .unwrap_or(false);
        if open {
            let _ = catalog
                .finish_attempt(name, attempt, SUPERSEDED, Some(&e.to_string()))
                .await;
        }
    }
    outcome
}
