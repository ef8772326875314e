//! The `store_model` target; the properties live in `src/store_model.rs` so `cargo test`
//! can run the corpus through them too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| authd_fuzz::store_model::check(data));
