//! The job queue contract (issue 16): a job queued behind its group's cap never times
//! out and is staged once; a dead-lettered job fails its execution with
//! `Skein.DeadLettered` instead of leaving it waiting; a token that no longer waits stops
//! whoever holds it.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};
use skein_core::callbacks::TaskCallbacks;
use skein_core::catalog::Catalog;
use skein_core::queue::Job;
use skein_embedded::{EngineCallbacks, SqliteCatalog};
use skein_states::engine::{Engine, Failure, Handlers, Options, TaskCall, TaskHandler};
use skein_states::status::ExecutionStatus;
use skein_states::store::Store;

use crate::util::{Workspace, text};

/// `n` tiny datasets in one group of cap 1, all queued at once (one wave, no canary).
fn one_lane_fleet(ws: &Workspace, n: usize) {
    for i in 0..n {
        let mut csv = String::from("id,note\n");
        for r in 0..20_000 {
            csv.push_str(&format!("{r},\"line one\nline two of {i}\"\n"));
        }
        ws.write(&format!("fleet/data/q{i}.csv"), &csv);
        ws.write(
            &format!("fleet/q{i}.yaml"),
            &format!(
                "apiVersion: skein/v1\nkind: Dataset\nmetadata: {{name: q{i}, owner: team}}\nspec:\n  criticality: low\n  group: lane\n  \
                 source: {{uri: data/q{i}.csv, format: csv}}\n  target: {{uri: lake/q{i}}}\n"
            ),
        );
    }
    ws.write(
        "fleet/skein.yaml",
        "apiVersion: skein/v1\nkind: Fleet\nspec:\n  maxConcurrency: 8\n  canary: {size: 0}\n  \
         groups: {lane: {concurrency: 1}}\n",
    );
}

// With time scaled by 1/10,000, a HeartbeatSeconds of 600 on the queue Task would be 60 ms
// counted from the Task's start (AWS's rule, which the engine follows): the jobs queued
// behind the first would time out while waiting and be sent again. The design has no
// HeartbeatSeconds there: every dataset completes, each in one attempt.
#[test]
fn jobs_queued_behind_a_cap_of_one_never_time_out_and_are_staged_once() {
    let ws = Workspace::new();
    let n = 4;
    one_lane_fleet(&ws, n);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skein"))
        .args(["run", "fleet", "--json"])
        .current_dir(ws.path())
        .env("SKEIN_CATALOG", ws.path().join(".skein"))
        .env("SKEIN_STATES_TIME_SCALE", "0.0001")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
    assert_eq!(out.status.code(), Some(0), "{json:#}");
    assert_eq!(json["summary"]["completed"], n, "{json:#}");
    assert_eq!(json["caps"]["groups"]["lane"]["peak"], 1, "{json:#}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let catalog = SqliteCatalog::open(&ws.path().join(".skein/catalog.db")).unwrap();
    for i in 0..n {
        let attempts = rt.block_on(catalog.attempts(&format!("q{i}"))).unwrap();
        assert_eq!(
            attempts.len(),
            1,
            "q{i} staged more than once: {attempts:?}"
        );
    }
}

/// A queue Task's handler that hands the token out and answers nothing itself.
struct Enqueue {
    tokens: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl TaskHandler for Enqueue {
    async fn call(&self, call: &TaskCall) -> Result<Value, Failure> {
        let token = call.token.clone().unwrap_or_default();
        self.tokens.lock().unwrap().push(token.clone());
        Ok(json!({"MessageId": token}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_job_fails_its_execution_with_the_dataset_and_receive_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("states.db")).unwrap();
    let catalog = SqliteCatalog::open(&dir.path().join("catalog.db")).unwrap();
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let mut handlers = Handlers::default();
    handlers.resource(
        "arn:aws:states:::sqs:sendMessage",
        Arc::new(Enqueue {
            tokens: tokens.clone(),
        }),
    );
    let engine = Engine::new(store.clone(), handlers, Options::default());
    // The queue Task as dataset-migration.asl.json writes it: no HeartbeatSeconds, a
    // day's TimeoutSeconds (its Catch left out: the error reaches the execution).
    let definition = json!({"StartAt": "Migrate", "States": {
        "Migrate": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"QueueUrl": "local://q", "MessageBody": {"dataset": "orders", "taskToken.$": "$$.Task.Token"}},
            "TimeoutSeconds": 86400, "End": true}}});
    let run = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .run_named("dl-1", "m", definition, json!({}), Value::Null)
                .await
        })
    };
    let token = loop {
        if let Some(t) = tokens.lock().unwrap().first().cloned() {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let callbacks = EngineCallbacks::new(store.clone());
    let job = Job::new("orders", "run-7", &token);
    let answered = skein_usecases::worker::dead_lettered(&catalog, &callbacks, &job, Some(5)).await;
    assert!(answered.unwrap(), "the waiting token is answered");
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("the execution ends within one poll, not at its timeout")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    assert_eq!(outcome.error.as_deref(), Some("Skein.DeadLettered"));
    let cause = outcome.cause.unwrap_or_default();
    assert!(
        cause.contains("`orders`") && cause.contains("run-7") && cause.contains("after 5"),
        "{cause}"
    );
    // Answered once: the same dead letter seen again changes nothing.
    let again = skein_usecases::worker::dead_lettered(&catalog, &callbacks, &job, Some(5)).await;
    assert!(!again.unwrap(), "a token answered already is skipped");
    // And a worker heartbeating that token hears it is gone: it must stop.
    let beat = callbacks.heartbeat(&token).await;
    assert!(
        matches!(beat, Err(skein_core::Error::TokenGone { .. })),
        "{beat:?}"
    );
}

// The queue contract (issue 16) on the local queue, the same suite as SQS's on moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_queue_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let q = skein_embedded::SqliteQueue::open(&dir.path().join("queue.db"), 2).unwrap();
    skein_core::conformance::queue(&q, "bulk").await;
}
