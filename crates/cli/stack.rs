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
    pub name: String,
    pub outputs: BTreeMap<String, String>,
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
        name: name.to_string(),
        catalog: DynamoCatalog::connect(&settings, table).await,
        callbacks: SfnCallbacks::connect(&settings).await,
        outputs,
    })
}

impl Deployed {
    /// What the dashboard and the report read on this stack: its DynamoDB catalog, its
    /// SQS queues (when the stack names their prefix), the executions of its two state
    /// machines in Step Functions, and its task tokens.
    pub async fn sources(self) -> skein_ui::Sources {
        use std::sync::Arc;
        let settings = AwsSettings::from_env();
        let queue: Option<Arc<dyn skein_core::queue::JobQueue>> =
            match self.outputs.get("MigrateQueueUrlPrefix") {
                Some(prefix) => Some(Arc::new(
                    skein_aws::SqsQueue::connect(&settings, prefix).await,
                )),
                None => None,
            };
        let machines = [
            "MigrationRunStateMachineArn",
            "DatasetMigrationStateMachineArn",
        ]
        .into_iter()
        .filter_map(|k| self.outputs.get(k).cloned())
        .collect();
        let executions =
            crate::executions::SfnExecutions::new(self.callbacks.client().clone(), machines);
        skein_ui::Sources {
            place: format!("the stack {}", self.name),
            dir: None,
            catalog: Arc::new(self.catalog),
            queue,
            executions: Arc::new(executions),
            callbacks: Arc::new(self.callbacks),
        }
    }

    /// The output `key`, or an error naming the stack and the output.
    pub fn output(&self, key: &str) -> anyhow::Result<&str> {
        self.outputs.get(key).map(String::as_str).with_context(|| {
            format!(
                "the stack `{}` has no output {key}: is it a skein stack (infra/template.yaml)?",
                self.name
            )
        })
    }
}

/// `skein run s3://…/specs/ --stack NAME`: starts `migration-run` (StartExecution, named
/// after the run id, so a repeated command with `--resume RUN` starts nothing new) and
/// follows it, from the execution's status and the run's counters in the catalog, until
/// it ends. Ctrl-C stops following, not the run. `--detach` returns once it started.
pub async fn run(g: &crate::flags::Global, args: &crate::flags::RunArgs) -> anyhow::Result<u8> {
    use skein_core::catalog::Catalog;
    let name = g.stack.as_deref().unwrap_or_default();
    let deployed = connect(name).await?;
    let specs = match &args.dir {
        Some(d) => d.to_string_lossy().to_string(),
        None => anyhow::bail!(
            "give the specs' S3 prefix, e.g. `skein run s3://bucket/specs/ --stack {name}`"
        ),
    };
    if !specs.starts_with("s3://") {
        eprintln!(
            "error: on a stack the specs are read from S3: give their prefix (s3://bucket/specs/), not `{specs}`"
        );
        return Ok(crate::EXIT_USAGE);
    }
    let machine = deployed.output("MigrationRunStateMachineArn")?.to_string();
    let run_id = args
        .resume
        .clone()
        .unwrap_or_else(skein_usecases::new_run_id);
    let input = serde_json::json!({"runId": run_id, "specs": specs});
    let sfn = deployed.callbacks.client();
    let started = sfn
        .start_execution()
        .state_machine_arn(&machine)
        .name(&run_id)
        .input(input.to_string())
        .send()
        .await
        .map_err(|e| {
            use aws_sdk_cloudformation::error::ProvideErrorMetadata;
            anyhow::anyhow!(
                "cannot start {machine}: {}",
                e.message().unwrap_or(&e.to_string())
            )
        })?;
    let arn = started.execution_arn().to_string();
    if !g.json && !g.quiet {
        eprintln!("started run {run_id} on stack {name}: {arn}");
    }
    let report = |status: &str, run: Option<&skein_core::catalog::RunRecord>| {
        serde_json::json!({"runId": run_id, "executionArn": arn, "status": status,
            "run": run})
    };
    if args.detach {
        if g.json {
            println!("{}", report("RUNNING", None));
        } else {
            println!(
                "run {run_id} started; follow it with `skein runs --stack {name}` or in the Step Functions console"
            );
        }
        return Ok(crate::EXIT_OK);
    }
    let mut last = String::new();
    loop {
        let described = sfn.describe_execution().execution_arn(&arn).send().await;
        let status = match &described {
            Ok(d) => d.status().as_str().to_string(),
            Err(e) => {
                tracing::warn!("describe {arn}: {e}");
                "RUNNING".to_string()
            }
        };
        let record = deployed.catalog.run(&run_id).await.ok().flatten();
        let line = match &record {
            Some(r) => format!(
                "{status}: {} of {} dataset(s) completed, {} failed",
                r.succeeded, r.total, r.failed
            ),
            None => format!("{status}: planning"),
        };
        if line != last && !g.json && !g.quiet {
            eprintln!("{line}");
            last = line;
        }
        if status != "RUNNING" {
            let ok = status == "SUCCEEDED"
                && record
                    .as_ref()
                    .is_some_and(|r| r.status == skein_core::catalog::RunStatus::Succeeded);
            if g.json {
                println!("{}", report(&status, record.as_ref()));
            } else {
                println!("run {run_id} {}", status.to_lowercase());
            }
            return Ok(if ok {
                crate::EXIT_OK
            } else {
                crate::EXIT_DATASET_FAILED
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            _ = tokio::signal::ctrl_c() => {
                eprintln!("stopped following; run {run_id} goes on: `skein runs --stack {name}`");
                return Ok(crate::EXIT_OK);
            }
        }
    }
}
