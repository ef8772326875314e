//! authd: cookie-based session authentication in the style of Jira/Seraph.
//!
//! The binary (`src/main.rs`) only parses the command line and calls into
//! this library, so integration tests, fuzz targets and benchmarks link the
//! same code. See `ARCHITECTURE.md` for the map.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

pub mod admin;
pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod cookies;
pub mod datadir;
pub mod http;
pub mod lockout;
pub mod metrics;
pub mod password;
pub mod pow;
pub mod priority;
pub mod remember;
pub mod server;
pub mod session;
pub mod store;
pub mod sweeper;
pub mod throttle;
pub mod tls;
pub mod token;
pub mod turns;
pub mod xsrf;
