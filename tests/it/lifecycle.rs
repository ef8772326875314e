//! SPEC §1 and §5: the data dir, restarts, signals, crash safety of
//! acknowledged logins and logouts, flag and environment parsing, the
//! start-up banner, and stock clients trusting the certificate.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

/// Runs `authd ARGS` with `env`, killing it if it is still running after 10 s.
fn run_bounded(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("AUTHD_LOG").envs(env.iter().copied());
    run_command(cmd, None, Some(Duration::from_secs(10)))
}

/// Asserts exit status 2 and one line on stderr that names `flag`.
fn assert_usage_error(out: &Output, flag: &str, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: exit status {:?}, stderr {err}", out.status);
    let text = err.trim_end();
    assert!(!text.is_empty(), "{what}: nothing on stderr");
    assert!(!text.contains('\n'), "{what}: the error is not one line:\n{err}");
    assert!(text.contains(flag), "{what}: {flag} is not named: {err}");
    assert!(!text.contains("panicked"), "{what}: {err}");
}

#[tokio::test]
async fn data_dir_and_its_files_are_private() {
    let s = Server::start(&[]);
    assert_eq!(mode(&s.data), 0o700, "data dir");
    for f in ["authd.redb", "tls/cert.pem", "tls/key.pem"] {
        if f == "authd.redb" && shared_store().is_some() {
            continue; // the records are in the shared store
        }
        assert_eq!(mode(&s.data.join(f)), 0o600, "{f}");
    }
    // Whatever else the server keeps there (the CLI's admin credential) is private too.
    for entry in std::fs::read_dir(&s.data).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            assert_eq!(mode(&p) & 0o077, 0, "{} is readable by others", p.display());
        }
    }
}

#[tokio::test]
async fn restart_reuses_the_certificate_and_keeps_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let s = Server::start_in(&data, &[]);
    let pw = s.admin_pw();
    let id = login_id(&s, "admin", &pw).await;
    let cert = s.cert_pem();
    let key = std::fs::read(data.join("tls/key.pem")).unwrap();
    assert_eq!(s.stop().code(), Some(0));

    let s = Server::start_in(&data, &[]);
    assert_eq!(s.cert_pem(), cert, "the certificate must be reused");
    assert_eq!(std::fs::read(data.join("tls/key.pem")).unwrap(), key, "the key must be reused");
    assert!(s.admin_password.is_none(), "a restart must not make a new admin password");
    assert!(!s.log_text().contains("admin password"), "{}", s.log_text());
    assert_eq!(session_status(&s, &id).await, 200, "the session must survive a restart");
    s.login_ok(&s.bare_client(), "admin", &pw).await;
}

async fn signal_exits_0_and_data_survives(interrupt: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let s = Server::start_in(&data, &[]);
    s.add_user("sig", "sig's long password", &[]);
    let id = login_id(&s, "sig", "sig's long password").await;
    let status = if interrupt { s.interrupt() } else { s.stop() };
    assert_eq!(status.code(), Some(0), "exit status after {}", if interrupt { "SIGINT" } else { "SIGTERM" });

    let s = Server::start_in(&data, &[]);
    assert_eq!(session_status(&s, &id).await, 200);
    s.login_ok(&s.bare_client(), "sig", "sig's long password").await;
}

#[tokio::test]
async fn sigterm_exits_0_and_data_survives() {
    signal_exits_0_and_data_survives(false).await;
}

#[tokio::test]
async fn sigint_exits_0_and_data_survives() {
    signal_exits_0_and_data_survives(true).await;
}

/// SPEC §1: a stop lets in-flight requests finish (up to 10 s); an idle
/// keep-alive connection has none, so it does not hold the stop. Here the
/// client's HTTP/2 connection stays open and never answers the server's
/// goodbye (the test's runtime is blocked in `stop`).
#[tokio::test]
async fn an_idle_keep_alive_connection_does_not_hold_up_a_stop() {
    let s = Server::start(&[]);
    let c = s.bare_client();
    let r = c.get(s.at("/healthz")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.text().await.unwrap(), "ok");
    let began = std::time::Instant::now();
    assert_eq!(s.stop().code(), Some(0));
    let took = began.elapsed();
    assert!(took < Duration::from_secs(5), "the stop took {took:?}");
    drop(c);
}

