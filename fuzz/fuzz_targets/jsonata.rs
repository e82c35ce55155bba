//! A JSONata expression: the checks of `skein states validate`, then evaluation against a
//! small `$states` and variables, as a JSONata state's field would be.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use skein_states::jsonata;

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    if jsonata::check(expr).is_err() {
        return;
    }
    let states = json!({
        "input": {"items": [1, 2, 3], "name": "orders", "nested": {"a": [{"b": true}]}},
        "context": {"Execution": {"Id": "arn:aws:states:local:0:execution:m:1"}},
    });
    let vars = json!({"count": 2, "label": "x"});
    let _ = jsonata::eval(expr, &states, &vars);
});
