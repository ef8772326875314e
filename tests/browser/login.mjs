// Drives Debian's headless Chromium through authd's login and account pages
// (SPEC §4, §6, §8): log in through /login.jsp with "Remember my login"
// ticked, see /account, read the cookies as the browser stored them, drop
// the session cookie, reload and be logged in again by remember-me, log out.
//
// It starts nothing itself. tests/it/browser.rs starts authd and runs it with:
//   AUTHD_URL             https://127.0.0.1:PORT
//   AUTHD_USER            user name (default admin)
//   AUTHD_PASSWORD        that user's password
//   AUTHD_CERT            authd's certificate (PEM), for the record; the
//                         context ignores certificate errors instead
//   AUTHD_SCREENSHOT_DIR  where the screenshots go (created if missing)
//   CHROMIUM              the browser binary (default /usr/bin/chromium)
//
// Exit codes: 0 all checks passed, 1 a check failed, 2 bad environment or
// the browser could not be started.

import { mkdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = process.env;
const url = (env.AUTHD_URL || "").replace(/\/$/, "");
const user = env.AUTHD_USER || "admin";
const password = env.AUTHD_PASSWORD || "";
const shots = env.AUTHD_SCREENSHOT_DIR || "screenshots";
const executablePath = env.CHROMIUM || "/usr/bin/chromium";

class CheckFailed extends Error {}

function check(cond, message) {
  if (!cond) throw new CheckFailed(message);
  console.log(`ok - ${message}`);
}

function setup(cond, message) {
  if (!cond) {
    console.error(`setup: ${message}`);
    process.exit(2);
  }
}

setup(url.startsWith("https://"), "AUTHD_URL must be authd's https:// URL");
setup(password !== "", "AUTHD_PASSWORD is empty");
setup(existsSync(executablePath), `no browser at ${executablePath}`);
mkdirSync(shots, { recursive: true });

const SESSION = "JSESSIONID";
const REMEMBER = "seraph.rememberme.cookie";
const XSRF = "atlassian.xsrf.token";

let browser;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 60_000,
  });
} catch (e) {
  console.error(`setup: could not start ${executablePath}: ${e.message}`);
  process.exit(2);
}

