//! The AWS adapters against a moto server on 127.0.0.1 (the AWS wire protocols, no fakes of
//! the SDK): the DynamoDB catalog through the shared conformance suite, conditional
//! writes under contention, source-system semaphores, SQS queues with dead letters, the
//! state machines created in Step Functions, and every Lambda binary answering through the
//! cargo-lambda runtime emulator.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use serde_json::{Value, json};
use skein_aws::{AwsSettings, DynamoCatalog, SqsQueue};
use skein_core::Status;
use skein_core::catalog::Catalog;
use skein_core::conformance;
use skein_core::queue::{Job, JobQueue};
use skein_usecases::tasks;

use crate::moto::{self, REGION, moto, unique};
use crate::util::repo_root;

fn settings() -> AwsSettings {
    AwsSettings::local(&moto().endpoint, REGION)
}

async fn catalog() -> DynamoCatalog {
    let c = DynamoCatalog::connect(&settings(), &unique("skein")).await;
    c.create_table().await.expect("create table in moto");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_catalog_conforms() {
    let c: Arc<dyn Catalog> = Arc::new(catalog().await);
    conformance::run_all(c, "ddb-").await;
}

/// The `ByKind` index key is sharded: datasets spread over the 16 `dataset#<n>` keys, a
/// listing merges every shard in name order, and an item written before sharding (kind
/// `dataset`) is still listed and moves to its shard when its spec changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_index_keys_are_sharded_and_listed_in_order() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let c = catalog().await;
    let names: Vec<String> = (0..48).map(|i| format!("shard-{i:02}")).collect();
    for name in &names {
        let (spec, hash) = conformance::spec(name, "");
        c.put_spec(&spec, &hash).await.unwrap();
    }
    let ddb = aws_sdk_dynamodb::Client::new(&settings().sdk_config().await);
    let kind_of = |name: String| {
        let ddb = ddb.clone();
        let table = c.table().to_string();
        async move {
            let out = ddb
                .get_item()
                .table_name(table)
                .key("PK", AttributeValue::S(format!("DS#{name}")))
                .key("SK", AttributeValue::S("META".into()))
                .send()
                .await
                .unwrap();
            out.item.unwrap()["kind"].as_s().unwrap().clone()
        }
    };
    let mut kinds = std::collections::BTreeSet::new();
    for name in &names {
        let kind = kind_of(name.clone()).await;
        assert_eq!(kind, skein_aws::catalog::kind_key("dataset", name));
        kinds.insert(kind);
    }
    assert!(
        kinds.len() >= 10,
        "48 datasets on {} index keys: {kinds:?}",
        kinds.len()
    );

    // An item as written before sharding: the unsharded key.
    ddb.update_item()
        .table_name(c.table())
        .key("PK", AttributeValue::S("DS#shard-07".into()))
        .key("SK", AttributeValue::S("META".into()))
        .update_expression("SET kind = :k")
        .expression_attribute_values(":k", AttributeValue::S("dataset".into()))
        .send()
        .await
        .unwrap();
    let listed: Vec<String> = c
        .datasets()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(
        listed, names,
        "every shard and the legacy key, merged in name order"
    );
    let (spec, hash) = conformance::spec("shard-07", "changed");
    c.put_spec(&spec, &hash).await.unwrap();
    assert_eq!(
        kind_of("shard-07".into()).await,
        skein_aws::catalog::kind_key("dataset", "shard-07")
    );
    assert_eq!(c.datasets().await.unwrap().len(), names.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_workers_one_wins_the_lease_and_the_transition() {
    let c = Arc::new(catalog().await);
    let (spec, hash) = conformance::spec("contended", "");
    c.put_spec(&spec, &hash).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..6 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let lease = c
                .acquire_lease("contended", &format!("worker-{w}"), 300)
                .await;
            let moved = c
                .transition("contended", Status::Pending, Status::InProgress, None, None)
                .await;
            (lease.is_ok(), moved)
        }));
    }
    let (mut leases, mut moves, mut conflicts) = (0, 0, 0);
    for t in tasks {
        let (lease, moved) = t.await.unwrap();
        leases += lease as u32;
        match moved {
            Ok(()) => moves += 1,
            Err(skein_core::Error::StatusConflict { actual, .. }) => {
                assert_eq!(actual, Status::InProgress);
                conflicts += 1;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((leases, moves, conflicts), (1, 1, 5));
    // A conflicting transition wrote no history: registered + one change.
    assert_eq!(c.history("contended").await.unwrap().len(), 2);
    // An illegal transition never reaches the table.
    let err = c
        .transition(
            "contended",
            Status::InProgress,
            Status::Completed,
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, skein_core::Error::IllegalTransition { .. }),
        "{err}"
    );
    assert_eq!(
        c.dataset("contended").await.unwrap().unwrap().status,
        Status::InProgress
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn source_system_semaphore_caps_readers() {
    let c = Arc::new(catalog().await);
    c.put_system_caps(&[("legacy-crm".to_string(), 2)].into_iter().collect())
        .await
        .unwrap();
    assert_eq!(c.system_cap("legacy-crm").await.unwrap(), Some(2));
    let mut tasks = Vec::new();
    for r in 0..5 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.acquire_slot("legacy-crm", &format!("reader-{r}"), 2, 300)
                .await
                .unwrap()
        }));
    }
    let mut took = Vec::new();
    for (r, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap() {
            took.push(r);
        }
    }
    assert_eq!(took.len(), 2, "two of five readers get a slot: {took:?}");
    assert_eq!(c.slots_taken("legacy-crm").await.unwrap(), 2);
    // The holder asking again keeps its slot; releasing twice gives back one slot.
    assert!(
        c.acquire_slot("legacy-crm", &format!("reader-{}", took[0]), 2, 300)
            .await
            .unwrap()
    );
    c.release_slot("legacy-crm", &format!("reader-{}", took[0]))
        .await
        .unwrap();
    c.release_slot("legacy-crm", &format!("reader-{}", took[0]))
        .await
        .unwrap();
    assert_eq!(c.slots_taken("legacy-crm").await.unwrap(), 1);
    assert!(c.acquire_slot("legacy-crm", "late", 2, 300).await.unwrap());
    assert!(!c.acquire_slot("legacy-crm", "later", 2, 300).await.unwrap());
    // A reader that died frees its slot when its time runs out.
    c.release_slot("legacy-crm", "late").await.unwrap();
    assert!(c.acquire_slot("legacy-crm", "dies", 2, 0).await.unwrap());
    assert!(c.acquire_slot("legacy-crm", "next", 2, 300).await.unwrap());
    assert_eq!(c.slots_taken("legacy-crm").await.unwrap(), 2);
}

async fn queue_with_group(max_receives: u32) -> (SqsQueue, String) {
    let prefix_name = unique("skein-migrate");
    let account_prefix = format!("{}/123456789012/{prefix_name}-", moto().endpoint);
    let q = SqsQueue::connect(&settings(), &account_prefix).await;
    let url = q
        .create_group(&format!("{prefix_name}-bulk"), max_receives, 30)
        .await
        .unwrap();
    assert_eq!(url, q.url("bulk"), "queue URL must be the prefix + group");
    (q, "bulk".to_string())
}

// The queue contract (issue 16), the same suite as the SQLite queue's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_queue_conforms() {
    let (q, g) = queue_with_group(2).await;
    conformance::queue(&q, &g).await;
}

// The reader-slot port on DynamoDB: the conformance suite, caps as Plan writes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_reader_slots_conform() {
    let c = catalog().await;
    let mut caps = std::collections::BTreeMap::new();
    caps.insert("crm".to_string(), 2u32);
    c.put_system_caps(&caps).await.unwrap();
    conformance::reader_slots(&c, "crm", "warehouse").await;
}

