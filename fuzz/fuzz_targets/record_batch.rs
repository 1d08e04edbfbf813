#![no_main]
//! See `runnel::testing::fuzz_record_batch`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| runnel::testing::fuzz_record_batch(data));
