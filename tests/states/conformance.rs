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

#[test]
fn workflow_variables_are_read_in_every_path_field() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "Set", "States": {
        "Set": {"Type": "Pass", "Assign": {"cfg": {"items": [1, 2, 3], "limit": 2, "wait": 0, "who": "ada"}},
                "Next": "Choose"},
        "Choose": {"Type": "Choice", "Choices": [
            {"Variable": "$cfg.limit", "NumericEqualsPath": "$cfg.items[1]", "Next": "Wait"}],
            "Default": "Bad"},
        "Wait": {"Type": "Wait", "SecondsPath": "$cfg.wait", "Next": "Fan"},
        "Fan": {"Type": "Map", "ItemsPath": "$cfg.items", "MaxConcurrencyPath": "$cfg.limit",
                "ItemSelector": {"n.$": "$$.Map.Item.Value", "who.$": "$cfg.who"},
                "ItemProcessor": {"StartAt": "Each", "States": {"Each": {"Type": "Pass",
                    "Parameters": {"line.$": "States.Format('{} {}', $cfg.who, $.n)"}, "End": true}}},
                "ResultPath": "$.lines", "OutputPath": "$.lines", "Next": "Done"},
        "Done": {"Type": "Succeed"},
        "Bad": {"Type": "Fail", "ErrorPath": "$cfg.who", "CausePath": "States.Format('limit {}', $cfg.limit)"}}});
    let (code, out) = sfn.run(&def, &json!({}), &[]);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(
        out["output"],
        json!([{"line": "ada 1"}, {"line": "ada 2"}, {"line": "ada 3"}])
    );
    // validate accepts them, and still refuses a variable as a ResultPath
    sfn.file("def.asl.json", &def);
    let ok = sfn.skein(&["validate", "def.asl.json"]);
    assert_eq!(ok.status.code(), Some(0), "{}", crate::util::text(&ok));
    let bad = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "ResultPath": "$cfg.x", "End": true}}});
    sfn.file("bad.asl.json", &bad);
    let out = sfn.skein(&["validate", "bad.asl.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", crate::util::text(&out));
}

#[test]
fn a_jsonata_value_of_the_wrong_type_is_a_query_evaluation_error() {
    let sfn = Sfn::new();
    for (state, input) in [
        (
            json!({"Type": "Map", "Items": "{% $states.input.notAList %}",
                   "ItemProcessor": {"StartAt": "E", "States": {"E": {"Type": "Pass", "End": true}}},
                   "End": true}),
            json!({"notAList": {"a": 1}}),
        ),
        (
            json!({"Type": "Wait", "Seconds": "{% $states.input.s %}", "End": true}),
            json!({"s": "soon"}),
        ),
        (
            json!({"Type": "Wait", "Timestamp": "{% $states.input.t %}", "End": true}),
            json!({"t": "2026-01-01 00:00:00Z"}),
        ),
    ] {
        let def = json!({"QueryLanguage": "JSONata", "StartAt": "S", "States": {"S": state}});
        let (code, out) = sfn.run(&def, &input, &[]);
        assert_eq!(code, 1, "{out:#}");
        assert_eq!(
            out["error"], "States.QueryEvaluationError",
            "{state}: {out:#}"
        );
    }
    // a JSONPath Wait with a space instead of `T` is refused as AWS refuses it
    let def = json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "TimestampPath": "$.t", "End": true}}});
    let (_, out) = sfn.run(&def, &json!({"t": "2026-01-01 00:00:00Z"}), &[]);
    assert_eq!(out["error"], "States.Runtime", "{out:#}");
    let (code, out) = sfn.run(&def, &json!({"t": "2020-01-01T00:00:00Z"}), &[]);
    assert_eq!(
        code, 0,
        "a past timestamp with `T` waits for nothing: {out:#}"
    );
}

#[test]
fn the_context_object_is_shaped_as_on_aws() {
    let sfn = Sfn::new();
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass",
        "Parameters": {"redrives.$": "$$.Execution.RedriveCount", "state.$": "$$.State"}, "End": true}}});
    let (code, out) = sfn.run(&def, &json!({}), &[]);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(out["output"]["redrives"], 0);
    let state = out["output"]["state"].as_object().unwrap();
    assert_eq!(state["Name"], "P");
    assert!(
        !state.contains_key("RetryCount"),
        "RetryCount is a Task state's only: {state:?}"
    );
}

