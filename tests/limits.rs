//! The project's state machines against AWS's limits and failure modes: execution names
//! within 80 characters, a used run id refused, Lambda throttles retried, not rolled back.

use serde_json::{Value, json};
use skein_core::catalog::Catalog;

use crate::states::engine::Sfn;
use crate::util::repo_root;

/// A state machine of the project with its `${…}` substitutions filled in.
fn machine(name: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join(format!("state-machines/{name}.asl.json")))
        .unwrap();
    let text = text
        .replace(
            "${CatalogFunctionArn}",
            "arn:aws:lambda:us-east-1:123456789012:function:skein-catalog",
        )
        .replace(
            "${VerifyFunctionArn}",
            "arn:aws:lambda:us-east-1:123456789012:function:skein-verify",
        )
        .replace(
            "${PublishFunctionArn}",
            "arn:aws:lambda:us-east-1:123456789012:function:skein-publish",
        )
        .replace(
            "${RollbackFunctionArn}",
            "arn:aws:lambda:us-east-1:123456789012:function:skein-rollback",
        )
        .replace(
            "${PlanFunctionArn}",
            "arn:aws:lambda:us-east-1:123456789012:function:skein-plan",
        )
        .replace(
            "${MigrateQueueUrlPrefix}",
            "https://sqs.us-east-1.amazonaws.com/123456789012/skein-",
        )
        .replace(
            "${DatasetMigrationStateMachineArn}",
            "arn:aws:states:us-east-1:123456789012:stateMachine:dataset-migration",
        )
        .replace(
            "${WorkerClusterArn}",
            "arn:aws:ecs:us-east-1:123456789012:cluster/skein-workers",
        )
        .replace(
            "${WorkerTaskDefinitionArn}",
            "arn:aws:ecs:us-east-1:123456789012:task-definition/skein-worker:1",
        )
        .replace("${WorkerSubnets}", "subnet-0a1b2c3d")
        .replace("${WorkerSecurityGroup}", "sg-0a1b2c3d");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn execution_names_fit_80_characters_for_any_dataset_and_run() {
    use skein_core::fleet::execution_name;
    // short and plain: the readable `{run}-{dataset}`
    assert_eq!(execution_name("run-1", "orders"), "run-1-orders");
    let dataset = format!("{}-tail", "d".repeat(123)); // 128, the longest dataset name
    let run = format!("run-{}-abcdef12", "x".repeat(60)); // a trigger's longest run id
    let a = execution_name(&run, &dataset);
    let b = execution_name(&run, &dataset.replace("-tail", "-tale"));
    for n in [&a, &b] {
        assert!(n.chars().count() <= 80, "{n}");
        assert!(skein_states::execution_name::problem(n).is_none(), "{n}");
        assert!(n.starts_with("run-xxxx"), "readable: {n}");
    }
    assert_ne!(a, b, "datasets differing past the cut get different names");
    // characters AWS refuses in names are replaced, and the hash keeps them apart
    let c = execution_name("run:2026/11", "a.b");
    assert!(skein_states::execution_name::problem(&c).is_none(), "{c}");
    assert_ne!(c, execution_name("run-2026-11", "a.b"));
    // and the engine refuses what AWS refuses
    for bad in [
        "x".repeat(81),
        "has space".into(),
        "a/b".into(),
        String::new(),
    ] {
        assert!(
            skein_states::execution_name::problem(&bad).is_some(),
            "{bad:?}"
        );
    }
}

#[test]
fn a_run_id_already_used_is_refused_before_anything_starts() {
    let ws = crate::util::Workspace::new();
    crate::util::copy_dir(&repo_root().join("samples"), &ws.path().join("samples"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let catalog = skein_embedded::SqliteCatalog::open(&ws.path().join("catalog.db")).unwrap();
        let dir = ws.path().join("samples");
        let (plan, payload) =
            skein_usecases::tasks::plan_task(&catalog, &dir, "run-reused", "runs-bucket")
                .await
                .unwrap();
        assert_eq!(plan.total, 12);
        // the payload names the item lists, never the datasets
        assert_eq!(payload["bucket"], "runs-bucket");
        assert_eq!(payload["prefix"], "runs/run-reused/");
        assert_eq!(payload["waves"], plan.waves.len());
        assert!(!payload.to_string().contains("customers"), "{payload}");
        let items = skein_usecases::tasks::run_items(&plan, "run-reused");
        assert_eq!(items.len(), 1 + plan.waves.len());
        let first: Value = serde_json::from_str(items[0].1.lines().next().unwrap()).unwrap();
        assert_eq!(
            first["execution"],
            format!("run-reused-{}", first["dataset"].as_str().unwrap())
        );
        // a retried Plan of the same, still running run goes on
        assert!(
            skein_usecases::tasks::plan_task(&catalog, &dir, "run-reused", "runs-bucket")
                .await
                .is_ok()
        );
        let mut run = catalog.run("run-reused").await.unwrap().unwrap();
        run.status = skein_core::catalog::RunStatus::Succeeded;
        catalog.put_run(&run).await.unwrap();
        let e = skein_usecases::tasks::plan_task(&catalog, &dir, "run-reused", "runs-bucket")
            .await
            .unwrap_err();
        assert_eq!(e.error, "Skein.RunIdUsed", "{e:?}");
        assert!(
            e.cause.contains("run-reused") && e.cause.contains("new id"),
            "{e:?}"
        );
    });
}

