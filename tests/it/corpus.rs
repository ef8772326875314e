//! The committed fuzz corpus (`fuzz/corpus/<target>/`) under `cargo test`:
//! every file goes through the same checks the fuzz target makes, so the
//! properties hold in CI without libFuzzer or a nightly compiler.

use std::path::PathBuf;

#[path = "../../fuzz/src/cookie_header.rs"]
mod cookie_header;

#[test]
fn cookie_header_corpus_holds_the_fuzz_properties() {
    let files = corpus("cookie_header");
    assert!(files.len() >= 10, "corpus has only {} files", files.len());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let checked = std::panic::catch_unwind(|| cookie_header::check(&data));
        assert!(checked.is_ok(), "{} fails the cookie_header checks", file.display());
    }
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

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}
