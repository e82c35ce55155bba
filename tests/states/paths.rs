//! JSONPath (`skein_states::path`) and intrinsic functions (`skein_states::intrinsics`).
//!
//! Intrinsic cases quote the examples of the AWS guide "Intrinsic functions for JSONPath
//! states in Step Functions", section by section, with their documented outputs.

use serde_json::{Value, json};
use skein_states::intrinsics::{self, IntrinsicError};
use skein_states::path::{self, PathError};

fn store() -> Value {
    json!({
        "a": {"b": 1, "c": [10, 20, 30, 40]},
        "a b": "spaced",
        "items": [
            {"x": 1, "name": "one", "ok": true, "b": "i0"},
            {"x": 2, "name": "two", "ok": false},
            {"x": 3, "name": "three", "ok": true, "tag": null},
        ],
        "b": "top",
    })
}

fn context() -> Value {
    json!({"Execution": {"Id": "arn:exec:1", "Input": {"k": "v"}}, "State": {"Name": "S"}})
}

/// Selects `path` in [`store`] (and `$$` in [`context`]) and expects `expected`.
fn check(path: &str, expected: Value) {
    let got = path::select(&store(), &context(), path);
    assert_eq!(got, Ok(expected), "path {path}");
}

#[test]
fn definite_paths_select_one_value() {
    check("$", store());
    check("$.a.b", json!(1));
    check("$['a b']", json!("spaced"));
    check("$[\"a\"].b", json!(1));
    check("$.a['c'][0]", json!(10));
    check("$.a.c[-1]", json!(40));
    check("$.items[1].name", json!("two"));
    check("$.items[2].tag", Value::Null);
    check("$$.Execution.Id", json!("arn:exec:1"));
    check("$$", context());
}

#[test]
fn wildcards_and_slices_select_arrays() {
    check("$.a.c[*]", json!([10, 20, 30, 40]));
    check("$.items[*].x", json!([1, 2, 3]));
    check("$.a.*", json!([1, [10, 20, 30, 40]]));
    check("$.a.c[1:3]", json!([20, 30]));
    check("$.a.c[:2]", json!([10, 20]));
    check("$.a.c[-2:]", json!([30, 40]));
    check("$.a.c[::2]", json!([10, 30]));
    check("$.a.c[::-1]", json!([40, 30, 20, 10]));
    check("$.a.c[5:9]", json!([]));
    check("$.items[*].missing", json!([]));
}

#[test]
fn recursive_descent_finds_every_match() {
    check("$..b", json!(["top", 1, "i0"]));
    check("$..x", json!([1, 2, 3]));
    check("$.a..[0]", json!([10]));
}

#[test]
fn filters_compare_and_test_existence() {
    check("$.items[?(@.x == 1)].name", json!(["one"]));
    check("$.items[?(@.x != 1)].name", json!(["two", "three"]));
    check("$.items[?(@.x < 2)].name", json!(["one"]));
    check("$.items[?(@.x <= 2)].name", json!(["one", "two"]));
    check("$.items[?(@.x > 2)].name", json!(["three"]));
    check("$.items[?(@.x >= 2)].name", json!(["two", "three"]));
    check("$.items[?(@.x == 2.0)].name", json!(["two"]));
    check("$.items[?(@.name == 'two')].x", json!([2]));
    check("$.items[?(@.name == \"three\")].x", json!([3]));
    check("$.items[?(@.name > 'p')].x", json!([2, 3]));
    check("$.items[?(@.ok == true)].x", json!([1, 3]));
    check("$.items[?(@.tag)].x", json!([3]));
    check("$.items[?(!@.tag)].x", json!([1, 2]));
    check("$.items[?(@.tag == null)].x", json!([3]));
    check("$.items[?(@.tag && @.x > 1)].x", json!([3]));
    check("$.items[?(@.ok && @.x > 1)].x", json!([2, 3]));
    check(
        "$.items[?(@.x == 1 || (@.x == 3 && @.ok))].x",
        json!([1, 3]),
    );
    check("$.items[?(@.x == $.a.b)].name", json!(["one"]));
    // A string never equals a number, and mismatched types do not order.
    check("$.items[?(@.x == '1')].x", json!([]));
    check("$.items[?(@.name < 5)].x", json!([]));
    check("$.a.c[?(@ > 25)]", json!([30, 40]));
}

