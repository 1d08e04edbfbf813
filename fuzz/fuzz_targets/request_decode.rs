#![no_main]
//! See `runnel::testing::fuzz_request_decode`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| runnel::testing::fuzz_request_decode(data));
