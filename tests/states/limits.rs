//! No input reaches a panic: AWS's documented bounds on numbers (checked by `validate`,
//! and at run time for values read from paths or JSONata), the execution input quota,
//! and how deeply JSONata and JSONPath may nest. Every case goes through the `skein`
//! binary, which must never exit 101.

use serde_json::{Value, json};
use skein_states::definition::Retrier;
use skein_states::engine::retry_delay;
use skein_states::limits;

use super::engine::{Sfn, failed, last_json, succeeded};
use crate::util::text;

/// A definition of one state `S` (with `extra` fields merged in), ending the machine.
fn one(state: Value) -> Value {
    json!({"StartAt": "S", "States": {"S": state}})
}

/// `skein states validate --json` of `def`: exit code and every (pointer, message).
fn validate(sfn: &Sfn, def: &Value) -> (i32, Vec<(String, String)>) {
    sfn.file("def.json", def);
    let out = sfn.skein(&["validate", "def.json", "--json"]);
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(code, 101, "validate panicked: {}", text(&out));
    let report = last_json(&out);
    let errors = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["pointer"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (code, errors)
}

/// A Parallel state whose only branch fails with `E`, retried by `retrier`.
fn failing_parallel(retrier: Value) -> Value {
    one(json!({"Type": "Parallel",
        "Branches": [{"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E", "Cause": "always"}}}],
        "Retry": [retrier], "End": true}))
}

