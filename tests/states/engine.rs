//! The engine through `skein states`, one test per documented behaviour. Expected outputs
//! follow the AWS Step Functions developer guide; each test names its section.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::util::text;

/// A temp directory with definitions, inputs and the engine's store.
pub struct Sfn {
    pub dir: tempfile::TempDir,
}

impl Sfn {
    pub fn new() -> Sfn {
        Sfn {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str, content: &Value) -> PathBuf {
        let p = self.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, serde_json::to_string_pretty(content).unwrap()).unwrap();
        p
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_skein"));
        c.args(["states"])
            .args(args)
            .current_dir(self.path())
            .env("SKEIN_CATALOG", self.path().join(".skein"))
            .env("SKEIN_STATES_TIME_SCALE", "0.01")
            .env_remove("SKEIN_STATES_CRASH_AFTER");
        c
    }

    pub fn skein(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `skein states run` and parses the last stdout line.
    pub fn run(&self, def: &Value, input: &Value, extra: &[&str]) -> (i32, Value) {
        self.file("def.asl.json", def);
        self.file("input.json", input);
        let mut args = vec!["run", "def.asl.json", "--input", "input.json"];
        args.extend_from_slice(extra);
        let out = self.skein(&args);
        (out.status.code().unwrap_or(-1), last_json(&out))
    }
}

pub fn last_json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last stdout line is not JSON ({e}):\n{}", text(out)))
}

pub fn succeeded(sfn: &Sfn, def: Value, input: Value) -> Value {
    let (code, out) = sfn.run(&def, &input, &[]);
    assert_eq!(out["status"], "SUCCEEDED", "{out:#}");
    assert_eq!(code, 0);
    assert!(
        out["executionArn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:states:")
    );
    out["output"].clone()
}

pub fn failed(sfn: &Sfn, def: Value, input: Value) -> (String, String) {
    let (code, out) = sfn.run(&def, &input, &[]);
    assert_eq!(out["status"], "FAILED", "{out:#}");
    assert_eq!(code, 1);
    assert!(out.get("output").is_none());
    (
        out["error"].as_str().unwrap().to_string(),
        out["cause"].as_str().unwrap_or("").to_string(),
    )
}

// "Pass workflow state": Result placed by ResultPath (the documented coordinates example).
#[test]
fn pass_result_with_result_path() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass",
        "Result": {"x-datum": 0.381018, "y-datum": 622.2269926397355},
        "ResultPath": "$.coords", "End": true}}});
    let out = succeeded(&sfn, def, json!({"georefOf": "Home"}));
    assert_eq!(
        out,
        json!({"georefOf": "Home", "coords": {"x-datum": 0.381018, "y-datum": 622.2269926397355}})
    );
}

// "Processing input and output": InputPath, Parameters (with `.$` and the context object),
// ResultSelector, ResultPath and OutputPath, in that order, around a mocked Lambda.
#[test]
fn input_and_output_processing_in_order() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "InputPath": "$.order",
        "Parameters": {"FunctionName": "price", "Payload": {"id.$": "$.id", "state.$": "$$.State.Name"}},
        "ResultSelector": {"total.$": "$.Payload.total", "code.$": "$.StatusCode"},
        "ResultPath": "$.order.priced",
        "OutputPath": "$.order",
        "End": true}}});
    let mock = json!({
        "StateMachines": {"m": {"TestCases": {"ok": {"Call": "Priced"}}}},
        "MockedResponses": {"Priced": {"0": {"Return": {"StatusCode": 200, "Payload": {"total": 42}}}}}
    });
    sfn.file("mock.json", &mock);
    let (code, out) = sfn.run(
        &def,
        &json!({"order": {"id": 7}, "other": true}),
        &[
            "--mock-config",
            "mock.json",
            "--state-machine-name",
            "m",
            "--test-case",
            "ok",
        ],
    );
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(
        out["output"],
        json!({"id": 7, "priced": {"total": 42, "code": 200}})
    );
}

