//! The seed example, end to end through the proxy: Atlassian's Jira
//! cookie-based authentication tutorial, `examples/jira-node/search.js`
//! (node-rest-client), logs in with `POST /rest/auth/1/session`, then posts
//! a JQL search to `/rest/api/2/search` with `cookie: name=value` from the
//! JSON answer. authd answers the login; the app behind it (the test's
//! [`EchoApp`], which answers the search with the `X-AUSERNAME` it got)
//! receives the search as that user.
//!
//! Needs `node` and `npm ci --prefix examples/jira-node`. Without them the
//! test is skipped with a message, except under CI (`CI=true`), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::gateway::EchoApp;
use crate::jar::*;
use crate::support::*;

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jira-node")
}

/// What is missing to run the example, if anything.
fn missing() -> Vec<String> {
    let mut out = Vec::new();
    if !example_dir().join("node_modules/node-rest-client/package.json").is_file() {
        out.push("examples/jira-node/node_modules (npm ci --prefix examples/jira-node)".to_string());
    }
    let node = Command::new("node").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !node.is_ok_and(|s| s.success()) {
        out.push("node".to_string());
    }
    out
}

/// Runs `node search.js` with `env`; returns (exit code, stdout, stderr).
fn run_example(env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out_dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (out_dir.path().join("stdout"), out_dir.path().join("stderr"));
    let mut child = Command::new("node")
        .arg(example_dir().join("search.js"))
        .current_dir(example_dir())
        .env_remove("NODE_EXTRA_CA_CERTS")
        .env_remove("AUTHD_CA")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("run node");
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (code, read(&out_path), read(&err_path))
}

#[test]
fn the_jira_cookie_auth_tutorial_searches_through_the_proxy_as_its_user() {
    let missing = missing();
    if !missing.is_empty() {
        let what = missing.join(", ");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the Jira tutorial test cannot run under CI: missing {what}");
        }
        eprintln!(
            "SKIPPED the_jira_cookie_auth_tutorial_searches_through_the_proxy_as_its_user: missing {what}"
        );
        return;
    }
    let app = EchoApp::start();
    let s = Server::start(&["--upstream", &app.url]);
    s.add_user("alice", "alice-password-1", &[]);
    let cert = s.data.join("tls/cert.pem");
    let cert = cert.to_str().unwrap();
    // authd's certificate trusted both ways the example supports.
    for (i, (ca_var, jql)) in
        [("AUTHD_CA", "type=Bug AND status=Closed"), ("NODE_EXTRA_CA_CERTS", "project = AUTHD")]
            .into_iter()
            .enumerate()
    {
        let (code, stdout, stderr) = run_example(&[
            ("JIRA_URL", &s.url),
            ("JIRA_USER", "alice"),
            ("JIRA_PASSWORD", "alice-password-1"),
            ("JIRA_JQL", jql),
            (ca_var, cert),
        ]);
        println!("{stdout}");
        let report = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- authd\n{}", s.log_text());
        assert_eq!(code, Some(0), "search.js with {ca_var} failed\n{report}");
        let last: Value = stdout
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no JSON answer on the last line\n{report}"));
        assert_eq!(last["statusCode"], 200, "{report}");
        let result = &last["searchResult"];
        assert_eq!(result["searchedBy"], "alice", "the app did not get the search as alice\n{report}");
        assert_eq!(result["jql"], jql, "{report}");
        assert_eq!(result["method"], "POST", "{report}");
        assert_eq!(result["path"], "/rest/api/2/search", "{report}");

        // What the app itself received.
        let searches = app.seen_at("/rest/api/2/search");
        assert_eq!(searches.len(), i + 1, "the app got {} searches", searches.len());
        let seen = searches.last().unwrap();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.one("x-ausername").as_deref(), Some("alice"));
        assert_eq!(seen.one("x-authd-user").as_deref(), Some("alice"));
        let body: Value = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(body["jql"], jql);
        assert!(seen.one("content-type").is_some_and(|c| c.starts_with("application/json")));
        // The session cookie the script sent is authd's secret: it stops at authd.
        assert!(!seen.all("cookie").iter().any(|c| c.contains(SESSION)), "{:?}", seen.all("cookie"));
    }
    // The logins were authd's own; the app only ever saw the searches.
    assert!(app.seen_at("/rest/auth/1/session").is_empty());
    assert_eq!(app.seen().len(), 2, "{:?}", app.seen().iter().map(|x| &x.path).collect::<Vec<_>>());
}
