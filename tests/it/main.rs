//! Integration tests: the real `authd` binary over real HTTPS.
//! One test binary, a module per area (see STYLE.md).

mod support;

mod browser;
mod browser_challenge;
mod caddy;
mod cli;
mod cookies;
mod corpus;
mod crash;
mod files;
mod front_proxy;
mod gateway;
mod hot;
mod jar;
mod jira_tutorial;
mod junk;
mod lifecycle;
mod limits;
mod login_protection;
mod nginx;
mod pages;
mod proxy_xsrf;
mod remember;
mod session_api;
mod shared_store;
mod timeouts;
mod xsrf;