// "ResultPath": null discards the result and passes the input through; OutputPath null gives {}.
#[test]
fn result_path_null_and_output_path_null() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Result": "ignored", "ResultPath": null, "Next": "B"},
        "B": {"Type": "Pass", "OutputPath": null, "End": true}}});
    assert_eq!(succeeded(&sfn, def, json!({"keep": 1})), json!({}));
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "ignored", "ResultPath": null, "End": true}}});
    assert_eq!(succeeded(&sfn, def, json!({"keep": 1})), json!({"keep": 1}));
}

// "Choice workflow state": the documented comparison operators, And/Or/Not, *Path operands,
// IsPresent/IsNull, StringMatches wildcards, timestamps, and Default.
#[test]
fn choice_rules_pick_the_first_match() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [
            {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
            {"And": [{"Variable": "$.value", "IsPresent": true},
                     {"Variable": "$.value", "NumericGreaterThanEquals": 20},
                     {"Variable": "$.value", "NumericLessThanPath": "$.limit"}], "Next": "ValueInTwenties"},
            {"Variable": "$.file", "StringMatches": "log-*.txt", "Next": "Log"},
            {"Variable": "$.when", "TimestampLessThan": "2020-01-01T00:00:00Z", "Next": "Old"},
            {"Or": [{"Variable": "$.missing", "IsNull": true}, {"Variable": "$.flag", "BooleanEquals": true}], "Next": "Flagged"}
        ], "Default": "Other"},
        "Public": {"Type": "Pass", "Result": "Public", "End": true},
        "ValueInTwenties": {"Type": "Pass", "Result": "ValueInTwenties", "End": true},
        "Log": {"Type": "Pass", "Result": "Log", "End": true},
        "Old": {"Type": "Pass", "Result": "Old", "End": true},
        "Flagged": {"Type": "Pass", "Result": "Flagged", "End": true},
        "Other": {"Type": "Pass", "Result": "Other", "End": true}}});
    let cases = [
        (json!({"type": "Public"}), "Public"),
        (
            json!({"type": "Private", "value": 25, "limit": 30}),
            "ValueInTwenties",
        ),
        (
            json!({"type": "Private", "value": 25, "limit": 25, "file": "log-2024.txt"}),
            "Log",
        ),
        (
            json!({"type": "Private", "file": "log.txt", "when": "2019-06-01T12:00:00.5Z"}),
            "Old",
        ),
        (
            json!({"type": "Private", "file": "x", "when": "2021-01-01T00:00:00Z", "missing": null}),
            "Flagged",
        ),
        (
            json!({"type": "Private", "file": "x", "when": "2021-01-01T00:00:00Z", "missing": 1, "flag": true}),
            "Flagged",
        ),
        (
            json!({"type": "Private", "file": "x", "when": "2021-01-01T00:00:00Z", "missing": 1, "flag": false}),
            "Other",
        ),
    ];
    for (input, want) in &cases {
        let (code, out) = sfn.run(&def, input, &[]);
        assert_eq!(
            out["output"],
            json!(want),
            "input {input}: {out:#} (exit {code})"
        );
    }
    // A comparison on a field that does not exist is a runtime error (AWS: States.Runtime).
    let (_, out) = sfn.run(&def, &json!({"type": "Private"}), &[]);
    assert_eq!(out["error"], "States.Runtime", "{out:#}");
}

// "Choice workflow state": no rule matches and no Default → States.NoChoiceMatched; a
// Variable that does not exist → States.Runtime.
#[test]
fn choice_without_match_or_with_missing_variable_fails() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "Done"}]},
        "Done": {"Type": "Succeed"}}});
    assert_eq!(
        failed(&sfn, def.clone(), json!({"n": 2})).0,
        "States.NoChoiceMatched"
    );
    let (error, cause) = failed(&sfn, def, json!({"m": 2}));
    assert_eq!(error, "States.Runtime");
    assert!(cause.contains("$.n"), "{cause}");
}

// "Wait workflow state": Seconds, SecondsPath, TimestampPath (a past time continues at once).
#[test]
fn wait_states_wait_and_pass_input_through() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "W1", "States": {
        "W1": {"Type": "Wait", "Seconds": 10, "Next": "W2"},
        "W2": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "W3"},
        "W3": {"Type": "Wait", "TimestampPath": "$.until", "End": true}}});
    let input = json!({"delay": 5, "until": "2016-03-14T01:59:00Z"});
    let started = std::time::Instant::now();
    assert_eq!(succeeded(&sfn, def.clone(), input.clone()), input);
    assert!(
        started.elapsed().as_millis() >= 150,
        "10 s + 5 s at time scale 0.01 is at least 150 ms"
    );
    let (error, _) = failed(&sfn, def, json!({"delay": "soon", "until": "x"}));
    assert_eq!(error, "States.Runtime");
}