/// Logs in `n` times at once; returns the acknowledged session IDs.
async fn concurrent_logins(s: &Server, pw: &str, n: usize) -> Vec<String> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let c = s.bare_client();
        let url = s.at("/rest/auth/1/session");
        let pw = pw.to_string();
        set.spawn(async move {
            let r = c
                .post(url)
                .json(&serde_json::json!({ "username": "admin", "password": pw }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["session"]["value"].as_str().unwrap().to_string()
        });
    }
    let mut ids = Vec::new();
    while let Some(id) = set.join_next().await {
        ids.push(id.unwrap());
    }
    ids
}

#[tokio::test]
async fn acknowledged_logins_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let s = Server::start_in(&data, &[]);
    let pw = s.admin_pw();
    let ids = concurrent_logins(&s, &pw, 20).await;
    s.kill9();

    let s = Server::start_in(&data, &[]);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(session_status(&s, id).await, 200, "acknowledged login #{i} was lost in the crash");
    }
    // The user's login counter is as durable as the sessions.
    let c = s.client();
    let body = s.login_ok(&c, "admin", &pw).await;
    assert_eq!(body["loginInfo"]["loginCount"], 21, "{body}");
}

#[tokio::test]
async fn acknowledged_logouts_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let s = Server::start_in(&data, &[]);
    let pw = s.admin_pw();
    let ids = concurrent_logins(&s, &pw, 10).await;
    let (out, kept) = ids.split_at(5);
    let mut set = tokio::task::JoinSet::new();
    for id in out {
        let c = s.bare_client();
        let url = s.at("/rest/auth/1/session");
        let cookie = format!("JSESSIONID={id}");
        set.spawn(async move { c.delete(url).header("cookie", cookie).send().await.unwrap().status() });
    }
    while let Some(status) = set.join_next().await {
        assert_eq!(status.unwrap(), 204);
    }
    s.kill9();

    let s = Server::start_in(&data, &[]);
    for id in out {
        assert_eq!(session_status(&s, id).await, 401, "an acknowledged logout was undone by the crash");
    }
    for id in kept {
        assert_eq!(session_status(&s, id).await, 200, "a session was lost in the crash");
    }
}

