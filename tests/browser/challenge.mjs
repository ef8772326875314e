// Drives Debian's headless Chromium through authd's login challenge
// (SPEC §3, issue 4): fail N times through /login.jsp, see the
// proof-of-work puzzle, let the page's inline script solve it (WebCrypto
// SHA-256), type the right password and land on /account. On the way it
// checks that a browser without scripts is told to wait instead.
//
// It starts nothing itself. tests/it/browser_challenge.rs starts authd
// (with a user and --max-failed-logins) and runs it with:
//   AUTHD_URL             https://127.0.0.1:PORT
//   AUTHD_USER            user name
//   AUTHD_PASSWORD        that user's password
//   AUTHD_MAX_FAILED      --max-failed-logins of that authd (default 3)
//   AUTHD_POW_BITS        the puzzle's expected difficulty (default 16)
//   AUTHD_CERT            authd's certificate (PEM), for the record; the
//                         context ignores certificate errors instead
//   AUTHD_SCREENSHOT_DIR  where the screenshots go (created if missing)
//   CHROMIUM              the browser binary (default /usr/bin/chromium)
//
// Prints `solve_ms N` (the page's own measure of the solve) on success.
// Exit codes: 0 all checks passed, 1 a check failed, 2 bad environment or
// the browser could not be started.

import { mkdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = process.env;
const url = (env.AUTHD_URL || "").replace(/\/$/, "");
const user = env.AUTHD_USER || "";
const password = env.AUTHD_PASSWORD || "";
const maxFailed = Number(env.AUTHD_MAX_FAILED || "3");
const bits = Number(env.AUTHD_POW_BITS || "16");
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
setup(user !== "", "AUTHD_USER is empty");
setup(password !== "", "AUTHD_PASSWORD is empty");
setup(Number.isInteger(maxFailed) && maxFailed >= 1, "AUTHD_MAX_FAILED must be a positive integer");
setup(Number.isInteger(bits) && bits >= 1, "AUTHD_POW_BITS must be a positive integer");
setup(existsSync(executablePath), `no browser at ${executablePath}`);
mkdirSync(shots, { recursive: true });

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

/// Fills the login form and submits it; returns the HTTP status of the answer.
async function submit(page, name, pw) {
  await page.fill("#os_username", name);
  await page.fill("#os_password", pw);
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${url}/login.jsp` && r.request().method() === "POST"),
    page.click("#login-submit"),
  ]);
  await page.waitForLoadState("load");
  return resp.status();
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
    // The failed logins' 401/403 are logged as "Failed to load resource"; anything
    // else (a script error, a CSP violation blocking the solver) is a problem.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
      problems.push(`console error: ${m.text()}`);
    }
  });

  const resp = await page.goto(`${url}/login.jsp`);
  check(resp.status() === 200, `GET /login.jsp is 200 (got ${resp.status()})`);
  check((await page.locator("form[data-pow-bits]").count()) === 0, "no puzzle before any failure");

  // 1. N wrong passwords through the page: the last one brings the puzzle.
  // "Remember my login" is ticked once, and must stay ticked throughout.
  await page.check("#os_cookie");
  for (let i = 1; i <= maxFailed; i++) {
    const status = await submit(page, user, `wrong password ${i}`);
    if (i === maxFailed) {
      // At once, so that the shot may still catch the solver at work.
      await shot(page, "01-challenge.png");
    }
    check(status === 401, `wrong password ${i} of ${maxFailed} is 401 (got ${status})`);
    check((await page.locator("#login-error").count()) === 1, `failure ${i} shows the reason`);
    check(await page.isChecked("#os_cookie"), `failure ${i} keeps "Remember my login" ticked`);
    const puzzles = await page.locator("form[data-pow-bits]").count();
    if (i < maxFailed) {
      check(puzzles === 0, `no puzzle after ${i} failure(s)`);
    } else {
      check(puzzles === 1, `the page shows a puzzle after ${maxFailed} failures`);
    }
  }
  const form = page.locator("#login-form");
  check(Number(await form.getAttribute("data-pow-bits")) === bits, `the puzzle needs ${bits} zero bits`);
  check((await page.locator("input[type=hidden][name=pow_challenge]").count()) === 1, "the form carries the challenge");
  check((await page.inputValue("#os_username")) === user, "the user name is kept in the form");

  // 2. Meanwhile, a browser without scripts is told to wait instead.
  const noJs = await browser.newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false });
  const p2 = await noJs.newPage();
  await p2.goto(`${url}/login.jsp`);
  const status = await submit(p2, user, password);
  check(status === 403, `without scripts the right password is refused with 403 (got ${status})`);
  const message = await p2.textContent("#login-error");
  check(/Without scripts, wait \d+ (seconds|minutes)/.test(message), `the page says how long to wait: "${message}"`);
  // (Playwright disables scripts by DevTools emulation, under which Chromium's
  // parser still treats <noscript> as inert, so look for it in the markup.)
  check((await p2.content()).includes("Scripts are off, so the check cannot run"), "the page has the noscript note");
  check((await p2.inputValue("#pow_solution")) === "", "nothing solved the puzzle without scripts");
  await shot(p2, "02-challenge-no-scripts.png");
  await noJs.close();

  // 3. The page's script solves the puzzle.
  await page.waitForSelector('#pow-status[data-solved="true"]', { timeout: 120_000 });
  const statusText = (await page.textContent("#pow-status")).trim();
  const m = statusText.match(/Check done in (\d+) ms/);
  check(m, `the status says the check is done: "${statusText}"`);
  const solveMs = Number(m[1]);
  const solution = await page.inputValue("#pow_solution");
  check(/^\d+$/.test(solution), `the script filled in a solution (${solution})`);
  check(await page.isEnabled("#login-submit"), "the log-in button is enabled once solved");
  await shot(page, "03-challenge-solved.png");

  // 4. The right password now logs in.
  await page.fill("#os_password", password);
  await Promise.all([page.waitForURL(`${url}/account`), page.click("#login-submit")]);
  check(new URL(page.url()).pathname === "/account", `the login lands on /account (at ${page.url()})`);
  check((await page.textContent("#username")) === user, `the account page names ${user}`);
  check((await page.locator("tr.this").count()) === 1, "the account page marks this session");
  const names = (await context.cookies()).map((c) => c.name);
  check(names.includes("seraph.rememberme.cookie"), `the ticked box set the remember-me cookie (${names.join(", ")})`);
  await shot(page, "04-account.png");

  check(problems.length === 0, `no page errors or console errors (${problems.join("; ")})`);
  console.log(`solve_ms ${solveMs}`);
  await context.close();
}
