//! SPEC §2 and §3: the administrative command line, with the server
//! running (through its admin API) and stopped (on the database directly),
//! and the admin API's role check.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the CLI on `data` and asserts success.
fn ok(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let o = authd_cli(data, args, stdin);
    assert!(o.status.success(), "authd {args:?} failed ({:?}): {}{}", o.status, stdout(&o), stderr(&o));
    o
}

/// Runs the CLI on `data` and asserts a clean failure (non-zero, a message, no panic).
fn fails(data: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let o = authd_cli(data, args, stdin);
    let err = stderr(&o);
    assert!(!o.status.success(), "authd {args:?} should have failed: {}", stdout(&o));
    assert_ne!(o.status.code(), Some(101), "authd {args:?} panicked: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.trim().is_empty(), "authd {args:?} failed without a message");
    err
}

/// A data dir that outlives the servers started on it.
fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    (tmp, data)
}

/// `authd session list --json` as values.
fn session_list(data: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["session", "list", "--json"];
    args.extend_from_slice(extra);
    let o = ok(data, &args, None);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

/// `authd user list --json` as values.
fn user_list(data: &Path) -> Vec<Value> {
    let o = ok(data, &["user", "list", "--json"], None);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

/// Logs in with a fresh client; returns (session ID, handle).
async fn login_with_handle(s: &Server, user: &str, pw: &str) -> (String, String) {
    let r = s.login(&s.bare_client(), user, pw).await;
    assert_eq!(r.status(), 200, "login of {user}");
    let handle = header(&r, "x-asessionid").expect("X-ASESSIONID");
    let body: Value = r.json().await.unwrap();
    (body["session"]["value"].as_str().unwrap().to_string(), handle)
}

#[tokio::test]
async fn user_add_while_running_goes_through_the_admin_api() {
    let s = Server::start(&[]);
    let o = ok(&s.data, &["user", "add", "dave", "--password-stdin"], Some("dave's long password\n"));
    assert!(!stderr(&o).to_lowercase().contains("stop"), "nothing tells the user to stop the server");
    // The server, not the CLI, wrote the user: its admin API answered.
    let m = metrics_text(&s).await;
    assert!(
        m.lines().any(|l| l.starts_with("authd_http_requests_total{")
            && l.contains("admin")
            && !l.ends_with(" 0")),
        "no admin API request was counted:\n{m}"
    );
    s.login_ok(&s.client(), "dave", "dave's long password").await;
    // The trailing newline of the piped password is not part of it.
    assert_eq!(s.login(&s.client(), "dave", "dave's long password\n").await.status(), 401);
}

#[tokio::test]
async fn user_add_with_the_server_stopped_writes_the_database() {
    let (_tmp, data) = data_dir();
    let s = Server::start_in(&data, &[]);
    let pw = s.admin_pw();
    assert_eq!(s.stop().code(), Some(0));
    ok(&data, &["user", "add", "erin", "--password-stdin"], Some("erin's long password"));
    let s = Server::start_in(&data, &[]);
    assert!(s.admin_password.is_none());
    s.login_ok(&s.client(), "erin", "erin's long password").await;
    s.login_ok(&s.client(), "admin", &pw).await;
}

#[tokio::test]
async fn duplicate_user_names_are_refused_case_insensitively() {
    let (_tmp, data) = data_dir();
    let s = Server::start_in(&data, &[]);
    ok(&data, &["user", "add", "Fiona", "--password-stdin"], Some("fiona's long password"));
    for dup in ["fiona", "FIONA", "Fiona"] {
        let err = fails(&data, &["user", "add", dup, "--password-stdin"], Some("another long password"));
        assert!(err.to_lowercase().contains("exists"), "unclear message for {dup}: {err}");
        assert!(!err.to_lowercase().contains("stop"), "{err}");
    }
    s.login_ok(&s.client(), "fiona", "fiona's long password").await;
    assert_eq!(s.login(&s.client(), "fiona", "another long password").await.status(), 401);
    assert_eq!(s.stop().code(), Some(0));

    // The same with the server stopped.
    let err = fails(&data, &["user", "add", "fIoNa", "--password-stdin"], Some("another long password"));
    assert!(err.to_lowercase().contains("exists"), "{err}");
    let names: Vec<Value> = user_list(&data).iter().map(|u| u["name"].clone()).collect();
    assert_eq!(
        names.iter().filter(|n| n.as_str().is_some_and(|n| n.eq_ignore_ascii_case("fiona"))).count(),
        1
    );
}

#[tokio::test]
async fn user_list_json_shows_the_users_and_no_secrets() {
    let (_tmp, data) = data_dir();
    let s = Server::start_in(&data, &[]);
    s.add_user("gus", "gus's long password", &["--email", "gus@example.com", "--unverified"]);
    s.add_user("hana", "hana's long password", &["--admin"]);
    s.login_ok(&s.client(), "admin", &s.admin_pw()).await;

    let check = |users: &[Value], raw: &str| {
        assert!(!raw.contains("$argon2"), "password hashes leak into the listing: {raw}");
        assert!(!raw.contains("long password"), "{raw}");
        let find = |n: &str| {
            users.iter().find(|u| u["name"] == n).unwrap_or_else(|| panic!("{n} missing: {raw}")).clone()
        };
        let admin = find("admin");
        assert_eq!(admin["roles"], json!(["admin"]), "{admin}");
        assert_eq!(admin["loginCount"], 1, "{admin}");
        let gus = find("gus");
        assert_eq!(gus["email"], "gus@example.com");
        assert_eq!(gus["emailVerified"], false, "{gus}");
        assert_eq!(gus["roles"], json!([]), "{gus}");
        assert_eq!(gus["loginCount"], 0, "{gus}");
        let hana = find("hana");
        assert_eq!(hana["roles"], json!(["admin"]), "{hana}");
        assert_eq!(users.len(), 3, "{raw}");
    };
    let o = ok(&data, &["user", "list", "--json"], None);
    check(&serde_json::from_slice::<Vec<Value>>(&o.stdout).unwrap(), &stdout(&o));
    assert_eq!(s.stop().code(), Some(0));
    let o = ok(&data, &["user", "list", "--json"], None);
    check(&serde_json::from_slice::<Vec<Value>>(&o.stdout).unwrap(), &stdout(&o));
    // The table form names them too.
    let o = ok(&data, &["user", "list"], None);
    for n in ["admin", "gus", "hana"] {
        assert!(stdout(&o).contains(n), "{}", stdout(&o));
    }
}

#[tokio::test]
async fn user_passwd_ends_sessions_and_sets_the_new_password() {
    let (_tmp, data) = data_dir();
    let s = Server::start_in(&data, &[]);
    s.add_user("ivan", "ivan's old password", &[]);
    let (a, _) = login_with_handle(&s, "ivan", "ivan's old password").await;
    let (b, _) = login_with_handle(&s, "ivan", "ivan's old password").await;
    let admin = login_id(&s, "admin", &s.admin_pw()).await;
    ok(&data, &["user", "passwd", "ivan", "--password-stdin"], Some("ivan's new password"));
    assert_eq!(session_status(&s, &a).await, 401, "old session survived a password change");
    assert_eq!(session_status(&s, &b).await, 401, "old session survived a password change");
    assert_eq!(session_status(&s, &admin).await, 200, "another user's session was ended");
    assert_eq!(s.login(&s.client(), "ivan", "ivan's old password").await.status(), 401);
    let (c, _) = login_with_handle(&s, "ivan", "ivan's new password").await;
    assert_eq!(s.stop().code(), Some(0));

    // With the server stopped.
    ok(&data, &["user", "passwd", "ivan", "--password-stdin"], Some("ivan's third password"));
    let s = Server::start_in(&data, &[]);
    assert_eq!(session_status(&s, &c).await, 401);
    assert_eq!(s.login(&s.client(), "ivan", "ivan's new password").await.status(), 401);
    s.login_ok(&s.client(), "ivan", "ivan's third password").await;
    fails(&data, &["user", "passwd", "nobody", "--password-stdin"], Some("some long password"));
}

#[tokio::test]
async fn user_del_ends_sessions_and_logins() {
    let s = Server::start(&[]);
    s.add_user("jack", "jack's long password", &[]);
    let (id, _) = login_with_handle(&s, "jack", "jack's long password").await;
    ok(&s.data, &["user", "del", "jack"], None);
    assert_eq!(session_status(&s, &id).await, 401);
    let r = s.login(&s.client(), "jack", "jack's long password").await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATED_FAILED"));
    assert!(user_list(&s.data).iter().all(|u| u["name"] != "jack"));
    let err = fails(&s.data, &["user", "del", "jack"], None);
    assert!(err.contains("jack"), "{err}");
    // The name is free again.
    s.add_user("Jack", "jack's new long password", &[]);
    s.login_ok(&s.client(), "jack", "jack's new long password").await;
}

/// Commands run at once on a data dir with no server: each waits its turn
/// for the file instead of taking the one that holds it for a server.
#[test]
fn commands_run_at_once_without_a_server_take_turns() {
    let (_tmp, data) = data_dir();
    ok(&data, &["user", "add", "first", "--password-stdin"], Some("first's long password"));
    let names = ["ann", "bob", "cid", "dee", "eve", "fox"];
    std::thread::scope(|scope| {
        for name in names {
            let data = &data;
            scope.spawn(move || {
                let pw = format!("{name}'s long password");
                ok(data, &["user", "add", name, "--password-stdin"], Some(&pw));
            });
        }
    });
    let listed: Vec<String> =
        user_list(&data).iter().map(|u| u["name"].as_str().unwrap().to_string()).collect();
    for name in names {
        assert!(listed.iter().any(|n| n == name), "{name} missing from {listed:?}");
    }
}

#[tokio::test]
async fn user_verify_turns_409_into_200() {
    let (_tmp, data) = data_dir();
    let s = Server::start_in(&data, &[]);
    s.add_user("kim", "kim's long password", &["--email", "kim@example.com", "--unverified"]);
    assert_eq!(s.login(&s.client(), "kim", "kim's long password").await.status(), 409);
    ok(&data, &["user", "verify", "kim"], None);
    s.login_ok(&s.client(), "kim", "kim's long password").await;
    let kim = user_list(&data).into_iter().find(|u| u["name"] == "kim").unwrap();
    assert_eq!(kim["emailVerified"], true);

    // With the server stopped.
    s.add_user("lee", "lee's long password", &["--email", "lee@example.com", "--unverified"]);
    assert_eq!(s.stop().code(), Some(0));
    ok(&data, &["user", "verify", "lee"], None);
    let s = Server::start_in(&data, &[]);
    s.login_ok(&s.client(), "lee", "lee's long password").await;
}

#[tokio::test]
async fn unverified_without_an_email_is_still_unverified() {
    // SPEC §2: `authd user add NAME [--email E] [--admin] [--unverified]`.
    let (_tmp, data) = data_dir();
    let s = Server::start_in(&data, &[]);
    s.add_user("ned", "ned's long password", &["--unverified"]);
    assert_eq!(s.login(&s.client(), "ned", "ned's long password").await.status(), 409);
    let ned = user_list(&data).into_iter().find(|u| u["name"] == "ned").unwrap();
    assert_eq!(ned["emailVerified"], false, "{ned}");
    ok(&data, &["user", "verify", "ned"], None);
    s.login_ok(&s.client(), "ned", "ned's long password").await;

    // With the server stopped, the same.
    assert_eq!(s.stop().code(), Some(0));
    let o =
        ok(&data, &["user", "add", "ola", "--unverified", "--password-stdin"], Some("ola's long password"));
    assert!(verification_link(&stdout(&o)).is_none(), "a link without an address: {}", stdout(&o));
    let s = Server::start_in(&data, &[]);
    assert_eq!(s.login(&s.client(), "ola", "ola's long password").await.status(), 409);
}

#[tokio::test]
async fn an_email_without_unverified_needs_no_verification() {
    let s = Server::start(&[]);
    let o = ok(
        &s.data,
        &["user", "add", "mia", "--email", "mia@example.com", "--password-stdin"],
        Some("mia's long password"),
    );
    s.login_ok(&s.client(), "mia", "mia's long password").await;
    // SPEC §3: `user add --email` records a link all the same; it confirms.
    let link = verification_link(&stdout(&o)).unwrap_or_else(|| panic!("no link: {}", stdout(&o)));
    let r = s.client().get(&link).send().await.unwrap();
    assert_eq!(r.status(), 200, "{link}");
    assert!(s.log_text().contains(&link), "the link is not in the server's log");
    s.login_ok(&s.client(), "mia", "mia's long password").await;
}

/// Finds an `https://` link that mentions verification in `text`.
fn verification_link(text: &str) -> Option<String> {
    text.lines().filter(|l| l.to_lowercase().contains("verif")).find_map(|l| {
        let start = l.find("https://")?;
        let link: String = l[start..].chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
        Some(link.trim_end_matches(['.', ',', ')', '>']).to_string())
    })
}

#[tokio::test]
async fn the_verification_link_in_the_log_verifies_the_address() {
    let s = Server::start(&[]);
    let o = ok(
        &s.data,
        &["user", "add", "nia", "--email", "nia@example.com", "--unverified", "--password-stdin"],
        Some("nia's long password"),
    );
    assert_eq!(s.login(&s.client(), "nia", "nia's long password").await.status(), 409);
    // The server's log is the local mail sink; the CLI may echo the link too.
    let deadline = Instant::now() + Duration::from_secs(3);
    let link = loop {
        let seen = format!("{}\n{}\n{}", s.log_text(), stdout(&o), stderr(&o));
        if let Some(l) = verification_link(&seen) {
            break l;
        }
        assert!(Instant::now() < deadline, "no verification link was logged:\n{seen}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let r = s.client().get(&link).send().await.unwrap();
    assert!(r.status().is_success() || r.status().is_redirection(), "{link}: {}", r.status());
    s.login_ok(&s.client(), "nia", "nia's long password").await;
    // A link works once.
    let again = s.client().get(&link).send().await.unwrap();
    assert!(again.status().is_client_error() || again.status().is_success(), "{}", again.status());
}

#[tokio::test]
async fn session_list_shows_handles_never_ids() {
    let (_tmp, data) = data_dir();
    let s = Server::start_in(&data, &[]);
    s.add_user("olga", "olga's long password", &[]);
    let (admin_id, admin_handle) = login_with_handle(&s, "admin", &s.admin_pw()).await;
    let (olga_id, olga_handle) = login_with_handle(&s, "olga", "olga's long password").await;

    let check = |running: bool| {
        let what = if running { "running" } else { "stopped" };
        let all = session_list(&data, &[]);
        assert_eq!(all.len(), 2, "{what}: {all:?}");
        let mine = all.iter().find(|v| v["handle"] == admin_handle.as_str()).unwrap_or_else(|| {
            panic!("{what}: handle {admin_handle} not listed: {all:?}");
        });
        assert_eq!(mine["user"], "admin");
        assert!(all.iter().any(|v| v["handle"] == olga_handle.as_str() && v["user"] == "olga"), "{all:?}");
        let only = session_list(&data, &["--user", "olga"]);
        assert_eq!(only.len(), 1, "{what}: {only:?}");
        assert_eq!(only[0]["handle"], olga_handle.as_str());
        for args in [&["session", "list", "--json"][..], &["session", "list"][..]] {
            let o = ok(&data, args, None);
            let text = format!("{}{}", stdout(&o), stderr(&o));
            for id in [&admin_id, &olga_id] {
                assert!(!text.contains(id.as_str()), "{what}: a session ID is listed: {text}");
            }
            assert!(text.contains(&admin_handle), "{what}: {text}");
        }
    };
    check(true);
    assert_eq!(s.stop().code(), Some(0));
    check(false);
}

#[tokio::test]
async fn session_revoke_by_handle_running_and_stopped() {
    let (_tmp, data) = data_dir();
    let s = Server::start_in(&data, &[]);
    let pw = s.admin_pw();
    let (a, ha) = login_with_handle(&s, "admin", &pw).await;
    let (b, hb) = login_with_handle(&s, "admin", &pw).await;
    ok(&data, &["session", "revoke", &ha], None);
    assert_eq!(session_status(&s, &a).await, 401);
    assert_eq!(session_status(&s, &b).await, 200, "only the named session ends");
    assert!(session_list(&data, &[]).iter().all(|v| v["handle"] != ha.as_str()));
    fails(&data, &["session", "revoke", &ha], None);
    fails(&data, &["session", "revoke", "not-a-handle"], None);

    let (c, hc) = login_with_handle(&s, "admin", &pw).await;
    assert_eq!(s.stop().code(), Some(0));
    ok(&data, &["session", "revoke", &hc], None);
    let s = Server::start_in(&data, &[]);
    assert_eq!(session_status(&s, &c).await, 401);
    assert_eq!(session_status(&s, &b).await, 200);
    let listed = session_list(&data, &[]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["handle"], hb.as_str());
}

#[tokio::test]
async fn session_revoke_by_user_running_and_stopped() {
    let (_tmp, data) = data_dir();
    let s = Server::start_in(&data, &[]);
    s.add_user("pia", "pia's long password", &[]);
    let (p1, _) = login_with_handle(&s, "pia", "pia's long password").await;
    let (p2, _) = login_with_handle(&s, "pia", "pia's long password").await;
    let (admin, _) = login_with_handle(&s, "admin", &s.admin_pw()).await;
    ok(&data, &["session", "revoke", "--user", "pia"], None);
    assert_eq!(session_status(&s, &p1).await, 401);
    assert_eq!(session_status(&s, &p2).await, 401);
    assert_eq!(session_status(&s, &admin).await, 200, "another user's session was ended");
    // Signing out is not locking out.
    let (p3, _) = login_with_handle(&s, "pia", "pia's long password").await;
    assert_eq!(s.stop().code(), Some(0));

    ok(&data, &["session", "revoke", "--user", "PIA"], None);
    let s = Server::start_in(&data, &[]);
    assert_eq!(session_status(&s, &p3).await, 401);
    assert_eq!(session_status(&s, &admin).await, 200);
    fails(&data, &["session", "revoke", "--user", "nobody"], None);
}

#[tokio::test]
async fn cert_prints_the_path_and_fingerprint() {
    let (_tmp, data) = data_dir();
    // With names of its own: `authd cert` (which knows none) only reads.
    let s = Server::start_in(&data, &["--tls-san", "app.example"]);
    let pem = s.cert_pem();
    let hex = cert_sha256_hex(&pem);
    let check = |o: &Output| {
        let out = stdout(o);
        assert!(out.contains(&data.join("tls/cert.pem").display().to_string()), "no path: {out}");
        let squashed: String = out.chars().filter(|c| *c != ':').collect::<String>().to_lowercase();
        assert!(squashed.contains(&hex), "fingerprint {hex} missing: {out}");
    };
    check(&ok(&data, &["cert"], None));
    assert_eq!(s.stop().code(), Some(0));
    check(&ok(&data, &["cert"], None));
    assert!(std::fs::read(data.join("tls/cert.pem")).unwrap() == pem, "authd cert replaced the certificate");
}

#[test]
fn data_may_be_given_before_the_command() {
    // `--data` is accepted wherever a flag may stand: `authd --data DIR user list`.
    let (_tmp, data) = data_dir();
    let d = data.to_str().unwrap();
    let o = std::process::Command::new(BIN)
        .args(["--data", d, "user", "add", "quinn", "--password-stdin"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    // No password on stdin: a clean failure about the password, not about --data.
    assert!(!String::from_utf8_lossy(&o.stderr).contains("cannot be used with"), "{}", stderr(&o));
    for args in [
        &["--data", d, "cert"][..],
        &["--data", d, "user", "add", "quinn", "--password-stdin"][..],
        &["--data", d, "user", "list"][..],
        &["--data", d, "session", "list"][..],
    ] {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(args);
        let o = run_command(cmd, Some("quinn's long password\n"), Some(Duration::from_secs(30)));
        assert!(o.status.success(), "authd {args:?}: {}", stderr(&o));
    }
}

#[test]
fn a_data_dir_that_is_not_there_is_named_and_not_made() {
    // A mistyped --data must not pass for an empty database: only `user add`
    // (and the server, and `authd cert`) make a data dir.
    if redb_only("a_data_dir_that_is_not_there_is_named_and_not_made") {
        return;
    }
    let (_tmp, data) = data_dir();
    let shown = data.display().to_string();
    for args in [
        &["user", "list"][..],
        &["user", "del", "quinn"][..],
        &["session", "list"][..],
        &["session", "revoke", "--user", "quinn"][..],
        &["token", "list", "quinn"][..],
    ] {
        let err = fails(&data, args, None);
        assert!(err.contains(&format!("{shown} does not exist")), "authd {args:?}: {err}");
        assert!(!data.exists(), "authd {args:?} made the data dir");
    }
    let o = std::process::Command::new(BIN)
        .args(["migrate", "--from", &shown, "--to", &format!("{shown}-copy")])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("{shown} does not exist")), "{}", stderr(&o));
    assert!(!data.exists() && !Path::new(&format!("{shown}-copy")).exists());
    // Nor does a data dir without a database (`authd cert` made only tls/).
    ok(&data, &["cert"], None);
    let err = fails(&data, &["user", "list"], None);
    assert!(err.contains("authd.redb does not exist"), "{err}");
    assert!(!data.join("authd.redb").exists(), "user list made a database");
    // `user add` makes it, and the others then work on it.
    ok(&data, &["user", "add", "quinn", "--password-stdin"], Some("a long enough password\n"));
    assert_eq!(user_list(&data).len(), 1);
}

#[tokio::test]
async fn admin_api_requires_the_admin_role() {
    let s = Server::start(&[]);
    s.add_user("rita", "rita's long password", &[]);
    let users = s.at("/rest/authd/1/admin/users");

    let r = s.bare_client().get(&users).send().await.unwrap();
    assert_eq!(r.status(), 401, "anonymous");
    assert_jira_error(&r.json().await.unwrap());

    let c = s.client();
    s.login_ok(&c, "rita", "rita's long password").await;
    let r = c.get(&users).send().await.unwrap();
    assert_eq!(r.status(), 403, "a user without the admin role");
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHORISATION_FAILED"));
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("rita"));
    assert_jira_error(&r.json().await.unwrap());
    let r = c
        .post(&users)
        .header("x-atlassian-token", "no-check")
        .json(&json!({ "name": "sneaky", "password": "sneaky's long password", "admin": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(user_list(&s.data).iter().all(|u| u["name"] != "sneaky"), "a non-admin created a user");

    let admin = s.client();
    s.login_ok(&admin, "admin", &s.admin_pw()).await;
    let r = admin.get(&users).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let list: Vec<Value> = r.json().await.unwrap();
    assert!(list.iter().any(|u| u["name"] == "rita"));
}

#[tokio::test]
async fn user_unlock_lifts_the_login_challenge() {
    let s = Server::start(&["--max-failed-logins", "2"]);
    s.add_user("sam", "sam's long password", &[]);
    let (live, _) = login_with_handle(&s, "sam", "sam's long password").await;
    for _ in 0..2 {
        assert_eq!(s.login(&s.client(), "sam", "wrong password").await.status(), 401);
    }
    let r = s.login(&s.client(), "sam", "sam's long password").await;
    assert_eq!(r.status(), 403, "after 2 failures the API demands a challenge");
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("AUTHENTICATION_DENIED"));
    let reason = header(&r, "x-authentication-denied-reason").unwrap_or_default();
    assert!(reason.starts_with("CAPTCHA_CHALLENGE"), "{reason}");
    assert!(reason.contains("login-url=") && reason.contains("/login.jsp"), "{reason}");
    assert!(header(&r, "retry-after").is_some_and(|v| v.parse::<u64>().is_ok()), "Retry-After");
    assert_eq!(session_status(&s, &live).await, 200, "the lockout must not throw the user out");

    ok(&s.data, &["user", "unlock", "sam"], None);
    s.login_ok(&s.client(), "sam", "sam's long password").await;
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id_with_owasp_parameters() {
    let (_tmp, data) = data_dir();
    let s = Server::start_in(&data, &[]);
    s.add_user("tom", "tom's very own password", &[]);
    assert_eq!(s.stop().code(), Some(0));
    ok(&data, &["user", "add", "una", "--password-stdin"], Some("una's very own password"));
    let db = stored_bytes(&data);
    let find = |needle: &[u8]| db.windows(needle.len()).filter(|w| *w == needle).count();
    // admin, tom (through the API) and una (directly): three hashes.
    assert!(find(b"$argon2id$v=19$m=19456,t=2,p=1$") >= 3, "argon2id m=19456,t=2,p=1 hashes not found");
    assert_eq!(find(b"tom's very own password"), 0, "a password is stored in clear");
    assert_eq!(find(b"una's very own password"), 0, "a password is stored in clear");
}

// ---------------------------------------------------------------------------
// SPEC §1: every flag also reads an AUTHD_* variable; a bad flag or value
// exits 2 with one line naming the flag.

/// Runs `authd ARGS` with extra environment variables (and the suite's store
/// settings for `data`), killed if it is still running after 10 s.
fn authd_env(data: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .arg("--data")
        .arg(data)
        .env_remove("AUTHD_LOG")
        .envs(store_env(data))
        .envs(env.iter().copied());
    run_command(cmd, stdin, Some(Duration::from_secs(10)))
}

/// Asserts exit status 2 and one line on stderr naming every one of `names`.
fn assert_bad_value(out: &Output, names: &[&str], what: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{what}: exit status {:?}, stderr {err}", out.status);
    let line = err.trim_end();
    assert!(!line.is_empty(), "{what}: nothing on stderr");
    assert!(!line.contains('\n'), "{what}: the error is not one line:\n{err}");
    assert!(!line.contains("panicked"), "{what}: {err}");
    for name in names {
        assert!(line.contains(name), "{what}: {name} is not named: {err}");
    }
    line.to_string()
}

#[tokio::test]
async fn switches_take_1_yes_on_and_their_opposites_from_the_environment() {
    let (_tmp, data) = data_dir();
    ok(&data, &["user", "add", "vic", "--password-stdin"], Some("vic's long password"));

    // AUTHD_JSON: JSON for the usual "on" spellings, the table for "off" and empty.
    for on in ["1", "true", "TRUE", "yes", "Yes", "on", "ON", "y"] {
        let o = authd_env(&data, &["user", "list"], &[("AUTHD_JSON", on)], None);
        assert!(o.status.success(), "AUTHD_JSON={on}: {}", stderr(&o));
        let list: Vec<Value> = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("AUTHD_JSON={on} did not print JSON ({e}): {}", stdout(&o)));
        assert!(list.iter().any(|u| u["name"] == "vic"), "AUTHD_JSON={on}");
    }
    for off in ["0", "false", "False", "no", "NO", "off", "Off", "n", ""] {
        let o = authd_env(&data, &["user", "list"], &[("AUTHD_JSON", off)], None);
        assert!(o.status.success(), "AUTHD_JSON={off:?}: {}", stderr(&o));
        assert!(stdout(&o).starts_with("NAME"), "AUTHD_JSON={off:?} printed: {}", stdout(&o));
    }
    // On the command line it stays a plain switch.
    let o = ok(&data, &["user", "list", "--json"], None);
    assert!(serde_json::from_slice::<Vec<Value>>(&o.stdout).is_ok(), "{}", stdout(&o));
    let o = authd_env(&data, &["user", "list", "--json=yes"], &[], None);
    assert_ne!(o.status.code(), Some(0), "--json takes no value on the command line");
    // Anything else is a bad value of that flag.
    let o = authd_env(&data, &["user", "list"], &[("AUTHD_JSON", "banana")], None);
    assert_bad_value(&o, &["--json", "banana"], "AUTHD_JSON=banana");

    // user add: AUTHD_ADMIN, AUTHD_UNVERIFIED, AUTHD_PASSWORD_STDIN.
    let env = [("AUTHD_ADMIN", "1"), ("AUTHD_UNVERIFIED", "yes"), ("AUTHD_PASSWORD_STDIN", "on")];
    let o = authd_env(
        &data,
        &["user", "add", "wes", "--email", "wes@example.com"],
        &env,
        Some("wes's long password"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let env = [("AUTHD_ADMIN", "0"), ("AUTHD_UNVERIFIED", "off")];
    let o = authd_env(
        &data,
        &["user", "add", "xia", "--email", "xia@example.com", "--password-stdin"],
        &env,
        Some("xia's long password"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let users = user_list(&data);
    let get = |n: &str| users.iter().find(|u| u["name"] == n).cloned().unwrap_or_else(|| panic!("{n}"));
    assert_eq!(get("wes")["roles"], json!(["admin"]), "AUTHD_ADMIN=1");
    assert_eq!(get("wes")["emailVerified"], json!(false), "AUTHD_UNVERIFIED=yes");
    assert_eq!(get("xia")["roles"], json!([]), "AUTHD_ADMIN=0");
    assert_eq!(get("xia")["emailVerified"], json!(true), "AUTHD_UNVERIFIED=off");
    // The password can only come from standard input: turning that off is refused.
    let o = authd_env(
        &data,
        &["user", "add", "yan"],
        &[("AUTHD_PASSWORD_STDIN", "0")],
        Some("yan's long password"),
    );
    assert_bad_value(&o, &["--password-stdin"], "AUTHD_PASSWORD_STDIN=0");
    assert!(!user_list(&data).iter().any(|u| u["name"] == "yan"));

    // The server's switch: AUTHD_REQUIRE_LOGIN (an upstream that is not there:
    // with the switch on, anonymous API clients get 401 before any forwarding).
    for (value, want) in [("1", 401), ("yes", 401), ("On", 401), ("0", 502), ("no", 502), ("off", 502)] {
        let s = Server::try_start_env(
            &data,
            &["--upstream", "http://127.0.0.1:9"],
            &[("AUTHD_REQUIRE_LOGIN", value)],
        )
        .unwrap_or_else(|(st, log)| panic!("AUTHD_REQUIRE_LOGIN={value}: {st:?}: {log}"));
        let r =
            s.bare_client().get(s.at("/app/api")).header("user-agent", "curl/8.5.0").send().await.unwrap();
        assert_eq!(r.status(), want, "AUTHD_REQUIRE_LOGIN={value}");
        drop(s); // killed: a graceful stop would wait for the client's idle connection
    }
    let o = authd_env(&data, &["--listen", "127.0.0.1:0"], &[("AUTHD_REQUIRE_LOGIN", "2")], None);
    assert_bad_value(&o, &["--require-login"], "AUTHD_REQUIRE_LOGIN=2");
}

#[test]
fn an_unusable_cert_or_key_file_is_a_bad_value_of_that_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let own = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let file = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let cert = file("cert.pem", &own.cert.pem());
    let key = file("key.pem", &own.signing_key.serialize_pem());
    let missing = tmp.path().join("missing.pem").to_str().unwrap().to_string();
    let text = file("text.pem", "this is not PEM\n");
    let bad_cert =
        file("bad-cert.pem", "-----BEGIN CERTIFICATE-----\nAAAAAAAAAAAA\n-----END CERTIFICATE-----\n");
    let bad_key =
        file("bad-key.pem", "-----BEGIN PRIVATE KEY-----\nAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n");
    let dir = tmp.path().to_str().unwrap().to_string();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other_key = file("other-key.pem", &other.signing_key.serialize_pem());
    let cases: &[(&str, &str, &str, &str)] = &[
        // (--cert, --key, the flag named, the file named)
        (&missing, &missing, "--cert", &missing),
        (&missing, &key, "--cert", &missing),
        (&cert, &missing, "--key", &missing),
        (&text, &key, "--cert", &text),
        (&cert, &text, "--key", &text),
        (&bad_cert, &key, "--cert", &bad_cert),
        (&cert, &bad_key, "--key", &bad_key),
        (&dir, &key, "--cert", &dir),
        (&cert, &dir, "--key", &dir),
        (&key, &key, "--cert", &key), // a key where the certificate should be
        (&cert, &other_key, "--key", &other_key), // a key, but not this certificate's
    ];
    let data = tmp.path().join("db");
    for (c, k, flag, named) in cases {
        let what = format!("--cert {c} --key {k}");
        let o = authd_env(&data, &["--listen", "127.0.0.1:0", "--cert", c, "--key", k], &[], None);
        assert_bad_value(&o, &[flag, named], &what);
        // The same through the environment.
        let o = authd_env(&data, &["--listen", "127.0.0.1:0"], &[("AUTHD_CERT", c), ("AUTHD_KEY", k)], None);
        assert_bad_value(&o, &[flag, named], &format!("AUTHD_CERT/AUTHD_KEY: {what}"));
    }
    // The good pair starts.
    let s = Server::try_start_in(&data, &["--cert", &cert, "--key", &key])
        .unwrap_or_else(|(st, log)| panic!("{st:?}: {log}"));
    assert_eq!(s.stop().code(), Some(0));
}

#[test]
fn bad_certificate_names_and_data_paths_are_bad_values() {
    let (tmp, data) = data_dir();
    for v in ["", "bad name!", "a..example", "app.example,"] {
        let o = authd_env(&data, &["--listen", "127.0.0.1:0", "--tls-san", v], &[], None);
        assert_bad_value(&o, &["--tls-san"], &format!("--tls-san {v:?}"));
        let o = authd_env(&data, &["--listen", "127.0.0.1:0"], &[("AUTHD_TLS_SAN", v)], None);
        assert_bad_value(&o, &["--tls-san"], &format!("AUTHD_TLS_SAN={v:?}"));
    }
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    for (d, what) in [(file.clone(), "a file"), (file.join("sub"), "a path under a file")] {
        let o = authd_env(&d, &["--listen", "127.0.0.1:0"], &[], None);
        assert_bad_value(&o, &["--data", &d.display().to_string()], what);
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

#[tokio::test]
async fn cli_output_to_a_closed_pipe_and_long_passwords_fail_cleanly() {
    let (_tmp, data) = data_dir();
    let s = Server::start_in(&data, &[]);
    s.add_user("zed", "zed's long password", &[]);
    // `authd token add zed | head -0`: the reader has gone before the token is printed.
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["token", "add", "zed", "--label", "piped", "--data"]).arg(&data).envs(store_env(&data));
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(101), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // A password over the limit gets the same words from the running server
    // as from the database.
    let long = "p".repeat(2000);
    let running = fails(&data, &["user", "add", "lee", "--password-stdin"], Some(&long));
    assert_eq!(s.stop().code(), Some(0));
    let stopped = fails(&data, &["user", "add", "lee", "--password-stdin"], Some(&long));
    assert!(running.contains("at most 1024 bytes"), "{running}");
    assert_eq!(running, stopped);
}

#[test]
fn a_listen_address_that_cannot_be_bound_is_a_bad_value_of_listen() {
    let (_tmp, data) = data_dir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let in_use = taken.local_addr().unwrap().to_string();
    // 192.0.2.1 (TEST-NET-1) is no address of this machine.
    for addr in [in_use.as_str(), "192.0.2.1:8443"] {
        let o = authd_env(&data, &["--listen", addr], &[], None);
        assert_bad_value(&o, &["--listen", addr], &format!("--listen {addr}"));
        let o = authd_env(&data, &[], &[("AUTHD_LISTEN", addr)], None);
        assert_bad_value(&o, &["--listen", addr], &format!("AUTHD_LISTEN={addr}"));
        let o = authd_env(&data, &["serve", "--listen", addr], &[], None);
        assert_bad_value(&o, &["--listen", addr], &format!("serve --listen {addr}"));
    }
    drop(taken);

    // A second authd on the same data dir and port still says the data dir is taken.
    if redb_only("a_listen_address_that_cannot_be_bound_is_a_bad_value_of_listen (same data dir)") {
        return;
    }
    let s = Server::start_in(&data, &[]);
    let addr = format!("127.0.0.1:{}", s.port);
    let o = authd_env(&data, &["--listen", &addr], &[], None);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&data.display().to_string()) && err.contains("in use"), "{err}");
}

#[test]
fn every_duration_flag_names_its_own_limit_however_far_over() {
    let (_tmp, data) = data_dir();
    for (flag, limit) in [
        ("--idle-timeout", "3650d"),
        ("--absolute-timeout", "3650d"),
        ("--remember-me-age", "400d"),
        ("--remember-me-grace", "1h"),
        ("--touch-interval", "1d"),
        ("--sweep-interval", "1d"),
        ("--lockout", "1h"),
        ("--keep-alive-timeout", "1h"),
        ("--upstream-timeout", "1d"),
    ] {
        for value in ["4000d", "99999999999d", "99999999999999999999d", "18446744073709551615ms"] {
            let o = authd_env(&data, &["--listen", "127.0.0.1:0", flag, value], &[], None);
            let line = assert_bad_value(&o, &[flag], &format!("{flag} {value}"));
            assert!(
                line.contains(&format!("at most {limit}")),
                "{flag} {value}: not its limit {limit}: {line}"
            );
            if limit != "3650d" {
                assert!(!line.contains("3650d"), "{flag} {value}: contradicts its limit {limit}: {line}");
            }
        }
    }
}

#[test]
fn a_duplicate_user_is_named_once() {
    let (_tmp, data) = data_dir();
    ok(&data, &["user", "add", "bob", "--password-stdin"], Some("bob's long password"));
    // Stopped (the database directly), then running (the admin API).
    let err = fails(&data, &["user", "add", "BOB", "--password-stdin"], Some("another long password"));
    assert_eq!(err.trim_end(), "error: user 'BOB' already exists", "stopped");
    let s = Server::start_in(&data, &[]);
    let err = fails(&data, &["user", "add", "Bob", "--password-stdin"], Some("another long password"));
    assert_eq!(err.trim_end(), "error: user 'Bob' already exists", "running");
    assert_eq!(s.stop().code(), Some(0));
}

#[test]
fn require_login_without_upstream_starts_with_a_warning() {
    // Nothing to send to the login page without an app behind authd; not an
    // error (forward auth already answers 401), but not silent either.
    let s = Server::start(&["--require-login"]);
    assert!(s.log_text().contains("--require-login does nothing without --upstream"), "{}", s.log_text());
}
