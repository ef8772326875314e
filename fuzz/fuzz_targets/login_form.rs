//! The `login_form` target; the properties live in `src/login_form.rs` so `cargo test`
//! can run the corpus through them too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| authd_fuzz::login_form::check(data));
