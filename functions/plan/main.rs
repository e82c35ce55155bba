//! skein-plan: the migration-run state machine's Plan task.
//!
//! `{runId, specs: "s3://bucket/prefix/"}` → the run's waves, canary and caps (references
//! only). Reads the specs from S3, registers them in the catalog, records the run.
//! Environment: `SKEIN_TABLE`.

use skein_aws::{AwsSettings, functions, lambda};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let settings = AwsSettings::from_env();
    let catalog = lambda::catalog_from_env().await?;
    lambda::serve_payload("plan", |p| {
        let (catalog, settings) = (catalog.clone(), settings.clone());
        async move { functions::plan(&catalog, &settings, &p).await }
    })
    .await
}
