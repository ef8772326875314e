//! Integration tests: the real `authd` binary over real HTTPS.
//! One test binary, a module per area (see STYLE.md).

mod support;

mod browser;
mod cli;
mod cookies;
mod corpus;
mod jar;
mod lifecycle;
mod pages;
mod proxy_xsrf;
mod remember;
mod session_api;
mod timeouts;
mod xsrf;
mod gateway;
mod jira_tutorial;
mod nginx;
mod login_protection;