/// Mocked answers for every Task of `dataset-migration`; `verify` is Verify's.
fn dataset_migration_mocks(verify: Value) -> Value {
    json!({
        "StateMachines": {"dataset-migration": {"TestCases": {"t": {
            "CheckDependencies": "Ok", "AcquireLease": "Ok", "Migrate": "Migrated",
            "Verify": "Verify", "Publish": "Published", "Complete": "Ok", "Rollback": "Ok"}}}},
        "MockedResponses": {
            "Ok": {"0-9": {"Return": {"StatusCode": 200, "Payload": {}}}},
            "Migrated": {"0": {"Return": {"outcome": "verified"}}},
            "Verify": verify,
            "Published": {"0": {"Return": {"StatusCode": 200, "Payload": {"version": 1}}}}
        }
    })
}

fn entered(sfn: &Sfn, arn: &str) -> Vec<String> {
    let history = crate::states::engine::last_json(&sfn.skein(&["history", arn, "--json"]));
    history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("StateEntered"))
        })
        .filter_map(|e| {
            e["stateEnteredEventDetails"]["name"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn a_throttled_lambda_is_retried_and_nothing_is_rolled_back() {
    let sfn = Sfn::new();
    // Lambda throttles, then a service error, then the answer: every lambda:invoke retries
    // Lambda's service errors (AWS: bp-lambda-serviceexception)
    let verify = json!({
        "0": {"Throw": {"Error": "Lambda.TooManyRequestsException", "Cause": "Rate exceeded"}},
        "1": {"Throw": {"Error": "Lambda.AWSLambdaException", "Cause": "internal"}},
        "2": {"Return": {"StatusCode": 200, "Payload": {"summary": "passed (4 checks)"}}}
    });
    sfn.file("mock.json", &dataset_migration_mocks(verify));
    let input = json!({"dataset": "orders", "group": "g", "needsApproval": false, "large": null, "runId": "run-1"});
    let args = [
        "--mock-config",
        "mock.json",
        "--state-machine-name",
        "dataset-migration",
        "--test-case",
        "t",
    ];
    let (code, out) = sfn.run(&machine("dataset-migration"), &input, &args);
    assert_eq!((code, &out["status"]), (0, &json!("SUCCEEDED")), "{out:#}");
    let states = entered(&sfn, out["executionArn"].as_str().unwrap());
    assert!(states.iter().any(|s| s == "Publish"), "{states:?}");
    assert!(!states.iter().any(|s| s == "Rollback"), "{states:?}");

    // a Lambda that keeps failing is still rolled back, after the retries
    let sfn = Sfn::new();
    let verify = json!({"0-9": {"Throw": {"Error": "Lambda.ServiceException", "Cause": "down"}}});
    sfn.file("mock.json", &dataset_migration_mocks(verify));
    let (_, out) = sfn.run(&machine("dataset-migration"), &input, &args);
    assert_eq!(out["status"], "FAILED", "{out:#}");
    let states = entered(&sfn, out["executionArn"].as_str().unwrap());
    assert!(states.iter().any(|s| s == "Rollback"), "{states:?}");
}

#[test]
fn every_lambda_invoke_retries_lambda_service_errors_and_every_task_after_the_lease_is_caught() {
    let lambda_errors = [
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    ];
    for name in ["dataset-migration", "migration-run"] {
        let def = machine(name);
        let mut tasks = Vec::new();
        collect_tasks(&def["States"], &mut tasks);
        assert!(!tasks.is_empty());
        for (state, task) in &tasks {
            let resource = task["Resource"].as_str().unwrap_or("");
            if resource.contains("lambda:invoke") {
                let retried: Vec<&str> = task["Retry"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .flat_map(|r| r["ErrorEquals"].as_array().unwrap())
                            .filter_map(Value::as_str)
                            .collect()
                    })
                    .unwrap_or_default();
                for e in lambda_errors {
                    assert!(retried.contains(&e), "{name}.{state} does not retry {e}");
                }
            }
            // a Task of the run's top level, or any Task after AcquireLease, is caught
            let after_lease = name == "dataset-migration"
                && !matches!(
                    state.as_str(),
                    "CheckDependencies" | "AcquireLease" | "MigrateChunk"
                );
            if after_lease || name == "migration-run" && !state.starts_with("Migrate") {
                assert!(task["Catch"].is_array(), "{name}.{state} has no Catch");
            }
        }
    }
}

fn collect_tasks(states: &Value, out: &mut Vec<(String, Value)>) {
    for (name, st) in states.as_object().unwrap() {
        if st["Type"] == "Task" {
            out.push((name.clone(), st.clone()));
        }
        if let Some(inner) = st.get("ItemProcessor").and_then(|p| p.get("States")) {
            collect_tasks(inner, out);
        }
    }
}

#[test]
fn a_state_output_over_256_kib_fails_with_data_limit_exceeded_not_caught_by_states_all() {
    let sfn = Sfn::new();
    // input 150,000 bytes (under the limit), output twice that (over it)
    let input = json!({"s": "x".repeat(150_000)});
    let def = |catch: Value| {
        json!({"StartAt": "Branch", "States": {
            "Branch": {"Type": "Parallel", "Branches": [{"StartAt": "Double", "States": {
                "Double": {"Type": "Pass", "Parameters": {"a.$": "$.s", "b.$": "$.s"}, "End": true}}}],
                "ResultSelector": {"done": true},
                "Catch": [{"ErrorEquals": catch, "ResultPath": "$.error", "Next": "Recover"}],
                "End": true},
            "Recover": {"Type": "Pass", "Parameters": {"recovered.$": "$.error.Error"}, "End": true}}})
    };
    let (code, out) = sfn.run(&def(json!(["States.ALL"])), &input, &[]);
    assert_eq!(code, 1, "{out:#}");
    assert_eq!(out["status"], "FAILED", "{out:#}");
    assert_eq!(out["error"], "States.DataLimitExceeded", "{out:#}");
    assert!(out["cause"].as_str().unwrap().contains("262144"), "{out:#}");
    // a catcher that names it takes it, as on AWS
    let (code, out) = sfn.run(&def(json!(["States.DataLimitExceeded"])), &input, &[]);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(
        out["output"],
        json!({"recovered": "States.DataLimitExceeded"})
    );
    // --no-quotas lifts the limit
    let (code, out) = sfn.run(&def(json!(["States.ALL"])), &input, &["--no-quotas"]);
    assert_eq!(
        (code, &out["output"]),
        (0, &json!({"done": true})),
        "{out:#}"
    );

    // a task's result over the limit, from a mocked Lambda
    let sfn = Sfn::new();
    sfn.file(
        "mock.json",
        &json!({"StateMachines": {"m": {"TestCases": {"big": {"Call": "Big"}}}},
                "MockedResponses": {"Big": {"0": {"Return": {"blob": "y".repeat(300_000)}}}}}),
    );
    let def = json!({"StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "f"}, "ResultSelector": {"n": 1},
        "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"},
                  {"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
        "End": true},
        "Caught": {"Type": "Succeed"}}});
    let (_, out) = sfn.run(
        &def,
        &json!({}),
        &[
            "--mock-config",
            "mock.json",
            "--state-machine-name",
            "m",
            "--test-case",
            "big",
        ],
    );
    assert_eq!(out["error"], "States.DataLimitExceeded", "{out:#}");
}