/// A state machine definition with the substitutions applied, as CloudFormation would.
fn substituted(file: &str, subs: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(repo_root().join("state-machines").join(file)).unwrap();
    for (k, v) in subs {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    assert!(
        !text.contains("${"),
        "{file}: a substitution is left: {}",
        &text[text.find("${").unwrap()..][..40]
    );
    text
}

fn substitutions(child_arn: &str) -> Vec<(&'static str, String)> {
    let f = |n: &str| format!("arn:aws:lambda:{REGION}:123456789012:function:{n}");
    vec![
        ("PlanFunctionArn", f("skein-plan")),
        ("CatalogFunctionArn", f("skein-catalog")),
        ("VerifyFunctionArn", f("skein-verify")),
        ("PublishFunctionArn", f("skein-publish")),
        ("RollbackFunctionArn", f("skein-rollback")),
        ("DatasetMigrationStateMachineArn", child_arn.to_string()),
        (
            "MigrateQueueUrlPrefix",
            format!("https://sqs.{REGION}.amazonaws.com/123456789012/skein-migrate-"),
        ),
        (
            "WorkerClusterArn",
            format!("arn:aws:ecs:{REGION}:123456789012:cluster/skein-workers"),
        ),
        (
            "WorkerTaskDefinitionArn",
            format!("arn:aws:ecs:{REGION}:123456789012:task-definition/skein-worker:1"),
        ),
        (
            "WorkerSubnets",
            "subnet-0a1b2c3d,subnet-4e5f6a7b".to_string(),
        ),
        ("WorkerSecurityGroup", "sg-0a1b2c3d4e5f".to_string()),
    ]
}

/// Creates both state machines in moto's Step Functions; returns the run machine's ARN.
async fn create_state_machines(sfn: &aws_sdk_sfn::Client, suffix: &str) -> String {
    let role = "arn:aws:iam::123456789012:role/skein-states";
    let child = sfn
        .create_state_machine()
        .name(format!("skein-dataset-migration-{suffix}"))
        .role_arn(role)
        .definition(substituted(
            "dataset-migration.asl.json",
            &substitutions("unused"),
        ))
        .send()
        .await
        .expect("CreateStateMachine dataset-migration");
    let run = sfn
        .create_state_machine()
        .name(format!("skein-migration-run-{suffix}"))
        .role_arn(role)
        .definition(substituted(
            "migration-run.asl.json",
            &substitutions(&child.state_machine_arn),
        ))
        .send()
        .await
        .expect("CreateStateMachine migration-run");
    run.state_machine_arn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_machines_are_created_in_step_functions() {
    let sfn = aws_sdk_sfn::Client::new(&settings().sdk_config().await);
    let suffix = unique("sm");
    let arn = create_state_machines(&sfn, &suffix).await;
    let described = sfn
        .describe_state_machine()
        .state_machine_arn(&arn)
        .send()
        .await
        .unwrap();
    let def: Value = serde_json::from_str(&described.definition).unwrap();
    assert_eq!(def["StartAt"], "Plan");
    assert!(described.definition.contains(":function:skein-plan"));
    // moto stores definitions without checking them against the ASL schema; the schema
    // check is asl-validator's (scripts/check-infra) and `skein states validate`'s.
    let child: Value = serde_json::from_str(&substituted(
        "dataset-migration.asl.json",
        &substitutions("unused"),
    ))
    .unwrap();
    assert_eq!(child["StartAt"], "CheckDependencies");
}

// ---------------------------------------------------------------------------------------
// The Lambda binaries through the cargo-lambda runtime emulator.

/// `target/<profile>/<name>`, next to this test binary's `deps/` directory.
fn function_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the functions first (`cargo build --workspace --bins`; scripts/test does)",
        path.display()
    );
    path
}

struct Emulator {
    port: u16,
    children: Vec<Child>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn cargo_lambda() -> PathBuf {
    let p = repo_root().join(".venv/bin/cargo-lambda");
    assert!(
        p.exists(),
        "cargo-lambda is not installed ({} is missing); run scripts/setup",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `cargo lambda watch --only-lambda-apis` (the Lambda Runtime API and Invoke API)
/// and the function binary polling it, with `env` and moto's endpoint.
fn emulate(binary: &str, env: &[(&str, String)]) -> Emulator {
    let port = free_port();
    let watch = Command::new(cargo_lambda())
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--invoke-address",
            "127.0.0.1",
        ])
        .args(["--invoke-port", &port.to_string()])
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cargo lambda watch");
    let mut em = Emulator {
        port,
        children: vec![watch],
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the runtime emulator did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut cmd = Command::new(function_binary(binary));
    cmd.envs(moto::env())
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    em.children.push(cmd.spawn().expect("start the function"));
    em
}

/// Invokes the emulated function with `cargo lambda invoke`: the response, or the error's
/// `errorType` and message.
fn invoke(em: &Emulator, payload: &Value) -> Result<Value, (String, String)> {
    let out = Command::new(cargo_lambda())
        .args(["lambda", "invoke", "_", "--invoke-address", "127.0.0.1"])
        .args([
            "--invoke-port",
            &em.port.to_string(),
            "--output-format",
            "json",
        ])
        .args(["--data-ascii", &payload.to_string()])
        .current_dir(repo_root())
        .output()
        .expect("run cargo lambda invoke");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("the response is not JSON ({e}): {stdout}")))
    } else {
        let kind = stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("Error: "))
            .unwrap_or("")
            .trim()
            .to_string();
        Err((kind, stderr.to_string()))
    }
}

async fn put_object(bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
    let store = skein_aws::objects::bucket(&settings(), bucket).unwrap();
    store
        .put(&ObjectPath::from(key), body.into().into())
        .await
        .unwrap();
}

async fn create_bucket(name: &str) {
    // S3 CreateBucket is a PUT on the bucket: object_store does not create buckets.
    let status = Command::new(repo_root().join(".venv/bin/python"))
        .args([
            "-c",
            "import sys, boto3; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', \
             aws_access_key_id='t', aws_secret_access_key='t').create_bucket(Bucket=sys.argv[2])",
            &moto().endpoint,
            name,
        ])
        .status()
        .unwrap();
    assert!(status.success(), "create bucket {name}");
}