#[test]
fn missing_definite_path_is_not_found() {
    for p in [
        "$.nope",
        "$.a.b.c",
        "$.a.c[4]",
        "$.a.c[-5]",
        "$.items.x",
        "$$.Execution.Nope",
    ] {
        let err = path::select(&store(), &context(), p).unwrap_err();
        assert_eq!(err, PathError::NotFound { path: p.to_owned() });
    }
    let err = path::select(&store(), &context(), "$.x.y").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the JSONPath `$.x.y` could not be found in the input"
    );
}

#[test]
fn bad_syntax_names_the_path() {
    for p in [
        "",
        "a.b",
        "$.",
        "$a",
        "$[",
        "$[0",
        "$['a",
        "$[?(@.x ==)]",
        "$[?(@.x == 1]",
        "@.x",
        "$.a[x]",
        "$.a[::0]",
        "$..",
    ] {
        match path::select(&store(), &context(), p) {
            Err(PathError::Syntax { path, message }) => {
                assert_eq!(path, p);
                assert!(!message.is_empty());
            }
            other => panic!("{p:?}: expected a syntax error, got {other:?}"),
        }
    }
    let err = path::select(&store(), &context(), "$.a[").unwrap_err();
    assert!(
        err.to_string().starts_with("invalid JSONPath `$.a[`: "),
        "{err}"
    );
}

#[test]
fn reference_paths() {
    for p in [
        "$",
        "$.a",
        "$.a.b",
        "$['a b'].c",
        "$[\"x\"]",
        "$.a[0]",
        "$.a[12].b",
    ] {
        assert!(path::is_reference_path(p), "{p} is a reference path");
    }
    for p in [
        "",
        "a",
        "$.a[*]",
        "$.a.*",
        "$..a",
        "$.a[-1]",
        "$.a[1:2]",
        "$.a[?(@.x)]",
        "$$.Execution",
        "$.",
    ] {
        assert!(!path::is_reference_path(p), "{p} is not a reference path");
    }
}

#[test]
fn set_follows_result_path_semantics() {
    let mut doc = json!({"a": 1});
    path::set(&mut doc, "$", json!([1])).unwrap();
    assert_eq!(doc, json!([1]));

    let mut doc = json!({"a": 1});
    path::set(&mut doc, "$.b.c.d", json!("x")).unwrap();
    assert_eq!(doc, json!({"a": 1, "b": {"c": {"d": "x"}}}));

    path::set(&mut doc, "$['b'].c", json!(2)).unwrap();
    assert_eq!(doc, json!({"a": 1, "b": {"c": 2}}));

    let mut doc = json!({"list": [{"v": 0}, {"v": 1}]});
    path::set(&mut doc, "$.list[1].v", json!(9)).unwrap();
    path::set(&mut doc, "$.list[0]", json!("first")).unwrap();
    assert_eq!(doc, json!({"list": ["first", {"v": 9}]}));
}

#[test]
fn set_errors_name_the_path() {
    let mut doc = json!({"a": "text", "list": [1]});
    let err = path::set(&mut doc, "$.a.b", json!(1)).unwrap_err();
    assert_eq!(
        err,
        PathError::NotAnObject {
            path: "$.a.b".to_owned()
        }
    );
    assert!(err.to_string().contains("`$.a.b`"), "{err}");
    assert!(matches!(
        path::set(&mut json!("scalar"), "$.a", json!(1)),
        Err(PathError::NotAnObject { .. })
    ));
    assert!(matches!(
        path::set(&mut doc, "$.a[0]", json!(1)),
        Err(PathError::NotAnObject { .. })
    ));
    assert_eq!(
        path::set(&mut doc, "$.list[3]", json!(1)),
        Err(PathError::NotFound {
            path: "$.list[3]".to_owned()
        })
    );
    assert_eq!(
        path::set(&mut doc, "$.new.list[0]", json!(1)),
        Err(PathError::NotFound {
            path: "$.new.list[0]".to_owned()
        })
    );
    for p in ["$.list[*]", "$..a", "$$.x", "$.list[-1]", "nope"] {
        assert!(
            matches!(
                path::set(&mut doc, p, json!(1)),
                Err(PathError::Syntax { .. })
            ),
            "{p}"
        );
    }
    assert_eq!(
        doc,
        json!({"a": "text", "list": [1]}),
        "failed sets leave the document alone"
    );
}

