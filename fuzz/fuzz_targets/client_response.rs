#![no_main]
//! See `runnel::testing::fuzz_client_response`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| runnel::testing::fuzz_client_response(data));