// "Fail workflow state": Error/Cause, and ErrorPath/CausePath from the input.
#[test]
fn fail_state_error_and_cause() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "ErrorA", "Cause": "Kaiju attack"}}});
    assert_eq!(
        failed(&sfn, def, json!({})),
        ("ErrorA".into(), "Kaiju attack".into())
    );
    let def = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('code {}', $.c)"}}});
    assert_eq!(
        failed(&sfn, def, json!({"e": "Bad", "c": 7})),
        ("Bad".into(), "code 7".into())
    );
}

// "Parallel workflow state": the output is an array of each branch's output, in order.
#[test]
fn parallel_outputs_each_branch_in_order() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
        "ResultSelector": {"sum.$": "States.MathAdd($[0].n, $[1].n)"},
        "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Wait", "Seconds": 5, "Next": "A2"}, "A2": {"Type": "Pass", "Parameters": {"n.$": "$.a"}, "End": true}}},
            {"StartAt": "B", "States": {"B": {"Type": "Pass", "Parameters": {"n.$": "$.b"}, "End": true}}}]}}});
    assert_eq!(
        succeeded(&sfn, def, json!({"a": 2, "b": 3})),
        json!({"sum": 5})
    );
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
        {"StartAt": "B", "States": {"B": {"Type": "Fail", "Error": "BranchBroke"}}}]}}});
    assert_eq!(failed(&sfn, def, json!({})).0, "BranchBroke");
}

// "Map state in inline mode": ItemsPath, ItemSelector with $$.Map.Item.Index/Value,
// MaxConcurrency; results in item order.
#[test]
fn inline_map_with_item_selector() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.detail.shipped",
        "MaxConcurrency": 2,
        "ItemSelector": {"index.$": "$$.Map.Item.Index", "sku.$": "$$.Map.Item.Value.sku", "who.$": "$.detail.customer"},
        "ItemProcessor": {"StartAt": "Ship", "States": {"Ship": {"Type": "Pass", "End": true}}},
        "ResultPath": "$.detail.done", "OutputPath": "$.detail.done", "End": true}}});
    let input = json!({"detail": {"customer": "c1", "shipped": [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}]}});
    assert_eq!(
        succeeded(&sfn, def, input),
        json!([{"index": 0, "sku": "a", "who": "c1"}, {"index": 1, "sku": "b", "who": "c1"}, {"index": 2, "sku": "c", "who": "c1"}])
    );
}