// ---------------------------------------------------------------------------------------
// Intrinsic functions

fn eval(expr: &str, input: Value) -> Result<Value, IntrinsicError> {
    intrinsics::eval(expr, &input, &context())
}

/// Evaluates `expr` against `input` and expects `expected`.
fn check_fn(expr: &str, input: Value, expected: Value) {
    assert_eq!(eval(expr, input), Ok(expected), "{expr}");
}

#[test]
fn is_intrinsic_spots_invocations() {
    assert!(intrinsics::is_intrinsic("States.Format('x')"));
    assert!(intrinsics::is_intrinsic("States.UUID()"));
    assert!(!intrinsics::is_intrinsic("$.States.Format"));
    assert!(!intrinsics::is_intrinsic("States.Format"));
    assert!(!intrinsics::is_intrinsic("hello (world)"));
}

#[test]
fn doc_examples_for_arrays() {
    // "Intrinsics for arrays" > States.Array
    check_fn("States.Array($.Id)", json!({"Id": 123456}), json!([123456]));
    check_fn("States.Array()", json!({}), json!([]));
    check_fn(
        "States.Array('a', 1, true, null, $.x)",
        json!({"x": {}}),
        json!(["a", 1, true, null, {}]),
    );

    let input = json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "lookingFor": 5, "index": 5});
    // States.ArrayPartition
    check_fn(
        "States.ArrayPartition($.inputArray,4)",
        input.clone(),
        json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]]),
    );
    // States.ArrayContains
    check_fn(
        "States.ArrayContains($.inputArray, $.lookingFor)",
        input.clone(),
        json!(true),
    );
    check_fn(
        "States.ArrayContains($.inputArray, 10)",
        input.clone(),
        json!(false),
    );
    // States.ArrayRange
    check_fn(
        "States.ArrayRange(1, 9, 2)",
        json!({}),
        json!([1, 3, 5, 7, 9]),
    );
    check_fn("States.ArrayRange(5, 1, -2)", json!({}), json!([5, 3, 1]));
    check_fn("States.ArrayRange(1, 0, 1)", json!({}), json!([]));
    // States.ArrayGetItem
    check_fn(
        "States.ArrayGetItem($.inputArray, $.index)",
        input.clone(),
        json!(6),
    );
    // States.ArrayLength
    check_fn("States.ArrayLength($.inputArray)", input, json!(9));
    // States.ArrayUnique
    check_fn(
        "States.ArrayUnique($.inputArray)",
        json!({"inputArray": [1, 2, 3, 3, 3, 3, 3, 3, 4]}),
        json!([1, 2, 3, 4]),
    );
}

