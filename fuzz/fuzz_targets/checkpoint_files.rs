#![no_main]
//! See `runnel::testing::fuzz_checkpoint_files`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| runnel::testing::fuzz_checkpoint_files(data));
