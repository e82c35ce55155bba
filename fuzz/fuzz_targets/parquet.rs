//! A Parquet source file: registered (footer, schema) and read.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/source.rs"]
mod source;

fuzz_target!(|data: &[u8]| {
    source::register_and_read(data, "parquet", "{uri: source.parquet, format: parquet}");
});
