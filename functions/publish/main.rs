//! skein-publish: makes the run's staged version current, `{dataset, runId}` → `{version}`.
//! Environment: `SKEIN_TABLE`.

use skein_aws::lambda;
use skein_usecases::tasks;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let catalog = lambda::catalog_from_env().await?;
    lambda::serve_payload("publish", |p| {
        let catalog = catalog.clone();
        async move { tasks::publish_task(&catalog, &p).await }
    })
    .await
}
