//! The `xsrf_token` target; the properties live in `src/xsrf_token.rs` so `cargo test`
//! can run the corpus through them too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| authd_fuzz::xsrf_token::check(data));
