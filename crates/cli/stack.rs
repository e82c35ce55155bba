//! `--stack NAME` (or `SKEIN_STACK`): the operator commands against a deployed stack.
//! The stack's outputs (CloudFormation `DescribeStacks`) name its catalog table, buckets
//! and state machines; credentials, region and endpoint come from the standard AWS
//! environment (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, …). The catalog is the
//! same `DynamoCatalog` the functions use, and task tokens are answered through Step
//! Functions, so `skein approve` on a stack is the same use case as locally.

use std::collections::BTreeMap;

use anyhow::Context;
use skein_aws::{AwsSettings, DynamoCatalog, SfnCallbacks};

/// The output naming the catalog table.
const TABLE_OUTPUT: &str = "CatalogTableName";

/// A deployed stack, as its outputs describe it.
pub struct Deployed {
    pub catalog: DynamoCatalog,
    pub callbacks: SfnCallbacks,
}

/// Reads the stack's outputs and connects to its catalog and Step Functions.
pub async fn connect(name: &str) -> anyhow::Result<Deployed> {
    let settings = AwsSettings::from_env();
    let config = settings.sdk_config().await;
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    let described = cfn
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| {
            use aws_sdk_cloudformation::error::ProvideErrorMetadata;
            anyhow::anyhow!(
                "cannot describe the stack `{name}`: {}; check --stack (or SKEIN_STACK), the region (AWS_REGION) and the credentials",
                e.message().unwrap_or(&e.to_string())
            )
        })?;
    let stack = described
        .stacks
        .unwrap_or_default()
        .into_iter()
        .next()
        .with_context(|| format!("no stack named `{name}` in this account and region"))?;
    let outputs: BTreeMap<String, String> = stack
        .outputs
        .unwrap_or_default()
        .into_iter()
        .filter_map(|o| Some((o.output_key?, o.output_value?)))
        .collect();
    let table = outputs.get(TABLE_OUTPUT).with_context(|| {
        format!(
            "the stack `{name}` has no output {TABLE_OUTPUT}: is it a skein stack (infra/template.yaml)?"
        )
    })?;
    Ok(Deployed {
        catalog: DynamoCatalog::connect(&settings, table).await,
        callbacks: SfnCallbacks::connect(&settings).await,
    })
}
