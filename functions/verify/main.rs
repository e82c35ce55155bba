//! skein-verify: the verification gate, `{dataset, runId}` → `{summary}`; fails with
//! `Skein.VerificationFailed` unless the worker's verification passed.
//! Environment: `SKEIN_TABLE`.

use skein_aws::lambda;
use skein_usecases::tasks;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let catalog = lambda::catalog_from_env().await?;
    lambda::serve_payload("verify", |p| {
        let catalog = catalog.clone();
        async move { tasks::verify_task(&catalog, &p).await }
    })
    .await
}