/// SPEC §5: uses slide the idle timeout, and a crash loses at most one
/// touch interval of them. With `--touch-interval 500ms` uses are written
/// every half second, and the store's flush period follows the touch
/// interval: a kill -9 loses at most the last half second of uses, so a
/// session in steady use comes back alive.
#[tokio::test]
async fn recorded_uses_survive_kill_9_within_a_touch_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let flags = ["--idle-timeout", "6s", "--touch-interval", "500ms"];
    let s = Server::start_in(&data, &flags);
    let id = login_id(&s, "admin", &s.admin_pw()).await;
    // Used every half second for 5 s: its idle deadline moves 5 s on.
    for _ in 0..10 {
        assert_eq!(session_status(&s, &id).await, 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Past the first deadline (6 s after the login), well within the slid one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill9();
    let s = Server::start_in(&data, &flags);
    assert_eq!(session_status(&s, &id).await, 200, "the session's recent uses were lost in the crash");
}

/// A write that fails with an I/O error (here a file-size limit set on the
/// running server, as a full disk would): redb accepts no more writes until
/// the file is opened again, so authd says so once in its log, writes
/// answer 503, reads go on, and `/healthz` answers 503 with what to do.
/// The process is not killed (SIGXFSZ). Once the limit is lifted (space
/// freed), authd opens the file again by itself and writes resume.
#[tokio::test]
async fn writes_stopped_by_an_io_error_are_told_once_and_resume_when_the_disk_takes_writes() {
    if redb_only("writes_stopped_by_an_io_error_are_told_once_and_resume_when_the_disk_takes_writes") {
        return;
    }
    let Some(prlimit) = required_component(
        which("prlimit"),
        "writes_stopped_by_an_io_error_are_told_once_and_resume_when_the_disk_takes_writes",
        "apt-get install util-linux",
    ) else {
        return;
    };
    let s = Server::start(&[]);
    let pw = s.admin_pw();
    let id = login_id(&s, "admin", &pw).await;
    assert_eq!(s.bare_client().get(s.at("/healthz")).send().await.unwrap().status(), 200);
    // The soft limit only, so that it can be lifted again.
    let set_fsize = |limit: &str| {
        let out = Command::new(&prlimit)
            .args(["--pid", &s.pid().to_string(), &format!("--fsize={limit}:unlimited")])
            .output()
            .expect("run prlimit");
        assert!(out.status.success(), "prlimit: {}", String::from_utf8_lossy(&out.stderr));
    };
    set_fsize("4096");
    for i in 0..5 {
        let r = s.login(&s.bare_client(), "admin", &pw).await;
        assert_eq!(r.status(), 503, "login {i} past the file-size limit");
        assert!(header(&r, "retry-after").is_some());
        assert_jira_error(&r.json().await.unwrap());
    }
    let r = s.bare_client().get(s.at("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let why = r.text().await.unwrap();
    assert!(why.contains("authd.redb") && why.contains("restart authd"), "{why}");
    // Reads go on: the session made before still answers.
    assert_eq!(session_status(&s, &id).await, 200);
    // Still limited: the retries (every 5 s) find the disk full and keep the
    // old handle, so reads go on.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(s.login(&s.bare_client(), "admin", &pw).await.status(), 503);
    assert_eq!(session_status(&s, &id).await, 200);
    let log = s.log_text();
    assert_eq!(log.matches("accepts no more writes").count(), 1, "{log}");
    assert!(!log.contains("opened again"), "{log}");
    // Space again: within a retry period the file is opened again.
    set_fsize("unlimited");
    let mut healthy = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if s.bare_client().get(s.at("/healthz")).send().await.unwrap().status() == 200 {
            healthy = true;
            break;
        }
    }
    assert!(healthy, "/healthz still 503 15 s after the limit was lifted:\n{}", s.log_text());
    let fresh = login_id(&s, "admin", &pw).await;
    assert_eq!(session_status(&s, &fresh).await, 200);
    assert_eq!(session_status(&s, &id).await, 200, "the session made before the error is gone");
    let log = s.log_text();
    assert_eq!(log.matches("opened again after the I/O error").count(), 1, "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(s.stop().success());
}

/// stderr sent to a file that can take no more (a full disk, here a
/// file-size limit): log lines are lost, requests are still answered (by
/// default tracing reports a failed write with `eprintln!`, which panics
/// the task that logged and drops its connection).
#[tokio::test]
async fn a_log_file_that_takes_no_more_loses_lines_not_requests() {
    let Some(prlimit) = required_component(
        which("prlimit"),
        "a_log_file_that_takes_no_more_loses_lines_not_requests",
        "apt-get install util-linux",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let log_path = tmp.path().join("authd.log");
    let mut child = Command::new(BIN)
        .args([
            "--data",
            &tmp.path().join("db").display().to_string(),
            "--listen",
            "127.0.0.1:0",
            "--log",
            "debug",
        ])
        .envs(store_env(&tmp.path().join("db")))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut port = None;
    for _ in 0..100 {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        port = log
            .split("listening on 127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok());
        if port.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = port.expect("no address in the log");
    let limited = Command::new(&prlimit)
        .args(["--pid", &child.id().to_string(), "--fsize=1:unlimited"])
        .output()
        .expect("run prlimit");
    assert!(limited.status.success(), "prlimit: {}", String::from_utf8_lossy(&limited.stderr));
    let before = std::fs::metadata(&log_path).unwrap().len();
    let cert = std::fs::read(tmp.path().join("db/tls/cert.pem")).unwrap();
    let client = client_for(&cert, false);
    for i in 0..5 {
        // A new connection each time: a handshake logs at debug level.
        let client = if i % 2 == 0 { client_for(&cert, false) } else { client.clone() };
        let r = client.get(format!("https://localhost:{port}/rest/api/2/serverInfo")).send().await;
        assert_eq!(r.map(|r| r.status().as_u16()).ok(), Some(200), "request {i}");
    }
    assert_eq!(std::fs::metadata(&log_path).unwrap().len(), before, "the limit did not hold the log");
    assert!(child.try_wait().unwrap().is_none(), "authd exited");
    let _ = child.kill();
    let _ = child.wait();
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}

#[test]
fn the_certificate_is_kept_unless_a_start_names_one_it_lacks() {
    // SPEC §1: later starts reuse the certificate; only a new --tls-san name
    // needs a new one.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let cert = || std::fs::read(data.join("tls/cert.pem")).unwrap();
    assert!(Server::start_in(&data, &["--tls-san", "app.example"]).stop().success());
    let first = cert();
    assert!(Server::start_in(&data, &[]).stop().success());
    assert!(cert() == first, "a start without --tls-san replaced the certificate");
    assert!(Server::start_in(&data, &["--tls-san", "app.example"]).stop().success());
    assert!(cert() == first, "the same --tls-san replaced the certificate");
    let s = Server::start_in(&data, &["--tls-san", "new.example"]);
    assert!(s.log_text().contains("--tls-san"), "no log line for the new certificate:\n{}", s.log_text());
    assert!(s.stop().success());
    assert!(cert() != first, "a new --tls-san name kept the old certificate");
}

/// Two first starts at once on one new data dir: one runs, the other says
/// the dir is in use, and what the one that runs writes is in the file the
/// next start opens (the other never replaced it).
#[tokio::test]
async fn two_first_starts_at_once_leave_one_database() {
    if redb_only("two_first_starts_at_once_leave_one_database") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let starts: Vec<_> = (0..2)
        .map(|_| {
            let data = data.clone();
            std::thread::spawn(move || Server::try_start_in(&data, &[]))
        })
        .collect();
    let mut running = Vec::new();
    for start in starts {
        match start.join().unwrap() {
            Ok(s) => running.push(s),
            Err((status, log)) => {
                assert!(status.is_some_and(|s| !s.success() && s.code() != Some(101)), "{status:?}: {log}");
                assert!(log.contains("in use"), "the loser does not say the dir is in use: {log}");
            }
        }
    }
    assert_eq!(running.len(), 1, "both or neither started");
    let s = running.pop().unwrap();
    let pw = s.admin_pw();
    s.login_ok(&s.client(), "admin", &pw).await;
    assert!(s.stop_async().await.success());
    let names: Vec<_> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(
        !names.iter().any(|n| n.to_string_lossy().contains(".new")),
        "a half-made database was left: {names:?}"
    );
    let s = Server::start_in(&data, &[]);
    s.login_ok(&s.client(), "admin", &pw).await;
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_fails_clearly() {
    if redb_only("a_second_server_on_the_same_data_dir_fails_clearly") {
        return; // on a shared store, several servers is the point
    }
    let s = Server::start(&["--tls-san", "app.example"]);
    let tls_files =
        |d: &std::path::Path| ["cert.pem", "key.pem"].map(|f| std::fs::read(d.join("tls").join(f)).unwrap());
    let before = tls_files(&s.data);
    // With other certificate names, which would make a new certificate if
    // the data dir were free: the running server's is left alone.
    let (status, log) = match Server::try_start_in(&s.data, &["--tls-san", "other.example"]) {
        Ok(_) => panic!("a second authd started on the same data dir"),
        Err(e) => e,
    };
    assert!(tls_files(&s.data) == before, "the second authd replaced the certificate the first one serves");
    let status = status.expect("the second authd hung instead of exiting");
    assert!(!status.success(), "{status:?}");
    assert_ne!(status.code(), Some(101), "a panic is not a clear error: {log}");
    assert!(!log.contains("panicked"), "{log}");
    let lower = log.to_lowercase();
    assert!(
        lower.contains("in use")
            || lower.contains("another")
            || lower.contains("running")
            || lower.contains("lock"),
        "the message does not say the data dir is taken: {log}"
    );
    assert!(log.contains(&s.data.display().to_string()), "the message does not name the data dir: {log}");
    // The first server is unharmed and its CLI route still works.
    let r = s.bare_client().get(s.at("/rest/api/2/serverInfo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let out = s.authd(&["user", "list", "--json"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.login_ok(&s.bare_client(), "admin", &s.admin_pw()).await;
}

#[test]
fn bad_flags_exit_2_with_one_line_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let data = data.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--idle-timeout", "banana"], "--idle-timeout"),
        (&["--absolute-timeout", "5"], "--absolute-timeout"),
        (&["--remember-me-age", "401d"], "--remember-me-age"),
        (&["--remember-me-age", "99999999999999999999d"], "--remember-me-age"),
        (&["--sweep-interval", "1.5s"], "--sweep-interval"),
        (&["--max-failed-logins", "lots"], "--max-failed-logins"),
        (&["--lockout=-5m"], "--lockout"),
        (&["--cookie-prefix", "a b"], "--cookie-prefix"),
        (&["--no-such-flag"], "--no-such-flag"),
    ];
    for (args, flag) in cases {
        let mut all = vec!["--data", data, "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        assert_usage_error(&run_bounded(&all, &[]), flag, &format!("{args:?}"));
        // The same through the explicit `serve` command.
        let mut all = vec!["serve", "--data", data, "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        assert_usage_error(&run_bounded(&all, &[]), flag, &format!("serve {args:?}"));
    }
    let out = run_bounded(&["--data", data, "--listen", "nowhere"], &[]);
    assert_usage_error(&out, "--listen", "--listen nowhere");
}

#[test]
fn a_negative_duration_after_a_space_names_the_flag() {
    // `--lockout -5m` is a bad value for --lockout, not a stray `-5` flag.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let out =
        run_bounded(&["--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0", "--lockout", "-5m"], &[]);
    assert_usage_error(&out, "--lockout", "--lockout -5m");
}

#[test]
fn bad_environment_values_exit_2_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let data = data.to_str().unwrap();
    for (var, value, flag) in [
        ("AUTHD_IDLE_TIMEOUT", "banana", "--idle-timeout"),
        ("AUTHD_REMEMBER_ME_AGE", "401d", "--remember-me-age"),
        ("AUTHD_LISTEN", "nowhere", "--listen"),
    ] {
        let mut args = vec!["--data", data];
        if var != "AUTHD_LISTEN" {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        let out = run_bounded(&args, &[(var, value)]);
        assert_usage_error(&out, flag, &format!("{var}={value}"));
    }
}

#[tokio::test]
async fn environment_variables_configure_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let s = Server::try_start_env(&data, &[], &[("AUTHD_IDLE_TIMEOUT", "2s")])
        .unwrap_or_else(|(st, log)| panic!("{st:?}: {log}"));
    let before = unix_now();
    let r = s.login(&s.bare_client(), "admin", &s.admin_pw()).await;
    let e: u64 = header(&r, "x-authd-session-expires").unwrap().parse().unwrap();
    assert!(e <= before + 4, "AUTHD_IDLE_TIMEOUT=2s ignored: expires {e}, now {before}");
    let id = r.json::<Value>().await.unwrap()["session"]["value"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(session_status(&s, &id).await, 401, "AUTHD_IDLE_TIMEOUT=2s did not take effect");
    drop(s);

    // A flag on the command line wins over the environment.
    let s = Server::try_start_env(&data, &["--idle-timeout", "1h"], &[("AUTHD_IDLE_TIMEOUT", "2s")])
        .unwrap_or_else(|(st, log)| panic!("{st:?}: {log}"));
    let pw = "env's long password";
    let out = s.authd(&["user", "add", "env", "--password-stdin"], Some(pw));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = unix_now();
    let r = s.login(&s.bare_client(), "env", pw).await;
    let e: u64 = header(&r, "x-authd-session-expires").unwrap().parse().unwrap();
    assert!(e >= before + 3500, "the flag should win: expires {e}, now {before}");
}

#[tokio::test]
async fn banner_has_url_certificate_fingerprint_and_a_working_curl_line() {
    let s = Server::start(&[]);
    assert_ne!(s.port, 0, "the banner must show the bound port");
    let log = s.log_text();
    assert!(log.contains(&s.url), "no URL in the banner:\n{log}");
    let cert_path = s.data.join("tls/cert.pem");
    assert!(log.contains(&cert_path.display().to_string()), "no certificate path:\n{log}");
    // The fingerprint, in whatever hex notation, is the certificate's SHA-256.
    let hex = cert_sha256_hex(&s.cert_pem());
    let squashed: String = log.chars().filter(|c| *c != ':').collect::<String>().to_lowercase();
    assert!(squashed.contains(&hex), "the SHA-256 fingerprint {hex} is not in the banner:\n{log}");
    assert!(log.contains("SHA-256") || log.contains("sha256") || log.contains("SHA256"), "{log}");

    // The curl example is ready to paste.
    let line = log.lines().find(|l| l.contains("curl --cacert")).expect("no `curl --cacert` example");
    let cmd = &line[line.find("curl").unwrap()..];
    assert!(cmd.contains(&s.url), "{cmd}");
    let out = Command::new("sh").arg("-c").arg(format!("{cmd} -sS --fail --max-time 10")).output().unwrap();
    assert!(out.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["serverTitle"], "authd");
}

#[tokio::test]
async fn admin_password_is_printed_once_and_works() {
    let s = Server::start(&[]);
    let pw = s.admin_pw();
    assert!(pw.len() >= 16, "a short first password: {pw:?}");
    assert_eq!(s.log_text().matches(&pw).count(), 1, "printed exactly once");
    let body = s.login_ok(&s.client(), "admin", &pw).await;
    assert_eq!(body["session"]["name"], "JSESSIONID");
}

/// Runs curl; returns (exit code, stdout).
fn curl(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("curl").args(["-sS", "--max-time", "10"]).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn stock_curl_trusts_the_certificate_by_ip_and_name() {
    let s = Server::start(&["--tls-san", "auth.example.test"]);
    let cert = s.data.join("tls/cert.pem");
    let cert = cert.to_str().unwrap();
    let port = s.port.to_string();

    let (code, out) = curl(&["--cacert", cert, &s.at("/rest/api/2/serverInfo")]);
    assert_eq!(code, Some(0), "curl by IP: {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deploymentType"], "Server");

    for name in ["localhost", "auth.example.test"] {
        let resolve = format!("{name}:{port}:127.0.0.1");
        let url = format!("https://{name}:{port}/rest/api/2/serverInfo");
        let (code, out) = curl(&["--cacert", cert, "--resolve", &resolve, &url]);
        assert_eq!(code, Some(0), "curl to {name}: {out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["baseUrl"], format!("https://{name}:{port}"), "baseUrl follows the Host");
    }
    // A name the certificate does not cover is refused by curl, as it should be.
    let resolve = format!("other.example.test:{port}:127.0.0.1");
    let url = format!("https://other.example.test:{port}/rest/api/2/serverInfo");
    let (code, _) = curl(&["--cacert", cert, "--resolve", &resolve, &url]);
    assert_ne!(code, Some(0), "the certificate must not cover every name");
    // And without --cacert the self-signed certificate is not trusted.
    let (code, _) = curl(&[&s.at("/rest/api/2/serverInfo")]);
    assert_ne!(code, Some(0));
}

/// An operator's own self-signed certificate for `names` and its private
/// key (mode 0600), written to `dir`; the pair and the two paths.
fn own_pair(dir: &Path, names: &[&str]) -> (rcgen::CertifiedKey<rcgen::KeyPair>, PathBuf, PathBuf) {
    let own =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert_path = dir.join("own-cert.pem");
    let key_path = dir.join("own-key.pem");
    std::fs::write(&cert_path, own.cert.pem()).unwrap();
    std::fs::write(&key_path, own.signing_key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (own, cert_path, key_path)
}

/// The banner's curl line for an operator's certificate that does not name
/// 127.0.0.1: by the base URL's host when the certificate covers it, pinned
/// to the address with `--resolve`; otherwise it says what to fill in.
#[tokio::test]
async fn the_banner_curl_line_uses_a_name_an_own_certificate_covers() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, cert_path, key_path) = own_pair(tmp.path(), &["auth.example.test"]);
    let files = ["--cert", cert_path.to_str().unwrap(), "--key", key_path.to_str().unwrap()];

    let mut args = files.to_vec();
    args.extend(["--base-url", "https://auth.example.test"]);
    let s = Server::start_in(&tmp.path().join("db"), &args);
    let log = s.log_text();
    let line = log.lines().find(|l| l.contains("curl --cacert")).expect("no `curl --cacert` example");
    let cmd = &line[line.find("curl").unwrap()..];
    assert!(cmd.contains(&format!("--resolve auth.example.test:{}:127.0.0.1", s.port)), "{cmd}");
    let out = Command::new("sh").arg("-c").arg(format!("{cmd} -sS --fail --max-time 10")).output().unwrap();
    assert!(out.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["serverTitle"], "authd");
    drop(s);

    // No flag names a host the certificate covers: the line says what to fill in.
    let s = Server::start_in(&tmp.path().join("db2"), &files);
    let log = s.log_text();
    let line = log.lines().find(|l| l.contains("curl --cacert")).expect("no `curl --cacert` example");
    assert!(
        line.contains(&format!("--resolve NAME:{}:127.0.0.1 https://NAME:{}/", s.port, s.port)),
        "{line}"
    );
    let hint =
        log.lines().find(|l| l.trim_start().starts_with("NAME:")).expect("no line saying what NAME is");
    assert!(hint.contains("it covers neither 127.0.0.1 nor localhost"), "{hint}");
}

#[tokio::test]
async fn own_certificate_and_key_are_used() {
    let tmp = tempfile::tempdir().unwrap();
    let (own, cert_path, key_path) = own_pair(tmp.path(), &["localhost", "127.0.0.1"]);
    let s = Server::start_in(
        &tmp.path().join("db"),
        &["--cert", cert_path.to_str().unwrap(), "--key", key_path.to_str().unwrap()],
    );
    let pem = own.cert.pem();
    let c = client_for(pem.as_bytes(), true);
    let r = c.get(s.at("/rest/api/2/serverInfo")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the server must present the given certificate");
    let squashed: String = s.log_text().chars().filter(|c| *c != ':').collect::<String>().to_lowercase();
    assert!(squashed.contains(&cert_sha256_hex(pem.as_bytes())), "banner fingerprint of the own certificate");
    // The CLI still reaches the running server (it pins whatever certificate is in use).
    let out = s.authd(&["user", "list", "--json"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // `authd cert` names the certificate being served, not a self-signed one.
    let out = s.authd(&["cert"], None);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && text.contains(cert_path.to_str().unwrap()), "{text}");
    let squashed: String = text.chars().filter(|c| *c != ':').collect::<String>().to_lowercase();
    assert!(squashed.contains(&cert_sha256_hex(pem.as_bytes())), "{text}");
}