// "Map state in Distributed mode": ItemReader over a CSV object, ItemBatcher with
// BatchInput, ToleratedFailureCount, ResultWriter (manifest + result files).
#[test]
fn distributed_map_reads_batches_tolerates_and_writes_results() {
    let sfn = Sfn::new();
    std::fs::create_dir_all(sfn.path().join("s3/in")).unwrap();
    std::fs::write(
        sfn.path().join("s3/in/items.csv"),
        "id,name\n1,a\n2,\"b, with comma\"\n3,c\n4,d\n5,bad\n",
    )
    .unwrap();
    sfn.file("bindings.json", &json!({"s3Root": "s3"}));
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
            "Parameters": {"Bucket": "in", "Key.$": "$.key"}},
        "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"job": "j1"}},
        "ToleratedFailureCount": 1,
        "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "out", "Prefix": "runs"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Check", "States": {
                "Check": {"Type": "Choice", "Choices": [{"Variable": "$.Items[0].name", "StringEquals": "bad", "Next": "Boom"}], "Default": "Ok"},
                "Boom": {"Type": "Fail", "Error": "BadItem", "Cause": "item 5"},
                "Ok": {"Type": "Pass", "Parameters": {"n.$": "States.ArrayLength($.Items)", "job.$": "$.BatchInput.job"}, "End": true}}}}}});
    let (code, out) = sfn.run(
        &def,
        &json!({"key": "items.csv"}),
        &["--bindings", "bindings.json"],
    );
    assert_eq!(code, 0, "{out:#}");
    let key = out["output"]["ResultWriterDetails"]["Key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(out["output"]["ResultWriterDetails"]["Bucket"], "out");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(sfn.path().join("s3/out").join(&key)).unwrap())
            .unwrap();
    let dir = sfn
        .path()
        .join("s3/out")
        .join(Path::new(&key).parent().unwrap());
    let ok: Value =
        serde_json::from_slice(&std::fs::read(dir.join("SUCCEEDED_0.json")).unwrap()).unwrap();
    let bad: Value =
        serde_json::from_slice(&std::fs::read(dir.join("FAILED_0.json")).unwrap()).unwrap();
    assert_eq!(ok.as_array().unwrap().len(), 2, "two full batches: {ok:#}");
    assert_eq!(ok[0]["Output"], json!({"n": 2, "job": "j1"}).to_string());
    assert_eq!(bad.as_array().unwrap().len(), 1, "{bad:#}");
    assert!(manifest["ResultFiles"]["FAILED"].is_array());

    // Without tolerance the same failure fails the Map.
    let mut strict = def.clone();
    strict["States"]["M"]
        .as_object_mut()
        .unwrap()
        .remove("ToleratedFailureCount");
    let (_, out) = sfn.run(
        &strict,
        &json!({"key": "items.csv"}),
        &["--bindings", "bindings.json"],
    );
    assert_eq!(
        out["error"], "States.ExceedToleratedFailureThreshold",
        "{out:#}"
    );
}

// "Handling errors in Step Functions workflows": Retry with BackoffRate/MaxAttempts, then a
// Catch with ResultPath; `States.ALL` does not catch `States.Runtime`.
#[test]
fn retry_then_catch_in_order() {
    let sfn = Sfn::new();
    let mock = json!({
        "StateMachines": {"m": {"TestCases": {
            "flaky": {"Work": "FailTwiceThenOk"},
            "broken": {"Work": "AlwaysFails"}}}},
        "MockedResponses": {
            "FailTwiceThenOk": {"0-1": {"Throw": {"Error": "Lambda.ServiceException", "Cause": "busy"}},
                                "2": {"Return": {"done": true}}},
            "AlwaysFails": {"0-9": {"Throw": {"Error": "CustomError", "Cause": "no"}}}}
    });
    sfn.file("mock.json", &mock);
    let def = json!({"StartAt": "Work", "States": {
        "Work": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:work",
            "Retry": [{"ErrorEquals": ["Lambda.ServiceException"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 2.0, "JitterStrategy": "FULL", "MaxDelaySeconds": 5},
                      {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 1}],
            "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "Recover"}],
            "End": true},
        "Recover": {"Type": "Pass", "End": true}}});
    let args = [
        "--mock-config",
        "mock.json",
        "--state-machine-name",
        "m",
        "--test-case",
    ];
    let (code, out) = sfn.run(&def, &json!({"x": 1}), &[&args[..], &["flaky"]].concat());
    assert_eq!(
        (code, &out["output"]),
        (0, &json!({"done": true})),
        "{out:#}"
    );
    // AlwaysFails: the States.ALL retrier retries once, then the catcher takes it.
    let (_, out) = sfn.run(&def, &json!({"x": 1}), &[&args[..], &["broken"]].concat());
    assert_eq!(
        out["output"],
        json!({"x": 1, "error": {"Error": "CustomError", "Cause": "no"}}),
        "{out:#}"
    );
    let arn = out["executionArn"].as_str().unwrap();
    let history = last_json(&sfn.skein(&["history", arn, "--json"]));
    let kinds: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "TaskFailed").count(),
        2,
        "one try + one retry: {kinds:?}"
    );
    assert_eq!(kinds.first(), Some(&"ExecutionStarted"));
    assert_eq!(kinds.last(), Some(&"ExecutionSucceeded"));

    let def = json!({"StartAt": "Guarded", "States": {
        "Guarded": {"Type": "Parallel", "End": true,
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
            "Branches": [{"StartAt": "Bad", "States": {"Bad": {"Type": "Pass", "InputPath": "$.nothing.here", "End": true}}}]},
        "Caught": {"Type": "Succeed"}}});
    let (error, cause) = failed(&sfn, def, json!({}));
    assert_eq!(error, "States.Runtime");
    assert!(cause.contains("$.nothing.here"), "{cause}");
}

