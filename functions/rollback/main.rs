//! skein-rollback: after any failure, undoes the run's work on a dataset (discards its
//! staging, restores the previous version if the run published) and records the reason.
//! `{dataset, runId, error, cause}` → `{status, reason}`. Environment: `SKEIN_TABLE`.

use skein_aws::lambda;
use skein_usecases::tasks;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let catalog = lambda::catalog_from_env().await?;
    lambda::serve_payload("rollback", |p| {
        let catalog = catalog.clone();
        async move { tasks::rollback_task(&catalog, &p).await }
    })
    .await
}
