//! A dataset spec file: YAML parsing and every check that needs no data.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use skein_core::{load, validate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = load::parse(Path::new("/fuzz/spec.yaml"), text) {
        let _ = validate::check_file(&file);
        let _ = validate::check_set(std::slice::from_ref(&file), false);
    }
});
