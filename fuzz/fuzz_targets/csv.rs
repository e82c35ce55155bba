//! A CSV source file: registered (schema inference) and read, header on.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/source.rs"]
mod source;

fuzz_target!(|data: &[u8]| {
    source::register_and_read(data, "csv", "{uri: source.csv, format: csv}");
});
