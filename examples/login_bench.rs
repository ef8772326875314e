//! Helper for bench/login_protection.sh (issue 4's benchmark): measures a
//! running authd over HTTPS. Not part of authd.
//!
//! ```text
//! login_bench timing --url URL --cert PEM --user NAME [--logins N] [--warmup W]
//!     N sequential wrong-password logins of a known user and N of unknown
//!     names, interleaved (ABBA), on one keep-alive connection each:
//!     median, p10, p90 of both, and their ratio.
//! login_bench hammer --url URL --cert PEM --admin-password PW --users PREFIX
//!     [--clients 32] [--seconds 10] [--probe-interval-ms 5]
//!     the p50/p99/max of GET /rest/auth/1/session with a valid cookie, first
//!     alone, then while --clients clients POST wrong-password logins of
//!     PREFIX0..PREFIX{clients-1} as fast as they are answered.
//! ```
//!
//! Each prints one JSON object on stdout.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use serde_json::{json, Value};

fn main() {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    let opts = parse_opts(args);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| fail(&e));
    let out = match cmd.as_str() {
        "timing" => rt.block_on(timing(&opts)),
        "hammer" => hammer(&opts, &rt),
        _ => fail(&"usage: login_bench (timing|hammer) --url URL --cert PEM ... (see the source)"),
    };
    println!("{out}");
}

type Opts = BTreeMap<String, String>;

fn parse_opts(mut args: impl Iterator<Item = String>) -> Opts {
    let mut out = Opts::new();
    while let Some(k) = args.next() {
        let Some(name) = k.strip_prefix("--") else { fail(&format!("unexpected argument {k}")) };
        let v = args.next().unwrap_or_else(|| fail(&format!("--{name} needs a value")));
        out.insert(name.to_string(), v);
    }
    out
}

fn opt<'a>(o: &'a Opts, name: &str) -> &'a str {
    o.get(name).map_or_else(|| fail(&format!("--{name} is required")), String::as_str)
}

fn num(o: &Opts, name: &str, default: u64) -> u64 {
    o.get(name).map_or(default, |v| v.parse().unwrap_or_else(|_| fail(&format!("--{name}: not a number"))))
}

fn fail(e: &dyn std::fmt::Display) -> ! {
    eprintln!("login_bench: {e}");
    std::process::exit(2)
}

/// An HTTPS client trusting exactly `cert`; HTTP/1.1 with keep-alive.
fn client(cert: &[u8]) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(cert) {
        roots.add(c.unwrap_or_else(|e| fail(&e))).unwrap_or_else(|e| fail(&e));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| fail(&e))
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .http1_only()
        .pool_max_idle_per_host(1)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|e| fail(&e))
}