fn spec_yaml(name: &str, bucket: &str) -> String {
    format!(
        "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: {name}, owner: team-test}}\n\
         spec:\n  source: {{uri: s3://{bucket}/raw/{name}.csv, format: csv, system: legacy-crm}}\n\
         \x20 target: {{uri: s3://{bucket}/lake/{name}/}}\n  transform: {{sql: \"SELECT * FROM source\"}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lambda_binary_answers_through_the_runtime_emulator() {
    let c = catalog().await;
    let table = c.table().to_string();
    let with_table = [("SKEIN_TABLE", table.clone())];
    let bucket = unique("skein-data");
    create_bucket(&bucket).await;
    put_object(
        &bucket,
        "specs/customers.yaml",
        // A relative source, as the samples have: relative to the spec's place in S3.
        spec_yaml("customers", &bucket).replace(
            &format!("s3://{bucket}/raw/customers.csv"),
            "data/customers.csv",
        ),
    )
    .await;
    put_object(&bucket, "specs/orders.yaml", spec_yaml("orders", &bucket)).await;
    put_object(
        &bucket,
        "specs/skein.yaml",
        "apiVersion: skein/v1\nkind: Fleet\nspec:\n  systems:\n    legacy-crm: {readers: 1}\n",
    )
    .await;

    // plan: specs from S3 into the catalog, waves back, system caps kept.
    let em = emulate("skein-plan", &with_table);
    let plan = invoke(
        &em,
        &json!({"runId": "run-lambda", "specs": format!("s3://{bucket}/specs/")}),
    )
    .expect("plan answers");
    assert_eq!(plan["total"], 2, "{plan}");
    assert_eq!(plan["prefix"], "runs/run-lambda/", "{plan}");
    let items = skein_aws::objects::read_text(&settings(), &bucket, "runs/run-lambda/canary.jsonl")
        .await
        .unwrap()
        + &skein_aws::objects::read_text(&settings(), &bucket, "runs/run-lambda/wave-0.jsonl")
            .await
            .unwrap();
    assert_eq!(
        items.lines().count(),
        2,
        "the plan's item lists in S3: {items}"
    );
    assert_eq!(c.system_cap("legacy-crm").await.unwrap(), Some(1));
    let customers = c.dataset("customers").await.unwrap().unwrap();
    assert_eq!(
        customers.spec.spec.source.uri,
        format!("s3://{bucket}/specs/data/customers.csv")
    );
    assert_eq!(c.run("run-lambda").await.unwrap().unwrap().total, 2);
    let (kind, _) = invoke(
        &em,
        &json!({"runId": "run-x", "specs": format!("s3://{bucket}/nothing/")}),
    )
    .expect_err("no specs");
    assert_eq!(kind, "Skein.InvalidSpec");
    drop(em);

    // catalog: a lease, then the same lease for another run is refused by name.
    let em = emulate("skein-catalog", &with_table);
    invoke(
        &em,
        &json!({"action": "acquireLease", "dataset": "orders", "runId": "run-lambda"}),
    )
    .expect("lease");
    let (kind, msg) = invoke(
        &em,
        &json!({"action": "acquireLease", "dataset": "orders", "runId": "run-other"}),
    )
    .expect_err("lease held");
    assert_eq!(kind, "Skein.LeaseHeld", "{msg}");
    let (kind, _) = invoke(
        &em,
        &json!({"action": "acquireLease", "dataset": "ghost", "runId": "r"}),
    )
    .expect_err("unknown dataset");
    assert_eq!(kind, "Skein.UnknownDataset");
    assert!(
        c.dataset("ghost").await.unwrap().is_none(),
        "nothing written for a bad request"
    );
    let (kind, _) = invoke(&em, &json!({"dataset": "orders"})).expect_err("no action");
    assert_eq!(kind, "Skein.BadRequest");
    drop(em);

    // verify and publish refuse a dataset that was never verified.
    let em = emulate("skein-verify", &with_table);
    let (kind, _) = invoke(&em, &json!({"dataset": "orders", "runId": "run-lambda"})).unwrap_err();
    assert_eq!(kind, "Skein.VerificationFailed");
    drop(em);
    let em = emulate("skein-publish", &with_table);
    let (kind, _) = invoke(&em, &json!({"dataset": "orders", "runId": "run-lambda"})).unwrap_err();
    assert_eq!(kind, "Skein.NotVerified");
    drop(em);

    // rollback: records the failure with its reason, releases the lease.
    let em = emulate("skein-rollback", &with_table);
    let undone = invoke(
        &em,
        &json!({"dataset": "orders", "runId": "run-lambda", "error": "Skein.SourceUnreadable", "cause": "gone"}),
    )
    .expect("rollback answers");
    assert_eq!(undone["status"], "failed", "{undone}");
    let orders = c.dataset("orders").await.unwrap().unwrap();
    assert_eq!(orders.status, Status::Failed);
    assert!(
        orders
            .reason
            .unwrap()
            .contains("Skein.SourceUnreadable: gone")
    );
    drop(em);

    // migrate: a malformed message comes back as a batch item failure; a job for a
    // dataset whose lease another run holds changes nothing.
    c.acquire_lease("customers", "run-other", 300)
        .await
        .unwrap();
    let before = c.history("customers").await.unwrap();
    let em = emulate("skein-migrate", &with_table);
    let record = |id: &str, body: &str| {
        json!({"messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
               "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
               "md5OfBody": "", "eventSource": "aws:sqs",
               "eventSourceARN": format!("arn:aws:sqs:{REGION}:123456789012:skein-migrate-default"),
               "awsRegion": REGION})
    };
    let held = json!({"dataset": "customers", "runId": "run-lambda", "taskToken": "tok-1"});
    let response = invoke(
        &em,
        &json!({"Records": [record("m1", "not a job"), record("m2", &held.to_string())]}),
    )
    .expect("migrate answers");
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "m1"}]),
        "{response}"
    );
    assert_eq!(
        c.history("customers").await.unwrap(),
        before,
        "catalog unchanged"
    );
    assert_eq!(
        c.dataset("customers").await.unwrap().unwrap().status,
        Status::Pending
    );
    drop(em);

    // trigger: a run-request object starts the migration-run state machine once.
    let sfn = aws_sdk_sfn::Client::new(&settings().sdk_config().await);
    let run_arn = create_state_machines(&sfn, &unique("trig")).await;
    put_object(
        &bucket,
        "run-requests/nightly.json",
        json!({"specs": format!("s3://{bucket}/specs/")}).to_string(),
    )
    .await;
    let em = emulate(
        "skein-trigger",
        &[("SKEIN_RUN_STATE_MACHINE_ARN", run_arn.clone())],
    );
    let event = json!({"version": "0", "detail-type": "Object Created", "source": "aws.s3",
        "detail": {"bucket": {"name": bucket}, "object": {"key": "run-requests/nightly.json", "etag": "abcdef0123"}}});
    let started = invoke(&em, &event).expect("trigger answers");
    assert_eq!(
        started["runs"][0]["runId"], "run-nightly-abcdef01",
        "{started}"
    );
    assert_eq!(started["runs"][0]["started"], true);
    // A repeated event (S3 delivers at least once) starts nothing new: StartExecution with
    // the same name and input is idempotent, or refused as already existing.
    let again = invoke(&em, &event).expect("a repeated event");
    if again["runs"][0]["started"] == true {
        assert_eq!(
            again["runs"][0]["executionArn"],
            started["runs"][0]["executionArn"]
        );
    }
    let execs = sfn
        .list_executions()
        .state_machine_arn(&run_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(execs.executions.len(), 1);
    let input: Value = serde_json::from_str(
        &sfn.describe_execution()
            .execution_arn(&execs.executions[0].execution_arn)
            .send()
            .await
            .unwrap()
            .input
            .unwrap(),
    )
    .unwrap();
    assert_eq!(input["specs"], format!("s3://{bucket}/specs/"));
    let (kind, _) = invoke(&em, &json!({"hello": "world"})).expect_err("not an S3 event");
    assert_eq!(kind, "Skein.BadRequest");
    drop(em);
}

/// The data settings for moto.
fn data_settings() -> skein_data::Settings {
    skein_data::Settings {
        s3: skein_data::S3Settings::with_endpoint(&moto().endpoint, REGION, "testing", "testing"),
        ..skein_data::Settings::default()
    }
}

