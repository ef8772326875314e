//! The `record_decoders` target; the properties live in `src/record_decoders.rs` so `cargo test`
//! can run the corpus through them too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| authd_fuzz::record_decoders::check(data));
