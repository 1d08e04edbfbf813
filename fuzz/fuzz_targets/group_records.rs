#![no_main]
//! See `runnel::testing::fuzz_group_records`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| runnel::testing::fuzz_group_records(data));
