#![no_main]
//! See `runnel::testing::fuzz_index_files`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| runnel::testing::fuzz_index_files(data));
