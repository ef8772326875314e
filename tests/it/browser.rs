//! SPEC §4, §6 and §8 in a real browser: Debian's headless Chromium, driven
//! by `tests/browser/login.mjs` (playwright-core from npm), logs in through
//! `/login.jsp` with "Remember my login", reads its cookies, drops the
//! session cookie, is logged in again by remember-me, and logs out.
//! Screenshots of each page land in `tests/browser/screenshots/`.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), `node`, and
//! `npm ci --prefix tests/browser`. Without them the test is skipped with a
//! message, except under CI (`CI=true`), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// What is missing to run the browser test, if anything.
fn missing(chromium: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if !chromium.is_file() {
        out.push(format!("{} (apt-get install -y --no-install-recommends chromium)", chromium.display()));
    }
    if !browser_dir().join("node_modules/playwright-core/package.json").is_file() {
        out.push("tests/browser/node_modules (npm ci --prefix tests/browser)".to_string());
    }
    let node = Command::new("node").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !node.is_ok_and(|s| s.success()) {
        out.push("node".to_string());
    }
    out
}

#[test]
fn chromium_logs_in_is_remembered_and_logs_out() {
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let missing = missing(&chromium);
    if !missing.is_empty() {
        let what = missing.join(", ");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the browser test cannot run under CI: missing {what}");
        }
        eprintln!("SKIPPED chromium_logs_in_is_remembered_and_logs_out: missing {what}");
        return;
    }
    let s = Server::start(&[]);
    let shots = browser_dir().join("screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let out_dir = tempfile::tempdir().unwrap();
    let stdout_path = out_dir.path().join("stdout");
    let stderr_path = out_dir.path().join("stderr");
    let mut child = Command::new("node")
        .arg(browser_dir().join("login.mjs"))
        .current_dir(browser_dir())
        .env("AUTHD_URL", &s.url)
        .env("AUTHD_USER", "admin")
        .env("AUTHD_PASSWORD", s.admin_pw())
        .env("AUTHD_CERT", s.data.join("tls/cert.pem"))
        .env("AUTHD_SCREENSHOT_DIR", &shots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("run node");
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    println!("{stdout}");
    let report = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- authd\n{}", s.log_text());
    let status = status.unwrap_or_else(|| panic!("the browser test took over 180 s\n{report}"));
    match status.code() {
        Some(0) => {}
        Some(2) => panic!("the browser test could not start\n{report}"),
        _ => panic!("the browser test failed ({status})\n{report}"),
    }
    for name in ["01-login.png", "02-account.png", "03-account-remembered.png", "04-logged-out.png"] {
        let png = std::fs::read(shots.join(name)).unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 2000, "{name} is not a real screenshot");
    }
}
