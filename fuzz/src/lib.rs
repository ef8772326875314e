//! Properties checked by the fuzz targets, one module per target. Each
//! module only uses `authd`'s public API (and crates `authd` depends on),
//! so the main crate's integration tests include it by path and run the
//! committed corpus through it (`tests/it/corpus.rs`).

pub mod cookie_header;
pub mod login_form;
pub mod login_json;
pub mod record_decoders;
pub mod remember_cookie;
pub mod store_model;
pub mod xsrf_token;

/// The URL type `login_form` resolves destinations with, as `super::Url`
/// (the tests, which have no `url` dependency, give it `reqwest::Url`).
use url::Url;
