//! The browser pages (SPEC §8): `/login.jsp`, `/account`, `/verify-email`.
//!
//! Plain server-rendered HTML with a little inline CSS, no external assets,
//! usable with scripts disabled, under a strict content security policy.
//! The one script is the proof-of-work solver on the login page of an
//! account that demands a challenge (SPEC §3), allowed by a per-response
//! nonce. Every form carries `atl_token`, and every POST is checked against
//! it before anything else happens.

use super::request::RequestBody;
use hyper::header::{HeaderValue, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};

use super::app::{App, Ctx};
use super::request::{encode_component, form_fields, query_pairs, read_body, Utf8, LOGIN_BODY_LIMIT};
use super::response::{empty, with_body, ApiError, Body};
use super::session_api::{login_context, retry_after};
use crate::auth::{Authenticated, LoginError};
use crate::clock::Timestamp;
use crate::token::{Handle, RememberToken};

/// Largest form body on the account page.
const FORM_LIMIT: usize = 16 * 1024;

/// `GET /login.jsp`: the login form.
pub async fn login_form(app: &App, query: Option<&str>, ctx: &mut Ctx) -> Result<Response<Body>, ApiError> {
    let pairs = query_pairs(query)?;
    let dest = field(&pairs, "os_destination").and_then(safe_destination);
    let who = app.identify(ctx).await?;
    // Already logged in (perhaps just now by the remember-me cookie) and
    // sent here on the way somewhere: go on there, as Jira does. Only with
    // a session, so a page behind forward auth, which checks the session
    // cookie, lets the browser through and cannot send it back here.
    if let (Some(Authenticated { session: Some(_), .. }), Some(d)) = (&who, &dest) {
        return Ok(redirect(d));
    }
    let token = app.page_xsrf(ctx, who.as_ref());
    let notice = who.as_ref().map(|a| {
        format!(
            "<p class=\"note\">You are logged in as <b>{}</b>. <a href=\"/account\">Your account</a></p>",
            esc(&a.user.name)
        )
    });
    let logged_out = who.is_none() && field(&pairs, "logged_out").is_some();
    let expired = who.is_none() && field(&pairs, "session_expired").is_some();
    let notice = notice
        .or_else(|| {
            logged_out.then(|| "<p class=\"note\" id=\"logged-out\">You are now logged out.</p>".to_string())
        })
        .or_else(|| {
            expired.then(|| {
                "<p class=\"note\" id=\"session-expired\">Your session has expired or was ended. Please log in again.</p>"
                    .to_string()
            })
        });
    let page =
        LoginPage { token: &token, dest: dest.as_deref(), notice: notice.as_deref(), ..LoginPage::default() };
    Ok(html(StatusCode::OK, page.render(), None))
}