let failed = false;
try {
  await run();
} catch (e) {
  failed = true;
  if (e instanceof CheckFailed) {
    console.error(`not ok - ${e.message}`);
  } else {
    console.error(`error - ${e.stack || e}`);
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);

async function shot(page, name) {
  const path = join(shots, name);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot ${path}`);
}

function byName(cookies) {
  return Object.fromEntries(cookies.map((c) => [c.name, c]));
}

async function run() {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 1000, height: 760 },
  });
  context.setDefaultTimeout(20_000);
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));

  // 1. The login page.
  let resp = await page.goto(`${url}/login.jsp`);
  check(resp.status() === 200, `GET /login.jsp is 200 (got ${resp.status()})`);
  check((await page.title()).includes("Log in"), "the login page has its title");
  for (const sel of ["#os_username", "#os_password", "#os_cookie", "input[type=hidden][name=atl_token]"]) {
    check((await page.locator(sel).count()) === 1, `the login form has ${sel}`);
  }
  check(
    (await page.getByText("Remember my login on this computer").count()) === 1,
    "the remember-me box is labelled",
  );
  const anon = byName(await context.cookies(url));
  check(anon[XSRF]?.value.endsWith("_lout"), "an anonymous visitor holds a _lout XSRF token");
  await shot(page, "01-login.png");

  // 2. Log in with "Remember my login" ticked.
  await page.fill("#os_username", user);
  await page.fill("#os_password", password);
  await page.check("#os_cookie");
  await Promise.all([page.waitForURL(`${url}/account`), page.click("#login-submit")]);
  check(new URL(page.url()).pathname === "/account", `the login lands on /account (at ${page.url()})`);
  check((await page.textContent("#username")) === user, `the account page names ${user}`);
  check((await page.locator("tr.this").count()) === 1, "the account page marks this session");
  check(
    (await page.getByRole("button", { name: "Log out all other sessions" }).count()) === 1 &&
      (await page.getByRole("button", { name: "Log out everywhere" }).count()) === 1,
    "the account page has the log-out buttons",
  );
  await shot(page, "02-account.png");

  // 3. The cookies as the browser stored them.
  const now = Date.now() / 1000;
  const jar = byName(await context.cookies(url));
  const session = jar[SESSION];
  const remember = jar[REMEMBER];
  const xsrf = jar[XSRF];
  check(session, "the browser holds a session cookie");
  check(session.httpOnly && session.secure && session.sameSite === "Lax" && session.path === "/",
    `the session cookie is HttpOnly, Secure, SameSite=Lax, Path=/ (${JSON.stringify(session)})`);
  check(session.expires === -1, "the session cookie is a browser-session cookie (no expiry)");
  check(remember, "the browser holds a remember-me cookie");
  check(remember.httpOnly && remember.secure && remember.sameSite === "Lax" && remember.path === "/",
    `the remember-me cookie is HttpOnly, Secure, SameSite=Lax, Path=/ (${JSON.stringify({ ...remember, value: "…" })})`);
  const days = (remember.expires - now) / 86400;
  check(days > 13.9 && days <= 14.01, `the remember-me cookie lives 14 days (${days.toFixed(3)})`);
  check(/^[A-Za-z0-9_-]{22}:[A-Za-z0-9_-]{43}$/.test(remember.value), "the remember-me cookie is selector:validator");
  check(xsrf && xsrf.value.endsWith("_lin"), "the XSRF token is a _lin token after login");
  check(!xsrf.httpOnly && xsrf.secure && xsrf.sameSite === "Lax" && xsrf.path === "/",
    `the XSRF cookie is readable by scripts, Secure, SameSite=Lax, Path=/ (${JSON.stringify(xsrf)})`);
  check(xsrf.value !== anon[XSRF].value, "the XSRF token was re-minted at login");
  const pageToken = await page.locator("input[name=atl_token]").first().getAttribute("value");
  check(pageToken === xsrf.value, "the account page's forms carry the cookie's token");

  // 4. Drop the session cookie (the browser was restarted), reload: remember-me logs in.
  await context.clearCookies({ name: SESSION });
  check(!byName(await context.cookies(url))[SESSION], "the session cookie is gone");
  resp = await page.reload();
  check(resp.status() === 200, `the reload is 200 (got ${resp.status()})`);
  check(new URL(page.url()).pathname === "/account", `still on /account after the reload (at ${page.url()})`);
  check((await page.textContent("#username")) === user, "logged in again by the remember-me cookie");
  const again = byName(await context.cookies(url));
  check(again[SESSION] && again[SESSION].value !== session.value, "a new session cookie was set");
  check(again[REMEMBER] && again[REMEMBER].value !== remember.value, "the remember-me cookie was rotated");
  check(again[REMEMBER].value.split(":")[0] === remember.value.split(":")[0], "the rotated cookie is the same series");
  check(
    again[REMEMBER].expires <= remember.expires + 1.5,
    `rotation did not extend the series (${remember.expires} -> ${again[REMEMBER].expires})`,
  );
  check(again[XSRF]?.value === xsrf.value, "the new session kept the browser's XSRF token (Monday-morning rule)");
  await shot(page, "03-account-remembered.png");

  // 5. Log out.
  await Promise.all([
    page.waitForURL((u) => u.pathname === "/login.jsp"),
    page.locator("form[action='/account/logout'] button").click(),
  ]);
  check(new URL(page.url()).pathname === "/login.jsp", `logging out lands on the login page (at ${page.url()})`);
  check(await page.locator("#logged-out").isVisible(), "the login page says you are logged out");
  const after = byName(await context.cookies(url));
  check(!after[SESSION], "the session cookie is gone after logout");
  check(!after[REMEMBER], "the remember-me cookie is gone after logout");
  check(after[XSRF]?.value.endsWith("_lout"), "a fresh _lout XSRF token after logout");
  await shot(page, "04-logged-out.png");

  // 6. The series is gone on the server too: replaying the last cookie logs nobody in.
  await context.addCookies([{ ...again[REMEMBER], expires: again[REMEMBER].expires }]);
  resp = await page.goto(`${url}/account`);
  check(new URL(page.url()).pathname === "/login.jsp", `a replayed remember-me cookie is refused (at ${page.url()})`);
  await shot(page, "05-replayed-cookie-refused.png");

  check(problems.length === 0, `no page errors, console errors or failed requests (${problems.join("; ")})`);

  // 7. A failed login shows its reason (its 401 is the one expected console error).
  await page.fill("#os_username", user);
  await page.fill("#os_password", "not the password");
  await Promise.all([page.waitForLoadState("load"), page.click("#login-submit")]);
  check((await page.locator("#login-error").count()) === 1, "a failed login shows the reason");
  await shot(page, "06-login-failed.png");
  await context.close();

  // 8. The pages work with scripts disabled.
  const noJs = await browser.newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false });
  const p2 = await noJs.newPage();
  await p2.goto(`${url}/login.jsp`);
  await p2.fill("#os_username", user);
  await p2.fill("#os_password", password);
  await Promise.all([p2.waitForURL(`${url}/account`), p2.click("#login-submit")]);
  check((await p2.textContent("#username")) === user, "logging in works with scripts disabled");
  await noJs.close();
}
