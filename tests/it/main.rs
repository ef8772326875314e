//! Integration tests: the real `authd` binary over real HTTPS.
//! One test binary, a module per area (see STYLE.md).

mod support;

mod cli;
mod cookies;
mod corpus;
mod lifecycle;
mod session_api;
mod timeouts;
