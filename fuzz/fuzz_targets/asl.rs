//! An Amazon States Language definition: JSON, then the definition reader and every check
//! `skein states validate` makes (paths, intrinsics, JSONata, bounds, the state graph).
#![no_main]

use libfuzzer_sys::fuzz_target;
use skein_states::definition::Definition;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = Definition::parse(&doc);
});
