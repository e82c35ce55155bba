//! Intrinsic functions (`States.Format(...)`) with their arguments, and JSONPaths, against
//! a small input and context object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use skein_states::{intrinsics, path};

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    let input = json!({"a": [1, 2, {"b": "c"}], "s": "text", "n": 3.5, "o": {"k": null}});
    let context = json!({"Execution": {"Id": "1", "Input": {"x": 1}}, "State": {"Name": "S"}});
    if intrinsics::is_intrinsic(expr) {
        let _ = intrinsics::validate(expr);
        let _ = intrinsics::eval(expr, &input, &context);
    } else {
        let _ = path::select(&input, &context, expr);
        let _ = path::is_reference_path(expr);
        let mut doc = input.clone();
        let _ = path::set(&mut doc, expr, json!("v"));
    }
});