#[test]
fn history_json_reports_the_headroom_and_distributed_items_have_their_own_history() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "Fan", "States": {"Fan": {
        "Type": "Map", "ItemsPath": "$.items",
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "A", "States": {
                "A": {"Type": "Pass", "Next": "B"},
                "B": {"Type": "Pass", "Next": "C"},
                "C": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let items: Vec<u32> = (0..20).collect();
    let (code, out) = sfn.run(&def, &json!({"items": items, "pad": "z".repeat(1000)}), &[]);
    assert_eq!(code, 0, "{out:#}");
    let history = crate::states::engine::last_json(&sfn.skein(&[
        "history",
        out["executionArn"].as_str().unwrap(),
        "--json",
    ]));
    let all = history["events"].as_array().unwrap().len() as u64;
    let h = &history["headroom"];
    let own = h["events"].as_u64().unwrap();
    assert!(
        own > 0 && own < all,
        "items' events are not the parent's: {own} of {all}: {h:#}"
    );
    assert!(
        own < 20,
        "the parent's history does not grow per item: {h:#}"
    );
    assert!(h["largestPayloadBytes"].as_u64().unwrap() > 1000, "{h:#}");
    assert_eq!(h["maxEvents"], 25_000);
    assert_eq!(h["maxPayloadBytes"], 262_144);
}

#[test]
fn an_execution_past_25000_history_events_fails() {
    let sfn = Sfn::new();
    // a loop of two states: each turn adds four events (entered and exited twice)
    let def = json!({"StartAt": "Count", "States": {
        "Count": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "More"},
        "More": {"Type": "Choice",
                 "Choices": [{"Variable": "$.n", "NumericLessThan": 7000, "Next": "Count"}],
                 "Default": "Done"},
        "Done": {"Type": "Succeed"}}});
    let (code, out) = sfn.run(&def, &json!({"n": 0}), &[]);
    assert_eq!(code, 1, "{out:#}");
    assert_eq!(out["error"], "States.Runtime", "{out:#}");
    assert!(
        out["cause"].as_str().unwrap().contains("25000 events"),
        "{out:#}"
    );
}

#[test]
fn skein_run_json_reports_each_executions_headroom() {
    let ws = crate::util::Workspace::new();
    crate::util::copy_dir(&repo_root().join("samples"), &ws.path().join("samples"));
    let (_, json) = ws.skein_json(&["run", "samples", "--auto-approve", "-q"]);
    let q = &json["quotas"];
    let run_events = q["run"]["events"].as_u64().unwrap();
    assert!(run_events > 10 && run_events < 25_000, "{q:#}");
    assert!(q["datasets"]["mostEvents"].as_u64().unwrap() > 5, "{q:#}");
    let largest = q["datasets"]["largestPayloadBytes"].as_u64().unwrap();
    assert!(largest > 50 && largest < 262_144, "{q:#}");
    assert!(
        q["datasets"]["largestPayloadExecution"]
            .as_str()
            .unwrap()
            .starts_with("run-"),
        "{q:#}"
    );
}

/// `n` tiny datasets in one wave (and a canary of 2) under `dir`.
fn tiny_datasets(dir: &std::path::Path, n: usize) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for i in 0..n {
        std::fs::write(dir.join(format!("data/d{i}.csv")), format!("id,v\n{i},a\n")).unwrap();
        std::fs::write(
            dir.join(format!("d{i}.yaml")),
            format!(
                "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: dataset-with-a-longer-name-{i}}}\nspec:\n  criticality: low\n  group: g{}\n  source: {{uri: data/d{i}.csv, format: csv}}\n  target: {{uri: lake/d{i}}}\n",
                i % 2
            ),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("skein.yaml"),
        "apiVersion: skein/v1\nkind: Fleet\nspec:\n  maxConcurrency: 16\n  canary: {size: 2}\n  groups: {g0: {concurrency: 4}, g1: {concurrency: 4}}\n",
    )
    .unwrap();
}

#[test]
fn no_state_carries_a_list_that_grows_with_the_datasets() {
    // 200 datasets with every payload capped at 8 KiB: with the waves, the plan or the
    // Maps' results in the state (≈ 100-500 bytes a dataset) some state would pass 8 KiB,
    // as 2,500 datasets would pass AWS's 256 KiB.
    let ws = crate::util::Workspace::new();
    tiny_datasets(&ws.path().join("specs"), 200);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skein"))
        .args(["run", "specs", "--json", "-q"])
        .current_dir(ws.path())
        .env("SKEIN_CATALOG", ws.path().join(".skein"))
        .env("SKEIN_STATES_TEST_MAX_PAYLOAD", "8192")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(stdout.lines().last().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("{e}: {}", crate::util::text(&out)));
    assert_eq!(out.status.code(), Some(0), "{json:#}");
    assert_eq!(json["summary"]["completed"], 200, "{:#}", json["summary"]);
    let q = &json["quotas"];
    assert!(
        q["run"]["largestPayloadBytes"].as_u64().unwrap() < 8192,
        "{q:#}"
    );
    assert!(
        q["run"]["events"].as_u64().unwrap() < 200,
        "the run's history does not grow per dataset: {q:#}"
    );
    // the item lists are objects beside the catalog, and the results were written there
    let items = ws
        .path()
        .join(".skein/skein-runs/runs")
        .join(json["runId"].as_str().unwrap());
    let wave = std::fs::read_to_string(items.join("wave-0.jsonl")).unwrap();
    assert_eq!(wave.lines().count(), 198);
    assert!(items.join("results").is_dir());
}
