//! skein-catalog: the status steps of the state machines (`action`: checkDependencies,
//! acquireLease, awaitApproval, complete, summarise) on the DynamoDB catalog.
//! Environment: `SKEIN_TABLE`.

use skein_aws::lambda;
use skein_usecases::tasks;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let catalog = lambda::catalog_from_env().await?;
    lambda::serve_payload("catalog", |p| {
        let catalog = catalog.clone();
        async move { tasks::catalog_action(&catalog, &p).await }
    })
    .await
}