async fn login(c: &reqwest::Client, url: &str, user: &str, password: &str) -> (u16, Duration) {
    let t = Instant::now();
    let r = c
        .post(format!("{url}/rest/auth/1/session"))
        .json(&json!({ "username": user, "password": password }))
        .send()
        .await
        .unwrap_or_else(|e| fail(&e));
    let status = r.status().as_u16();
    let _ = r.bytes().await;
    (status, t.elapsed())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The `q` quantile (nearest rank) of sorted samples.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn summary(mut v: Vec<Duration>) -> Value {
    v.sort();
    json!({
        "n": v.len(),
        "p10_ms": ms(quantile(&v, 0.10)),
        "median_ms": ms(quantile(&v, 0.50)),
        "p90_ms": ms(quantile(&v, 0.90)),
        "p99_ms": ms(quantile(&v, 0.99)),
        "max_ms": ms(v.last().copied().unwrap_or_default()),
    })
}

async fn timing(o: &Opts) -> Value {
    let url = opt(o, "url").trim_end_matches('/').to_string();
    let cert = std::fs::read(opt(o, "cert")).unwrap_or_else(|e| fail(&e));
    let user = opt(o, "user").to_string();
    let n = num(o, "logins", 300);
    let warmup = num(o, "warmup", 20);
    let known_c = client(&cert);
    let unknown_c = client(&cert);
    let ghost = "nobody-by-this-name";
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for i in 0..warmup + n {
        // ABBA: each pair's order alternates, so drift favours neither side.
        let known_first = i % 2 == 0;
        let mut pair = [(true, Duration::ZERO), (false, Duration::ZERO)];
        for slot in &mut pair {
            let is_known = slot.0 == known_first;
            let (status, t) = if is_known {
                login(&known_c, &url, &user, "a wrong password").await
            } else {
                login(&unknown_c, &url, ghost, "a wrong password").await
            };
            *statuses.entry(status).or_default() += 1;
            *slot = (is_known, t);
        }
        if i >= warmup {
            for (is_known, t) in pair {
                if is_known {
                    known.push(t);
                } else {
                    unknown.push(t);
                }
            }
        }
    }
    let mut ks = known.clone();
    let mut us = unknown.clone();
    ks.sort();
    us.sort();
    let (km, um) = (quantile(&ks, 0.5), quantile(&us, 0.5));
    json!({
        "logins_per_side": n,
        "known_wrong_password": summary(known),
        "unknown_user": summary(unknown),
        "median_ratio_unknown_over_known": (um.as_secs_f64() / km.as_secs_f64() * 1e4).round() / 1e4,
        "statuses": statuses,
    })
}

/// Probes `GET /rest/auth/1/session` every `interval` until `stop`; returns each latency.
fn probe(
    url: String,
    cert: Vec<u8>,
    cookie: String,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> Vec<Duration> {
    // Its own single-threaded runtime on its own thread, so the load's tasks
    // cannot delay the probe's client side.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| fail(&e));
    rt.block_on(async move {
        let c = client(&cert);
        let mut out = Vec::new();
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            let r = c
                .get(format!("{url}/rest/auth/1/session"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap_or_else(|e| fail(&e));
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            let d = t.elapsed();
            if status != 200 {
                fail(&format!("the session check answered {status}"));
            }
            out.push(d);
            next += interval;
            tokio::time::sleep_until(next.max(Instant::now()).into()).await;
        }
        out
    })
}

fn hammer(o: &Opts, rt: &tokio::runtime::Runtime) -> Value {
    let url = opt(o, "url").trim_end_matches('/').to_string();
    let cert = std::fs::read(opt(o, "cert")).unwrap_or_else(|e| fail(&e));
    let admin_pw = opt(o, "admin-password").to_string();
    let prefix = opt(o, "users").to_string();
    let clients = num(o, "clients", 32);
    let seconds = num(o, "seconds", 10);
    let interval = Duration::from_millis(num(o, "probe-interval-ms", 5));

    // A valid session cookie, from a real login.
    let cookie = rt.block_on(async {
        let c = client(&cert);
        let r = c
            .post(format!("{url}/rest/auth/1/session"))
            .json(&json!({ "username": "admin", "password": admin_pw }))
            .send()
            .await
            .unwrap_or_else(|e| fail(&e));
        if r.status() != 200 {
            fail(&format!("admin login: {}", r.status()));
        }
        let body: Value = r.json().await.unwrap_or_else(|e| fail(&e));
        format!("JSESSIONID={}", body["session"]["value"].as_str().unwrap_or_default())
    });

    let run_probe = |secs: u64| {
        let stop = Arc::new(AtomicBool::new(false));
        let (u, c, k, s) = (url.clone(), cert.clone(), cookie.clone(), Arc::clone(&stop));
        let h = std::thread::spawn(move || probe(u, c, k, interval, s));
        (h, stop, secs)
    };

    // 1. The session check alone.
    let (h, stop, secs) = run_probe(seconds.min(5));
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let idle = h.join().unwrap_or_else(|_| fail(&"probe thread panicked"));

    // 2. The same while `clients` clients hammer the login endpoint.
    let stop_load = Arc::new(AtomicBool::new(false));
    let statuses: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let login_times: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (url, cert, user) = (url.clone(), cert.clone(), format!("{prefix}{i}"));
        let (stop, statuses, times) =
            (Arc::clone(&stop_load), Arc::clone(&statuses), Arc::clone(&login_times));
        tasks.push(rt.spawn(async move {
            let c = client(&cert);
            while !stop.load(Ordering::Relaxed) {
                let (status, t) = login(&c, &url, &user, "a wrong password").await;
                *statuses.lock().unwrap_or_else(|p| p.into_inner()).entry(status).or_default() += 1;
                times.lock().unwrap_or_else(|p| p.into_inner()).push(t);
            }
        }));
    }
    // Let the queue fill before probing.
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let (h, stop, secs) = run_probe(seconds);
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let loaded = h.join().unwrap_or_else(|_| fail(&"probe thread panicked"));
    let window = started.elapsed();
    stop_load.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
    });
    let statuses = statuses.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let times = login_times.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let total: u64 = statuses.values().sum();
    json!({
        "clients": clients,
        "seconds": seconds,
        "probe_interval_ms": interval.as_millis() as u64,
        "session_check_idle": summary(idle),
        "session_check_under_login_load": summary(loaded),
        "logins": {
            "answered": total,
            "per_second": ((total as f64) / (window.as_secs_f64() + 1.0) * 10.0).round() / 10.0,
            "statuses": statuses,
            "latency": summary(times),
        },
    })
}
