// The peer authd is measured against (bench/run.sh, target 3): what a user
// would write instead of authd. Express + express-session + connect-redis
// against Redis, over HTTPS with authd's own certificate.
//
//   POST /login    {"username":"u","password":"p"} -> 200, Set-Cookie connect.sid
//   GET  /session  with the cookie -> 200 {"name":"u"}, else 401
//
// One user, checked with a constant-time comparison; the benchmark is about
// the session check, not the login. Environment:
//   PEER_PORT (required), PEER_CERT, PEER_KEY (PEM files), REDIS_URL,
//   PEER_USER, PEER_PASSWORD.

import fs from "node:fs";
import https from "node:https";
import crypto from "node:crypto";
import express from "express";
import session from "express-session";
import { RedisStore } from "connect-redis";
import { createClient } from "redis";

const port = Number(process.env.PEER_PORT);
if (!port) {
  console.error("PEER_PORT is required");
  process.exit(2);
}
const user = process.env.PEER_USER || "bench";
const password = process.env.PEER_PASSWORD || "bench-password";

const redis = createClient({ url: process.env.REDIS_URL || "redis://127.0.0.1:6379" });
redis.on("error", (e) => console.error("redis:", e.message));
await redis.connect();

const app = express();
app.disable("x-powered-by");
app.set("trust proxy", false);
app.use(
  session({
    store: new RedisStore({ client: redis, prefix: "sess:" }),
    secret: crypto.randomBytes(32).toString("hex"),
    name: "connect.sid",
    resave: false, // as the express-session docs recommend with a store that touches
    saveUninitialized: false,
    rolling: false,
    cookie: { secure: true, httpOnly: true, sameSite: "lax", maxAge: 5 * 3600 * 1000 },
  }),
);

function same(a, b) {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

app.post("/login", express.json({ limit: "16kb" }), (req, res, next) => {
  const body = req.body || {};
  if (!same(body.username, user) || !same(body.password, password)) {
    res.status(401).json({ errorMessages: ["Login failed"], errors: {} });
    return;
  }
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = user;
    req.session.save((err2) => {
      if (err2) return next(err2);
      res.json({ session: { name: "connect.sid" } });
    });
  });
});

app.get("/session", (req, res) => {
  if (!req.session.user) {
    res.status(401).json({ errorMessages: ["You are not authenticated."], errors: {} });
    return;
  }
  res.json({ name: req.session.user });
});

app.get("/healthz", (req, res) => res.type("text").send("ok"));

const server = https.createServer(
  { cert: fs.readFileSync(process.env.PEER_CERT), key: fs.readFileSync(process.env.PEER_KEY) },
  app,
);
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => {
  console.error(`peer (express + express-session + connect-redis) listening\n  URL:          https://127.0.0.1:${port}`);
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    server.close();
    redis.quit().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
