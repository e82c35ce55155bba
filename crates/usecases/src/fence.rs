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
