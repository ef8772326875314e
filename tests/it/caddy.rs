//! SPEC §9 with a real Caddy (Debian's package) in front: `forward_auth` to
//! authd's forward-auth endpoint over HTTPS, with the README's recipe, and
//! the test's [`EchoApp`] as the app behind Caddy.
//!
//! The Caddyfile is the README's, with Caddy's TLS on authd's own
//! certificate so the test's client trusts both.
//!
//! Needs `caddy` on the PATH (or `$CADDY`); `.ci/run` installs it. Without it
//! the test is skipped with a message, except under CI (`CI=true`), where
//! it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::front_proxy::Front;
use crate::gateway::EchoApp;
use crate::support::*;

/// The caddy binary, if there is one.
fn caddy_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CADDY") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    ["/usr/bin/caddy", "/usr/local/bin/caddy"].iter().map(PathBuf::from).find(|p| p.is_file())
}

/// The Caddyfile: the README's `forward_auth` block for every path but
/// authd's own, which go to authd as they are.
fn caddyfile(dir: &Path, port: u16, authd_port: u16, data: &Path, app_port: u16) -> String {
    let cert = data.join("tls/cert.pem");
    let key = data.join("tls/key.pem");
    let (cert, key, d) = (cert.display(), key.display(), dir.display());
    let transport = format!(
        "transport http {{
                tls_trusted_ca_certs {cert}
                tls_server_name localhost
            }}"
    );
    format!(
        r#"{{
    admin off
    auto_https off
    storage file_system {d}/storage
}}
https://127.0.0.1:{port} {{
    tls {cert} {key}
    log {{
        output file {d}/access.log
    }}
    @authd path /login.jsp /account /account/* /rest/auth/* /rest/authd/*
    handle @authd {{
        reverse_proxy https://127.0.0.1:{authd_port} {{
            {transport}
        }}
    }}
    handle {{
        route {{
            request_header -X-Authd-User
            request_header -X-AUSERNAME
            request_header -X-Authd-Roles
            forward_auth https://127.0.0.1:{authd_port} {{
                uri /rest/authd/1/verify
                copy_headers X-Authd-User X-AUSERNAME X-Authd-Roles
                {transport}
            }}
            reverse_proxy 127.0.0.1:{app_port}
        }}
    }}
}}
"#
    )
}

/// Starts Caddy with [`caddyfile`] on a free port.
fn start_caddy(bin: &Path, s: &Server, app: &EchoApp) -> Component {
    start_component("caddy", "caddy.log", |port, dir| {
        let conf = dir.join("Caddyfile");
        std::fs::write(&conf, caddyfile(dir, port, s.port, &s.data, app.port)).unwrap();
        let log = std::fs::File::create(dir.join("caddy.log")).unwrap();
        Command::new(bin)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&conf)
            // Caddy writes its state under $HOME and $XDG_*; keep it in the temp dir.
            .env("HOME", dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run caddy")
    })
}

#[tokio::test]
async fn caddy_forward_auth_lets_logged_in_users_through_to_the_app() {
    let test = "caddy_forward_auth_lets_logged_in_users_through_to_the_app";
    let Some(bin) = required_component(caddy_binary(), test, "apt-get install caddy") else {
        return;
    };
    let s = Server::start(&[]);
    s.add_user("bob", "bob-password-1", &[]);
    let app = EchoApp::start();
    let caddy = start_caddy(&bin, &s, &app);
    let base = format!("https://127.0.0.1:{}", caddy.port);
    let c = client_for(&s.cert_pem(), false);
    let diag = |what: &str| format!("{what}\n--- caddy\n{}\n--- authd\n{}", caddy.log(), s.log_text());
    let front = Front { front: &base, s: &s, app: &app, c: &c, diag: &diag };

    // Anonymous: Caddy passes authd's 401 on, with the login URL for this
    // page on Caddy's host; nothing reaches the app.
    let r = front.get("/app/page?x=1&y=2", None).header("x-authd-user", "mallory").send().await.unwrap();
    assert_eq!(r.status(), 401, "{}", diag("anonymous page"));
    let login_url = format!("{base}/login.jsp?os_destination=%2Fapp%2Fpage%3Fx%3D1%26y%3D2");
    assert_eq!(header(&r, "x-authd-login-url").as_deref(), Some(login_url.as_str()), "{}", diag("login URL"));
    assert_eq!(header(&r, "www-authenticate").as_deref(), Some("JIRA REST POST"));
    assert_jira_error(&r.json().await.unwrap());
    assert!(app.seen().is_empty(), "an anonymous request reached the app: {:?}", app.seen());

    // That URL works on Caddy's host.
    front.log_in_through(&login_url).await;

    // Who reaches the app, API tokens, the origin rule (Caddy sends the
    // original method and URI), logout.
    front.check_identity_origin_and_logout().await;
}