async fn current_version(bucket: &str, target_key: &str) -> Value {
    let store = skein_aws::objects::bucket(&settings(), bucket).unwrap();
    let bytes = store
        .get(&ObjectPath::from(format!(
            "{target_key}/_skein/current.json"
        )))
        .await
        .expect("current.json")
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// One dataset run through the state machine's steps as Step Functions calls them (the
/// task handlers the functions serve), with the catalog in DynamoDB and data in S3.
async fn run_steps(
    c: &DynamoCatalog,
    data: &skein_data::Settings,
    dataset: &str,
    run: &str,
) -> Value {
    let p = json!({"dataset": dataset, "runId": run});
    let step = |action: &str| {
        let mut v = p.clone();
        v["action"] = json!(action);
        v
    };
    tasks::catalog_action(c, &step("checkDependencies"))
        .await
        .unwrap();
    tasks::catalog_action(c, &step("acquireLease"))
        .await
        .unwrap();
    let job = Job::new(dataset, run, &format!("token-{run}"));
    match tasks::migrate_job(
        c,
        data,
        &job,
        false,
        Arc::new(skein_data::Progress::default()),
    )
    .await
    {
        tasks::JobAnswer::Success { output } => {
            assert_eq!(output["outcome"], "verified", "{output}")
        }
        other => panic!("migrate job failed: {other:?}"),
    }
    let summary = tasks::verify_task(c, &p).await.unwrap();
    assert!(
        summary["summary"].as_str().unwrap().contains("passed"),
        "{summary}"
    );
    let published = tasks::publish_task(c, data, &p).await.unwrap();
    tasks::catalog_action(c, &step("complete")).await.unwrap();
    published
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_dataset_migrates_verifies_publishes_and_rolls_back_on_s3_and_dynamodb() {
    let c = catalog().await;
    let data = data_settings();
    let bucket = unique("skein-e2e");
    create_bucket(&bucket).await;
    let spec = std::fs::read_to_string(repo_root().join("samples/customers.yaml")).unwrap();
    put_object(&bucket, "specs/customers.yaml", spec).await;
    let csv = std::fs::read(repo_root().join("samples/data/customers.csv")).unwrap();
    put_object(&bucket, "specs/data/customers.csv", csv.clone()).await;

    let plan = skein_aws::functions::plan(
        &c,
        &settings(),
        &json!({"runId": "run-e2e-1", "specs": format!("s3://{bucket}/specs/")}),
    )
    .await
    .expect("plan");
    // Plan answers where the run's item lists are, and wrote them to S3 for the
    // Distributed Maps' ItemReader: the state never carries the datasets
    assert_eq!(plan["bucket"], bucket.as_str());
    assert_eq!(plan["prefix"], "runs/run-e2e-1/");
    assert_eq!(
        (plan["canary"].as_u64(), plan["waves"].as_u64()),
        (Some(1), Some(0)),
        "{plan}"
    );
    let canary = skein_aws::objects::read_text(&settings(), &bucket, "runs/run-e2e-1/canary.jsonl")
        .await
        .unwrap();
    let item: Value = serde_json::from_str(canary.lines().next().unwrap()).unwrap();
    assert_eq!(item["dataset"], "customers");
    assert_eq!(item["execution"], "run-e2e-1-customers");

    let v1 = run_steps(&c, &data, "customers", "run-e2e-1").await;
    assert_eq!(v1["version"], 1);
    // Summarise reads the datasets from those objects, as the catalog function does
    let summary = skein_aws::functions::catalog(
        &c,
        &settings(),
        &json!({"action": "summarise", "runId": "run-e2e-1", "bucket": bucket,
                "prefix": plan["prefix"], "waves": plan["waves"]}),
    )
    .await
    .expect("summarise");
    assert_eq!(
        (summary["total"].as_u64(), summary["completed"].as_u64()),
        (Some(1), Some(1)),
        "{summary}"
    );
    let record = c.dataset("customers").await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.current_version),
        (Status::Completed, Some(1))
    );
    assert_eq!(
        current_version(&bucket, "specs/lake/customers").await["version"],
        1
    );
    let rows_v1 = record.rows.unwrap();

    // The source changes: one more customer. The next run publishes v2.
    let mut more = csv.clone();
    more.extend_from_slice(b"999,New Person,new@example.com,SE,2024-01-01 00:00:00,\n");
    put_object(&bucket, "specs/data/customers.csv", more).await;
    skein_aws::functions::plan(
        &c,
        &settings(),
        &json!({"runId": "run-e2e-2", "specs": format!("s3://{bucket}/specs/")}),
    )
    .await
    .expect("plan run 2");
    let v2 = run_steps(&c, &data, "customers", "run-e2e-2").await;
    assert_eq!(v2["version"], 2);
    assert_eq!(
        c.dataset("customers").await.unwrap().unwrap().rows,
        Some(rows_v1 + 1)
    );
    assert_eq!(
        current_version(&bucket, "specs/lake/customers").await["version"],
        2
    );

    // Roll back: v1 is current again, in S3 (the commit point) and in the catalog.
    let record = c.dataset("customers").await.unwrap().unwrap();
    let file = skein_core::load::from_catalog(record.spec, record.spec_hash);
    let back = skein_usecases::rollback::rollback(&c, &data, &file, "run-e2e-rb", "bad numbers")
        .await
        .expect("rollback");
    assert_eq!(back.version, Some(1), "{back:?}");
    assert_eq!(
        current_version(&bucket, "specs/lake/customers").await["version"],
        1
    );
    let record = c.dataset("customers").await.unwrap().unwrap();
    assert_eq!(
        (record.current_version, record.rows),
        (Some(1), Some(rows_v1))
    );
    assert_eq!(record.status, Status::RolledBack);
    let versions = c.versions("customers").await.unwrap();
    assert_eq!(versions.len(), 3, "published v1, published v2, restored v1");
    // The catalog keeps each version's summary; the file list is in the manifest it
    // points at, next to the data in S3, whose bytes hash to the recorded sha256.
    let v2 = &versions[1].manifest;
    let key = v2
        .location
        .strip_prefix(&format!("s3://{bucket}/"))
        .unwrap_or_else(|| panic!("manifest location {} is in the bucket", v2.location));
    assert_eq!(key, "specs/lake/customers/versions/v2/_manifest.json");
    let store = skein_aws::objects::bucket(&settings(), &bucket).unwrap();
    let bytes = store
        .get(&ObjectPath::from(key))
        .await
        .expect("the recorded manifest location")
        .bytes()
        .await
        .unwrap();
    use sha2::{Digest, Sha256};
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v2.sha256, sha);
    let manifest: skein_core::manifest::Manifest = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (manifest.version, manifest.files.len() as u64, manifest.rows),
        (2, v2.file_count, v2.rows)
    );
}

