//! Arbitrary bytes as one or more `Cookie` headers; the properties live in
//! `src/cookie_header.rs` so `cargo test` can run the corpus through them too.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| authd_fuzz::cookie_header::check(data));
