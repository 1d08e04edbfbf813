#![no_main]
//! See `runnel::testing::fuzz_segment_recovery`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| runnel::testing::fuzz_segment_recovery(data));