fn success(answer: tasks::JobAnswer) -> Value {
    match answer {
        tasks::JobAnswer::Success { output } => output,
        tasks::JobAnswer::Failure { error, cause } => panic!("{error}: {cause}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_dataset_runs_as_chunk_jobs_on_s3_and_dynamodb() {
    let c = catalog().await;
    let data = data_settings();
    let bucket = unique("skein-chunks");
    create_bucket(&bucket).await;
    for f in 0..6 {
        let key = format!("specs/data/clicks/part-{f}.csv");
        put_object(&bucket, &key, crate::chunks::csv_file(f)).await;
    }
    put_object(
        &bucket,
        "specs/clicks.yaml",
        "apiVersion: skein/v1\nkind: Dataset\nmetadata: {name: clicks}\nspec:\n  group: web\n  \
         source: {uri: data/clicks/, format: csv, chunkSize: 2MiB}\n  target: {uri: lake/clicks}\n  \
         transform: {sql: \"SELECT CAST(id AS BIGINT) AS id, amount, country FROM source\"}\n",
    )
    .await;
    let progress = || Arc::new(skein_data::Progress::default());
    let start = |run: &'static str| {
        let c = &c;
        let bucket = &bucket;
        async move {
            skein_aws::functions::plan(
                c,
                &settings(),
                &json!({"runId": run, "specs": format!("s3://{bucket}/specs/")}),
            )
            .await
            .expect("plan");
            let p = json!({"dataset": "clicks", "runId": run, "action": "acquireLease"});
            tasks::catalog_action(c, &p).await.unwrap();
        }
    };
    let job = |run: &str, chunk: Option<u32>, step: Option<skein_core::queue::JobStep>| Job {
        chunk,
        step,
        ..Job::new("clicks", run, "token")
    };

    // Run 1: the first job plans 3 chunks, three chunk jobs stage them, combine verifies.
    start("run-c1").await;
    let first =
        success(tasks::migrate_job(&c, &data, &job("run-c1", None, None), false, progress()).await);
    assert_eq!(first["chunks"], json!([0, 1, 2]), "{first}");
    for chunk in 0..3 {
        let out = success(
            tasks::migrate_job(
                &c,
                &data,
                &job("run-c1", Some(chunk), None),
                false,
                progress(),
            )
            .await,
        );
        assert_eq!(out["chunk"], chunk);
    }
    let combine = Some(skein_core::queue::JobStep::Combine);
    let combined = success(
        tasks::migrate_job(&c, &data, &job("run-c1", None, combine), false, progress()).await,
    );
    assert_eq!(
        (combined["outcome"].as_str(), combined["rows"].as_u64()),
        (Some("verified"), Some(180_000))
    );
    let p = json!({"dataset": "clicks", "runId": "run-c1"});
    let published = tasks::publish_task(&c, &data, &p).await.unwrap();
    assert_eq!(published["version"], 1);
    assert_eq!(
        current_version(&bucket, "specs/lake/clicks").await["version"],
        1
    );
    let record = c.dataset("clicks").await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.rows),
        (Status::Completed, Some(180_000))
    );

    // Run 2: the source changes and chunk 2 cannot read it. Its job fails alone; the
    // state machine's Rollback then discards every staged chunk and v1 stays current.
    let mut bad = crate::chunks::csv_file(5).into_bytes();
    let at = bad.len() - 10;
    bad[at..at + 3].copy_from_slice(b"x!x");
    put_object(&bucket, "specs/data/clicks/part-5.csv", bad).await;
    start("run-c2").await;
    let first =
        success(tasks::migrate_job(&c, &data, &job("run-c2", None, None), false, progress()).await);
    assert_eq!(first["outcome"], "chunked", "{first}");
    success(tasks::migrate_job(&c, &data, &job("run-c2", Some(0), None), false, progress()).await);
    match tasks::migrate_job(&c, &data, &job("run-c2", Some(2), None), false, progress()).await {
        tasks::JobAnswer::Failure { error, cause } => {
            assert_eq!(error, "Skein.BadValue", "{cause}");
            assert!(cause.contains("x!x"), "{cause}");
        }
        other => panic!("chunk 2 must fail: {other:?}"),
    }
    // The run's chunks are staged straight into the version the run claimed (issue 17: a
    // publish copies nothing), named by the run's staging metadata.
    let store = skein_aws::objects::bucket(&settings(), &bucket).unwrap();
    let claimed: Value = serde_json::from_slice(
        &store
            .get(&ObjectPath::from(
                "specs/lake/clicks/_skein/staging/run-c2/_version.json",
            ))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let staging = format!("specs/lake/clicks/versions/v{}", claimed["version"]);
    let listed = |store: Arc<dyn object_store::ObjectStore>, prefix: String| async move {
        use futures::TryStreamExt;
        store
            .list(Some(&ObjectPath::from(prefix)))
            .map_ok(|m| m.location.to_string())
            .try_collect::<Vec<String>>()
            .await
            .unwrap()
    };
    let before = listed(store.clone(), staging.clone()).await;
    assert!(before.iter().any(|k| k.contains("-c00000-")), "{before:?}");
    assert!(!before.iter().any(|k| k.contains("-c00002-")), "{before:?}");
    let undone = tasks::rollback_task(
        &c,
        &data,
        &json!({"dataset": "clicks", "runId": "run-c2", "error": "Skein.BadValue", "cause": "chunk 2"}),
    )
    .await
    .unwrap();
    assert_eq!(undone["status"], "rolled_back", "{undone}");
    let left = listed(store.clone(), staging).await;
    assert!(
        left.iter().all(|k| k.ends_with("/_claim.json")),
        "the unpublished version's files discarded, its claim kept: {left:?}"
    );
    assert!(
        listed(store, "specs/lake/clicks/_skein/staging/run-c2".into())
            .await
            .is_empty(),
        "staging discarded"
    );
    assert_eq!(
        current_version(&bucket, "specs/lake/clicks").await["version"],
        1
    );
    assert_eq!(
        c.dataset("clicks").await.unwrap().unwrap().status,
        Status::RolledBack
    );
}

