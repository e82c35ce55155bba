//! skein-publish: makes the run's staged version current, `{dataset, runId}` → `{version}`.
//! Environment: `SKEIN_TABLE`.

use skein_aws::lambda;
use skein_usecases::tasks;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let catalog = lambda::catalog_from_env().await?;
    // S3 endpoint and credentials from the standard AWS environment.
    let settings = skein_data::Settings::default();
    lambda::serve_payload("publish", |p| {
        let (catalog, settings) = (catalog.clone(), settings.clone());
        async move { tasks::publish_task(&catalog, &settings, &p).await }
    })
    .await
}