fn script(sfn: &Sfn, name: &str, body: &str) -> String {
    let p = sfn.path().join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::process::Command::new("chmod")
        .args(["+x", p.to_str().unwrap()])
        .status()
        .unwrap();
    p.display().to_string()
}

// "Task workflow state": TimeoutSeconds → States.Timeout; a bound command's Lambda-style
// error → its errorType; lambda:invoke wraps the result as Invoke's response.
#[test]
fn command_tasks_timeouts_and_lambda_errors() {
    let sfn = Sfn::new();
    let slow = script(&sfn, "slow.sh", "sleep 5; echo '{}'");
    let echo = script(&sfn, "echo.sh", "cat");
    let oops = script(
        &sfn,
        "oops.sh",
        "echo '{\"errorType\": \"OrderNotFound\", \"errorMessage\": \"no order 7\"}'; exit 1",
    );
    sfn.file(
        "bindings.json",
        &json!({"functions": {"slow": {"command": [slow]}, "echo": {"command": [echo]}, "oops": {"command": [oops]}}}),
    );
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName.$": "$.fn", "Payload": {"v.$": "$.v"}}, "TimeoutSeconds": 20, "End": true}}});
    let b = ["--bindings", "bindings.json"];
    let (_, out) = sfn.run(&def, &json!({"fn": "echo", "v": 1}), &b);
    assert_eq!(out["output"]["Payload"], json!({"v": 1}), "{out:#}");
    assert_eq!(out["output"]["StatusCode"], 200);
    let (_, out) = sfn.run(&def, &json!({"fn": "slow", "v": 1}), &b);
    assert_eq!(
        out["error"], "States.Timeout",
        "20 s at scale 0.01 is 0.2 s, the command sleeps 5 s: {out:#}"
    );
    let (_, out) = sfn.run(&def, &json!({"fn": "oops", "v": 1}), &b);
    assert_eq!(
        (out["error"].as_str(), out["cause"].as_str()),
        (Some("OrderNotFound"), Some("no order 7")),
        "{out:#}"
    );
    let (_, out) = sfn.run(&def, &json!({"fn": "unbound", "v": 1}), &b);
    assert!(
        out["cause"].as_str().unwrap().contains("unbound"),
        "{out:#}"
    );
}

// "Wait for a Callback with Task Token": the task waits until send-task-success answers its
// token; send-task-failure fails it; without heartbeats, HeartbeatSeconds times it out.
#[test]
fn wait_for_task_token_success_failure_and_heartbeat_timeout() {
    let sfn = Sfn::new();
    let skein = env!("CARGO_BIN_EXE_skein");
    let ok = script(
        &sfn,
        "ok.sh",
        &format!(
            "( sleep 0.3; {skein} states send-task-success \"$SKEIN_TASK_TOKEN\" '{{\"approved\": true}}' ) >/dev/null 2>&1 &"
        ),
    );
    let no = script(
        &sfn,
        "no.sh",
        &format!(
            "( sleep 0.3; {skein} states send-task-failure \"$SKEIN_TASK_TOKEN\" --error Rejected --cause 'not today' ) >/dev/null 2>&1 &"
        ),
    );
    let silent = script(&sfn, "silent.sh", "true");
    sfn.file("bindings.json", &json!({"functions": {"ok": {"command": [ok]}, "no": {"command": [no]}, "silent": {"command": [silent]}}}));
    let def = json!({"StartAt": "Ask", "States": {"Ask": {"Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "HeartbeatSeconds": 100,
        "Parameters": {"FunctionName.$": "$.fn", "Payload": {"token.$": "$$.Task.Token"}},
        "ResultPath": "$.answer", "End": true}}});
    let b = ["--bindings", "bindings.json"];
    let (_, out) = sfn.run(&def, &json!({"fn": "ok"}), &b);
    assert_eq!(
        out["output"]["answer"],
        json!({"approved": true}),
        "{out:#}"
    );
    let (_, out) = sfn.run(&def, &json!({"fn": "no"}), &b);
    assert_eq!(
        (out["error"].as_str(), out["cause"].as_str()),
        (Some("Rejected"), Some("not today")),
        "{out:#}"
    );
    let (_, out) = sfn.run(&def, &json!({"fn": "silent"}), &b);
    assert_eq!(out["error"], "States.HeartbeatTimeout", "{out:#}");
    let out = sfn.skein(&["send-task-success", "no-such-token", "{}"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown"),
        "{}",
        text(&out)
    );
}

// "Execution-level TimeoutSeconds": the execution ends TIMED_OUT.
#[test]
fn execution_timeout() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "W", "TimeoutSeconds": 10, "States": {"W": {"Type": "Wait", "Seconds": 1000, "End": true}}});
    let (code, out) = sfn.run(&def, &json!({}), &[]);
    assert_eq!(
        (code, out["status"].as_str()),
        (1, Some("TIMED_OUT")),
        "{out:#}"
    );
    assert_eq!(out["error"], "States.Timeout");
}

