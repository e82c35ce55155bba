//! skein-catalog: the status steps of the state machines (`action`: checkDependencies,
//! acquireLease, awaitApproval, complete, summarise) on the DynamoDB catalog.
//! Environment: `SKEIN_TABLE`; S3 access for the run's item lists (summarise).

use skein_aws::{AwsSettings, functions, lambda};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let settings = AwsSettings::from_env();
    let catalog = lambda::catalog_from_env().await?;
    lambda::serve_payload("catalog", |p| {
        let (catalog, settings) = (catalog.clone(), settings.clone());
        async move { functions::catalog(&catalog, &settings, &p).await }
    })
    .await
}
