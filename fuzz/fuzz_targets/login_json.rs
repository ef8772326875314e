//! The `login_json` target; the properties live in `src/login_json.rs` so `cargo test`
//! can run the corpus through them too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| authd_fuzz::login_json::check(data));
