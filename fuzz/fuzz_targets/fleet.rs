//! The fleet configuration, `skein.yaml`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use skein_core::fleet::Fleet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Fleet::parse(Path::new("/fuzz/skein.yaml"), text);
});
