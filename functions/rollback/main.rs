//! skein-rollback: after any failure, undoes the run's work on a dataset (discards its
//! staging, restores the previous version if the run published) and records the reason.
//! `{dataset, runId, error, cause}` → `{status, reason}`. Environment: `SKEIN_TABLE`.

use skein_aws::lambda;
use skein_usecases::tasks;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let catalog = lambda::catalog_from_env().await?;
    // S3 endpoint and credentials from the standard AWS environment.
    let settings = skein_data::Settings::default();
    lambda::serve_payload("rollback", |p| {
        let (catalog, settings) = (catalog.clone(), settings.clone());
        async move { tasks::rollback_task(&catalog, &settings, &p).await }
    })
    .await
}
