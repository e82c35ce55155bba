//! Durability: the process is killed with SIGKILL after its k-th commit, for every k of a
//! run with Map, Parallel, Retry and a task token; `skein states resume` must finish with
//! the same output and the same event history as an uninterrupted run.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::engine::{Sfn, last_json};
use crate::util::text;

fn setup(sfn: &Sfn) {
    let skein = env!("CARGO_BIN_EXE_skein");
    let write = |name: &str, body: &str| {
        let p = sfn.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::process::Command::new("chmod")
            .args(["+x", p.to_str().unwrap()])
            .status()
            .unwrap();
        p.display().to_string()
    };
    // Answers its token from another process, as a worker would.
    let approve = write(
        "approve.sh",
        &format!(
            "( sleep 0.1; {skein} states send-task-success \"$SKEIN_TASK_TOKEN\" '{{\"approved\": true}}' ) >/dev/null 2>&1 &"
        ),
    );
    let double = write(
        "double.sh",
        "read x; echo \"$x\" | sed 's/\"n\":\\([0-9]*\\)/\"n\":\\1,\"twice\":true/'",
    );
    sfn.file(
        "bindings.json",
        &json!({"functions": {"approve": {"command": [approve]}, "double": {"command": [double]}}}),
    );
    sfn.file(
        "mock.json",
        &json!({"StateMachines": {"crash": {"TestCases": {"case": {"Flaky": "FailOnceThenOk"}}}},
                "MockedResponses": {"FailOnceThenOk": {"0": {"Throw": {"Error": "Transient", "Cause": "try again"}},
                                                       "1": {"Return": {"flaky": "ok"}}}}}),
    );
    sfn.file(
        "def.asl.json",
        &json!({"StartAt": "Fan", "States": {
            "Fan": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1, "ResultPath": "$.mapped", "Next": "Both",
                "ItemProcessor": {"StartAt": "Double", "States": {
                    "Double": {"Type": "Task", "Resource": "arn:aws:lambda:local:000000000000:function:double", "Next": "Rest"},
                    "Rest": {"Type": "Wait", "Seconds": 1, "End": true}}}},
            "Both": {"Type": "Parallel", "ResultPath": "$.parallel", "Next": "Approve", "Branches": [
                {"StartAt": "Flaky", "States": {"Flaky": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "flaky"},
                    "Retry": [{"ErrorEquals": ["Transient"], "IntervalSeconds": 1, "MaxAttempts": 2}], "End": true}}},
                {"StartAt": "Count", "States": {"Count": {"Type": "Pass", "Parameters": {"n.$": "States.ArrayLength($.items)"}, "End": true}}}]},
            "Approve": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "approve", "Payload": {"token.$": "$$.Task.Token"}},
                "ResultPath": "$.approval", "HeartbeatSeconds": 3000, "Next": "Done"},
            "Done": {"Type": "Succeed"}}}),
    );
    sfn.file(
        "input.json",
        &json!({"items": [{"n": 1}, {"n": 2}, {"n": 3}]}),
    );
}

const RUN: &[&str] = &[
    "run",
    "def.asl.json",
    "--input",
    "input.json",
    "--bindings",
    "bindings.json",
    "--mock-config",
    "mock.json",
    "--state-machine-name",
    "crash",
    "--test-case",
    "case",
];

/// Per frame, the (type, state name) sequence of its events: concurrent frames may
/// interleave differently, each frame's own history may not.
fn shape(history: &Value) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for e in history["events"].as_array().unwrap() {
        let kind = e["type"].as_str().unwrap().to_string();
        let details = e
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.ends_with("EventDetails"))
            .map(|(_, v)| v.clone());
        let name = details
            .and_then(|d| d.get("name").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        out.entry(e["frame"].as_str().unwrap().to_string())
            .or_default()
            .push((kind, name));
    }
    out
}

fn history(sfn: &Sfn, arn: &str) -> Value {
    let out = sfn.skein(&["history", arn, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    last_json(&out)
}

#[test]
fn killed_at_every_commit_resumes_to_the_same_result() {
    let reference = Sfn::new();
    setup(&reference);
    let out = reference.skein(RUN);
    let done = last_json(&out);
    assert_eq!(done["status"], "SUCCEEDED", "{}", text(&out));
    let want_output = done["output"].clone();
    assert_eq!(want_output["approval"], json!({"approved": true}));
    assert_eq!(want_output["parallel"], json!([{"flaky": "ok"}, {"n": 3}]));
    assert_eq!(want_output["mapped"][2], json!({"n": 3, "twice": true}));
    let want_history = shape(&history(&reference, done["executionArn"].as_str().unwrap()));
    let commits = want_history.values().map(Vec::len).sum::<usize>();

    let mut crashed = 0;
    for k in 1..=commits {
        let sfn = Sfn::new();
        setup(&sfn);
        let out = sfn
            .command(RUN)
            .env("SKEIN_STATES_CRASH_AFTER", k.to_string())
            .output()
            .unwrap();
        if out.status.code() == Some(0) {
            break; // the run had fewer commits than k: every point was covered
        }
        assert_eq!(
            out.status.code(),
            None,
            "killed by a signal at commit {k}: {}",
            text(&out)
        );
        crashed += 1;
        let list = last_json(&sfn.skein(&["list", "--json"]));
        let arn = list["executions"][0]["executionArn"]
            .as_str()
            .map(str::to_string);
        let Some(arn) = arn else {
            // Killed before the execution's first commit: nothing to resume, nothing started.
            assert_eq!(
                k, 1,
                "only the very first commit can precede the execution record"
            );
            continue;
        };
        if list["executions"][0]["status"] == "RUNNING" {
            let resumed = sfn.skein(&["resume", &arn]);
            let result = last_json(&resumed);
            assert_eq!(
                result["status"],
                "SUCCEEDED",
                "crash after commit {k}: {}",
                text(&resumed)
            );
            assert_eq!(result["output"], want_output, "crash after commit {k}");
        } else {
            // Killed right after the final commit: the execution had already ended.
            assert_eq!(
                list["executions"][0]["status"], "SUCCEEDED",
                "crash after commit {k}: {list:#}"
            );
        }
        assert_eq!(
            shape(&history(&sfn, &arn)),
            want_history,
            "crash after commit {k}: event history differs"
        );
    }
    eprintln!("killed at {crashed} different commits, each resumed to the same output and history");
    assert!(
        crashed >= 10,
        "the run must be killed at many points, was killed at {crashed}"
    );
}
