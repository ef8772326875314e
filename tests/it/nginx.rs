//! SPEC §9 with a real nginx (Debian's package) in front: `auth_request` to
//! authd's forward-auth endpoint over HTTPS, as in the README's recipe, with
//! the test's [`EchoApp`] as the app behind nginx.
//!
//! The recipe as tested differs from the README's in three places, each
//! needed: the check passes the browser's `Host` on (authd compares a
//! browser's `Origin` with `https://<Host>`; with nginx's default, authd's
//! own address, every same-origin POST is refused), `X-Authd-Roles` is set
//! from authd's answer (otherwise a client's own copy reaches the app), and
//! anonymous browsers go to the `X-Authd-Login-Url` authd names, with
//! authd's pages proxied on the same host.
//!
//! Needs `nginx` on the PATH (or `$NGINX`); `.ci/run` installs it. Without it
//! the test is skipped with a message, except under CI (`CI=true`), where
//! it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::front_proxy::Front;
use crate::gateway::EchoApp;
use crate::jar::*;
use crate::support::*;

/// The nginx binary, if there is one.
fn nginx_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NGINX") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            let ok = Command::new("nginx").arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status();
            ok.is_ok_and(|s| s.success()).then(|| PathBuf::from("nginx"))
        })
}

/// The nginx configuration: the `auth_request` recipe around a server that
/// listens with TLS (authd's own certificate, so the test's client trusts
/// both) on `port`, in front of the app on `app_port`.
///
/// Two locations use the recipe: `/api/` answers 401 to anonymous callers,
/// `/` sends them to the login URL that authd's 401 names; authd's own
/// pages and login API are proxied to authd on the same host.
fn config(dir: &Path, port: u16, authd_port: u16, data: &Path, app_port: u16) -> String {
    let d = dir.display();
    let cert = data.join("tls/cert.pem");
    let key = data.join("tls/key.pem");
    let (cert, key) = (cert.display(), key.display());
    let user = if running_as_root() { "user root;\n" } else { "" };
    let protect = |extra: &str| {
        format!(
            r#"        auth_request /_authd;
        auth_request_set $authd_user $upstream_http_x_authd_user;
        auth_request_set $authd_roles $upstream_http_x_authd_roles;
        auth_request_set $authd_login $upstream_http_x_authd_login_url;
        proxy_set_header X-Authd-User $authd_user;
        proxy_set_header X-AUSERNAME $authd_user;
        proxy_set_header X-Authd-Roles $authd_roles;
{extra}        proxy_pass http://127.0.0.1:{app_port};
"#
        )
    };
    let api = protect("");
    let site = protect("        error_page 401 = @login;\n");
    format!(
        r#"{user}worker_processes 1;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        # About authd's 16 KiB for a request head: nginx refuses a longer one
        # itself (400), as auth_request would turn authd's 431 into a 500.
        large_client_header_buffers 2 8k;

        location = /_authd {{
            internal;
            proxy_pass https://127.0.0.1:{authd_port}/rest/authd/1/verify;
            proxy_ssl_trusted_certificate {cert};
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Forwarded-Method $request_method;
        }}
        # authd's own pages and API on the app's host, so the login URL
        # authd names (https://<Host>/login.jsp?os_destination=...) works.
        location ~ ^/(login\.jsp|account|rest/auth/|rest/authd/) {{
            proxy_pass https://127.0.0.1:{authd_port};
            proxy_ssl_trusted_certificate {cert};
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
        location /api/ {{
{api}        }}
        location / {{
{site}        }}
        location @login {{
            return 302 $authd_login;
        }}
    }}
}}
"#
    )
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Uid:").map(|r| r.split_whitespace().next() == Some("0")))
        })
        .unwrap_or(false)
}

/// Starts nginx with [`config`] on a free port.
fn start_nginx(bin: &Path, s: &Server, app: &EchoApp) -> Component {
    start_component("nginx", "error.log", |port, dir| {
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(dir, port, s.port, &s.data, app.port)).unwrap();
        Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-g")
            .arg(format!("daemon off; pid {};", dir.join("nginx.pid").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run nginx")
    })
}

#[tokio::test]
async fn nginx_auth_request_lets_logged_in_users_through_to_the_app() {
    let test = "nginx_auth_request_lets_logged_in_users_through_to_the_app";
    let Some(bin) = required_component(nginx_binary(), test, "apt-get install nginx") else {
        return;
    };
    let s = Server::start(&[]);
    s.add_user("bob", "bob-password-1", &[]);
    let app = EchoApp::start();
    let nginx = start_nginx(&bin, &s, &app);
    let base = format!("https://127.0.0.1:{}", nginx.port);
    let c = client_for(&s.cert_pem(), false);
    let diag =
        |what: &str| format!("{what}\n--- nginx error.log\n{}\n--- authd\n{}", nginx.log(), s.log_text());
    let front = Front { front: &base, s: &s, app: &app, c: &c, diag: &diag };

    // Anonymous: the API location answers 401, the site sends the browser
    // to the login URL authd's 401 names, leading back to the page.
    let r = front.get("/api/issues?id=7", None).send().await.unwrap();
    assert_eq!(r.status(), 401, "{}", diag("anonymous API call"));
    let r = front.get("/app/page?x=1&y=2", None).send().await.unwrap();
    assert_eq!(r.status(), 302, "{}", diag("anonymous page"));
    assert_eq!(
        header(&r, "location").as_deref(),
        Some(format!("{base}/login.jsp?os_destination=%2Fapp%2Fpage%3Fx%3D1%26y%3D2").as_str())
    );
    assert!(app.seen().is_empty(), "an anonymous request reached the app: {:?}", app.seen());

    // That URL works on nginx's host: the login page, then Jira's login API.
    front.log_in_through(&format!("{base}/login.jsp?os_destination=%2Fapp%2Fpage%3Fx%3D1%26y%3D2")).await;

    // Who reaches the app, API tokens, the origin rule, logout.
    front.check_identity_origin_and_logout().await;

    // A remember-me cookie alone does not pass forward auth (it cannot set
    // the new session's cookie through the proxy).
    let jar = api_login(&s, "admin", &s.admin_pw(), true).await;
    let r = front
        .get("/api/remembered", Some(&format!("{REMEMBER}={}", jar.remember.as_ref().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(app.seen_at("/api/remembered").is_empty());

    // A request head over authd's 16 KiB: a 4xx from nginx, not the 500
    // auth_request makes of any status but 2xx, 401 and 403; one under it
    // goes through.
    let session = format!("{SESSION}={}", login_id(&s, "bob", "bob-password-1").await);
    let big = "a".repeat(7000);
    let mut b = front.get("/api/big-head", Some(&session));
    for name in ["x-one", "x-two", "x-three"] {
        b = b.header(name, &big);
    }
    let r = b.send().await.unwrap();
    assert!(r.status().is_client_error(), "{}", diag(&format!("a 21 KB head: {}", r.status())));
    let r = front.get("/api/big-head", Some(&session)).header("x-one", &big).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", diag("a 7 KB head"));
}