#[test]
fn doc_examples_for_encoding_and_hashing() {
    // "Intrinsics for data encoding and decoding" > States.Base64Encode / States.Base64Decode
    check_fn(
        "States.Base64Encode($.input)",
        json!({"input": "Data to encode"}),
        json!("RGF0YSB0byBlbmNvZGU="),
    );
    check_fn(
        "States.Base64Decode($.base64)",
        json!({"base64": "RGF0YSB0byBlbmNvZGU="}),
        json!("Data to encode"),
    );
    // "Intrinsic for hash calculation" > States.Hash
    let input = json!({"Data": "input data", "Algorithm": "SHA-1"});
    check_fn(
        "States.Hash($.Data, $.Algorithm)",
        input,
        json!("aaff4a450a104cd177d28d18d74485e8cae074b7"),
    );
    // The other algorithms, checked against coreutils' md5sum / sha*sum of "abc".
    for (algorithm, hex) in [
        ("MD5", "900150983cd24fb0d6963f7d28e17f72"),
        (
            "SHA-256",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            "SHA-384",
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            "SHA-512",
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
    ] {
        check_fn(
            &format!("States.Hash('abc', '{algorithm}')"),
            json!({}),
            json!(hex),
        );
    }
}

#[test]
fn doc_examples_for_json_manipulation() {
    // "Intrinsics for JSON data manipulation" > States.JsonMerge
    let input = json!({
        "json1": {"a": {"a1": 1, "a2": 2}, "b": 2},
        "json2": {"a": {"a3": 1, "a4": 2}, "c": 3},
    });
    check_fn(
        "States.JsonMerge($.json1, $.json2, false)",
        input,
        json!({"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3}),
    );
    // States.StringToJson
    check_fn(
        "States.StringToJson($.escapedJsonString)",
        json!({"escapedJsonString": "{\"foo\": \"bar\"}"}),
        json!({"foo": "bar"}),
    );
    // States.JsonToString
    check_fn(
        "States.JsonToString($.unescapedJson)",
        json!({"unescapedJson": {"foo": "bar"}}),
        json!("{\"foo\":\"bar\"}"),
    );
}

#[test]
fn doc_examples_for_math() {
    // "Intrinsics for Math operations" > States.MathRandom: start inclusive, end exclusive
    let input = json!({"start": 1, "end": 999});
    for _ in 0..50 {
        let n = eval("States.MathRandom($.start, $.end)", input.clone()).unwrap();
        let n = n.as_i64().unwrap();
        assert!((1..999).contains(&n), "{n}");
    }
    check_fn("States.MathRandom(7, 8)", json!({}), json!(7));
    let seeded = |seed: i64| eval(&format!("States.MathRandom(1, 1000000, {seed})"), json!({}));
    assert_eq!(seeded(42), seeded(42), "a seed makes the number repeatable");
    // States.MathAdd
    check_fn(
        "States.MathAdd($.value1, $.step)",
        json!({"value1": 111, "step": -1}),
        json!(110),
    );
    // Non-integers are rounded to the nearest integer.
    check_fn("States.MathAdd(1.6, 2)", json!({}), json!(4));
    // halves round up, as AWS does: -1.5 → -1, -0.5 → 0, 0.5 → 1
    check_fn("States.MathAdd(-1.5, 0)", json!({}), json!(-1));
    check_fn("States.MathAdd(-0.5, 0.5)", json!({}), json!(1));
    check_fn("States.MathAdd(2.5, 0)", json!({}), json!(3));
}

#[test]
fn aws_edge_cases_of_string_to_json_and_format() {
    // StringToJson of an empty or blank string is null on AWS
    check_fn("States.StringToJson($.s)", json!({"s": ""}), Value::Null);
    check_fn("States.StringToJson($.s)", json!({"s": "  "}), Value::Null);
    // Format writes objects and arrays as AWS does, not as JSON
    check_fn(
        "States.Format('got {}', $.o)",
        json!({"o": {"Arg1": 1, "Arg2": []}}),
        json!("got {Arg1=1, Arg2=[]}"),
    );
    check_fn(
        "States.Format('{} and {}', $.a, $.b)",
        json!({"a": ["x", 2, null, true], "b": {"k": {"n": "v"}}}),
        json!("[x, 2, null, true] and {k={n=v}}"),
    );
}

#[test]
fn doc_examples_for_strings_and_uuid() {
    // "Intrinsic for String operation" > States.StringSplit
    check_fn(
        "States.StringSplit($.inputString, $.splitter)",
        json!({"inputString": "1,2,3,4,5", "splitter": ","}),
        json!(["1", "2", "3", "4", "5"]),
    );
    check_fn(
        "States.StringSplit($.inputString, $.splitter)",
        json!({"inputString": "This.is+a,test=string", "splitter": ".+,="}),
        json!(["This", "is", "a", "test", "string"]),
    );
    check_fn(
        "States.StringSplit(',a,,b,', ',')",
        json!({}),
        json!(["a", "b"]),
    );
    // "Intrinsic for unique identifier generation" > States.UUID: a version 4 UUID
    let id = eval("States.UUID()", json!({})).unwrap();
    let id = id.as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4", "{id}");
    assert_ne!(eval("States.UUID()", json!({})).unwrap(), json!(id));
}

#[test]
fn doc_examples_for_format_and_escapes() {
    // "Intrinsics for generic operations" > States.Format
    let input = json!({"name": "Arnav", "template": "Hello, my name is {}."});
    check_fn(
        "States.Format('Hello, my name is {}.', $.name)",
        input.clone(),
        json!("Hello, my name is Arnav."),
    );
    check_fn(
        "States.Format($.template, $.name)",
        input.clone(),
        json!("Hello, my name is Arnav."),
    );
    // "Reserved characters in intrinsic functions": \' \{ \} \\ stand for ' { } \
    check_fn(
        r"States.Format('\{\} {} \'q\' \\', $.name)",
        input.clone(),
        json!(r"{} Arnav 'q' \"),
    );
    // Strings go in raw, numbers, booleans and null as JSON, arrays and objects as AWS writes them.
    check_fn(
        "States.Format('{}|{}|{}|{}|{}', 1.5, true, null, States.Array(1, 'a'), $$.Execution.Id)",
        input,
        // an array as AWS writes it (Java's text of a list), not as JSON: issue 21's
        // recordings of AWS executions
        json!("1.5|true|null|[1, a]|arn:exec:1"),
    );
    // Nested invocations, as in the guide's `myArn` example.
    let arn = json!({"ImageRecipe": {"Arn": "arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/r/1.0.2"}});
    check_fn(
        "States.Format('{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(\
         States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 0), States.ArrayGetItem(\
         States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), \
         '.'), 1))",
        arn,
        json!("1.0"),
    );
    // Paths with brackets and filters as arguments.
    check_fn(
        "States.ArrayLength($.items[?(@.ok == true)])",
        store(),
        json!(2),
    );
    check_fn(
        "States.Array($['a b'], $.a.c[1:3])",
        store(),
        json!(["spaced", [20, 30]]),
    );
}

#[test]
fn syntax_errors_name_the_position() {
    for (expr, position) in [
        ("States.Format('abc", 14),
        (r"States.Format('a\nb')", 16),
        ("States.Array(1", 14),
        ("States.Array(1) x", 16),
        ("States.Array(1 2)", 15),
        ("States.Array(@)", 13),
        ("$.a", 0),
        ("States.Array(foo)", 13),
        ("States.Array(1.2.3)", 13),
    ] {
        match eval(expr, json!({})) {
            Err(IntrinsicError::Syntax {
                expr: e,
                position: p,
                ..
            }) => {
                assert_eq!((e.as_str(), p), (expr, position), "{expr}");
            }
            other => panic!("{expr}: expected a syntax error, got {other:?}"),
        }
    }
    let err = eval("States.Array(1", json!({})).unwrap_err();
    assert!(err.to_string().contains("at position 14"), "{err}");
    let nested = format!("{}1{}", "States.Array(".repeat(11), ")".repeat(11));
    assert!(matches!(
        eval(&nested, json!({})),
        Err(IntrinsicError::Syntax { .. })
    ));
    let ten = format!("{}1{}", "States.Array(".repeat(10), ")".repeat(10));
    assert!(eval(&ten, json!({})).is_ok(), "10 levels are allowed");
}

#[test]
fn argument_errors_name_the_function_and_argument() {
    assert_eq!(
        eval("States.Foo(1)", json!({})),
        Err(IntrinsicError::UnknownFunction {
            function: "States.Foo".to_owned()
        })
    );
    for (expr, function, actual) in [
        ("States.ArrayLength()", "States.ArrayLength", 0),
        ("States.UUID(1)", "States.UUID", 1),
        ("States.MathRandom(1)", "States.MathRandom", 1),
        ("States.Format()", "States.Format", 0),
        ("States.JsonMerge($, $)", "States.JsonMerge", 2),
    ] {
        match eval(expr, json!({})) {
            Err(IntrinsicError::ArgumentCount {
                function: f,
                actual: a,
                ..
            }) => {
                assert_eq!((f.as_str(), a), (function, actual), "{expr}");
            }
            other => panic!("{expr}: expected an argument count error, got {other:?}"),
        }
    }
    let long = "x".repeat(10_001);
    for (expr, function, argument) in [
        (
            "States.ArrayPartition(States.Array(1), 0)",
            "States.ArrayPartition",
            2,
        ),
        (
            "States.ArrayPartition('abc', 2)",
            "States.ArrayPartition",
            1,
        ),
        (
            "States.ArrayGetItem(States.Array(1), 1)",
            "States.ArrayGetItem",
            2,
        ),
        (
            "States.ArrayGetItem(States.Array(1), -1)",
            "States.ArrayGetItem",
            2,
        ),
        (
            "States.ArrayGetItem(States.Array(1), 0.5)",
            "States.ArrayGetItem",
            2,
        ),
        ("States.ArrayRange(1, 9, 0)", "States.ArrayRange", 3),
        ("States.ArrayRange(0, 1000, 1)", "States.ArrayRange", 2),
        ("States.ArrayLength('abc')", "States.ArrayLength", 1),
        ("States.Hash('abc', 'SHA-3')", "States.Hash", 2),
        ("States.Hash(1, 'MD5')", "States.Hash", 1),
        ("States.JsonMerge($.o, $.o, true)", "States.JsonMerge", 3),
        ("States.JsonMerge($.o, 1, false)", "States.JsonMerge", 2),
        ("States.StringToJson('{nope')", "States.StringToJson", 1),
        ("States.Base64Decode('***')", "States.Base64Decode", 1),
        ("States.Base64Encode($.long)", "States.Base64Encode", 1),
        ("States.Format('{} {}', 1)", "States.Format", 1),
        ("States.Format(1)", "States.Format", 1),
        ("States.MathRandom(5, 5)", "States.MathRandom", 2),
        ("States.MathAdd(2147483648, 1)", "States.MathAdd", 1),
        ("States.MathAdd(1, 'two')", "States.MathAdd", 2),
        ("States.StringSplit('a,b', 1)", "States.StringSplit", 2),
    ] {
        match eval(expr, json!({"o": {}, "long": long})) {
            Err(IntrinsicError::InvalidArgument {
                function: f,
                argument: a,
                message,
            }) => {
                assert_eq!((f.as_str(), a), (function, argument), "{expr}: {message}");
            }
            other => panic!("{expr}: expected an invalid argument error, got {other:?}"),
        }
    }
    let err = eval("States.ArrayPartition(States.Array(1), 0)", json!({})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "States.ArrayPartition: argument 2 must be a positive integer, got 0"
    );
}

#[test]
fn path_errors_name_the_function_and_path() {
    let err = eval("States.Format('{}', $.missing)", json!({})).unwrap_err();
    assert_eq!(
        err,
        IntrinsicError::Path {
            function: "States.Format".to_owned(),
            source: PathError::NotFound {
                path: "$.missing".to_owned()
            },
        }
    );
    assert_eq!(
        err.to_string(),
        "States.Format: the JSONPath `$.missing` could not be found in the input"
    );
    assert!(matches!(
        eval("States.Array($.a.)", json!({})),
        Err(IntrinsicError::Path {
            source: PathError::Syntax { .. },
            ..
        })
    ));
}

#[test]
fn validate_checks_a_call_without_input() {
    assert_eq!(
        intrinsics::validate("States.Format('{} {}', $.a, $$.Execution.Id)"),
        Ok(())
    );
    assert_eq!(
        intrinsics::validate("States.Hash($.missing, 'nope')"),
        Ok(()),
        "values are not checked"
    );
    assert!(matches!(
        intrinsics::validate("States.Array(States.ArrayLength())"),
        Err(IntrinsicError::ArgumentCount { actual: 0, .. })
    ));
    assert!(matches!(
        intrinsics::validate("States.Format('{}')"),
        Err(IntrinsicError::InvalidArgument { argument: 1, .. })
    ));
    assert!(matches!(
        intrinsics::validate("States.Nope()"),
        Err(IntrinsicError::UnknownFunction { .. })
    ));
    let err = intrinsics::validate("States.Array(").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("syntax error in intrinsic function"),
        "{err}"
    );
    let err = intrinsics::validate("States.MathRandom(1, 2, 3, 4)").unwrap_err();
    assert_eq!(
        err.to_string(),
        "States.MathRandom expects 2 or 3 argument(s), got 4"
    );
}