// Each documented bound is checked by `validate` (exit 2, the field's JSON pointer, the
// bound in the message); the values just inside it are accepted. Bounds: state-wait.html,
// concepts-error-handling.html, state-task.html, state-map-distributed.html and
// maprun-fail-threshold.html of https://docs.aws.amazon.com/step-functions/latest/dg/.
#[test]
fn numbers_outside_the_documented_bounds_are_definition_errors() {
    let sfn = Sfn::new();
    let wait = |seconds: Value| one(json!({"Type": "Wait", "Seconds": seconds, "End": true}));
    let retry = |fields: Value| {
        let mut r = json!({"ErrorEquals": ["E"]});
        r.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        failing_parallel(r)
    };
    let task = |fields: Value| {
        let mut t = json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:0:function:f", "End": true});
        t.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        one(t)
    };
    let map = |fields: Value| {
        let mut m = json!({"Type": "Map", "End": true, "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "I", "States": {"I": {"Type": "Succeed"}}}});
        m.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        one(m)
    };
    // (definition, pointer at fault or None when valid, text the message must hold)
    let cases: Vec<(Value, Option<&str>, &str)> = vec![
        (
            wait(json!(1e15)),
            Some("/States/S/Seconds"),
            "0 to 99999999",
        ),
        (
            wait(json!(1e300)),
            Some("/States/S/Seconds"),
            "0 to 99999999",
        ),
        (
            wait(json!(100_000_000)),
            Some("/States/S/Seconds"),
            "0 to 99999999",
        ),
        (wait(json!(-1)), Some("/States/S/Seconds"), "0 to 99999999"),
        (wait(json!(1.5)), Some("/States/S/Seconds"), "integer"),
        (wait(json!("10")), Some("/States/S/Seconds"), "integer"),
        (wait(json!(99_999_999)), None, ""),
        (
            one(json!({"Type": "Wait", "Timestamp": "not a time", "End": true})),
            Some("/States/S/Timestamp"),
            "RFC 3339",
        ),
        (
            retry(json!({"BackoffRate": 0.5})),
            Some("/States/S/Retry/0/BackoffRate"),
            "at least 1.0",
        ),
        (retry(json!({"BackoffRate": 1e308})), None, ""),
        (
            retry(json!({"IntervalSeconds": 0})),
            Some("/States/S/Retry/0/IntervalSeconds"),
            "1 to 99999999",
        ),
        (
            retry(json!({"IntervalSeconds": 1e15})),
            Some("/States/S/Retry/0/IntervalSeconds"),
            "1 to 99999999",
        ),
        (
            retry(json!({"MaxAttempts": 100_000_000})),
            Some("/States/S/Retry/0/MaxAttempts"),
            "0 to 99999999",
        ),
        (retry(json!({"MaxAttempts": 0})), None, ""),
        (
            retry(json!({"MaxDelaySeconds": 31_622_401})),
            Some("/States/S/Retry/0/MaxDelaySeconds"),
            "1 to 31622400",
        ),
        (
            retry(json!({"MaxDelaySeconds": 0})),
            Some("/States/S/Retry/0/MaxDelaySeconds"),
            "1 to 31622400",
        ),
        (
            retry(json!({"MaxDelaySeconds": 31_622_400, "JitterStrategy": "FULL"})),
            None,
            "",
        ),
        (
            retry(json!({"JitterStrategy": "HALF"})),
            Some("/States/S/Retry/0/JitterStrategy"),
            "FULL or NONE",
        ),
        (
            task(json!({"TimeoutSeconds": 0})),
            Some("/States/S/TimeoutSeconds"),
            "1 to 99999999",
        ),
        (
            task(json!({"TimeoutSeconds": 1e15})),
            Some("/States/S/TimeoutSeconds"),
            "1 to 99999999",
        ),
        (
            task(json!({"HeartbeatSeconds": 100_000_000})),
            Some("/States/S/HeartbeatSeconds"),
            "1 to 99999999",
        ),
        (
            task(json!({"TimeoutSeconds": 10, "HeartbeatSeconds": 10})),
            Some("/States/S/HeartbeatSeconds"),
            "less than `TimeoutSeconds`",
        ),
        (
            task(json!({"TimeoutSeconds": 99_999_999, "HeartbeatSeconds": 60})),
            None,
            "",
        ),
        (
            map(json!({"MaxConcurrency": 10_001})),
            Some("/States/S/MaxConcurrency"),
            "0 to 10000",
        ),
        (map(json!({"MaxConcurrency": 10_000})), None, ""),
        (
            map(json!({"ToleratedFailurePercentage": 100.5})),
            Some("/States/S/ToleratedFailurePercentage"),
            "0 to 100",
        ),
        (
            map(json!({"ToleratedFailureCount": -1})),
            Some("/States/S/ToleratedFailureCount"),
            "non-negative integer",
        ),
        (
            json!({"StartAt": "S", "TimeoutSeconds": 1e15, "States": {"S": {"Type": "Succeed"}}}),
            Some("/TimeoutSeconds"),
            "1 to 99999999",
        ),
    ];
    for (def, pointer, needle) in cases {
        let (code, errors) = validate(&sfn, &def);
        match pointer {
            None => assert_eq!((code, &errors), (0, &vec![]), "{def}"),
            Some(pointer) => {
                assert_eq!(code, 2, "{def}: {errors:?}");
                assert!(
                    errors
                        .iter()
                        .any(|(p, m)| p == pointer && m.contains(needle)),
                    "{def}: expected `{needle}` at {pointer}, got {errors:?}"
                );
            }
        }
    }
}

// The reported crash: `run` of a Wait with `Seconds: 1e15` panicked (a clock overflow).
// Out-of-bound literals are refused before anything runs.
#[test]
fn run_refuses_out_of_bound_literals_before_starting() {
    let sfn = Sfn::new();
    for seconds in [json!(1e15), json!(1e300)] {
        let def = one(json!({"Type": "Wait", "Seconds": seconds, "End": true}));
        sfn.file("def.json", &def);
        let out = sfn.skein(&["run", "def.json"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("/States/S/Seconds"),
            "{}",
            text(&out)
        );
    }
}

// Values read at run time (SecondsPath, TimestampPath, TimeoutSecondsPath,
// MaxConcurrencyPath, ToleratedFailure*Path) out of their bounds fail the execution with
// `States.Runtime`, naming the state and the path (a JSONata `Seconds` with
// `States.QueryEvaluationError`).
#[test]
fn out_of_bound_values_from_paths_are_runtime_errors() {
    let sfn = Sfn::new();
    let wait_path = one(json!({"Type": "Wait", "SecondsPath": "$.s", "End": true}));
    for s in [
        json!(1e15),
        json!(1e300),
        json!(-1),
        json!(2.5),
        json!(100_000_000),
    ] {
        let (error, cause) = failed(&sfn, wait_path.clone(), json!({"s": s}));
        assert_eq!(error, "States.Runtime", "{s}: {cause}");
        assert!(
            cause.contains("state 'S'") && cause.contains("$.s"),
            "{cause}"
        );
    }
    let wait_ts = one(json!({"Type": "Wait", "TimestampPath": "$.t", "End": true}));
    for t in [json!("+275760-09-13T00:00:00Z"), json!(1e300)] {
        let (error, cause) = failed(&sfn, wait_ts.clone(), json!({"t": t}));
        assert_eq!(error, "States.Runtime", "{t}: {cause}");
    }
    let jsonata = json!({"QueryLanguage": "JSONata", "StartAt": "S", "States": {
        "S": {"Type": "Wait", "Seconds": "{% $states.input.s %}", "End": true}}});
    for s in [json!(1e15), json!(1e300), json!(-3)] {
        let (error, cause) = failed(&sfn, jsonata.clone(), json!({"s": s}));
        // a JSONata value out of range is a query evaluation error on AWS (issue 21)
        assert_eq!(error, "States.QueryEvaluationError", "{s}: {cause}");
        assert!(cause.contains("`Seconds`"), "{cause}");
    }
    let task = one(
        json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:0:function:f",
        "TimeoutSecondsPath": "$.t", "End": true}),
    );
    for t in [json!(1e15), json!(0), json!("60")] {
        let (error, cause) = failed(&sfn, task.clone(), json!({"t": t}));
        assert_eq!(error, "States.Runtime", "{t}: {cause}");
        assert!(cause.contains("$.t"), "{cause}");
    }
    let map = |fields: Value| {
        let mut m = json!({"Type": "Map", "ItemsPath": "$.items", "End": true, "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "I", "States": {"I": {"Type": "Succeed"}}}});
        m.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        one(m)
    };
    for (fields, input) in [
        (
            json!({"MaxConcurrencyPath": "$.c"}),
            json!({"items": [1], "c": 1e300}),
        ),
        (
            json!({"MaxConcurrencyPath": "$.c"}),
            json!({"items": [1], "c": -1}),
        ),
        (
            json!({"ToleratedFailurePercentagePath": "$.p"}),
            json!({"items": [1], "p": 1e15}),
        ),
        (
            json!({"ToleratedFailureCountPath": "$.n"}),
            json!({"items": [1], "n": 0.5}),
        ),
    ] {
        let (error, cause) = failed(&sfn, map(fields.clone()), input);
        assert_eq!(error, "States.Runtime", "{fields}: {cause}");
    }
    // just inside: 0 seconds, concurrency 10,000
    succeeded(&sfn, wait_path, json!({"s": 0}));
    succeeded(
        &sfn,
        map(json!({"MaxConcurrencyPath": "$.c"})),
        json!({"items": [1, 2], "c": 10_000}),
    );
}

// The reported crash: `BackoffRate: 1e308` passed `validate` (AWS documents no maximum)
// and overflowed the clock on the second retry. A computed delay is capped at
// MaxDelaySeconds' bound (31,622,400 s); the run retries and ends with the error.
#[test]
fn a_huge_backoff_rate_is_capped_not_a_crash() {
    let retrier = |rate: f64, max_delay: Option<f64>, jitter: bool| Retrier {
        error_equals: vec!["E".into()],
        interval_seconds: 1.0,
        max_attempts: 10,
        backoff_rate: rate,
        max_delay_seconds: max_delay,
        jitter_full: jitter,
    };
    let cap = limits::MAX_DELAY_SECONDS as f64;
    for (r, attempt, want) in [
        (retrier(2.0, None, false), 0, 1.0),
        (retrier(2.0, None, false), 3, 8.0),
        (retrier(1e308, None, false), 1, cap),
        (retrier(1e308, None, false), 9, cap),
        (retrier(1e308, Some(5.0), false), 2, 5.0),
        (retrier(2.0, None, false), u32::MAX, cap),
    ] {
        assert_eq!(retry_delay(&r, attempt), want, "{r:?} attempt {attempt}");
    }
    let jittered = retry_delay(&retrier(1e308, None, true), 4);
    assert!((0.0..=cap).contains(&jittered), "{jittered}");

    // through the binary: time scale 1e-8 makes the capped delay 0.3 s
    let sfn = Sfn::new();
    let def =
        failing_parallel(json!({"ErrorEquals": ["E"], "BackoffRate": 1e308, "MaxAttempts": 2}));
    sfn.file("def.json", &def);
    let out = sfn
        .command(&["run", "def.json"])
        .env("SKEIN_STATES_TIME_SCALE", "0.00000001")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(last_json(&out)["error"], "E", "{}", text(&out));
}

// "Maximum input or output size for a task, state, or execution: 256 KiB of data as a
// UTF-8 encoded string" (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html):
// a larger execution input is refused before anything starts (exit 2, nothing in the
// store), from a file or from stdin; one of exactly 262,144 bytes runs.
#[test]
fn an_execution_input_over_256_kib_is_refused_before_anything_starts() {
    let sfn = Sfn::new();
    let def = one(json!({"Type": "Pass", "End": true}));
    sfn.file("def.json", &def);
    let input_of = |bytes: usize| {
        // {"x":"…"} is 8 bytes around the string
        format!(
            "{{\"x\":\"{}\"}}",
            "é".repeat((bytes - 8) / 2) + &"a".repeat((bytes - 8) % 2)
        )
    };
    let big = input_of(3 * 1024 * 1024);
    std::fs::write(sfn.path().join("big.json"), &big).unwrap();
    let out = sfn.skein(&["run", "def.json", "--input", "big.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in ["big.json", "3145728 bytes", "262144", "service-quotas"] {
        assert!(stderr.contains(want), "`{want}` in {stderr}");
    }
    let mut child = sfn
        .command(&["run", "def.json", "--input", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        // the reader stops at the quota; the rest of the input may find the pipe closed
        let _ = child.stdin.take().unwrap().write_all(big.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("262144"));
    let list = sfn.skein(&["list", "--json"]);
    assert_eq!(last_json(&list)["executions"], json!([]), "nothing started");

    let exact = input_of(limits::MAX_PAYLOAD_BYTES);
    assert_eq!(exact.len(), limits::MAX_PAYLOAD_BYTES);
    std::fs::write(sfn.path().join("exact.json"), &exact).unwrap();
    let out = sfn.skein(&["run", "def.json", "--input", "exact.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let over = input_of(limits::MAX_PAYLOAD_BYTES + 1);
    std::fs::write(sfn.path().join("over.json"), &over).unwrap();
    let out = sfn.skein(&["run", "def.json", "--input", "over.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

// The reported crash: a JSONata expression nested ~3,000 levels deep overflowed the stack
// in `validate` and `run`. Deep nesting (brackets, operator chains) is a definition error
// naming the state and field; deep recursion at run time is a JSONata error.
#[test]
fn deeply_nested_jsonata_is_an_error_naming_the_state_and_field() {
    let sfn = Sfn::new();
    let deep = [
        format!("{}1{}", "(".repeat(3000), ")".repeat(3000)),
        format!("{}1{}", "[".repeat(3000), "]".repeat(3000)),
        format!("1{}", "+1".repeat(5000)),
        format!("{}1", "-".repeat(5000)),
        format!("$states.input{}", ".a".repeat(5000)),
    ];
    for expr in &deep {
        let def = json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {
            "P": {"Type": "Pass", "Output": {"v": format!("{{% {expr} %}}")}, "End": true}}});
        let (code, errors) = validate(&sfn, &def);
        assert_eq!(code, 2, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|(p, m)| p == "/States/P/Output" && m.contains("nests")),
            "{errors:?}"
        );
        let out = sfn.skein(&["run", "def.json"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    }
    // ordinary nesting is fine
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {
        "P": {"Type": "Pass", "Output": "{% {'a': [(1 + 2) * (3 - (1))]} %}", "End": true}}});
    assert_eq!(succeeded(&sfn, def, json!({})), json!({"a": [6]}));
    // unbounded recursion (not a tail call): a JSONata error, not a stack overflow
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {
        "P": {"Type": "Pass", "Output": "{% ($f := function($n){ 1 + $f($n + 1) }; $f(0)) %}", "End": true}}});
    let (error, cause) = failed(&sfn, def, json!({}));
    assert_eq!(error, "States.QueryEvaluationError", "{cause}");
}

// JSONPath filters: `!` chains and `&&`/`||` chains are bounded like parentheses.
#[test]
fn deeply_nested_jsonpath_filters_are_errors() {
    let sfn = Sfn::new();
    for filter in [
        format!("{}@.a", "!".repeat(20_000)),
        format!("@.a{}", " && @.a".repeat(20_000)),
        format!("{}@.a{}", "(".repeat(20_000), ")".repeat(20_000)),
    ] {
        let def =
            one(json!({"Type": "Pass", "InputPath": format!("$.x[?({filter})]"), "End": true}));
        let (code, errors) = validate(&sfn, &def);
        assert_eq!(code, 2, "{errors:?}");
        assert!(
            errors.iter().any(|(p, _)| p == "/States/S/InputPath"),
            "{errors:?}"
        );
    }
}

// Found by fuzzing (`%%l%l`): jsonata-rs leaves the parent operator `%` unimplemented and
// panicked inside `validate`. Its panics are errors naming the state and field, silent.
#[test]
fn jsonata_the_engine_does_not_support_is_an_error_not_a_panic() {
    let sfn = Sfn::new();
    for expr in ["%%l%l", "$states.input.a.%.b", "%"] {
        let def = json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {
            "P": {"Type": "Pass", "Output": format!("{{% {expr} %}}"), "End": true}}});
        sfn.file("def.json", &def);
        let out = sfn.skein(&["validate", "def.json", "--json"]);
        assert_eq!(out.status.code(), Some(2), "{expr}: {}", text(&out));
        assert!(!text(&out).contains("panicked"), "{expr}: {}", text(&out));
        let errors = last_json(&out)["errors"].clone();
        assert_eq!(errors[0]["pointer"], "/States/P/Output", "{errors:#}");
        let message = errors[0]["message"].as_str().unwrap();
        assert!(message.contains("does not support"), "{message}");
        let out = sfn.skein(&["run", "def.json"]);
        assert_eq!(out.status.code(), Some(2), "{expr}: {}", text(&out));
        assert!(!text(&out).contains("panicked"), "{expr}: {}", text(&out));
    }
}

// Found by fuzzing: a tail-recursive JSONata function without a base case runs as a loop
// (jsonata-rs turns tail calls into loops) and grew its arena by gigabytes before the time
// limit (the fuzzer's 3 GiB limit hit). The arena is capped: the state fails with
// `States.QueryEvaluationError`, quickly and without a panic.
#[test]
fn a_jsonata_loop_without_end_fails_the_state_within_its_memory_cap() {
    let sfn = Sfn::new();
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {
        "P": {"Type": "Pass",
              "Output": "{% ($f := function($n){$f($n - 2) }; $f(1)) %}", "End": true}}});
    let (code, out) = sfn.run(&def, &json!({}), &[]);
    assert_eq!(code, 1, "{out:#}");
    assert_eq!(out["error"], "States.QueryEvaluationError", "{out:#}");
    let cause = out["cause"].as_str().unwrap();
    assert!(
        cause.contains("MiB") || cause.contains("timeout") || cause.contains("time"),
        "{cause}"
    );
    assert!(!cause.contains("panicked"), "{cause}");
}