#[test]
fn item_reader_csv_and_limits_behave_as_on_aws() {
    let sfn = Sfn::new();
    // uneven rows: extra fields dropped, missing ones ""
    std::fs::create_dir_all(sfn.path().join("s3/bucket")).unwrap();
    std::fs::write(
        sfn.path().join("s3/bucket/rows.csv"),
        "a,b\n1,2,3\n4\n5,6\n",
    )
    .unwrap();
    sfn.file("bindings.json", &json!({"s3Root": "s3"}));
    let def = |config: serde_json::Value| {
        json!({"StartAt": "M", "States": {"M": {"Type": "Map",
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": config,
                           "Parameters": {"Bucket": "bucket", "Key": "rows.csv"}},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "E", "States": {"E": {"Type": "Pass", "End": true}}},
            "End": true}}})
    };
    let run = |config: serde_json::Value, input: serde_json::Value| {
        let (code, out) = sfn.run(&def(config), &input, &["--bindings", "bindings.json"]);
        assert_eq!(code, 0, "{out:#}");
        out["output"].clone()
    };
    let all = run(
        json!({"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}),
        json!({}),
    );
    assert_eq!(
        all,
        json!([{"a": "1", "b": "2"}, {"a": "4", "b": ""}, {"a": "5", "b": "6"}])
    );
    // MaxItems 0 is no limit; MaxItemsPath reads the limit from the input
    let zero = run(
        json!({"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "MaxItems": 0}),
        json!({}),
    );
    assert_eq!(zero.as_array().unwrap().len(), 3);
    let two = run(
        json!({"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "MaxItemsPath": "$.limit"}),
        json!({"limit": 2}),
    );
    assert_eq!(two.as_array().unwrap().len(), 2);

    // JSONata: the request is `Arguments`, its expressions evaluated, and `MaxItems` may be
    // an expression too (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html)
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "M", "States": {"M": {"Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW",
                             "MaxItems": "{% $states.input.limit %}"},
            "Arguments": {"Bucket": "{% $states.input.bucket %}",
                          "Key": "{% $states.input.dir & '/rows.csv' %}"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "E", "States": {"E": {"Type": "Pass", "End": true}}},
        "End": true}}});
    std::fs::create_dir_all(sfn.path().join("s3/bucket/in")).unwrap();
    std::fs::write(
        sfn.path().join("s3/bucket/in/rows.csv"),
        "a,b\n1,2\n3,4\n5,6\n",
    )
    .unwrap();
    let (code, out) = sfn.run(
        &def,
        &json!({"bucket": "bucket", "dir": "in", "limit": 2}),
        &["--bindings", "bindings.json"],
    );
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(
        out["output"],
        json!([{"a": "1", "b": "2"}, {"a": "3", "b": "4"}])
    );
}

#[test]
fn aws_jsonata_functions() {
    let sfn = Sfn::new();
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass",
        "Output": {
            "parts": "{% $partition([1,2,3,4,5], 2) %}",
            "range": "{% $range(0, 10, 5) %}",
            "down": "{% $range(3, 1, -1) %}",
            "hash": "{% $hash('abc', 'SHA-256') %}",
            "md5": "{% $hash('abc', 'MD5') %}",
            "seeded": "{% $random(42) = $random(42) %}",
            "unit": "{% $random() >= 0 and $random() < 1 %}",
            "uuid": "{% $length($uuid()) %}",
            "parsed": "{% $parse('{\"a\": [1, null]}') %}"
        }, "End": true}}});
    let (code, out) = sfn.run(&def, &json!({}), &[]);
    assert_eq!(code, 0, "{out:#}");
    let o = &out["output"];
    assert_eq!(o["parts"], json!([[1, 2], [3, 4], [5]]));
    assert_eq!(o["range"], json!([0, 5, 10]));
    assert_eq!(o["down"], json!([3, 2, 1]));
    assert_eq!(
        o["hash"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(o["md5"], "900150983cd24fb0d6963f7d28e17f72");
    assert_eq!(o["seeded"], true);
    assert_eq!(o["unit"], true);
    assert_eq!(o["uuid"], 36);
    assert_eq!(o["parsed"], json!({"a": [1, null]}));
    // argument errors are query evaluation errors
    for bad in [
        "{% $hash('abc', 'SHA-3') %}",
        "{% $partition([1], 0) %}",
        "{% $parse('{') %}",
    ] {
        let def = json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "Output": bad, "End": true}}});
        let (_, out) = sfn.run(&def, &json!({}), &[]);
        assert_eq!(
            out["error"], "States.QueryEvaluationError",
            "{bad}: {out:#}"
        );
    }
}

