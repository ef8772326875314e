//! SPEC §3: the Jira session API.

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn login_get_logout_flow() {
    let s = Server::start(&[]);
    let c = s.client();
    let r = s.login(&c, "admin", &s.admin_pw()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ausername").as_deref(), Some("admin"));
    let cookie = set_cookie(&r, "JSESSIONID").expect("session cookie");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["session"]["name"], "JSESSIONID");
    let id = body["session"]["value"].as_str().unwrap().to_string();
    assert!(cookie.starts_with(&format!("JSESSIONID={id};")));
    assert_eq!(body["loginInfo"]["loginCount"], 1);

    let r = c.get(s.at("/rest/auth/1/session")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["name"], "admin");
    assert_eq!(body["self"], format!("{}/rest/api/2/user?username=admin", s.url));

    let r = c.delete(s.at("/rest/auth/1/session")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "x-seraph-loginreason").as_deref(), Some("OUT"));

    let r = c.get(s.at("/rest/auth/1/session")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}
