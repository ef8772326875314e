//! The `remember_cookie` target; the properties live in `src/remember_cookie.rs` so `cargo test`
//! can run the corpus through them too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| authd_fuzz::remember_cookie::check(data));