// Definitions with `${…}` placeholders, filled from the bindings' substitutions (the names
// the SAM template's DefinitionSubstitutions use); a missing one is a usage error.
#[test]
fn substitutions_fill_placeholders() {
    let sfn = Sfn::new();
    let echo = script(&sfn, "echo.sh", "cat");
    sfn.file(
        "bindings.json",
        &json!({"substitutions": {"WorkFunctionArn": "arn:aws:lambda:local:000000000000:function:work", "Greeting": "hi"},
                "functions": {"work": {"command": [echo]}}}),
    );
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "${WorkFunctionArn}",
        "Parameters": {"say": "${Greeting}"}, "End": true}}});
    let (code, out) = sfn.run(&def, &json!({}), &["--bindings", "bindings.json"]);
    assert_eq!(
        (code, &out["output"]),
        (0, &json!({"say": "hi"})),
        "{out:#}"
    );
    sfn.file("empty.json", &json!({}));
    let out = sfn.skein(&["run", "def.asl.json", "--bindings", "empty.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("${WorkFunctionArn}"),
        "{}",
        text(&out)
    );
}

// Bad definitions: an error per problem naming the state and field by JSON pointer.
#[test]
fn validate_names_each_problem_by_pointer() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "Nowhere"},
        "B": {"Type": "Pass", "End": true},
        "C": {"Type": "Teleport"},
        "D": {"Type": "Task", "Resource": "arn:x"},
        "E": {"Type": "Pass", "InputPath": "not-a-path", "End": true},
        "F": {"Type": "Pass", "Parameters": {"x.$": "States.NoSuchFunction($.a)"}, "End": true},
        "G": {"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericEquals": "seven", "Next": "A"}]}}});
    sfn.file("bad.json", &def);
    let out = sfn.skein(&["validate", "bad.json", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let report = last_json(&out);
    let pointers: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    for want in [
        "/States/A/Next",
        "/States/B",
        "/States/C/Type",
        "/States/D",
        "/States/E/InputPath",
        "/States/F/Parameters/x.$",
        "/States/G/Choices/0/NumericEquals",
    ] {
        assert!(pointers.contains(&want), "missing {want} in {report:#}");
    }
    let out = sfn.skein(&["run", "bad.json"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad definition runs nothing: {}",
        text(&out)
    );
    sfn.file(
        "good.json",
        &json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}),
    );
    assert_eq!(sfn.skein(&["validate", "good.json"]).status.code(), Some(0));
}

// `list` and `history --json` (shaped like ListExecutions / GetExecutionHistory).
#[test]
fn list_and_history() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Succeed"}}});
    let (_, out) = sfn.run(&def, &json!({"k": 1}), &[]);
    let arn = out["executionArn"].as_str().unwrap();
    let list = last_json(&sfn.skein(&["list", "--json"]));
    assert_eq!(list["executions"][0]["executionArn"], arn);
    assert_eq!(list["executions"][0]["status"], "SUCCEEDED");
    let history = last_json(&sfn.skein(&["history", arn, "--json"]));
    let types: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "SucceedStateEntered",
            "SucceedStateExited",
            "ExecutionSucceeded"
        ]
    );
    assert_eq!(
        history["events"][1]["stateEnteredEventDetails"]["name"],
        "A"
    );
    assert_eq!(
        history["events"][1]["stateEnteredEventDetails"]["input"],
        "{\"k\":1}"
    );
}

