//! The engine as AWS behaves in the details recorded on AWS itself (issue 21): JSONata
//! results that are undefined, intrinsic edge cases.

use serde_json::json;

use super::engine::{Sfn, last_json};

#[test]
fn an_undefined_jsonata_result_fails_the_state_before_any_task_runs() {
    let sfn = Sfn::new();
    // Output that matches nothing
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {
        "P": {"Type": "Pass", "Output": "{% $states.input.missing %}", "End": true}}});
    let (code, out) = sfn.run(&def, &json!({"present": 1}), &[]);
    assert_eq!(code, 1, "{out:#}");
    assert_eq!(out["error"], "States.QueryEvaluationError", "{out:#}");
    assert!(
        out["cause"]
            .as_str()
            .unwrap()
            .contains("returned nothing (undefined)"),
        "{out:#}"
    );

    // Arguments that match nothing: the Task is never invoked
    sfn.file(
        "mock.json",
        &json!({"StateMachines": {"m": {"TestCases": {"t": {"Call": "Ok"}}}},
                "MockedResponses": {"Ok": {"0": {"Return": {"StatusCode": 200, "Payload": {}}}}}}),
    );
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "Call", "States": {
        "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                 "Arguments": {"FunctionName": "f", "Payload": {"id": "{% $states.input.nope %}"}},
                 "End": true}}});
    let (code, out) = sfn.run(
        &def,
        &json!({}),
        &[
            "--mock-config",
            "mock.json",
            "--state-machine-name",
            "m",
            "--test-case",
            "t",
        ],
    );
    assert_eq!(code, 1, "{out:#}");
    assert_eq!(out["error"], "States.QueryEvaluationError", "{out:#}");
    let history =
        last_json(&sfn.skein(&["history", out["executionArn"].as_str().unwrap(), "--json"]));
    let kinds: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        !kinds
            .iter()
            .any(|k| k.starts_with("TaskSucceeded") || k.starts_with("TaskScheduled")),
        "{kinds:?}"
    );

    // the control: with the argument present the Task is scheduled and answers
    let (code, out) = sfn.run(
        &def,
        &json!({"nope": 7}),
        &[
            "--mock-config",
            "mock.json",
            "--state-machine-name",
            "m",
            "--test-case",
            "t",
        ],
    );
    assert_eq!(code, 0, "{out:#}");
    let history =
        last_json(&sfn.skein(&["history", out["executionArn"].as_str().unwrap(), "--json"]));
    assert!(
        history["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "TaskScheduled"),
        "{history:#}"
    );
}