#[test]
fn jsonata_expressions_in_numeric_fields() {
    let sfn = Sfn::new();
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "M", "States": {"M": {"Type": "Map",
        "Items": "{% $states.input.items %}",
        "MaxConcurrency": "{% $states.input.limit %}",
        "ToleratedFailureCount": "{% $states.input.tolerated %}",
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "C", "States": {"C": {"Type": "Choice",
                "Choices": [{"Condition": "{% $states.input > 2 %}", "Next": "Bad"}], "Default": "Ok"},
                "Bad": {"Type": "Fail", "Error": "TooBig"}, "Ok": {"Type": "Succeed"}}},
        "End": true}}});
    sfn.file("def.asl.json", &def);
    let ok = sfn.skein(&["validate", "def.asl.json"]);
    assert_eq!(ok.status.code(), Some(0), "{}", crate::util::text(&ok));
    // one item fails: tolerated when the expression says 1, not when it says 0
    let (code, out) = sfn.run(
        &def,
        &json!({"items": [1, 2, 3], "limit": 2, "tolerated": 1}),
        &[],
    );
    assert_eq!(code, 0, "{out:#}");
    let (_, out) = sfn.run(
        &def,
        &json!({"items": [1, 2, 3], "limit": 2, "tolerated": 0}),
        &[],
    );
    assert_eq!(
        out["error"], "States.ExceedToleratedFailureThreshold",
        "{out:#}"
    );
    // a value of the wrong kind is a query evaluation error
    let (_, out) = sfn.run(
        &def,
        &json!({"items": [1], "limit": "two", "tolerated": 0}),
        &[],
    );
    assert_eq!(out["error"], "States.QueryEvaluationError", "{out:#}");
    // a JSONPath state still refuses an expression there
    let jsonpath = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": "{% 2 %}",
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}});
    sfn.file("jp.asl.json", &jsonpath);
    let out = sfn.skein(&["validate", "jp.asl.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", crate::util::text(&out));
}

#[test]
fn an_expression_with_blanks_around_its_braces_is_a_plain_string() {
    let sfn = Sfn::new();
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass",
        "Output": {"plain": " {% 1 + 1 %} ", "evaluated": "{% 1 + 1 %}"}, "End": true}}});
    let (code, out) = sfn.run(&def, &json!({}), &[]);
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(
        out["output"],
        json!({"plain": " {% 1 + 1 %} ", "evaluated": 2})
    );
}

/// A Map named `M` over `$.items` whose `field` (a numeric `…Path`) reads `$.c`.
fn map_with(field: &str, distributed: bool) -> serde_json::Value {
    let mut processor = json!({"StartAt": "E", "States": {"E": {"Type": "Pass", "End": true}}});
    if distributed {
        processor["ProcessorConfig"] = json!({"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"});
    }
    json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items",
        field: "$.c", "ItemProcessor": processor, "End": true}}})
}