/// `POST /login.jsp`: log in and go to `os_destination` (same-origin paths only) or `/account`.
pub async fn login_submit(
    app: &App,
    req: Request<RequestBody>,
    ctx: &mut Ctx,
) -> Result<Response<Body>, ApiError> {
    let form = read_form(app, req, ctx, LOGIN_BODY_LIMIT).await?;
    let who = app.identify(ctx).await?;
    let submitted = field(&form, "atl_token");
    let username = field(&form, "os_username").unwrap_or_default();
    let dest = field(&form, "os_destination").and_then(safe_destination);
    let remember = field(&form, "os_cookie").is_some_and(|v| !v.is_empty() && v != "false");
    if !app.xsrf_ok(ctx, who.as_ref(), submitted.as_deref()) {
        // A second tab's login form, stale since the first tab logged in (its
        // anonymous token went with the login): for the user already logged
        // in, go on as a fresh login would, changing nothing.
        if let Some(Authenticated { user, session: Some(_) }) = &who {
            if crate::store::name_key(&user.name) == crate::store::name_key(&username) {
                return Ok(redirect(dest.as_deref().unwrap_or("/account")));
            }
        }
        let token = app.page_xsrf(ctx, who.as_ref());
        let page = LoginPage {
            token: &token,
            dest: dest.as_deref(),
            username: &username,
            remember,
            error: Some("XSRF check failed: the form was stale or came from another site. Please try again."),
            ..LoginPage::default()
        };
        return Ok(html(StatusCode::FORBIDDEN, page.render(), None));
    }
    let password = field(&form, "os_password").unwrap_or_default();
    let mut login_ctx = login_context(ctx, remember);
    login_ctx.challenge = field(&form, "pow_challenge").zip(field(&form, "pow_solution"));
    let e = match app.auth.login(&username, &password, login_ctx).await {
        Ok(done) => {
            app.apply_login(ctx, &done);
            let mut r = redirect(dest.as_deref().unwrap_or("/account"));
            r.headers_mut().insert("x-seraph-loginreason", HeaderValue::from_static("OK"));
            return Ok(r);
        }
        Err(LoginError::Store(e)) => return Err(e.into()),
        Err(e) => e,
    };
    let now = app.auth.now();
    let failure = Failure::of(&e, now);
    // An account that demands a challenge gets a fresh puzzle with the page.
    let subject = match &e {
        LoginError::Denied { subject, .. } => Some(*subject),
        LoginError::BadCredentials => app.auth.challenge_subject(&username).await?,
        _ => None,
    };
    let challenge = subject.map(|s| app.auth.pow.issue(s, now));
    let script_nonce = challenge.as_ref().map(|_| crate::token::b64(&crate::token::random::<16>()));
    let token = app.page_xsrf(ctx, who.as_ref());
    let page = LoginPage {
        token: &token,
        dest: dest.as_deref(),
        username: &username,
        remember,
        error: Some(&failure.message),
        challenge: challenge.as_deref().map(|c| (c, app.auth.pow.difficulty)),
        script_nonce: script_nonce.as_deref(),
        ..LoginPage::default()
    };
    let mut r = html(failure.status, page.render(), script_nonce.as_deref());
    if failure.status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(super::response::CHALLENGE));
    }
    if let Some(reason) = failure.reason {
        r.headers_mut().insert("x-seraph-loginreason", HeaderValue::from_static(reason));
    }
    if let Some(secs) = failure.retry_after {
        r.headers_mut().insert("retry-after", HeaderValue::from(secs));
    }
    Ok(r)
}

/// How the login page reports a failed login.
struct Failure {
    status: StatusCode,
    reason: Option<&'static str>,
    message: String,
    retry_after: Option<u64>,
}

impl Failure {
    fn of(e: &LoginError, now: Timestamp) -> Failure {
        let f =
            |status, reason, message: String, retry_after| Failure { status, reason, message, retry_after };
        match e {
            LoginError::BadCredentials => f(
                StatusCode::UNAUTHORIZED,
                Some("AUTHENTICATED_FAILED"),
                "Sorry, your username and password are incorrect - please try again.".into(),
                None,
            ),
            LoginError::Denied { until, .. } => {
                let secs = retry_after(*until, now);
                f(
                    StatusCode::FORBIDDEN,
                    Some("AUTHENTICATION_DENIED"),
                    format!(
                        "There have been too many failed logins for this account. A short check runs in \
                         your browser; when it is done, enter your password again. Without scripts, wait {} \
                         and try again.",
                        for_people(secs)
                    ),
                    Some(secs),
                )
            }
            LoginError::Throttled { until } => {
                let secs = retry_after(*until, now);
                f(
                    StatusCode::TOO_MANY_REQUESTS,
                    None,
                    format!(
                        "Too many failed logins from your network address. Try again in {}.",
                        for_people(secs)
                    ),
                    Some(secs),
                )
            }
            LoginError::Unverified => f(
                StatusCode::CONFLICT,
                None,
                "Your email address has not been verified yet. Open the link we sent you, then log in."
                    .into(),
                None,
            ),
            LoginError::Busy | LoginError::Store(_) => f(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "Too many people are logging in right now. Please try again in a moment.".into(),
                Some(1),
            ),
        }
    }
}