// "StopExecution": a running execution stopped from another process ends ABORTED and cannot
// be resumed.
#[test]
fn stop_aborts_a_running_execution() {
    let sfn = Sfn::new();
    sfn.file(
        "long.json",
        &json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 100000, "End": true}}}),
    );
    let child = sfn
        .command(&["run", "long.json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let arn = (0..100)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let list = last_json(&sfn.skein(&["list", "--json"]));
            list["executions"][0]["executionArn"]
                .as_str()
                .map(str::to_string)
        })
        .expect("the execution shows up in the list");
    let out = sfn.skein(&[
        "stop",
        &arn,
        "--error",
        "Operator",
        "--cause",
        "changed my mind",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = child.wait_with_output().unwrap();
    let result = last_json(&out);
    assert_eq!(result["status"], "ABORTED", "{result:#}");
    assert_eq!(result["cause"], "changed my mind");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        sfn.skein(&["resume", &arn]).status.code(),
        Some(2),
        "an aborted execution does not resume"
    );
}

// "Transforming data with JSONata in Step Functions": `{% %}` expressions in Output,
// Arguments, Assign (variables), Condition, Items/ItemSelector, and a Catch's Output with
// `$states.errorOutput`.
#[test]
fn jsonata_states_transform_assign_and_choose() {
    let sfn = Sfn::new();
    let mock = json!({
        "StateMachines": {"j": {"TestCases": {"t": {"Price": "Priced", "Boom": "Fails"}}}},
        "MockedResponses": {
            "Priced": {"0": {"Return": {"StatusCode": 200, "Payload": {"unit": 2.5}}}},
            "Fails": {"0": {"Throw": {"Error": "Kaput", "Cause": "always"}}}}
    });
    sfn.file("mock.json", &mock);
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "Totals", "States": {
        "Totals": {"Type": "Pass",
            "Assign": {"n": "{% $count($states.input.items) %}", "customer": "{% $states.input.customer %}"},
            "Output": {"items": "{% $states.input.items %}"}, "Next": "Price"},
        "Price": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Arguments": {"FunctionName": "price", "Payload": {"n": "{% $n %}"}},
            "Output": {"items": "{% $states.input.items %}", "unit": "{% $states.result.Payload.unit %}"},
            "Next": "Each"},
        "Each": {"Type": "Map", "Items": "{% $states.input.items %}",
            "ItemSelector": {"sku": "{% $states.context.Map.Item.Value %}", "price": "{% $states.input.unit %}"},
            "ItemProcessor": {"StartAt": "Line", "States": {"Line": {"Type": "Pass",
                "Output": "{% $states.input.sku & ':' & $string($states.input.price) %}", "End": true}}},
            "Output": {"lines": "{% $states.result %}", "customer": "{% $customer %}"},
            "Next": "Big"},
        "Big": {"Type": "Choice", "Choices": [
            {"Condition": "{% $n > 2 %}", "Next": "Boom", "Output": {"lines": "{% $states.input.lines %}", "big": true}}],
            "Default": "Done"},
        "Boom": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Arguments": {"FunctionName": "boom"},
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done",
                "Output": {"lines": "{% $states.input.lines %}", "error": "{% $states.errorOutput.Error %}"}}],
            "Next": "Done"},
        "Done": {"Type": "Succeed"}}});
    let (code, out) = sfn.run(
        &def,
        &json!({"customer": "c1", "items": ["a", "b", "c"]}),
        &[
            "--mock-config",
            "mock.json",
            "--state-machine-name",
            "j",
            "--test-case",
            "t",
        ],
    );
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(
        out["output"],
        json!({"lines": ["a:2.5", "b:2.5", "c:2.5"], "error": "Kaput"})
    );

    let bad = json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {
        "P": {"Type": "Pass", "Output": {"x": "{% $states.input.( %}"}, "End": true}}});
    sfn.file("bad-jsonata.json", &bad);
    let out = sfn.skein(&["validate", "bad-jsonata.json", "--json"]);
    let report = last_json(&out);
    assert_eq!(
        report["errors"][0]["pointer"], "/States/P/Output",
        "{report:#}"
    );
}