/// Cluster 11: the engine's own runtime errors carry AWS's causes, word for word. Each
/// expected cause is the one AWS returns (recorded in `DescribeExecution` of real
/// executions), through the `skein states run` contract.
#[test]
fn runtime_errors_are_worded_as_aws_words_them() {
    let sfn = Sfn::new();
    let prefix = |state: &str, id: u32| {
        format!(
            "An error occurred while executing the state '{state}' (entered at the event id #{id}). "
        )
    };
    let cases: Vec<(&str, serde_json::Value, serde_json::Value, String)> = vec![
        (
            "a Parameters field whose path selects nothing",
            json!({"StartAt": "First", "States": {
                "First": {"Type": "Pass", "Next": "Check Address"},
                "Check Address": {"Type": "Pass",
                    "Parameters": {"address.$": "$.application.address"}, "End": true}}}),
            json!({"flagged": false}),
            prefix("Check Address", 4)
                + "The JSONPath '$.application.address' specified for the field 'address.$' \
                   could not be found in the input '{\"flagged\":false}'",
        ),
        (
            "an intrinsic's path argument that selects nothing (States.Runtime, not IntrinsicFailure)",
            json!({"StartAt": "Pick", "States": {"Pick": {"Type": "Pass",
                "Parameters": {"v.$": "States.Format('{}', $.nope)"}, "End": true}}}),
            json!({"other": 1}),
            prefix("Pick", 2)
                + "The function 'States.Format('{}', $.nope)' had the following error: The \
                   JsonPath argument for the field '$.nope' could not be found in the input \
                   '{\"other\":1}'",
        ),
        (
            "a nested intrinsic names the whole expression",
            json!({"StartAt": "Pick", "States": {"Pick": {"Type": "Pass",
                "Parameters": {"v.$": "States.Format('{}', States.Format('{}', $.nope))"},
                "End": true}}}),
            json!({"other": 1}),
            prefix("Pick", 2)
                + "The function 'States.Format('{}', States.Format('{}', $.nope))' had the \
                   following error: The JsonPath argument for the field '$.nope' could not be \
                   found in the input '{\"other\":1}'",
        ),
        (
            "a Choice rule's Variable that selects nothing",
            json!({"StartAt": "AllDone", "States": {
                "AllDone": {"Type": "Choice", "Default": "Y", "Choices": [
                    {"Variable": "$.jobs[0].done", "BooleanEquals": true, "Next": "Y"}]},
                "Y": {"Type": "Pass", "End": true}}}),
            json!({"jobs": [{"input": "First job"}]}),
            prefix("AllDone", 2)
                + "Invalid path '$.jobs[0].done': The choice state's condition path references \
                   an invalid value.",
        ),
        (
            "an InputPath whose last step is missing",
            json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.a.b",
                "End": true}}}),
            json!({"a": {}}),
            prefix("P", 2) + "Invalid path '$.a.b' : No results for path: $['a']['b']",
        ),
        (
            "an OutputPath through a missing property",
            json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "OutputPath": "$.x.y[0]",
                "End": true}}}),
            json!({"a": 1}),
            prefix("P", 2) + "Invalid path '$.x.y[0]' : Missing property in path $['x']",
        ),
        (
            "a SecondsPath that is not a whole number",
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s",
                "End": true}}}),
            json!({"s": 1.5}),
            prefix("W", 2)
                + "The SecondsPath parameter cannot be parsed as a long value: $.s == 1.5",
        ),
        (
            "a SecondsPath that is a string",
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s",
                "End": true}}}),
            json!({"s": "ten"}),
            prefix("W", 2)
                + "The SecondsPath parameter cannot be parsed as a long value: $.s == ten",
        ),
        (
            "a negative SecondsPath",
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s",
                "End": true}}}),
            json!({"s": -1}),
            prefix("W", 2) + "The SecondsPath parameter references a negative value: $.s == -1",
        ),
        (
            "a SecondsPath that selects nothing",
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s",
                "End": true}}}),
            json!({}),
            prefix("W", 2) + "The SecondsPath parameter does not reference an input value: $.s",
        ),
        (
            "a MaxConcurrencyPath that is not a number",
            map_with("MaxConcurrencyPath", false),
            json!({"items": [1], "c": "x"}),
            prefix("M", 2)
                + "The MaxConcurrencyPath field refers to value \"x\" which is not a valid \
                   integer: $.c",
        ),
        (
            "a negative MaxConcurrencyPath",
            map_with("MaxConcurrencyPath", false),
            json!({"items": [1], "c": -1}),
            prefix("M", 2) + "Expected non-negative integer for MaxConcurrency, got '-1' instead.",
        ),
        (
            "a negative ToleratedFailureCountPath",
            map_with("ToleratedFailureCountPath", true),
            json!({"items": [1], "c": -2}),
            prefix("M", 2) + "ToleratedFailureCount cannot be negative.",
        ),
        (
            "a ToleratedFailureCountPath of 1.5",
            map_with("ToleratedFailureCountPath", true),
            json!({"items": [1], "c": 1.5}),
            prefix("M", 2)
                + "The ToleratedFailureCountPath field refers to value \"1.5\" which is not a \
                   valid integer: $.c",
        ),
        (
            "a ToleratedFailurePercentagePath over 100",
            map_with("ToleratedFailurePercentagePath", true),
            json!({"items": [1], "c": 101}),
            prefix("M", 2) + "ToleratedFailurePercentage must be between 0 and 100.",
        ),
        (
            "a ToleratedFailurePercentagePath that is an object",
            map_with("ToleratedFailurePercentagePath", true),
            json!({"items": [1], "c": {"a": 1}}),
            prefix("M", 2)
                + "The ToleratedFailurePercentagePath field refers to value \"{\"a\":1}\" \
                   which is not a valid float: $.c",
        ),
        (
            "an iteration's error keeps its own state's prefix, not the Map's",
            json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items",
                "ItemProcessor": {"StartAt": "Inner", "States": {"Inner": {"Type": "Pass",
                    "InputPath": "$.missing", "End": true}}},
                "End": true}}}),
            json!({"items": [{"a": 1}]}),
            // ExecutionStarted, MapStateEntered, MapStateStarted, MapIterationStarted, then
            // the iteration's PassStateEntered: event #5, as AWS numbers an inline Map's.
            prefix("Inner", 5) + "Invalid path '$.missing' : No results for path: $['missing']",
        ),
    ];
    // A string holding a whole number is a number to AWS.
    let (code, out) = sfn.run(
        &map_with("MaxConcurrencyPath", false),
        &json!({"items": [1, 2], "c": "1"}),
        &[],
    );
    assert_eq!((code, &out["output"]), (0, &json!([1, 2])), "{out:#}");
    for (what, def, input, cause) in &cases {
        let (code, out) = sfn.run(def, input, &[]);
        assert_eq!(code, 1, "{what}: {out:#}");
        assert_eq!(out["error"], "States.Runtime", "{what}: {out:#}");
        assert_eq!(out["cause"].as_str(), Some(cause.as_str()), "{what}");
    }
    // A task's own error is not the engine's: its cause is left as the task gave it.
    sfn.file(
        "mock.json",
        &json!({"StateMachines": {"m": {"TestCases": {"t": {"Call": "Boom"}}}},
                "MockedResponses": {"Boom": {"0": {"Throw": {"Error": "Custom.Error", "Cause": "its own words"}}}}}),
    );
    let def = json!({"StartAt": "Call", "States": {"Call": {"Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "f"},
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
    assert_eq!(
        (out["error"].as_str(), out["cause"].as_str()),
        (Some("Custom.Error"), Some("its own words"))
    );
}

/// Cluster 9: a Map Run's ARN as AWS shapes it (`mapRun:<machine>/<label>:<id>`), in the
/// output of a distributed Map with a `ResultWriter`.
#[test]
fn the_map_run_arn_is_shaped_as_on_aws() {
    let sfn = Sfn::new();
    std::fs::create_dir_all(sfn.path().join("s3/out")).unwrap();
    sfn.file("bindings.json", &json!({"s3Root": "s3"}));
    let def = json!({"StartAt": "Fan Out", "States": {"Fan Out": {"Type": "Map",
        "ItemsPath": "$.items",
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "E", "States": {"E": {"Type": "Pass", "End": true}}},
        "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                         "Parameters": {"Bucket": "out", "Prefix": "results"}},
        "End": true}}});
    let (code, out) = sfn.run(
        &def,
        &json!({"items": [1, 2]}),
        &["--bindings", "bindings.json"],
    );
    assert_eq!(code, 0, "{out:#}");
    let arn = out["output"]["MapRunArn"].as_str().unwrap().to_string();
    let execution = out["executionArn"].as_str().unwrap();
    let (head, id) = execution.rsplit_once(':').unwrap();
    let (region_account, machine) = head.split_once(":execution:").unwrap();
    assert_eq!(
        arn,
        format!("{region_account}:mapRun:{machine}/Fan_Out:{id}"),
        "{out:#}"
    );
}
