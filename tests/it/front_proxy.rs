//! What every recipe for a proxy in front of authd (SPEC §9) must give the
//! app, checked the same way through nginx (`nginx.rs`) and Caddy
//! (`caddy.rs`): who the user is, never what the client claims; API tokens;
//! the origin rule on the original request; logout.

use crate::gateway::EchoApp;
use crate::jar::*;
use crate::support::*;

/// The proxy at `front` (`https://127.0.0.1:PORT`) in front of `app`, with
/// authd `s` checking; `c` trusts the proxy's certificate; `diag` adds the
/// logs to a failure. User `bob` (password `bob-password-1`) must exist.
pub struct Front<'a> {
    pub front: &'a str,
    pub s: &'a Server,
    pub app: &'a EchoApp,
    pub c: &'a reqwest::Client,
    pub diag: &'a dyn Fn(&str) -> String,
}

impl Front<'_> {
    /// A request through the proxy with `cookie`, if any.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let b = self.c.request(method, format!("{}{path}", self.front));
        match cookie {
            Some(cookie) => b.header("cookie", cookie),
            None => b,
        }
    }

    /// A GET through the proxy with `cookie`, if any.
    pub fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path, cookie)
    }

    /// The login URL authd named works on the proxy's host: its login page,
    /// then Jira's login API as bob, whose cookie then reaches the app.
    pub async fn log_in_through(&self, login_url: &str) {
        let diag = self.diag;
        let r = self.c.get(login_url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", diag("login page through the proxy"));
        assert!(r.text().await.unwrap().contains("os_password"));
        let r = self
            .request(reqwest::Method::POST, "/rest/auth/1/session", None)
            .json(&serde_json::json!({"username": "bob", "password": "bob-password-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", diag("login through the proxy"));
        let v: serde_json::Value = r.json().await.unwrap();
        let (name, value) = (v["session"]["name"].as_str().unwrap(), v["session"]["value"].as_str().unwrap());
        let r = self.get("/app/page?via=front", Some(&format!("{name}={value}"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", diag("page after logging in through the proxy"));
        assert_eq!(self.app.last_at("/app/page?via=front").one("x-authd-user").as_deref(), Some("bob"));
    }

    /// Logged-in users, admin or not, and an API token reach the app as
    /// themselves, whatever identity headers the client sends; a
    /// same-origin unsafe request goes through, a foreign one is refused by
    /// authd and never reaches the app; after logout the cookie is refused.
    pub async fn check_identity_origin_and_logout(&self) {
        let (s, app, diag) = (self.s, self.app, self.diag);
        let bob = format!("{SESSION}={}", login_id(s, "bob", "bob-password-1").await);
        let admin = format!("{SESSION}={}", login_id(s, "admin", &s.admin_pw()).await);
        for (cookie, user, roles) in [(&bob, "bob", ""), (&admin, "admin", "admin")] {
            let path = format!("/app/as-{user}?x=1");
            let r = self
                .request(reqwest::Method::GET, &path, Some(cookie))
                .header("x-authd-user", "mallory")
                .header("x-ausername", "mallory")
                .header("x-authd-roles", "admin,mallory")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", diag(&path));
            let seen = app.last_at(&path);
            assert_eq!(seen.one("x-authd-user").as_deref(), Some(user), "{path}");
            assert_eq!(seen.one("x-ausername").as_deref(), Some(user), "{path}");
            let claimed = seen.all("x-authd-roles");
            if roles.is_empty() {
                assert!(claimed.iter().all(String::is_empty), "{path}: roles {claimed:?}");
            } else {
                assert_eq!(claimed, [roles], "{path}");
            }
        }

        let out = s.authd(&["token", "add", "bob", "--label", "front"], None);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let token = String::from_utf8_lossy(&out.stdout).lines().last().unwrap().trim().to_string();
        let r = self.request(reqwest::Method::GET, "/api/by-token", None).basic_auth("bob", Some(&token));
        assert_eq!(r.send().await.unwrap().status(), 200, "{}", diag("API token"));
        assert_eq!(app.last_at("/api/by-token").one("x-authd-user").as_deref(), Some("bob"));

        for (path, origin, site, status) in [
            ("/app/save", self.front, "same-origin", 200),
            ("/app/evil", "https://evil.example", "cross-site", 403),
        ] {
            let r = self
                .request(reqwest::Method::POST, path, Some(&admin))
                .header("origin", origin)
                .header("sec-fetch-site", site)
                .header("content-type", "application/json")
                .body("{\"summary\":\"hello\"}")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), status, "{}", diag(&format!("POST from {origin}")));
        }
        let seen = app.last_at("/app/save");
        assert_eq!((seen.method.as_str(), seen.body.as_slice()), ("POST", &b"{\"summary\":\"hello\"}"[..]));
        assert_eq!(seen.one("x-authd-user").as_deref(), Some("admin"));
        assert!(app.seen_at("/app/evil").is_empty(), "a foreign POST reached the app");

        let r =
            self.request(reqwest::Method::DELETE, "/rest/auth/1/session", Some(&bob)).send().await.unwrap();
        assert_eq!(r.status(), 204, "{}", diag("logout through the proxy"));
        assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("OUT"));
        let r = self.request(reqwest::Method::GET, "/api/after-logout", Some(&bob)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{}", diag("after logout"));
        assert!(app.seen_at("/api/after-logout").is_empty());
    }
}
