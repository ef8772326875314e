//! The committed fuzz corpus (`fuzz/corpus/<target>/`) under `cargo test`:
//! every file goes through the same checks the fuzz target makes, so the
//! properties hold in CI without libFuzzer or a nightly compiler.

use std::path::PathBuf;

/// `login_form` resolves destinations with `super::Url`; the fuzz crate's is `url::Url`.
use reqwest::Url;

#[path = "../../fuzz/src/cookie_header.rs"]
mod cookie_header;
#[path = "../../fuzz/src/login_form.rs"]
mod login_form;
#[path = "../../fuzz/src/login_json.rs"]
mod login_json;
#[path = "../../fuzz/src/record_decoders.rs"]
mod record_decoders;
#[path = "../../fuzz/src/remember_cookie.rs"]
mod remember_cookie;
#[path = "../../fuzz/src/store_model.rs"]
mod store_model;
#[path = "../../fuzz/src/xsrf_token.rs"]
mod xsrf_token;

#[test]
fn cookie_header_corpus_holds_the_fuzz_properties() {
    corpus_holds("cookie_header", cookie_header::check);
}

#[test]
fn remember_cookie_corpus_holds_the_fuzz_properties() {
    corpus_holds("remember_cookie", remember_cookie::check);
}

#[test]
fn xsrf_token_corpus_holds_the_fuzz_properties() {
    corpus_holds("xsrf_token", xsrf_token::check);
}

#[test]
fn login_json_corpus_holds_the_fuzz_properties() {
    corpus_holds("login_json", login_json::check);
}

#[test]
fn login_form_corpus_holds_the_fuzz_properties() {
    corpus_holds("login_form", login_form::check);
}

#[test]
fn record_decoders_corpus_holds_the_fuzz_properties() {
    corpus_holds("record_decoders", record_decoders::check);
}

#[test]
fn store_model_corpus_holds_the_fuzz_properties() {
    corpus_holds("store_model", store_model::check);
}

/// Regression: `render` wrote values bare, so `pairs` trimmed and unquoted
/// values with edge space or outer quotes on the way back.
#[test]
fn render_keeps_values_with_edge_space_or_quotes() {
    for header in ["a=\" x\"", "a=\"\"x\"\"", "a=\"\" \"x\" \"\""] {
        let first = authd::cookies::pairs(header);
        assert_eq!(authd::cookies::pairs(&authd::cookies::render(&first)), first, "{header}");
    }
}

/// Runs every file of `fuzz/corpus/<target>/` (at least 10) through `check`.
fn corpus_holds(target: &str, check: fn(&[u8])) {
    let files = corpus(target);
    assert!(files.len() >= 10, "corpus has only {} files", files.len());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let checked = std::panic::catch_unwind(|| check(&data));
        assert!(checked.is_ok(), "{} fails the {target} checks", file.display());
    }
}

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}