/// `N minutes` or `N seconds`.
fn for_people(secs: u64) -> String {
    match secs {
        0..=1 => "1 second".into(),
        2..=89 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

/// `GET /verify-email?token=...`: the link `authd user add --email ... --unverified` printed.
pub async fn verify_email(app: &App, query: Option<&str>, ctx: &mut Ctx) -> Result<Response<Body>, ApiError> {
    let pairs = query_pairs(query)?;
    let token = field(&pairs, "token").unwrap_or_default();
    let user = app.auth.redeem_verification(&token).await?;
    app.identify(ctx).await?;
    match user {
        Some(u) => {
            let body = format!(
                "<h1>Email address verified</h1><p id=\"verified\">Thank you, <b>{}</b>: {} is verified. \
                 <a href=\"/login.jsp\">Log in</a></p>",
                esc(&u.name),
                esc(u.email.as_deref().unwrap_or("")),
            );
            Ok(html(StatusCode::OK, layout("Email address verified", &body), None))
        }
        None => {
            let body = "<h1>This link does not work</h1><p>The verification link is invalid, was already \
                        used, or has expired. Ask an administrator for a new one.</p>";
            Ok(html(StatusCode::NOT_FOUND, layout("Invalid link", body), None))
        }
    }
}

/// `GET /account`: who you are and your sessions.
pub async fn account(app: &App, ctx: &mut Ctx) -> Result<Response<Body>, ApiError> {
    let Some(who) = app.identify(ctx).await? else {
        return Ok(back_to_login(app, ctx));
    };
    let token = app.page_xsrf(ctx, Some(&who));
    let sessions = app.auth.store.sessions_of(who.user.id).await?;
    let current = who.session.as_ref().map(|s| s.key);
    let mut rows = String::new();
    for (key, s) in sessions.iter().rev() {
        let this = Some(*key) == current;
        rows.push_str(&format!(
            "<tr{}><td>{}{}</td><td class=\"when\">{}</td><td class=\"when\">{}</td><td>{}</td><td>\
             <form method=\"post\" action=\"/account/sessions/revoke\">{}\
             <input type=\"hidden\" name=\"handle\" value=\"{}\">\
             <button type=\"submit\">Log out</button></form></td></tr>\n",
            if this { " class=\"this\"" } else { "" },
            esc(&s.browser),
            if this { " <span class=\"badge\">this one</span>" } else { "" },
            readable(s.created),
            readable(s.last_use),
            s.address.map_or_else(|| "-".to_string(), |a| esc(&a.to_string())),
            hidden_token(&token),
            key.handle(),
        ));
    }
    let u = &who.user;
    let email = match &u.email {
        Some(e) if u.email_verified => format!("{} (verified)", esc(e)),
        Some(e) => format!("{} (not verified)", esc(e)),
        None => "-".to_string(),
    };
    let body = format!(
        "<h1>Your account</h1>\n\
         <dl><dt>User</dt><dd id=\"username\">{name}</dd><dt>Email</dt><dd>{email}</dd>\
         <dt>Roles</dt><dd>{roles}</dd><dt>Logins</dt><dd>{logins}</dd></dl>\n\
         <h2>Your sessions</h2>\n\
         <table><thead><tr><th>Browser</th><th>Created</th><th>Last used</th><th>Address</th><th></th></tr></thead>\n\
         <tbody>\n{rows}</tbody></table>\n\
         <div class=\"actions\">\
         <form method=\"post\" action=\"/account/sessions/revoke-others\">{t}<button type=\"submit\">Log out all other sessions</button></form>\
         <form method=\"post\" action=\"/account/sessions/revoke-all\">{t}<button type=\"submit\">Log out everywhere</button></form>\
         <form method=\"post\" action=\"/account/logout\">{t}<button type=\"submit\" class=\"primary\">Log out</button></form>\
         </div>",
        name = esc(&u.name),
        roles = if u.admin { "admin" } else { "-" },
        logins = u.logins.login_count,
        t = hidden_token(&token),
    );
    Ok(html(StatusCode::OK, layout("Your account", &body), None))
}

/// The account page's buttons, each a `POST /account/[sessions/]ACTION`.
pub const ACCOUNT_ACTIONS: [&str; 4] = ["logout", "revoke", "revoke-others", "revoke-all"];

/// `POST /account/...`: log out this, one, all other, or all sessions.
pub async fn account_action(
    app: &App,
    req: Request<RequestBody>,
    ctx: &mut Ctx,
    action: &str,
) -> Result<Response<Body>, ApiError> {
    if !ACCOUNT_ACTIONS.contains(&action) {
        return Err(ApiError::not_found());
    }
    let form = read_form(app, req, ctx, FORM_LIMIT).await?;
    let Some(who) = app.identify(ctx).await? else {
        return Ok(back_to_login(app, ctx));
    };
    if !app.xsrf_ok(ctx, Some(&who), field(&form, "atl_token").as_deref()) {
        return Ok(xsrf_refused("/account", "Back to your account"));
    }
    let current = who.session.as_ref().map(|s| s.key);
    let browser_series: Vec<_> =
        ctx.cookies.remember.iter().filter_map(|v| RememberToken::parse(v)).map(|t| t.selector).collect();
    match action {
        "logout" => {
            app.auth.logout(&who.user, current, &browser_series).await?;
            app.apply_logout(ctx);
            Ok(redirect("/login.jsp?logged_out=1"))
        }
        "revoke" => {
            let handle = field(&form, "handle").and_then(|h| Handle::parse(&h));
            let sessions = app.auth.store.sessions_of(who.user.id).await?;
            let key = handle.and_then(|h| sessions.iter().map(|(k, _)| *k).find(|k| h.matches(k)));
            match key {
                Some(k) if Some(k) == current => {
                    app.auth.logout(&who.user, current, &browser_series).await?;
                    app.apply_logout(ctx);
                    Ok(redirect("/login.jsp?logged_out=1"))
                }
                Some(k) => {
                    app.auth.end_session(k).await?;
                    Ok(redirect("/account"))
                }
                None => Err(ApiError::new(StatusCode::NOT_FOUND, "No such session")),
            }
        }
        "revoke-others" => {
            let n = app.auth.store.revoke_all_of(who.user.id, current).await?;
            tracing::info!(user = %who.user.name, sessions = n, "logged out all other sessions");
            Ok(redirect("/account"))
        }
        "revoke-all" => {
            let n = app.auth.store.revoke_all_of(who.user.id, None).await?;
            tracing::info!(user = %who.user.name, sessions = n, "logged out everywhere");
            app.apply_logout(ctx);
            Ok(redirect("/login.jsp?logged_out=1"))
        }
        _ => Err(ApiError::not_found()), // (refused above)
    }
}

/// A destination is followed only if it is a path on this site: it starts
/// with one `/` (not `//` or `/\`, which browsers read as another host),
/// and holds no backslash, control character or space.
pub fn safe_destination(d: String) -> Option<String> {
    let ok = d.starts_with('/')
        && !d.starts_with("//")
        && !d.contains('\\')
        && d.len() <= 2048
        && !d.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then(|| percent_encode_non_ascii(d))
}

/// A path with every byte outside ASCII percent-encoded (as a browser
/// sends it), so that it can stand in a `Location` header.
fn percent_encode_non_ascii(d: String) -> String {
    if d.is_ascii() {
        return d;
    }
    let mut out = String::with_capacity(d.len() * 2);
    for b in d.bytes() {
        if b.is_ascii() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A page's form, in any encoding an HTML form can send (url-encoded,
/// multipart or `text/plain`; SPEC §7); a bare POST is an empty form. Other
/// bodies are refused: 403 without the right token, else 415.
async fn read_form(
    app: &App,
    req: Request<RequestBody>,
    ctx: &mut Ctx,
    limit: usize,
) -> Result<Vec<(String, String)>, ApiError> {
    let (parts, body) = req.into_parts();
    let wrong_type = || {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The form must be sent as application/x-www-form-urlencoded, multipart/form-data or text/plain.",
        )
    };
    let refused = match ctx.media_type.as_deref() {
        None => {
            // A bare POST (no body, no type), as `curl -X POST` sends it: an
            // empty form, whose token must then come in a header.
            if read_body(&parts.headers, body, limit).await?.is_empty() {
                return Ok(Vec::new());
            }
            wrong_type()
        }
        Some(m) if crate::xsrf::is_form_type(m) => {
            let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let bytes = read_body(&parts.headers, body, limit).await?;
            match form_fields(content_type, &bytes, Utf8::Strict) {
                Some(Ok(fields)) => return Ok(fields),
                Some(Err(malformed)) => malformed,
                None => wrong_type(),
            }
        }
        Some(_) => return Err(wrong_type()),
    };
    // A body of no stated type, or one that does not parse, has no token in
    // it: without one in a header it is refused as a forgery first, like
    // every other form.
    let who = app.identify(ctx).await?;
    Err(if app.xsrf_ok(ctx, who.as_ref(), None) { refused } else { super::app::xsrf_failed() })
}

fn field(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn redirect(to: &str) -> Response<Body> {
    let mut r = empty(StatusCode::SEE_OTHER);
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// An HTML page with a strict content security policy; `script_nonce`
/// allows the one inline script that carries it (the challenge solver).
/// The page for a form refused by the XSRF check, with a link back.
pub fn xsrf_refused(back: &str, label: &str) -> Response<Body> {
    let body = format!(
        "<h1>XSRF check failed</h1><p>The form was stale or came from another site. <a href=\"{}\">{}</a></p>",
        esc(back),
        esc(label)
    );
    html(StatusCode::FORBIDDEN, layout("XSRF check failed", &body), None)
}

fn html(status: StatusCode, page: String, script_nonce: Option<&str>) -> Response<Body> {
    let mut r = with_body(status, "text/html; charset=utf-8", page);
    let h = r.headers_mut();
    let script = script_nonce.map(|n| format!(" script-src 'nonce-{n}';")).unwrap_or_default();
    let csp = format!(
        "default-src 'none';{script} style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert("content-security-policy", v);
    }
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    r
}

fn hidden_token(token: &str) -> String {
    format!("<input type=\"hidden\" name=\"atl_token\" value=\"{}\">", esc(token))
}

/// The login form and what it must say.
#[derive(Default)]
struct LoginPage<'a> {
    token: &'a str,
    dest: Option<&'a str>,
    username: &'a str,
    /// Whether "Remember my login" is ticked (kept when the form comes back).
    remember: bool,
    error: Option<&'a str>,
    notice: Option<&'a str>,
    /// A proof-of-work challenge and its difficulty in bits.
    challenge: Option<(&'a str, u8)>,
    script_nonce: Option<&'a str>,
}

impl LoginPage<'_> {
    fn render(&self) -> String {
        let error = self
            .error
            .map(|e| format!("<p class=\"error\" id=\"login-error\" role=\"alert\">{}</p>", esc(e)));
        let dest = format!(
            "<input type=\"hidden\" name=\"os_destination\" value=\"{}\">",
            esc(self.dest.unwrap_or_default())
        );
        let (pow_fields, pow_attr, pow_script) = match (self.challenge, self.script_nonce) {
            (Some((c, bits)), Some(nonce)) => (
                format!(
                    "<input type=\"hidden\" name=\"pow_challenge\" value=\"{}\">\
                     <input type=\"hidden\" name=\"pow_solution\" id=\"pow_solution\" value=\"\">\
                     <p class=\"note\" id=\"pow-status\" hidden></p>\
                     <noscript><p class=\"note\">Scripts are off, so the check cannot run: wait, then try again.</p></noscript>",
                    esc(c)
                ),
                format!(" data-pow-bits=\"{bits}\""),
                format!("<script nonce=\"{}\">{SOLVER}</script>", esc(nonce)),
            ),
            _ => (String::new(), String::new(), String::new()),
        };
        let body = format!(
            "<h1>Log in</h1>\n{notice}{error}\
             <form method=\"post\" action=\"/login.jsp\" id=\"login-form\"{pow_attr}>\n\
             {token}{dest}{pow_fields}\
             <label for=\"os_username\">Username</label>\
             <input type=\"text\" id=\"os_username\" name=\"os_username\" value=\"{user}\" autocomplete=\"username\" autofocus required>\n\
             <label for=\"os_password\">Password</label>\
             <input type=\"password\" id=\"os_password\" name=\"os_password\" autocomplete=\"current-password\" required>\n\
             <label class=\"check\"><input type=\"checkbox\" id=\"os_cookie\" name=\"os_cookie\" value=\"true\"{checked}> Remember my login on this computer</label>\n\
             <button type=\"submit\" id=\"login-submit\" class=\"primary\">Log in</button>\n\
             </form>{pow_script}",
            notice = self.notice.unwrap_or(""),
            error = error.unwrap_or_default(),
            token = hidden_token(self.token),
            dest = dest,
            user = esc(self.username),
            checked = if self.remember { " checked" } else { "" },
        );
        layout("Log in", &body)
    }
}

/// Finds a counter whose SHA-256 with the challenge has enough leading zero
/// bits (WebCrypto, 512 digests at a time), then enables the form.
const SOLVER: &str = "(async()=>{\
const f=document.getElementById('login-form');const ch=f.elements['pow_challenge'].value;\
const bits=Number(f.dataset.powBits);const st=document.getElementById('pow-status');\
const btn=document.getElementById('login-submit');btn.disabled=true;const enc=new TextEncoder();\
st.hidden=false;st.textContent='Checking your browser\\u2026';\
const zeros=d=>{let n=0;for(const x of new Uint8Array(d)){if(x===0){n+=8;continue}return n+Math.clz32(x)-24}return n};\
let start=0,found=-1;const t0=performance.now();\
while(found<0){const ps=[];for(let k=0;k<512;k++){const n=start+k;\
ps.push(crypto.subtle.digest('SHA-256',enc.encode(ch+':'+n)).then(d=>zeros(d)>=bits?n:-1))}\
for(const r of await Promise.all(ps)){if(r>=0&&found<0)found=r}start+=512}\
document.getElementById('pow_solution').value=String(found);btn.disabled=false;\
st.textContent='Check done in '+Math.round(performance.now()-t0)+' ms: enter your password and log in.';\
st.dataset.solved='true'})();";

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} - authd</title><style>{CSS}</style></head>\n\
         <body><main>{body}</main><footer>authd</footer></body></html>\n",
        title = esc(title),
    )
}

const CSS: &str = "\
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;background:#f4f5f7;color:#172b4d;margin:0}\
main{max-width:760px;margin:48px auto;background:#fff;padding:28px 32px;border-radius:6px;box-shadow:0 1px 3px rgba(9,30,66,.25)}\
h1{font-size:24px;margin:0 0 16px}h2{font-size:18px;margin:24px 0 8px}\
label{display:block;margin:12px 0 4px;font-weight:600}label.check{font-weight:normal}\
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:8px;border:2px solid #dfe1e6;border-radius:4px;font:inherit}\
button{margin-top:14px;padding:7px 14px;border:0;border-radius:4px;background:#ebecf0;font:inherit;cursor:pointer}\
button.primary{background:#0052cc;color:#fff}\
.error{background:#ffebe6;border-left:4px solid #de350b;padding:8px 12px}\
.note{background:#deebff;padding:8px 12px}\
dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px}dt{font-weight:600}dd{margin:0}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #dfe1e6}\
td form button{margin:0;white-space:nowrap}td.when{white-space:nowrap}tr.this{background:#e3fcef}\
.badge{background:#00875a;color:#fff;border-radius:3px;padding:1px 6px;font-size:12px}\
.actions{display:flex;gap:12px;flex-wrap:wrap}\
footer{text-align:center;color:#6b778c;font-size:12px;margin-bottom:24px}";

/// `2026-11-22 09:15 UTC`.
fn readable(t: Timestamp) -> String {
    let s = t.to_iso8601();
    match (s.get(..10), s.get(11..16)) {
        (Some(d), Some(hm)) => format!("{d} {hm} UTC"),
        _ => s,
    }
}

/// Escapes text for HTML element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Sends a browser the account page does not know to the login page. A
/// session cookie that logs nobody in is cleared on the way, and the login
/// page then says the session ended.
fn back_to_login(app: &App, ctx: &mut Ctx) -> Response<Body> {
    let stale = !ctx.cookies.session.is_empty() && !ctx.session_moved;
    app.expire_dead_session_cookie(ctx);
    redirect(if stale {
        "/login.jsp?os_destination=%2Faccount&session_expired=1"
    } else {
        "/login.jsp?os_destination=%2Faccount"
    })
}

/// Where the login page sends someone who must log in to see `path`.
pub fn login_url_for(path: &str) -> String {
    format!("/login.jsp?os_destination={}", encode_component(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_must_be_local_paths() {
        for ok in ["/account", "/app/page?x=1&y=2#frag", "/%2F%2Fevil.example"] {
            assert_eq!(safe_destination(ok.into()).as_deref(), Some(ok));
        }
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "/ok\r\nSet-Cookie: x=1",
            "/a b",
            "",
            "evil.example",
        ] {
            assert_eq!(safe_destination(bad.into()), None, "{bad:?}");
        }
        // Fit for a Location header: bytes outside ASCII are percent-encoded.
        assert_eq!(safe_destination("/caf\u{e9}?q=\u{fc}".into()).as_deref(), Some("/caf%C3%A9?q=%C3%BC"));
    }

    #[test]
    fn html_escaping() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn login_page_has_the_jira_fields() {
        let p = LoginPage {
            token: "TOKEN",
            dest: Some("/x"),
            username: "bob",
            error: Some("bad"),
            ..LoginPage::default()
        }
        .render();
        for needle in [
            "name=\"os_username\"",
            "name=\"os_password\"",
            "name=\"os_cookie\"",
            "Remember my login on this computer",
            "name=\"os_destination\" value=\"/x\"",
            "name=\"atl_token\" value=\"TOKEN\"",
            "value=\"bob\"",
        ] {
            assert!(p.contains(needle), "{needle}");
        }
        assert!(!p.contains("<script"));
        assert!(!p.contains(" checked"), "ticked by default");
        let ticked = LoginPage { remember: true, ..LoginPage::default() }.render();
        assert!(ticked.contains("name=\"os_cookie\" value=\"true\" checked>"), "{ticked}");
    }

    #[test]
    fn a_challenge_adds_the_puzzle_and_its_solver() {
        let p = LoginPage {
            token: "T",
            challenge: Some(("CH", 12)),
            script_nonce: Some("N"),
            ..LoginPage::default()
        }
        .render();
        assert!(p.contains("name=\"pow_challenge\" value=\"CH\""));
        assert!(p.contains("data-pow-bits=\"12\""));
        assert!(p.contains("<script nonce=\"N\">"));
        assert!(p.contains("<noscript>"));
    }

    #[test]
    fn waits_read_well() {
        assert_eq!(for_people(1), "1 second");
        assert_eq!(for_people(30), "30 seconds");
        assert_eq!(for_people(300), "5 minutes");
        assert_eq!(for_people(301), "6 minutes");
    }
}