/// Plan of 5,000 generated specs (`SKEIN_BENCH_SPECS` to change) against moto: prints how
/// long registering them takes, then re-planning them once they are all known.
/// A measurement, not a check of speed (timing depends on the machine); run it with
/// `cargo test --test integration -- --ignored aws::plan_of_5000_specs --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: registers 5,000 specs in moto (minutes on a busy machine); run on demand"]
async fn plan_of_5000_specs() {
    // SKEIN_BENCH_SPECS for fewer: moto's DynamoDB slows down as the table grows.
    let specs: usize = std::env::var("SKEIN_BENCH_SPECS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000);
    let c = catalog().await;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..specs {
        let name = format!("bench-{i:05}");
        std::fs::write(
            dir.path().join(format!("{name}.yaml")),
            format!(
                "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: {name}, owner: team-bench}}\n\
                 spec:\n  source: {{uri: data/{name}.csv, format: csv}}\n  target: {{uri: lake/{name}}}\n\
                 \x20 transform: {{sql: \"SELECT * FROM source\"}}\n"
            ),
        )
        .unwrap();
    }
    // Before: one registration after another, as plan did (on its own table).
    let before = catalog().await;
    let loaded = skein_core::load::load(dir.path());
    assert_eq!(loaded.files.len(), specs, "{:?}", loaded.problems);
    let started = Instant::now();
    for f in &loaded.files {
        before.put_spec(&f.spec, &f.hash).await.unwrap();
    }
    let one_by_one = started.elapsed();
    let started = Instant::now();
    let plan = skein_usecases::steps::plan(&c, dir.path(), "run-bench")
        .await
        .unwrap()
        .unwrap();
    let first = started.elapsed();
    let started = Instant::now();
    skein_usecases::steps::plan(&c, dir.path(), "run-bench")
        .await
        .unwrap()
        .unwrap();
    let again = started.elapsed();
    println!(
        "plan of {specs} specs on moto: one by one {:.1}s; batched: first {:.1}s, again (all known) {:.1}s",
        one_by_one.as_secs_f64(),
        first.as_secs_f64(),
        again.as_secs_f64()
    );
    assert_eq!(plan.total, specs);
    assert_eq!(c.datasets().await.unwrap().len(), specs);
}

// Issue 16 (b): a job waiting for a reader slot is sent again with a delay, the original
// deleted, so however long it waits it is never a failed delivery: more rounds than the
// queue's maxReceiveCount, and the job is still queued, never dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_for_a_reader_slot_never_reaches_the_dead_letters() {
    let c = catalog().await;
    let (mut spec, hash) = conformance::spec("waits", "");
    spec.spec.source.system = Some("crm".into());
    c.put_spec(&spec, &hash).await.unwrap();
    let mut caps = std::collections::BTreeMap::new();
    caps.insert("crm".to_string(), 1u32);
    c.put_system_caps(&caps).await.unwrap();
    assert!(
        c.acquire_slot("crm", "another-run/reader", 1, 3600)
            .await
            .unwrap()
    );
    let (q, g) = queue_with_group(2).await;
    let job = Job::new("waits", "run-w", "token-w");
    q.send(&g, &job).await.unwrap();
    let mut worker =
        skein_aws::functions::Worker::new(&settings(), c.table(), Duration::from_secs(60)).await;
    worker.slot_wait = Duration::ZERO;
    let queue_name = q.url(&g).rsplit('/').next().unwrap().to_string();
    let arn = format!("arn:aws:sqs:{REGION}:123456789012:{queue_name}");
    for round in 1..=5 {
        let d = q.receive(&g, 30).await.unwrap().expect("the job is queued");
        assert_eq!(
            d.receives, 1,
            "round {round}: a fresh copy, no receive counted"
        );
        let m = serde_json::from_value(json!({
            "messageId": format!("m{round}"), "receiptHandle": d.receipt,
            "body": serde_json::to_string(&d.job).unwrap(),
            "attributes": {"ApproximateReceiveCount": d.receives.to_string()},
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": arn, "awsRegion": REGION}))
        .unwrap();
        assert!(
            worker.message(&m).await,
            "round {round}: done with this copy"
        );
        // Lambda deletes a message its handler did not report as failed.
        q.delete(&d).await.unwrap();
    }
    assert!(q.dead_letters(&g).await.unwrap().is_empty());
    assert_eq!(
        q.depth(&g).await.unwrap(),
        1,
        "the job still waits in the queue"
    );
    assert_eq!(
        c.dataset("waits").await.unwrap().unwrap().status,
        Status::Pending,
        "waiting changed nothing"
    );
}

// Issue 19: the operator commands against a deployed stack (`--stack`): the stack's
// outputs name its catalog table; `status`, `runs`, `history`, `approve` and `reject`
// work on that DynamoDB catalog, and the waiting task token is answered through Step
// Functions (moto's here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_work_against_a_deployed_stack() {
    let c = catalog().await;
    let run = "run-stack-1";
    c.put_run(&crate::util::running_run(run)).await.unwrap();
    for (name, token) in [("ledger", "token-ledger"), ("payroll", "token-payroll")] {
        let (spec, hash) = conformance::spec(name, "");
        c.put_spec(&spec, &hash).await.unwrap();
        c.acquire_lease(name, run, 300).await.unwrap();
        c.transition(name, Status::Pending, Status::InProgress, None, Some(run))
            .await
            .unwrap();
        for (from, to) in [
            (Status::InProgress, Status::Migrated),
            (Status::Migrated, Status::Verified),
        ] {
            c.transition(name, from, to, None, Some(run)).await.unwrap();
        }
        skein_usecases::steps::await_approval(&c, name, run, token)
            .await
            .unwrap();
    }
    let stack = stack_over(&c).await;
    let skein = |args: &[&str]| skein_on_stack(&stack, args);
    let (code, status, err) = skein(&["status"]);
    assert_eq!(code, Some(0), "{err}");
    let waiting: Vec<&str> = status["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "awaiting_approval")
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(waiting, ["ledger", "payroll"], "{status:#}");
    let (code, runs, err) = skein(&["runs"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(runs["runs"][0]["runId"], run, "{runs:#}");
    let (code, answered, err) = skein(&["approve", "ledger"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(answered["answer"], "approved", "{answered:#}");
    let (code, answered, err) = skein(&["reject", "payroll", "--reason", "not this quarter"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(answered["answer"], "rejected", "{answered:#}");
    // An unknown dataset is a usage error naming it, as locally.
    let (code, _, err) = skein(&["approve", "ghost"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("`ghost`"), "{err}");
    // A stack that does not exist is a clear error, not a panic.
    let out = Command::new(env!("CARGO_BIN_EXE_skein"))
        .args(["status", "--stack", "no-such-stack"])
        .envs(moto::env())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-stack"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CloudFormation stack in moto whose outputs name `c`'s table, as a deployed skein
/// stack's do (infra/template.yaml); returns its name.
async fn stack_over(c: &DynamoCatalog) -> String {
    stack_with(c, &[]).await
}

/// [`stack_over`] with more outputs.
async fn stack_with(c: &DynamoCatalog, more: &[(&str, String)]) -> String {
    let stack = unique("skein-ops");
    let cfn = aws_sdk_cloudformation::Client::new(&settings().sdk_config().await);
    let mut outputs = json!({"CatalogTableName": {"Value": c.table()}});
    for (k, v) in more {
        outputs[*k] = json!({ "Value": v });
    }
    let template = json!({
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": format!("{stack}-marker")}}},
        "Outputs": outputs});
    cfn.create_stack()
        .stack_name(&stack)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();
    stack
}

/// `skein ARGS --stack STACK --json` with moto's environment: exit code, the last stdout
/// line as JSON, stderr.
fn skein_on_stack(stack: &str, args: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_skein"))
        .args(args)
        .args(["--stack", stack, "--json"])
        .envs(moto::env())
        .env("SKEIN_CATALOG", "/nonexistent/never-used")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap_or(Value::Null);
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

// Issue 19: `skein rollback` and `skein verify` of an S3 target through `--stack`: the same
// use cases as locally, over the stack's catalog and the target on S3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_and_verify_work_against_a_deployed_stack() {
    let c = catalog().await;
    let data = data_settings();
    let bucket = unique("skein-ops");
    create_bucket(&bucket).await;
    let spec = std::fs::read_to_string(repo_root().join("samples/customers.yaml")).unwrap();
    put_object(&bucket, "specs/customers.yaml", spec).await;
    let csv = std::fs::read(repo_root().join("samples/data/customers.csv")).unwrap();
    let mut more = csv.clone();
    more.extend_from_slice(b"999,New Person,new@example.com,SE,2024-01-01 00:00:00,\n");
    for (run, source) in [("run-ops-1", csv), ("run-ops-2", more)] {
        put_object(&bucket, "specs/data/customers.csv", source).await;
        let p = json!({"runId": run, "specs": format!("s3://{bucket}/specs/")});
        skein_aws::functions::plan(&c, &settings(), &p)
            .await
            .expect("plan");
        run_steps(&c, &data, "customers", run).await;
    }
    assert_eq!(
        current_version(&bucket, "specs/lake/customers").await["version"],
        2
    );
    let stack = stack_over(&c).await;
    let (code, verified, err) = skein_on_stack(&stack, &["verify", "customers"]);
    assert_eq!(code, Some(0), "{err}");
    // The published version read back from S3 and checked against the source.
    assert_eq!(verified["ok"], true, "{verified:#}");
    assert_eq!(
        verified["datasets"][0]["outcome"], "completed",
        "{verified:#}"
    );
    let (code, back, err) = skein_on_stack(
        &stack,
        &["rollback", "customers", "--reason", "bad numbers"],
    );
    assert_eq!(code, Some(0), "{err}\n{back:#}");
    assert_eq!(back["datasets"][0]["outcome"], "rolled_back", "{back:#}");
    assert_eq!(back["datasets"][0]["version"], 1, "{back:#}");
    assert_eq!(
        current_version(&bucket, "specs/lake/customers").await["version"],
        1
    );
    let record = c.dataset("customers").await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.current_version),
        (Status::RolledBack, Some(1))
    );
}

// Issue 19: `skein ui --stack` and `skein report --stack`: the same pages over the stack's
// DynamoDB catalog and its executions in Step Functions (moto's: DescribeExecution, the
// machine's definition, GetExecutionHistory), and "Approve" on the page answers the
// waiting task token through Step Functions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_report_work_against_a_deployed_stack() {
    use crate::ui::{Running, http};
    use std::io::BufRead;
    let c = catalog().await;
    let sfn = aws_sdk_sfn::Client::new(&settings().sdk_config().await);
    let run_arn = create_state_machines(&sfn, &unique("ops-ui")).await;
    let dataset_arn = run_arn.replace("skein-migration-run-", "skein-dataset-migration-");
    let run = unique("run-ui");
    c.put_run(&crate::util::running_run(&run)).await.unwrap();
    let (spec, hash) = conformance::spec("ledger", "");
    c.put_spec(&spec, &hash).await.unwrap();
    c.acquire_lease("ledger", &run, 300).await.unwrap();
    for (from, to) in [
        (Status::Pending, Status::InProgress),
        (Status::InProgress, Status::Migrated),
        (Status::Migrated, Status::Verified),
    ] {
        c.transition("ledger", from, to, None, Some(&run))
            .await
            .unwrap();
    }
    let attempt = c.start_attempt("ledger", &run).await.unwrap();
    c.finish_attempt("ledger", attempt, "awaiting_approval", None)
        .await
        .unwrap();
    skein_usecases::steps::await_approval(&c, "ledger", &run, "token-ledger")
        .await
        .unwrap();
    let run_execution = sfn
        .start_execution()
        .state_machine_arn(&run_arn)
        .name(&run)
        .input(json!({"runId": run, "specs": "s3://specs-bucket/specs/"}).to_string())
        .send()
        .await
        .unwrap();
    let child = skein_core::fleet::execution_name(&run, "ledger");
    sfn.start_execution()
        .state_machine_arn(&dataset_arn)
        .name(&child)
        .input(
            json!({"dataset": "ledger", "runId": run, "needsApproval": true,
                "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": run_execution.execution_arn})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let stack = stack_with(
        &c,
        &[
            ("MigrationRunStateMachineArn", run_arn.clone()),
            ("DatasetMigrationStateMachineArn", dataset_arn.clone()),
        ],
    )
    .await;

    let mut ui = Command::new(env!("CARGO_BIN_EXE_skein"))
        .args(["ui", "--port", "0", "--quiet", "--stack", &stack])
        .envs(moto::env())
        .env("SKEIN_CATALOG", "/nonexistent/never-used")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    std::io::BufReader::new(ui.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let _ui = Running(ui);
    let url = url.trim().to_string();
    assert!(
        url.starts_with("http://"),
        "skein ui --stack printed {url:?}"
    );
    let get = |path: &str| -> Value {
        let (status, body) = http(&url, "GET", path, &[]);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    };

    let datasets = get("/api/datasets");
    let ledger = &datasets["datasets"][0];
    assert_eq!(
        (&ledger["name"], &ledger["status"], &ledger["execution"]),
        (&json!("ledger"), &json!("awaiting_approval"), &json!(child)),
        "{datasets:#}"
    );
    let runs = get("/api/runs");
    assert_eq!(runs["runs"][0]["runId"], run, "{runs:#}");
    assert!(runs["runs"][0]["executionStatus"].is_string(), "{runs:#}");
    // The run page: the plan's item lists are on S3, so the run's datasets come from the
    // catalog's attempts; the waiting one counts as waiting, not as finished.
    let page = get(&format!("/api/runs/{run}"));
    assert_eq!(page["total"], 1, "{page:#}");
    assert_eq!(page["finished"], 0, "{page:#}");
    assert_eq!(page["datasets"][0]["state"], "waiting", "{page:#}");
    assert_eq!(page["datasets"][0]["execution"], json!(child), "{page:#}");
    // The dataset's execution: its machine's definition laid out, its history read.
    let e = get(&format!("/api/executions/{child}"));
    assert_eq!(e["dataset"], "ledger", "{e:#}");
    assert_eq!(e["parent"], json!(run), "{e:#}");
    let nodes: Vec<&str> = e["graph"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert!(nodes.contains(&"WaitForApproval"), "{nodes:?}");
    let kinds: Vec<&str> = e["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|ev| ev["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"ExecutionStarted"), "{e:#}");
    assert!(
        e["events"].as_array().unwrap().iter().any(|ev| ev["kind"]
            .as_str()
            .is_some_and(|k| k.ends_with("StateEntered"))
            && ev["details"]["name"].is_string()),
        "a state's entry names it: {e:#}"
    );
    // By ARN too, and an unknown one is a 404, not a 500.
    let by_arn = get(&format!(
        "/api/executions/{}",
        run_execution.execution_arn.replace(':', "%3A")
    ));
    assert_eq!(by_arn["name"], json!(run), "{by_arn:#}");
    let (status, body) = http(&url, "GET", "/api/executions/no-such-execution", &[]);
    assert_eq!(status, 404, "{body}");
    let (status, metrics) = http(&url, "GET", "/metrics", &[]);
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics.contains("status=\"awaiting_approval\"} 1"),
        "{metrics}"
    );
    // Approve from the page: the token answered in Step Functions, the catalog updated by
    // the same use case as `skein approve`.
    let (status, body) = http(
        &url,
        "POST",
        "/api/datasets/ledger/approve",
        &[("x-skein-ui", "1")],
    );
    assert_eq!(status, 200, "{body}");
    let answered: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answered["answer"], "approved", "{answered:#}");

    // The report of the run, from the stack.
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let (code, wrote, err) =
        skein_on_stack(&stack, &["report", &run, "--html", html.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(wrote["run"], json!(run), "{wrote:#}");
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(
        text.contains("ledger") && text.contains(&run),
        "the report names the run and its dataset"
    );
    let (code, _, err) = skein_on_stack(
        &stack,
        &[
            "report",
            "run-that-never-was",
            "--html",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("the stack {stack}")), "{err}");
}

// Issue 17: `skein worker --queue GROUP` against a deployed stack: the migrate worker as a
// process (what a Fargate service or an operator's machine runs), through the same worker
// use case as the migrate function, taking the group's jobs from SQS (moto's) until the
// queue has been idle, and answering the tokens through Step Functions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_process_takes_a_groups_jobs_from_sqs() {
    let c = catalog().await;
    let bucket = unique("skein-worker");
    create_bucket(&bucket).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("export.csv");
    let out = crate::sources::run_python("rfc4180_export.py", &[&csv, Path::new("2000")]);
    assert!(out.status.success(), "{}", crate::util::text(&out));
    put_object(
        &bucket,
        "specs/data/export.csv",
        std::fs::read(&csv).unwrap(),
    )
    .await;
    put_object(
        &bucket,
        "specs/export.yaml",
        format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: export, owner: team-test}}\n\
             spec:\n  source: {{uri: data/export.csv, format: csv}}\n  \
             target: {{uri: s3://{bucket}/lake/export/}}\n"
        ),
    )
    .await;
    let run = "run-worker-process";
    skein_aws::functions::plan(
        &c,
        &settings(),
        &json!({"runId": run, "specs": format!("s3://{bucket}/specs/")}),
    )
    .await
    .expect("plan");
    let p = json!({"dataset": "export", "runId": run});
    for action in ["checkDependencies", "acquireLease"] {
        let mut step = p.clone();
        step["action"] = json!(action);
        tasks::catalog_action(&c, &step).await.unwrap();
    }
    let (q, g) = queue_with_group(3).await;
    q.send(&g, &Job::new("export", run, "token-worker-process"))
        .await
        .unwrap();
    let url = q.url(&g);
    let prefix = url.strip_suffix(g.as_str()).unwrap().to_string();
    let stack = stack_with(&c, &[("MigrateQueueUrlPrefix", prefix)]).await;
    let (code, out, err) = skein_on_stack(&stack, &["worker", "--queue", &g, "--until-idle", "2"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, json!({"group": g, "jobs": 1, "failed": 0}), "{err}");
    let record = c.dataset("export").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Verified, "{record:?}");
    let attempts = c.attempts("export").await.unwrap();
    assert_eq!(
        attempts.last().and_then(|a| a.outcome.as_deref()),
        Some("verified"),
        "{attempts:?}"
    );
    assert_eq!(
        q.depth(&g).await.unwrap(),
        0,
        "the finished job was deleted"
    );
    // Both ways of naming the job at once is a usage error.
    let (code, _, err) = skein_on_stack(&stack, &["worker", "--queue", &g, "--job", "{}"]);
    assert_eq!(code, Some(2), "{err}");
}

// Issue 19: `skein run s3://…/specs/ --stack` starts migration-run in Step Functions with
// the run id as the execution's name; a path that is not on S3 is a usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_starts_the_stacks_state_machine() {
    let c = catalog().await;
    let sfn = aws_sdk_sfn::Client::new(&settings().sdk_config().await);
    let run_arn = create_state_machines(&sfn, &unique("ops-run")).await;
    let stack = stack_with(&c, &[("MigrationRunStateMachineArn", run_arn.clone())]).await;
    let specs = "s3://some-bucket/specs/";
    let (code, started, err) = skein_on_stack(
        &stack,
        &["run", specs, "--resume", "run-from-cli", "--detach"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(started["runId"], "run-from-cli", "{started:#}");
    let arn = started["executionArn"].as_str().unwrap().to_string();
    let described = sfn
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(described.name(), Some("run-from-cli"));
    let input: Value = serde_json::from_str(described.input().unwrap()).unwrap();
    assert_eq!(input, json!({"runId": "run-from-cli", "specs": specs}));
    let (code, _, err) = skein_on_stack(&stack, &["run", "specs-here", "--detach"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("s3://"), "{err}");
}

// Issue 16 (c) on the AWS path: a record from a group's dead-letter queue (`…-dlq`) is
// answered, not migrated: the migrate function fails its token (`Skein.DeadLettered`,
// moto's Step Functions accepts any token) and is done with the message; the dataset is
// not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_message_is_answered_not_migrated() {
    let c = catalog().await;
    let (spec, hash) = conformance::spec("stuck", "");
    c.put_spec(&spec, &hash).await.unwrap();
    let before = c.history("stuck").await.unwrap();
    let worker =
        skein_aws::functions::Worker::new(&settings(), c.table(), Duration::from_secs(60)).await;
    let job = Job::new("stuck", "run-dl", "token-dl");
    let m = serde_json::from_value(json!({
        "messageId": "dl-1", "receiptHandle": "rh-dl-1",
        "body": serde_json::to_string(&job).unwrap(),
        "attributes": {"ApproximateReceiveCount": "5"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:{REGION}:123456789012:skein-migrate-default-dlq"),
        "awsRegion": REGION}))
    .unwrap();
    assert!(worker.message(&m).await, "answered and done with");
    assert_eq!(
        c.history("stuck").await.unwrap(),
        before,
        "a dead letter is not migrated again"
    );
    assert!(c.attempts("stuck").await.unwrap().is_empty());
}

// Issue 16 (e) on the AWS path: the migrate function killed mid-job (its future dropped
// while it stages a 20,000-row export, as a Lambda that times out or loses its sandbox)
// is noticed by SQS: the message comes back after its visibility timeout, the next
// delivery starts a new attempt, which closes the dead one as superseded, stages in its
// own directory and verifies; publish then takes that attempt's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_is_redelivered_and_the_next_attempt_finishes() {
    let c = catalog().await;
    let data = data_settings();
    let bucket = unique("skein-killed");
    create_bucket(&bucket).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("export.csv");
    let out = crate::sources::run_python("rfc4180_export.py", &[&csv, Path::new("20000")]);
    assert!(out.status.success(), "{}", crate::util::text(&out));
    put_object(
        &bucket,
        "specs/data/export.csv",
        std::fs::read(&csv).unwrap(),
    )
    .await;
    put_object(
        &bucket,
        "specs/export.yaml",
        format!(
            "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: export, owner: team-test}}\n\
             spec:\n  source: {{uri: data/export.csv, format: csv}}\n  \
             target: {{uri: s3://{bucket}/lake/export/}}\n"
        ),
    )
    .await;
    let run = "run-killed";
    skein_aws::functions::plan(
        &c,
        &settings(),
        &json!({"runId": run, "specs": format!("s3://{bucket}/specs/")}),
    )
    .await
    .expect("plan");
    let p = json!({"dataset": "export", "runId": run});
    for action in ["checkDependencies", "acquireLease"] {
        let mut step = p.clone();
        step["action"] = json!(action);
        tasks::catalog_action(&c, &step).await.unwrap();
    }
    let (q, g) = queue_with_group(3).await;
    q.send(&g, &Job::new("export", run, "token-killed"))
        .await
        .unwrap();
    let queue_name = q.url(&g).rsplit('/').next().unwrap().to_string();
    let arn = format!("arn:aws:sqs:{REGION}:123456789012:{queue_name}");
    let record = |d: &skein_core::queue::Delivery| -> Value {
        json!({
            "messageId": format!("m{}", d.receives), "receiptHandle": d.receipt,
            "body": serde_json::to_string(&d.job).unwrap(),
            "attributes": {"ApproximateReceiveCount": d.receives.to_string()},
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": arn, "awsRegion": REGION})
    };
    let mut worker =
        skein_aws::functions::Worker::new(&settings(), c.table(), Duration::from_secs(60)).await;
    worker.data = data.clone();

    // The first delivery, hidden 2 s; its worker dies once its attempt has started.
    let first = q.receive(&g, 2).await.unwrap().expect("the job");
    assert_eq!(first.receives, 1);
    let dying = {
        let worker = worker.clone();
        let m = serde_json::from_value(record(&first)).unwrap();
        tokio::spawn(async move { worker.message(&m).await })
    };
    let started = Instant::now();
    while c.attempts("export").await.unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first attempt never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dying.abort();
    assert!(dying.await.unwrap_err().is_cancelled(), "killed mid-job");
    assert_eq!(
        c.dataset("export").await.unwrap().unwrap().status,
        Status::InProgress,
        "the dead worker left the dataset in progress"
    );

    // SQS delivers the job again once its visibility timeout passes: nothing else noticed.
    let again = loop {
        if let Some(d) = q.receive(&g, 60).await.unwrap() {
            break d;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(again.receives, 2);
    let m = serde_json::from_value(record(&again)).unwrap();
    assert!(worker.message(&m).await, "done with");
    q.delete(&again).await.unwrap();

    let attempts = c.attempts("export").await.unwrap();
    let outcomes: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.outcome.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        [(1, Some("superseded")), (2, Some("verified"))],
        "{attempts:?}"
    );
    assert!(
        attempts[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("attempt 2")),
        "{attempts:?}"
    );
    assert_eq!(
        c.dataset("export").await.unwrap().unwrap().status,
        Status::Verified
    );
    tasks::verify_task(&c, &p).await.unwrap();
    let published = tasks::publish_task(&c, &data, &p).await.unwrap();
    assert_eq!(published["version"], 1, "{published}");
    let pointer = current_version(&bucket, "lake/export").await;
    assert_eq!(pointer["version"], 1, "{pointer}");
    let manifest = c.versions("export").await.unwrap();
    assert_eq!(manifest[0].manifest.rows, 20_000, "{manifest:?}");
}
